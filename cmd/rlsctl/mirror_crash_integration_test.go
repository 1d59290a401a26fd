package main

// The mirror's crash loop (issue 10's acceptance): the mirroring rlsd is
// kill -9ed at chosen and random points of its work, round after round, on
// one data directory and one store, while units are enqueued; then it runs
// to the end. Afterwards every enqueued unit is DONE, registered with its
// attributes, identical to jsoc's, placed once, and nothing half-made is
// left.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	rlsv1 "github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
	"github.com/solar-archive/rls/internal/transfertest"
	"github.com/solar-archive/rls/transfer"
)

const (
	crashFirst    = 70_000 // the first sunum
	crashPerRound = 16     // units enqueued per round; every eighth is large
)

var crashSeries = [...]string{"hmi.m_crash", "aia.lev_crash"}

// crashUnit is one unit of the crash loop, as jsoc holds it.
type crashUnit struct {
	sunum    uint64
	series   string
	pfn      string // at jsoc
	atPeer   bool   // nso holds a copy too: the mirror pulls it from there
	size     int64
	files    int64
	tree     string // transfertest.TreeDigest of jsoc's copy
	manifest string // hex SHA-256 of its transfer manifest
}

// source is the site the mirror must pull u from: a peer first.
func (u *crashUnit) source() string {
	if u.atPeer {
		return "nso"
	}
	return "jsoc"
}

// crashPhase is the moment of its work at which a round kills the mirror:
// after the first log line matching line (if any) of the run, and a random
// delay in [lo, hi) after that.
type crashPhase struct {
	name    string
	line    *regexp.Regexp
	lo, hi  time.Duration
	enqueue bool // this round enqueues units before it waits
}

var crashPhases = []crashPhase{
	// Inside PullUnits: manifests, bytes in staging, checkpoints, renames.
	{name: "pull", line: regexp.MustCompile(`msg="mirror state" .*to=QUED`), hi: 300 * time.Millisecond, enqueue: true},
	// A unit renamed into place; its batch is not registered yet (a crash
	// after 47 of 48 placed units).
	{name: "placed", line: regexp.MustCompile(`INFO pulled .*dest=`), hi: time.Millisecond, enqueue: true},
	// Right after the start: requeueing what the last run left in flight,
	// presence checks, the first Locate.
	{name: "start", hi: 30 * time.Millisecond},
	// A batch located (REDY): writing BQUED, locating the next window.
	{name: "locate", line: regexp.MustCompile(`msg="mirror state" .*to=REDY`), hi: time.Millisecond, enqueue: true},
	// DONE written for a batch: the on-done hook and other batches in flight.
	{name: "done", line: regexp.MustCompile(`msg="mirror state" .*to=DONE`), hi: time.Millisecond, enqueue: true},
	// Anywhere in the first second and a half.
	{name: "random", hi: 1500 * time.Millisecond, enqueue: true},
}

// placedEntry is a file or directory of a placed unit as first seen. A
// unit placed again (renamed over, exchanged, rewritten) shows another
// inode or ctime.
type placedEntry struct {
	ino   uint64
	ctime int64
}

// crashLoop is the state of TestFaultMirrorCrash.
type crashLoop struct {
	t       *testing.T
	f       *federation
	rng     *rand.Rand
	units   []*crashUnit
	byNum   map[uint64]*crashUnit
	next    int             // units[:next] are enqueued
	queued  map[uint64]bool // given to Enqueue (guarded by mu), which acknowledged them
	data    string
	root    string // the mirror's export root; its store is root/sums
	store   string
	hookLog string
	procs   []*rlsdtest.Proc // every run of the mirror, for their logs
	kills   map[string]int   // by phase
	staged  int              // units found in staging after kills

	mu     sync.Mutex // held by sample, which runs on a watcher goroutine too
	placed map[string]placedEntry
	half   map[string]bool // units seen incomplete (reported once)
}

// TestFaultMirrorCrash kills the mirroring rlsd (kill -9) at chosen and
// random points of its work: inside PullUnits, right after a unit is
// placed and before its batch is registered, right after its start, after
// a Locate, right after a DONE, and at a random moment — each once, then
// drawn at random — for max(RLS_FAULT_ROUNDS, 6) rounds. The federation:
// jsoc (the authority) holds units of two series, most small (1–4 files,
// ≤ 64 KiB), every eighth of a few MiB, so that kills land mid-file and
// mid-batch; nso, a peer, holds a copy of every third, which the mirror
// must take from it rather than from jsoc. Each round but the start's
// enqueues more units (bulk, user, two bulk ones moved to the user lane,
// repeats of earlier ones). While the mirror works (every 10 ms) and after
// each kill, the store is sampled:
//
//   - no half unit visible: every STORE/D<sunum> is the whole unit,
//     identical to jsoc's (paths, modes, sizes, mtimes, SHA-256);
//   - placed once: a unit's directory and files keep the inode and ctime
//     they had when first seen (checked after each kill and at the end).
//     Placing a unit means renaming its staging copy to STORE/D<sunum>; a
//     second placement (a re-pull renamed over it, an exchange, a rewrite
//     in place) changes them. Across all runs' logs transfer reports
//     "pulled" at most once per unit (a unit a later run finds in place
//     is reported "found in place", not fetched), and the on-done hook
//     runs at least once per unit, always seeing the same inode.
//
// At the end every enqueued unit is DONE (rlsctl mirror wait exits 0),
// mapped in the mirror's catalog to STORE/D<sunum> alone, with attributes
// size, files, sha256 (of the manifest, computed here from jsoc's copy),
// series and source (nso for its units, jsoc for the rest), the store
// holds exactly those units, and no staging is left. A unit whose run died
// between its registration and its DONE is made DONE by the next run with
// the source, size and file count it was registered with, and its hook
// runs then; a hook cut by a kill (or not yet started) runs at the next
// start. A hook may run twice (the kill fell after the hook and before its
// pending mark was cleared); the number of such units is logged.
func TestFaultMirrorCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rlsd processes")
	}
	rounds := max(rlsdtest.FaultRounds(t), len(crashPhases))
	c := &crashLoop{t: t, f: startFederation(t), rng: rlsdtest.FaultRand(t), byNum: map[uint64]*crashUnit{},
		queued: map[uint64]bool{}, placed: map[string]placedEntry{}, half: map[string]bool{}, kills: map[string]int{}}
	began := time.Now()
	c.makeUnits((rounds + 1) * crashPerRound)
	t.Logf("%d units made and indexed in %s", len(c.units), time.Since(began).Round(time.Millisecond))

	c.data, c.root = t.TempDir(), t.TempDir()
	c.store = filepath.Join(c.root, "sums")
	// The hook records each unit's directory inode as it saw it.
	c.hookLog = filepath.Join(t.TempDir(), "on-done.log")
	hook := filepath.Join(t.TempDir(), "on-done.sh")
	must(t, os.WriteFile(hook, []byte("#!/bin/sh\necho \"$1 $(stat -c %i \"$2\")\" >> "+c.hookLog+"\n"), 0o755))
	start := func() (*rlsdtest.Proc, rlsv1.MirrorClient) {
		p := c.f.startMirror("crash", c.data, c.root, "--mirror-authority", "jsoc="+c.f.jsoc.Addr,
			"--mirror-batch-units", "8", "--mirror-retry-base", "1s", "--mirror-retry-cap", "2s", "--mirror-on-done", hook)
		c.procs = append(c.procs, p)
		return p, rlsv1.NewMirrorClient(dialT(t, p.Addr))
	}

	for round := range rounds {
		ph := crashPhases[round%len(crashPhases)]
		if round >= len(crashPhases) {
			ph = crashPhases[c.rng.IntN(len(crashPhases))]
		}
		began = time.Now()
		p, mc := start()
		stop := c.watch(fmt.Sprintf("round %d, the mirror at work", round))
		if ph.enqueue {
			c.enqueue(mc, crashPerRound)
		}
		c.killAt(p, ph, round)
		stop()
		c.staged += c.sample(fmt.Sprintf("after kill %d (%s)", round, ph.name), true)
		t.Logf("round %d: killed at %s, %s after the start", round, ph.name, time.Since(began).Round(time.Millisecond))
	}

	began = time.Now()
	p, mc := start()
	stop := c.watch("the last run at work")
	c.enqueue(mc, len(c.units))
	all := slices.Sorted(maps.Keys(c.queued))
	c.f.ctl(0, p, append([]string{"mirror", "wait", "--timeout", "300s"}, sunumArgs(all)...)...)
	t.Logf("the last run: all DONE %s after its start", time.Since(began).Round(time.Millisecond))
	// The hooks run after DONE; a stop now would leave the last ones for
	// the next start.
	waitHooks(t, c.hookLog, all)
	stop()
	c.checkRecords(mc, all)
	c.checkCatalog(p, all)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("the last run exited %d on SIGTERM, want 0", code)
	}
	c.checkStore(all)
	c.checkLogs(all)
}

func dialT(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// killAt waits for the moment of phase ph in p's run, kills p (kill -9)
// and waits for it to go.
func (c *crashLoop) killAt(p *rlsdtest.Proc, ph crashPhase, round int) {
	c.t.Helper()
	if ph.line != nil {
		if _, ok := p.FindLog(0, ph.line, 30*time.Second); !ok {
			c.t.Logf("round %d (%s): no line %v in 30s; killing anyway", round, ph.name, ph.line)
		}
	}
	time.Sleep(rlsdtest.Delay(c.rng, ph.lo, max(ph.hi, ph.lo+1)))
	p.Kill()
	c.kills[ph.name]++
}

// enqueue enqueues up to n more units, each acknowledged: most in the
// bulk lane, the last four in the user lane with two of the bulk ones
// (which moves them there), and three repeats of units enqueued before.
func (c *crashLoop) enqueue(mc rlsv1.MirrorClient, n int) {
	c.t.Helper()
	chunk := c.units[c.next:min(c.next+n, len(c.units))]
	c.next += len(chunk)
	var repeats []*crashUnit
	for range 3 {
		if c.next > len(chunk) {
			repeats = append(repeats, c.units[c.rng.IntN(c.next-len(chunk))])
		}
	}
	split := max(len(chunk)-4, 0)
	bulk := append(slices.Clone(chunk[:split]), repeats...)
	user := append(slices.Clone(chunk[split:]), chunk[:min(2, split)]...)
	for _, q := range []struct {
		prio  rlsv1.MirrorPriority
		units []*crashUnit
	}{{rlsv1.MirrorPriority_MIRROR_PRIORITY_BULK, bulk}, {rlsv1.MirrorPriority_MIRROR_PRIORITY_USER, user}} {
		if len(q.units) == 0 {
			continue
		}
		req := &rlsv1.MirrorEnqueueRequest{Priority: q.prio}
		for _, u := range q.units {
			req.Items = append(req.Items, &rlsv1.MirrorEnqueueItem{Sunum: u.sunum, Series: u.series})
		}
		// Known to the sampler before the mirror can place them.
		c.mu.Lock()
		for _, u := range q.units {
			c.queued[u.sunum] = true
		}
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := mc.Enqueue(ctx, req)
		cancel()
		if err != nil {
			c.t.Fatalf("enqueue %d units: %v", len(req.Items), err)
		}
	}
}

// makeUnits writes n units at jsoc and registers them with their series,
// copies every third to nso (started here, a peer with lrc and transfer)
// and registers it there, computes each unit's manifest digest from jsoc's
// copy, and waits until the index knows where every unit is.
func (c *crashLoop) makeUnits(n int) {
	t, f := c.t, c.f
	nsoRoot := t.TempDir()
	var jsocMaps, nsoMaps []*rlsv1.Mapping
	var series []*rlsv1.AttributeWrite
	for i := range n {
		sunum := uint64(crashFirst + i)
		u := &crashUnit{sunum: sunum, series: crashSeries[i%2], pfn: f.unitDir(sunum), atPeer: i%3 == 0}
		c.writeUnit(u, i%8 == 7)
		f.units[sunum] = u.series
		u.tree = transfertest.TreeDigest(t, u.pfn)
		jsocMaps = append(jsocMaps, &rlsv1.Mapping{Lfn: lfnOf(sunum), Pfn: u.pfn})
		series = append(series, &rlsv1.AttributeWrite{ObjectName: lfnOf(sunum), Name: "series",
			Value: &rlsv1.Value{V: &rlsv1.Value_String_{String_: u.series}}})
		if u.atPeer {
			dst := filepath.Join(nsoRoot, "D"+lfnOf(sunum))
			copyTree(t, u.pfn, dst)
			nsoMaps = append(nsoMaps, &rlsv1.Mapping{Lfn: lfnOf(sunum), Pfn: dst})
		}
		c.units = append(c.units, u)
		c.byNum[sunum] = u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	jsoc := rlsv1.NewCatalogClient(dialT(t, f.jsoc.Addr))
	bulkCreate(ctx, t, "jsoc", jsoc, jsocMaps)
	r, err := jsoc.BulkSetAttributes(ctx, &rlsv1.BulkSetAttributesRequest{Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, Writes: series})
	if err != nil || r.GetFailed() != 0 {
		t.Fatalf("jsoc: set series: %v %v", err, r.GetResults())
	}
	nso := rlsdtest.Start(t, f.rlsd, "rls.v1.Transfer", append([]string{"--site", "nso", "--roles", "lrc,transfer",
		"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--export-root", nsoRoot}, f.updateFlags...)...)
	bulkCreate(ctx, t, "nso", rlsv1.NewCatalogClient(dialT(t, nso.Addr)), nsoMaps)

	src, err := transfer.NewSource([]string{f.jsocRoot}, nil)
	must(t, err)
	defer src.Close()
	for _, u := range c.units {
		m, err := src.Manifest(ctx, u.pfn)
		must(t, err)
		u.manifest = m.Digest().String()
	}

	// The index knows jsoc's units and nso's copies.
	ix := rlsv1.NewIndexClient(dialT(t, f.rli.Addr))
	lfns := make([]string, len(c.units))
	for i, u := range c.units {
		lfns[i] = lfnOf(u.sunum)
	}
	rlsdtest.Eventually(t, 60*time.Second, func() error {
		r, err := ix.Locate(ctx, &rlsv1.LocateRequest{Lfns: lfns})
		if err != nil {
			return err
		}
		for i, res := range r.GetResults() {
			var sites []string
			for _, s := range res.GetSites() {
				sites = append(sites, s.GetSite())
			}
			slices.Sort(sites)
			want := []string{"jsoc"}
			if c.units[i].atPeer {
				want = []string{"jsoc", "nso"}
			}
			if !slices.Equal(sites, want) {
				return fmt.Errorf("the index has %s at %q, want %q", lfns[i], sites, want)
			}
		}
		return nil
	})
}

func bulkCreate(ctx context.Context, t *testing.T, site string, cl rlsv1.CatalogClient, ms []*rlsv1.Mapping) {
	t.Helper()
	r, err := cl.BulkWrite(ctx, &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_CREATE, Mappings: ms})
	if err != nil || r.GetFailed() != 0 {
		t.Fatalf("%s: bulk create: %v %v", site, err, r.GetResults())
	}
}

// lfnOf is a sunum's LFN, its canonical decimal form.
func lfnOf(n uint64) string { return strconv.FormatUint(n, 10) }

// writeUnit writes u at u.pfn in the DRMS layout (D<sunum>/S00000/...):
// small, 1–4 files of up to 64 KiB (some empty); or large, a file of 2–6
// MiB and a small one. Contents are pseudo-random from the sunum; mtimes
// are fixed, so that a copy can have the very same tree.
func (c *crashLoop) writeUnit(u *crashUnit, large bool) {
	t := c.t
	dir := filepath.Join(u.pfn, "S00000")
	must(t, os.MkdirAll(dir, 0o755))
	var seed [32]byte
	copy(seed[:], lfnOf(u.sunum))
	gen := rand.NewChaCha8(seed)
	sizes := []int{}
	if large {
		sizes = append(sizes, 2<<20+c.rng.IntN(4<<20), c.rng.IntN(4<<10))
	} else {
		for range 1 + c.rng.IntN(4) {
			sizes = append(sizes, c.rng.IntN(64<<10+1))
		}
	}
	mtime := time.Unix(1_600_000_000+int64(u.sunum), 0)
	for i, size := range sizes {
		b := make([]byte, size)
		_, _ = gen.Read(b)
		name := filepath.Join(dir, fmt.Sprintf("f%d.fits", i))
		mode := os.FileMode(0o644)
		if i == 1 {
			mode = 0o640
		}
		must(t, os.WriteFile(name, b, mode))
		must(t, os.Chtimes(name, mtime, mtime))
		u.size += int64(size)
		u.files++
	}
	must(t, os.WriteFile(filepath.Join(u.pfn, "Records.txt"), []byte(u.series+"\n"), 0o644))
	must(t, os.Chtimes(filepath.Join(u.pfn, "Records.txt"), mtime, mtime))
	u.size += int64(len(u.series) + 1)
	u.files++
}

// copyTree copies the unit at src to dst with the same modes and file
// mtimes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(to, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(to, fi.ModTime(), fi.ModTime())
	})
	must(t, err)
}

// watch samples the store every few milliseconds while the mirror works,
// until stop is called: each unit that appears must be whole. (Whether
// units seen before are unchanged is checked after each kill.)
func (c *crashLoop) watch(when string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			c.sample(when, false)
		}
	})
	return func() { close(done); wg.Wait() }
}

// sample checks the store as it is now: every entry is the unit of an
// enqueued sunum (or the staging directory), a unit seen for the first
// time is the whole unit, identical to jsoc's, and, if all, every unit seen
// before has the inodes and ctimes it had then. It counts the units in
// staging. It may run on any goroutine (it reports with t.Errorf).
func (c *crashLoop) sample(when string, all bool) (staged int) {
	t := c.t
	c.mu.Lock()
	defer c.mu.Unlock()
	ents, err := os.ReadDir(c.store)
	if err != nil {
		if !os.IsNotExist(err) {
			t.Errorf("%s: %v", when, err)
		}
		return
	}
	for _, e := range ents {
		if e.Name() == ".rls-staging" {
			s, _ := os.ReadDir(filepath.Join(c.store, e.Name()))
			staged = len(s)
			continue
		}
		dir := filepath.Join(c.store, e.Name())
		n, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), "D"), 10, 64)
		if u := c.byNum[n]; err != nil || u == nil || !c.queued[n] {
			t.Errorf("%s: %s is in the store, but no such unit was enqueued", when, dir)
			continue
		}
		_, seen := c.placed[dir]
		if !seen {
			if got, err := transfertest.TreeDigestErr(dir); err != nil || got != c.byNum[n].tree {
				if c.half[dir] {
					continue // reported
				}
				c.half[dir] = true
				t.Errorf("%s: %s is visible but is not the whole unit (%v):\nwant\n%s\ngot\n%s", when, dir, err, c.byNum[n].tree, got)
				continue
			}
		}
		if !seen || all {
			c.placedOnce(when, dir)
		}
	}
	return staged
}

// placedOnce records the inodes and ctimes of unit dir's entries the first
// time, and checks them against that record later. c.mu is held.
func (c *crashLoop) placedOnce(when, dir string) {
	t := c.t
	_, seen := c.placed[dir]
	found := 0
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		now := placedEntry{ino: st.Ino, ctime: st.Ctim.Nano()}
		was, ok := c.placed[p]
		switch {
		case !seen:
			c.placed[p] = now
		case !ok:
			t.Errorf("%s: %s appeared in a unit placed before", when, p)
		case was != now:
			t.Errorf("%s: %s was placed again: inode %d ctime %d, first seen as inode %d ctime %d",
				when, p, now.ino, now.ctime, was.ino, was.ctime)
		}
		found++
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", when, err)
	}
	if seen {
		want := 0
		for p := range c.placed {
			if p == dir || strings.HasPrefix(p, dir+"/") {
				want++
			}
		}
		if found != want {
			t.Errorf("%s: unit %s has %d entries, first seen with %d", when, dir, found, want)
		}
	}
}

// checkRecords checks the mirror's records: every enqueued sunum DONE,
// from its source, with its size and file count, and no other record,
// also when the run that registered the unit died before it wrote DONE.
func (c *crashLoop) checkRecords(mc rlsv1.MirrorClient, all []uint64) {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := mc.Status(ctx, &rlsv1.MirrorStatusRequest{Sunums: all})
	must(t, err)
	found := 0
	for _, rec := range r.GetRecords() {
		u := c.byNum[rec.GetSunum()]
		if strings.Contains(rec.GetReason(), "before a restart") {
			found++
		}
		switch {
		case rec.GetState() != rlsv1.MirrorState_MIRROR_STATE_DONE:
			t.Errorf("sunum %d: %v (%s), want DONE", rec.GetSunum(), rec.GetState(), rec.GetReason())
		case rec.GetSource() != u.source() || rec.GetBytes() != u.size || rec.GetFiles() != u.files:
			t.Errorf("sunum %d: DONE from %s with %d bytes in %d files, want from %s with %d bytes in %d files",
				u.sunum, rec.GetSource(), rec.GetBytes(), rec.GetFiles(), u.source(), u.size, u.files)
		}
	}
	if len(r.GetRecords()) != len(all) {
		t.Errorf("status of %d sunums: %d records", len(all), len(r.GetRecords()))
	}
	held := 0
	for st := rlsv1.MirrorState_MIRROR_STATE_NQUE; st <= rlsv1.MirrorState_MIRROR_STATE_INVD; st++ {
		l, err := mc.List(ctx, &rlsv1.MirrorListRequest{State: st, Limit: uint32(len(all) + 10)})
		must(t, err)
		held += len(l.GetRecords())
	}
	if held != len(all) {
		t.Errorf("the mirror holds %d records, want %d", held, len(all))
	}
	c.t.Logf("%d of %d units made DONE by a later run after a kill between registration and DONE", found, len(all))
}

// checkCatalog checks the mirror's catalog: each sunum mapped to its
// place in the store alone, with the attributes of the unit.
func (c *crashLoop) checkCatalog(p *rlsdtest.Proc, all []uint64) {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cat := rlsv1.NewCatalogClient(dialT(t, p.Addr))
	lfns := make([]string, len(all))
	for i, n := range all {
		lfns[i] = lfnOf(n)
	}
	q, err := cat.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: lfns})
	must(t, err)
	for i, res := range q.GetResults() {
		if want := filepath.Join(c.store, "D"+lfns[i]); !slices.Equal(res.GetNames(), []string{want}) {
			t.Errorf("sunum %s is mapped to %q, want %q alone", lfns[i], res.GetNames(), want)
		}
	}
	a, err := cat.BulkGetAttributes(ctx, &rlsv1.BulkGetAttributesRequest{Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, ObjectNames: lfns})
	must(t, err)
	for i, res := range a.GetResults() {
		u := c.byNum[all[i]]
		want := fmt.Sprintf("files=%d series=%s sha256=%s size=%d source=%s", u.files, u.series, u.manifest, u.size, u.source())
		var got []string
		for _, at := range res.GetAttributes() {
			v := at.GetValue()
			if _, ok := v.GetV().(*rlsv1.Value_Int); ok {
				got = append(got, fmt.Sprintf("%s=%d", at.GetName(), v.GetInt()))
			} else {
				got = append(got, at.GetName()+"="+v.GetString_())
			}
		}
		slices.Sort(got)
		if g := strings.Join(got, " "); g != want {
			t.Errorf("sunum %d: attributes %s, want %s", u.sunum, g, want)
		}
	}
}

// checkStore checks, with the mirror stopped, that the store holds
// exactly the enqueued units, each identical to jsoc's and placed once,
// and no staging.
func (c *crashLoop) checkStore(all []uint64) {
	t := c.t
	c.sample("at the end", true)
	for _, n := range all {
		if _, ok := c.placed[filepath.Join(c.store, "D"+lfnOf(n))]; !ok {
			t.Errorf("unit %d is not in the store", n)
		}
	}
	c.f.sameUnits(c.store, all)
	if _, err := os.Lstat(filepath.Join(c.store, ".rls-staging")); err == nil {
		t.Errorf("%s is left behind", filepath.Join(c.store, ".rls-staging"))
	}
}

// pulledRE finds transfer's line for a unit it fetched and placed.
var pulledRE = regexp.MustCompile(`INFO pulled .*dest=(\S+)`)

// checkLogs checks that across all runs transfer fetched each unit at most
// once and the on-done hook ran at least once per unit, each time on the
// unit as placed; it logs how often each happened.
func (c *crashLoop) checkLogs(all []uint64) {
	t := c.t
	pulled := map[string]int{}
	inPlace, resumed := 0, 0
	for _, p := range c.procs {
		log := p.Log()
		if len(log) >= 1<<20-4096 {
			t.Logf("a run's log reached the captured MiB: counts of its lines are lower bounds")
		}
		for _, m := range pulledRE.FindAllStringSubmatch(log, -1) {
			pulled[m[1]]++
		}
		inPlace += strings.Count(log, "INFO found in place")
		resumed += strings.Count(log, "INFO resuming pull")
	}
	for dest, k := range pulled {
		if k > 1 {
			t.Errorf("%s was fetched and placed %d times", dest, k)
		}
	}
	b, err := os.ReadFile(c.hookLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	hooks := map[string]int{}
	for line := range strings.Lines(string(b)) {
		sunum, ino, _ := strings.Cut(strings.TrimSpace(line), " ")
		hooks[sunum]++
		if want := c.placed[filepath.Join(c.store, "D"+sunum)]; strconv.FormatUint(want.ino, 10) != ino {
			t.Errorf("the on-done hook saw unit %s as inode %s; placed as inode %d", sunum, ino, want.ino)
		}
	}
	again := 0
	for _, n := range all {
		switch k := hooks[lfnOf(n)]; {
		case k == 0:
			t.Errorf("the on-done hook never ran for %d", n)
		case k > 1:
			again++
		}
	}
	t.Logf("%d runs, kills by phase %v; %d units, %d fetched (logged); after the kills %d units were in staging, "+
		"%d pulls resumed one, %d units were found in place by a later run; the on-done hook ran for %d, twice or more for %d",
		len(c.procs), c.kills, len(all), len(pulled), c.staged, resumed, inPlace, len(hooks), again)
}

// waitHooks waits until the on-done hook's log (lines "SUNUM ...") names
// every sunum of all.
func waitHooks(t *testing.T, hookLog string, all []uint64) {
	t.Helper()
	rlsdtest.Eventually(t, 60*time.Second, func() error {
		b, err := os.ReadFile(hookLog)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		ran := map[string]bool{}
		for line := range strings.Lines(string(b)) {
			sunum, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			ran[sunum] = true
		}
		for _, n := range all {
			if !ran[lfnOf(n)] {
				return fmt.Errorf("the on-done hook has not run for %d (nor for %d others)", n, len(all)-len(ran)-1)
			}
		}
		return nil
	})
}
