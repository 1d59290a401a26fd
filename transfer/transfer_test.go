package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/solar-archive/rls/internal/transfertest"
	"github.com/solar-archive/rls/transfer"
)

// makeUnit writes a unit with nested directories, an empty file, an empty
// directory, small files and one file of bigSize bytes (random blocks at a
// few offsets, holes elsewhere), and returns its path.
func makeUnit(t testing.TB, root, name string, bigSize int64) string {
	t.Helper()
	u := filepath.Join(root, name)
	for _, d := range []string{"a/b/c", "empty-dir", "small"} {
		if err := os.MkdirAll(filepath.Join(u, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, b []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(u, rel), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("empty", nil, 0o644)
	write("a/b/c/deep.txt", []byte("deep\n"), 0o600)
	write("a/readonly", []byte("ro"), 0o444)
	for i := range 40 {
		write(fmt.Sprintf("small/f%03d", i), randBytes(t, 100+i*37), 0o644)
	}
	f, err := os.Create(filepath.Join(u, "a/big.fits"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(bigSize); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, bigSize / 3, bigSize / 2, bigSize - 1<<20} {
		if off < 0 {
			continue
		}
		n := min(1<<20, bigSize-off)
		if _, err := f.WriteAt(randBytes(t, int(n)), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2010, 5, 1, 12, 0, 0, 123456789, time.UTC)
	if err := os.Chtimes(filepath.Join(u, "a/b/c/deep.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	return u
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func treeDigest(t testing.TB, dir string) string { return transfertest.TreeDigest(t, dir) }

func newSource(t testing.TB, roots ...string) *transfer.Source {
	t.Helper()
	s, err := transfer.NewSource(roots, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPullLocal(t *testing.T) {
	root := t.TempDir()
	unit := makeUnit(t, root, "D100", 5<<20+123)
	src := newSource(t, root)
	dest := filepath.Join(t.TempDir(), "D100")
	res, err := transfer.Pull(context.Background(), unit, dest, transfer.PullOptions{
		Sources: []transfer.Peer{src}, RangeSize: 1 << 20, NoSync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := treeDigest(t, dest), treeDigest(t, unit); got != want {
		t.Errorf("pulled tree differs:\n got %s\nwant %s", got, want)
	}
	if res.Fetched != res.Bytes || res.Resumed != 0 || res.Files != 44 || res.Dirs != 5 {
		t.Errorf("result %+v", res)
	}
	if _, err := os.Stat(transfer.StagingDir(dest)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staging directory left behind: %v", err)
	}
	// Again: the destination exists.
	if _, err := transfer.Pull(context.Background(), unit, dest, transfer.PullOptions{Sources: []transfer.Peer{src}}); !errors.Is(err, transfer.ErrExists) {
		t.Errorf("pull over an existing unit: %v, want ErrExists", err)
	}
	// With Force it is replaced in one step.
	must(t, os.WriteFile(filepath.Join(dest, "stray"), []byte("x"), 0o644))
	if _, err := transfer.Pull(context.Background(), unit, dest, transfer.PullOptions{Sources: []transfer.Peer{src}, Force: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := treeDigest(t, dest), treeDigest(t, unit); got != want {
		t.Errorf("forced pull differs:\n got %s\nwant %s", got, want)
	}
}

// peer wraps a Peer with faults.
type peer struct {
	transfer.Peer
	name string
	// failAfter: Read fails with ErrUnavailable once this many bytes were
	// sent in total (negative: never).
	failAfter atomic.Int64
	sent      atomic.Int64
	// corrupt flips a byte of every chunk that starts a file.
	corrupt bool
	// stall blocks every Read until its context ends.
	stall bool
	// crawl, if set, makes every Read send 4 KiB per crawl: slow, but
	// never stalled.
	crawl time.Duration
	// reads counts Read calls.
	reads atomic.Int64
	// gate, if set, holds every Read until it is closed.
	gate <-chan struct{}
	// onFail, if set, is called when a Read fails, with the count of
	// failed Reads so far.
	onFail func(n int64)
	fails  atomic.Int64
}

func newPeer(p transfer.Peer, name string) *peer {
	f := &peer{Peer: p, name: name}
	f.failAfter.Store(-1)
	return f
}

func (f *peer) Name() string { return f.name }

func (f *peer) Read(ctx context.Context, ranges []transfer.Range, fn func(int, int64, []byte) error) error {
	f.reads.Add(1)
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.stall {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.crawl > 0 {
		inner := fn
		fn = func(i int, off int64, p []byte) error {
			for len(p) > 0 {
				select {
				case <-time.After(f.crawl):
				case <-ctx.Done():
					return ctx.Err()
				}
				n := min(len(p), 4<<10)
				if err := inner(i, off, p[:n]); err != nil {
					return err
				}
				off, p = off+int64(n), p[n:]
			}
			return nil
		}
	}
	err := f.Peer.Read(ctx, ranges, func(i int, off int64, p []byte) error {
		if lim := f.failAfter.Load(); lim >= 0 && f.sent.Load() >= lim {
			return fmt.Errorf("%s: %w: connection reset", f.name, transfer.ErrUnavailable)
		}
		f.sent.Add(int64(len(p)))
		if f.corrupt && off == 0 && len(p) > 0 {
			q := bytes.Clone(p)
			q[0] ^= 0xff
			p = q
		}
		return fn(i, off, p)
	})
	if err != nil && f.onFail != nil {
		f.onFail(f.fails.Add(1))
	}
	return err
}

// faultEnv is the unit and source the fault tests pull from.
type faultEnv struct {
	root, unit string
	src        *transfer.Source
	want       string // the unit's tree digest
}

// opts are the fault tests' pull options: small ranges, no fsync, and a
// short stall timeout.
func (e *faultEnv) opts(peers ...transfer.Peer) transfer.PullOptions {
	return transfer.PullOptions{Sources: peers, RangeSize: 1 << 20, NoSync: true, StallTimeout: 500 * time.Millisecond}
}

// TestPullFaults: sources that fail, stall, crawl or corrupt, a pull that
// resumes, and a unit no source has.
func TestPullFaults(t *testing.T) {
	root := t.TempDir()
	unit := makeUnit(t, root, "D7", 8<<20)
	e := &faultEnv{root: root, unit: unit, src: newSource(t, root), want: treeDigest(t, unit)}
	for _, tc := range []struct {
		name string
		test func(*testing.T, *faultEnv)
	}{
		{"source fails mid-pull", testFaultFailingSource},
		{"stalled source", testFaultStalledSource},
		{"slow source", testFaultSlowSource},
		{"corrupt source, good source", testFaultCorruptAndGood},
		{"corrupt only source", testFaultCorruptOnly},
		{"resume", testFaultResume},
		{"not found", testFaultNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, e) })
	}
}

func testFaultFailingSource(t *testing.T, e *faultEnv) {
	good, bad := newPeer(e.src, "good"), newPeer(e.src, "bad")
	bad.failAfter.Store(1 << 20)
	// good sends nothing until bad has failed 3 times (in a row:
	// after its first MiB it fails every Read), so bad is dropped
	// however slow the machine. The pull cannot end before the item
	// of bad's third failure is requeued, so the drop is recorded.
	gate := make(chan struct{})
	var once sync.Once
	bad.onFail = func(n int64) {
		if n >= 3 {
			once.Do(func() { close(gate) })
		}
	}
	good.gate = gate
	dest := filepath.Join(t.TempDir(), "D7")
	o := e.opts(bad, good)
	o.StallTimeout = time.Minute // good waits at the gate without being called stalled
	// One stream a source: bad's failures are then in a row. With
	// several, a Read of bad's begun before its first failure may end
	// well after it, which resets the count: after three failures bad
	// was not dropped, and good could finish the unit before bad's
	// fourth.
	o.Streams = 1
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := transfer.Pull(ctx, e.unit, dest, o)
	if err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, dest) != e.want {
		t.Error("pulled tree differs")
	}
	if !res.Sources[0].Dropped || res.Sources[1].Dropped || res.Sources[0].Bytes == 0 {
		t.Errorf("sources %+v: e.want the bad one dropped after sending some", res.Sources)
	}
}

func testFaultStalledSource(t *testing.T, e *faultEnv) {
	good, slow := newPeer(e.src, "good"), newPeer(e.src, "slow")
	slow.stall = true
	dest := filepath.Join(t.TempDir(), "D7")
	o := e.opts(slow, good)
	o.RateLimit = 16 << 20 // about half a second: time for slow to take work and stall 3 times
	res, err := transfer.Pull(context.Background(), e.unit, dest, o)
	if err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, dest) != e.want || !res.Sources[0].Dropped || !errors.Is(res.Sources[0].Err, transfer.ErrTimeout) {
		t.Errorf("sources %+v", res.Sources)
	}
}

func testFaultSlowSource(t *testing.T, e *faultEnv) {
	// slow sends 4 KiB every 100 ms per stream: each 1 MiB range would
	// take it 25 s, its share of the unit minutes. It is dropped once
	// it has crawled for a window while good is far faster, and the
	// ranges it had started are finished by good.
	good, slow := newPeer(e.src, "good"), newPeer(e.src, "slow")
	slow.crawl = 100 * time.Millisecond
	dest := filepath.Join(t.TempDir(), "D7")
	o := e.opts(slow, good)
	o.StallTimeout = 10 * time.Second
	o.SlowWindow = time.Second
	o.SlowMinBytes = 1 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := transfer.Pull(ctx, e.unit, dest, o)
	if err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, dest) != e.want {
		t.Error("pulled tree differs")
	}
	s := res.Sources[0]
	if !s.Dropped || !s.Slow || !errors.Is(s.Err, transfer.ErrTimeout) || res.Sources[1].Dropped {
		t.Errorf("sources %+v: e.want slow dropped for slowness, good kept", res.Sources)
	}
	if res.Fetched != res.Bytes || s.Bytes+res.Sources[1].Bytes != res.Bytes {
		t.Errorf("result %+v: e.want every byte fetched once, kept from either source", res)
	}
}

func testFaultCorruptAndGood(t *testing.T, e *faultEnv) {
	good, bad := newPeer(e.src, "good"), newPeer(e.src, "bad")
	bad.corrupt = true
	dest := filepath.Join(t.TempDir(), "D7")
	o := e.opts(bad, good)
	o.Streams = 1
	res, err := transfer.Pull(context.Background(), e.unit, dest, o)
	if err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, dest) != e.want {
		t.Error("pulled tree differs")
	}
	if res.Refetched == 0 {
		t.Errorf("result %+v: e.want refetched bytes", res)
	}
}

func testFaultCorruptOnly(t *testing.T, e *faultEnv) {
	bad := newPeer(e.src, "bad")
	bad.corrupt = true
	dest := filepath.Join(t.TempDir(), "D7")
	_, err := transfer.Pull(context.Background(), e.unit, dest, e.opts(bad))
	if !errors.Is(err, transfer.ErrCorrupt) {
		t.Fatalf("pull from a corrupting source: %v, e.want ErrCorrupt", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("corrupt e.unit placed: %v", err)
	}
}

func testFaultResume(t *testing.T, e *faultEnv) {
	flaky := newPeer(e.src, "flaky")
	flaky.failAfter.Store(3 << 20)
	dest := filepath.Join(t.TempDir(), "D7")
	o := e.opts(flaky)
	o.MaxFailures = 1
	res, err := transfer.Pull(context.Background(), e.unit, dest, o)
	if !errors.Is(err, transfer.ErrUnavailable) {
		t.Fatalf("pull from a failing source: %v, e.want ErrUnavailable", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("half e.unit placed: %v", err)
	}
	first := res.Fetched
	// As if the puller had died after journaling every byte of some
	// files but before verifying them: the resumed pull must verify
	// them (mode, mtime) rather than place them as they are.
	journal := filepath.Join(transfer.StagingDir(dest), "journal")
	b, err := os.ReadFile(journal)
	must(t, err)
	var kept [][]byte
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"op":"verified"`)) {
			kept = append(kept, line)
		}
	}
	if len(kept) == len(bytes.SplitAfter(b, []byte("\n"))) {
		t.Fatal("the failed pull verified no file")
	}
	must(t, os.WriteFile(journal, bytes.Join(kept, nil), 0o600))
	now := time.Now()
	must(t, filepath.WalkDir(filepath.Join(transfer.StagingDir(dest), "unit"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := os.Chmod(p, 0o600); err != nil {
			return err
		}
		return os.Chtimes(p, now, now)
	}))
	good := newPeer(e.src, "good")
	res, err = transfer.Pull(context.Background(), e.unit, dest, e.opts(good))
	if err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, dest) != e.want {
		t.Error("resumed tree differs")
	}
	if res.Resumed == 0 || res.Resumed > first || res.Fetched != res.Bytes-res.Resumed || good.sent.Load() != res.Fetched {
		t.Errorf("resume: first run fetched %d; second %+v, source sent %d", first, res, good.sent.Load())
	}
}

func testFaultNotFound(t *testing.T, e *faultEnv) {
	_, err := transfer.Pull(context.Background(), filepath.Join(e.root, "D8"), filepath.Join(t.TempDir(), "x"), e.opts(e.src))
	if !errors.Is(err, transfer.ErrNotFound) {
		t.Errorf("pull of a missing e.unit: %v, e.want ErrNotFound", err)
	}
}

// TestSourceOpenRefusesEscapes: Source.Open (the HTTP file route's way
// in) refuses paths out of the unit and the root, and serves a symlink
// inside as its target. (Manifest and Read refusals are in the Peer
// suite.)
func TestSourceOpenRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	must(t, os.WriteFile(secret, []byte("secret"), 0o600))
	root := t.TempDir()
	unit := makeUnit(t, root, "D1", 1000)
	must(t, os.MkdirAll(filepath.Join(root, "D2"), 0o755))
	must(t, os.Symlink(secret, filepath.Join(root, "D2", "link-out")))
	must(t, os.Symlink("../../../"+filepath.Base(outside), filepath.Join(unit, "a", "rel-out")))
	must(t, os.Symlink("deep.txt", filepath.Join(unit, "a", "b", "c", "link-in")))
	src := newSource(t, root)
	ctx := context.Background()
	for _, tc := range []struct {
		path string
		want error
	}{
		{"../D2/link-out", transfer.ErrRefused},
		{"/etc/passwd", transfer.ErrRefused},
		{"a/../../D2", transfer.ErrRefused},
		{"a//deep", transfer.ErrInvalid},
		{"./a", transfer.ErrInvalid},
		{"", transfer.ErrInvalid},
		{"a/rel-out/secret", transfer.ErrRefused},
		{"a/nope", transfer.ErrNotFound},
	} {
		if _, err := src.Open(ctx, unit, tc.path, transfer.Digest{}); !errors.Is(err, tc.want) {
			t.Errorf("Open(%q): %v, want %v", tc.path, err, tc.want)
		}
	}
	// A symlink inside the root is served as its target.
	f, err := src.Open(ctx, unit, "a/b/c/link-in", transfer.Digest{})
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestManifestCache(t *testing.T) {
	root := t.TempDir()
	unit := makeUnit(t, root, "D1", 2<<20)
	src := newSource(t, root)
	ctx := context.Background()
	m1, err := src.Manifest(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	hashed := src.Stats().BytesHashed
	m2, err := src.Manifest(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if src.Stats().BytesHashed != hashed {
		t.Errorf("second manifest hashed %d bytes again", src.Stats().BytesHashed-hashed)
	}
	if fmt.Sprint(m1) != fmt.Sprint(m2) {
		t.Error("manifests differ")
	}
	// A changed file is hashed again, alone.
	must(t, os.WriteFile(filepath.Join(unit, "a/b/c/deep.txt"), []byte("changed"), 0o600))
	m3, err := src.Manifest(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if d := src.Stats().BytesHashed - hashed; d != int64(len("changed")) {
		t.Errorf("after one change, hashed %d bytes, want 7", d)
	}
	if fmt.Sprint(m1) == fmt.Sprint(m3) {
		t.Error("manifest did not change")
	}
}

func TestPullUnitsBatches(t *testing.T) {
	root := t.TempDir()
	var units []transfer.Unit
	dst := t.TempDir()
	for i := range 60 {
		u := filepath.Join(root, fmt.Sprintf("D%03d", i))
		must(t, os.MkdirAll(filepath.Join(u, "sub"), 0o755))
		must(t, os.WriteFile(filepath.Join(u, "a.fits"), randBytes(t, 1000+i), 0o644))
		must(t, os.WriteFile(filepath.Join(u, "sub/b.txt"), randBytes(t, 10+i), 0o600))
		must(t, os.WriteFile(filepath.Join(u, "empty"), nil, 0o644))
		units = append(units, transfer.Unit{PFN: u, Dest: filepath.Join(dst, filepath.Base(u))})
	}
	// One unit missing at the source, one whose destination exists: they
	// fail alone.
	units = append(units,
		transfer.Unit{PFN: filepath.Join(root, "D999"), Dest: filepath.Join(dst, "D999")},
		transfer.Unit{PFN: units[0].PFN, Dest: filepath.Join(dst, "taken")})
	must(t, os.Mkdir(filepath.Join(dst, "taken"), 0o755))

	src := newPeer(newSource(t, root), "src")
	rs, err := transfer.PullUnits(context.Background(), units, transfer.PullOptions{Sources: []transfer.Peer{src}, NoSync: true})
	if err == nil || len(rs) != len(units) {
		t.Fatalf("PullUnits: %d results, error %v; want %d results and an error", len(rs), err, len(units))
	}
	for i, r := range rs[:60] {
		if r.Err != nil {
			t.Fatalf("unit %d: %v", i, r.Err)
		}
		if got, want := treeDigest(t, r.Dest), treeDigest(t, units[i].PFN); got != want {
			t.Errorf("unit %d differs:\n got %s\nwant %s", i, got, want)
		}
		if r.Files != 3 || r.Fetched != r.Bytes || r.Sources[0].Bytes != r.Bytes {
			t.Errorf("unit %d: result %+v", i, r)
		}
	}
	if !errors.Is(rs[60].Err, transfer.ErrNotFound) || !errors.Is(rs[61].Err, transfer.ErrExists) {
		t.Errorf("failed units: %v; %v", rs[60].Err, rs[61].Err)
	}
	// 60 units of small files: at most 48 units a call, so 2 calls.
	if n := src.reads.Load(); n > 2 {
		t.Errorf("%d Read calls for 60 small units, want at most 2", n)
	}
	if _, err := os.Stat(filepath.Join(dst, ".rls-staging")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staging left behind: %v", err)
	}
}
