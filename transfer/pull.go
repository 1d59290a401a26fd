package transfer

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of PullOptions.
const (
	DefaultStreams         = 4
	DefaultRangeSize       = 32 << 20
	DefaultCheckpointBytes = 64 << 20
	DefaultBatchBytes      = 32 << 20
	DefaultBatchFiles      = 512
	DefaultBatchUnits      = 48 // as Remote SUMS batches
	MaxBatchBytes          = 512 << 20
	DefaultStallTimeout    = 30 * time.Second
	DefaultMaxFailures     = 3
	DefaultSlowFactor      = 8
	DefaultSlowWindow      = 5 * time.Second
	DefaultSlowMinBytes    = 8 << 20
)

// PullOptions configure Pull. Only Sources is required.
type PullOptions struct {
	// Sources to pull from. The first that answers gives the manifest;
	// bytes come from all of them, each file verified against that
	// manifest's digest whichever source sent it.
	Sources []Peer
	// Streams is the number of concurrent Read calls per source.
	Streams int
	// RangeSize: files larger than this are fetched in ranges of this size,
	// in parallel. Zero (the default): with several sources, DefaultRangeSize,
	// so that a large file is spread over them; with one, files travel
	// whole, one stream each, so that the source reads and hashes each file
	// once as it sends it and the pull hashes it as it arrives and writes
	// it with direct I/O, never reading it back. (One source's streams share
	// one connection, so ranges would add no network parallelism.) A whole
	// file is checkpointed every CheckpointBytes, so that a pull killed in
	// the middle of a large file resumes from the last checkpoint.
	RangeSize int64
	// CheckpointBytes: a file arriving whole is synced and journaled each
	// time this many bytes have arrived. Default DefaultCheckpointBytes.
	CheckpointBytes int64
	// BatchBytes and BatchFiles bound a batch: files (or remainders)
	// smaller than BatchBytes/8 travel together, up to BatchFiles files and
	// BatchBytes bytes per Read call.
	BatchBytes int64
	BatchFiles int
	// BatchUnits bounds the units whose files share a Read call
	// (PullUnits). BatchBytes is at most MaxBatchBytes.
	BatchUnits int
	// StallTimeout bounds the manifest call and the wait for each chunk of
	// a stream; a stalled stream counts as a failure of its source.
	StallTimeout time.Duration
	// MaxFailures is how many failures in a row (timeouts, dropped
	// connections, protocol errors) drop a source for the rest of the pull.
	MaxFailures int
	// SlowFactor, SlowWindow and SlowMinBytes drop a source that is slow
	// but still sending. When another source is live, a source that had
	// reads in flight for the whole of the last SlowWindow and received
	// less than 1/SlowFactor of the best other source's rate in it is
	// dropped: its reads are cancelled, what they received is kept (synced
	// and journaled, as after a failure), and the rest goes to the others.
	// A source's rate is an exponentially weighted moving average over the
	// time it had reads in flight; it judges others only once it has
	// received SlowMinBytes. The last live source is never dropped. A
	// negative SlowFactor disables this.
	SlowFactor   float64
	SlowWindow   time.Duration
	SlowMinBytes int64
	// RateLimit caps the pull's total rate in bytes per second; 0: none.
	RateLimit int64
	// Force replaces an existing destination (atomically on Linux, by an
	// exchange of directories); without it an existing destination is
	// ErrExists.
	Force bool
	// NoSync skips fsync (for tests and scratch copies): a crash may then
	// leave a placed unit incomplete.
	NoSync bool
	// ManifestFirst waits for each unit's manifest with its digests before
	// fetching any byte. Without it, a pull from a single source that is a
	// FastManifester lists the unit without digests, fetches and hashes
	// the bytes while the source hashes its files, and gets the digests
	// (a Manifest call) in parallel; no file is journaled as verified, and
	// no unit placed, before its digest is checked, and the pull fails with
	// ErrChanged if the source's files changed since they were listed.
	// Pulls from several sources are always manifest-first: the digests
	// let each source refuse a version it does not hold before sending it,
	// and let a bad copy be blamed on the source that sent it.
	ManifestFirst bool
	// Progress, if set, is called from one goroutine about ten times a
	// second while the pull runs, and once at the end.
	Progress func(Progress)
	// InPlace: a unit whose destination exists already (an earlier pull
	// placed it, and the process died before its caller recorded that) is
	// checked against the source's manifest (see CheckInPlace) instead of
	// failing with ErrExists: if it matches it counts as placed, with
	// PullResult.InPlace set and nothing fetched; if not, ErrExists.
	// Force takes precedence.
	InPlace bool
	// OnPlaced, if set, is called once for each unit as soon as it is
	// placed (or found in place), before PullUnits returns, possibly from
	// several goroutines at once. The result's Err is nil; Elapsed and the
	// per-source figures may still grow.
	OnPlaced func(i int, r *PullResult)
	// Logger, default slog.Default().
	Logger *slog.Logger
}

// Progress is a pull's progress.
type Progress struct {
	Done, Total int64 // bytes written and synced (or verified), of the unit's size
	Resumed     int64 // bytes found done in the staging directory at the start
}

// PullResult describes a finished pull.
type PullResult struct {
	PFN, Dest string
	Files     int
	Dirs      int
	Bytes     int64 // the unit's size
	Fetched   int64 // bytes received in this run
	Resumed   int64 // bytes an earlier, interrupted run had already written
	Refetched int64 // bytes received but thrown away after a digest mismatch
	Sources   []SourceResult
	Elapsed   time.Duration
	// InPlace: the destination held the unit already (see
	// PullOptions.InPlace); nothing was fetched.
	InPlace bool
	// Manifest is the digest of the unit's manifest (Manifest.Digest),
	// once placed; zero if the manifest had no digests.
	Manifest Digest
	Err      error // nil once the unit is placed
}

// SourceResult is what one source did in a pull.
type SourceResult struct {
	Name    string
	Bytes   int64 // bytes of this unit received from it
	Dropped bool  // dropped for failing, stalling or being slow
	Slow    bool  // dropped for being much slower than the best source
	Err     error // its last error, if any (ErrTimeout when Slow)
}

func (o PullOptions) withDefaults() PullOptions {
	if o.Streams <= 0 {
		o.Streams = DefaultStreams
	}
	if o.RangeSize <= 0 {
		o.RangeSize = DefaultRangeSize
		if len(o.Sources) == 1 {
			o.RangeSize = wholeFiles
		}
	}
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = DefaultCheckpointBytes
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.BatchFiles <= 0 {
		o.BatchFiles = DefaultBatchFiles
	}
	if o.BatchUnits <= 0 {
		o.BatchUnits = DefaultBatchUnits
	}
	o.BatchBytes = min(o.BatchBytes, MaxBatchBytes)
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	if o.SlowFactor == 0 {
		o.SlowFactor = DefaultSlowFactor
	}
	if o.SlowWindow <= 0 {
		o.SlowWindow = DefaultSlowWindow
	}
	if o.SlowMinBytes <= 0 {
		o.SlowMinBytes = DefaultSlowMinBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// wholeFiles is the RangeSize that never splits a file.
const wholeFiles = 1 << 62

// StagingDir is where Pull builds dest: <parent>/.rls-staging/<name>.
func StagingDir(dest string) string {
	return filepath.Join(filepath.Dir(dest), stagingDirName, filepath.Base(dest))
}

// Pull copies unit pfn from opts.Sources to the directory dest, which must
// not exist (unless opts.Force) and whose parent must exist.
//
// The unit is built in StagingDir(dest); every file is verified against the
// manifest's SHA-256, synced, given its mode and mtime, and the unit is
// renamed to dest in one step once complete, after which the parent
// directory is synced: dest is either absent or whole. If Pull fails or the
// process dies, calling Pull again with the same dest resumes: files and
// ranges already written and synced are not fetched again (unless the
// source's manifest changed for them).
//
// Work is spread over the sources, opts.Streams streams each; a source that
// fails opts.MaxFailures times in a row, stalls, or (with another source
// live) sends far slower than the best one (opts.SlowFactor) is dropped and
// its work goes to the others, keeping what it had sent. A file whose
// digest does not match is fetched again, from another source when there
// is one; corrupt data is never placed.
//
// Errors wrap ErrNotFound (no source has the unit or a file), ErrRefused,
// ErrTimeout, ErrUnavailable, ErrCorrupt, ErrChanged, ErrExists or
// ErrInvalid; with several sources, the error of the most telling one. The
// result is returned on failure too.
func Pull(ctx context.Context, pfn, dest string, opts PullOptions) (*PullResult, error) {
	rs, _ := PullUnits(ctx, []Unit{{PFN: pfn, Dest: dest}}, opts)
	return rs[0], rs[0].Err
}

// Unit is a storage unit to pull and its destination directory.
type Unit struct {
	PFN, Dest string
}

// PullUnits pulls several units at once, as Pull pulls one, sharing the
// sources, streams and rate limit: the manifests are fetched first, then
// small whole files of many units travel together in Read calls (at most
// opts.BatchUnits units, opts.BatchFiles files and opts.BatchBytes bytes a
// call), while each unit keeps its own staging directory, journal,
// verification and atomic rename. A unit is placed as soon as all of its
// files are verified; a unit that fails (no source has it, a file is
// corrupt at every source, its destination exists) does not stop the
// others, and is resumed by a later pull to the same destination.
//
// It returns one result per unit, in order, each with its Err (nil once
// placed), and an error that joins the units' errors, nil when every unit
// was placed. Destinations must differ.
func PullUnits(ctx context.Context, units []Unit, opts PullOptions) ([]*PullResult, error) {
	o := opts.withDefaults()
	p := &puller{o: o, log: o.Logger}
	for i, x := range units {
		u := &unitPull{index: i, pfn: x.PFN, dest: x.Dest, start: time.Now(), log: o.Logger.With("pfn", x.PFN)}
		u.srcBytes = make([]atomic.Int64, len(o.Sources))
		p.units = append(p.units, u)
	}
	defer func() {
		for _, u := range p.units {
			if u.st != nil {
				u.st.close(u.state.Load() == unitPlaced || (u.m == nil && u.fresh))
			}
		}
	}()
	p.open()
	p.fetchManifests(ctx)
	p.checkInPlace()
	// The digests of units listed without them: fetched while the bytes
	// travel, by goroutines that end with dctx.
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	for _, u := range p.units {
		if u.state.Load() == unitRunning {
			if err := p.prepare(u); err != nil {
				p.failUnit(u, err)
			}
		}
	}
	p.startQueue()
	for _, u := range p.units {
		if u.state.Load() == unitRunning && u.m != nil && u.left == 0 && !u.fast {
			p.placeUnit(u) // a fast unit is placed once its digests are checked
		}
	}
	p.startDigests(dctx)
	stopProgress := p.reportProgress()
	err := p.run(ctx)
	dcancel()
	p.bg.Wait()
	stopProgress()
	if err == nil {
		err = fmt.Errorf("%w: pull ended with work left", ErrUnavailable)
	}
	var errs []error
	rs := make([]*PullResult, len(p.units))
	for i, u := range p.units {
		p.failUnit(u, err) // no-op for units already placed or failed
		rs[i] = p.result(u)
		if rs[i].Err != nil {
			errs = append(errs, rs[i].Err)
		}
	}
	return rs, errors.Join(errs...)
}

// open checks each unit's PFN and destination and opens its staging
// directory; a unit that fails here is failed.
func (p *puller) open() {
	dests := map[string]bool{}
	for _, u := range p.units {
		err := func() error {
			if len(p.o.Sources) == 0 {
				return fmt.Errorf("%w: no sources", ErrInvalid)
			}
			if u.pfn == "" {
				return fmt.Errorf("%w: empty PFN", ErrInvalid)
			}
			dest, err := filepath.Abs(u.dest)
			if err != nil {
				return fmt.Errorf("%w: destination: %v", ErrInvalid, err)
			}
			u.dest = dest
			parent := filepath.Dir(dest)
			if dest == parent || filepath.Base(dest) == stagingDirName {
				return fmt.Errorf("%w: destination %q", ErrInvalid, dest)
			}
			if dests[dest] {
				return fmt.Errorf("%w: destination %s given twice", ErrInvalid, dest)
			}
			dests[dest] = true
			if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
				return fmt.Errorf("%w: destination's parent %s is not a directory", ErrInvalid, parent)
			}
			if _, err := os.Lstat(dest); err == nil && !p.o.Force {
				if p.o.InPlace {
					u.inPlace = true // checked once the manifest is in
					return nil
				}
				return fmt.Errorf("%w: %s (use force to replace it)", ErrExists, dest)
			}
			u.st, u.fresh, err = openStaging(StagingDir(dest), p.o.NoSync)
			return err
		}()
		if err != nil {
			p.failUnit(u, err)
		}
	}
}

// fetchManifests gets the manifests of the units still running, a few at
// a time.
func (p *puller) fetchManifests(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, u := range p.units {
		if u.state.Load() != unitRunning {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			m, err := p.fetchManifest(ctx, u)
			if err != nil {
				p.failUnit(u, err)
				return
			}
			u.m = m
		})
	}
	wg.Wait()
}

// Unit states.
const (
	unitRunning   = iota
	unitFinishing // being placed or failed
	unitPlaced
	unitFailed
)

// unitPull is the state of one unit of a pull.
type unitPull struct {
	index     int // in the PullUnits call
	pfn, dest string
	log       *slog.Logger
	inPlace   bool // dest existed: check it rather than pull (PullOptions.InPlace)
	st        *staging
	fresh     bool // the staging directory did not exist
	m         *Manifest
	// fast: m was listed without digests (see PullOptions.ManifestFirst);
	// known: the files' want digests are set. Until then, files whose bytes
	// are all written wait in awaiting (guarded by puller.mu), with the
	// digest the puller computed; known is stored under puller.mu.
	fast     bool
	known    atomic.Bool
	awaiting []awaited
	files    []*fileState
	resumed  int64
	start    time.Time
	srcBytes []atomic.Int64 // by index in puller.sources
	fetched  atomic.Int64
	refetch  atomic.Int64

	state   atomic.Int32  // unitRunning, unitFinishing, then unitPlaced or unitFailed
	err     error         // written in unitFinishing; read once the state is final
	elapsed time.Duration // likewise
	left    int           // files not verified; guarded by puller.mu
}

// failed reports whether u failed; pieces of a failed unit are dropped.
func (u *unitPull) failed() bool { return u.state.Load() == unitFailed }

// fail fails u with err unless it is placed, being placed, or failed
// already. Safe for concurrent use; it takes no lock.
func (u *unitPull) fail(err error) {
	if !u.state.CompareAndSwap(unitRunning, unitFinishing) {
		return
	}
	u.err, u.elapsed = fmt.Errorf("pull %s: %w", u.pfn, err), time.Since(u.start)
	u.state.Store(unitFailed)
	u.log.Debug("unit failed", "error", err)
}

func (p *puller) failUnit(u *unitPull, err error) { u.fail(err) }

// placeUnit places u, whose files are all verified, unless it failed.
func (p *puller) placeUnit(u *unitPull) {
	if !u.state.CompareAndSwap(unitRunning, unitFinishing) {
		return
	}
	err := p.place(u)
	u.elapsed = time.Since(u.start)
	if err != nil {
		u.err = fmt.Errorf("pull %s: %w", u.pfn, err)
		u.state.Store(unitFailed)
		return
	}
	u.state.Store(unitPlaced)
	u.log.Info("pulled", "dest", u.dest, "bytes", u.m.TotalBytes(), "fetched", u.fetched.Load(),
		"resumed", u.resumed, "elapsed", u.elapsed)
	p.placed(u)
}

// puller is the state of one PullUnits.
type puller struct {
	o       PullOptions
	log     *slog.Logger
	units   []*unitPull
	sources []*source
	q       *queue
	limit   *limiter

	bg       sync.WaitGroup // advanceHash goroutines
	mu       sync.Mutex     // guards the units' journals and left, and fileStates' done, verified
	fetched  atomic.Int64
	progress atomic.Int64
	resumed  int64
}

type fileState struct {
	u    *unitPull
	e    *Entry
	path string // in the staging unit, OS form
	// want is the file's digest: e.SHA256, or for a unit listed without
	// digests, the one that came later. Written once, before u.known is
	// set; read after u.known reports true.
	want Digest

	// Guarded by puller.mu.
	done      intervals
	verified  bool
	contribs  map[*source]bool // sources that sent bytes since the last reset
	corrupted map[*source]int  // digest mismatches of this file they alone sent
	// isolate: the last bad copy mixed several sources' bytes, so the
	// digest cannot say whose were bad; the file is fetched again as one
	// piece, from one source, which the next verification can then blame.
	isolate bool

	// The running digest of the file's first hat bytes, guarded by hmu;
	// hwant asks the goroutine that holds hmu to look for more (see
	// advanceHash).
	hmu   sync.Mutex
	hwant atomic.Bool
	hsum  hash.Hash
	hat   int64
}

type source struct {
	peer  Peer
	idx   int // in puller.sources
	bytes atomic.Int64
	busy  atomic.Int32 // Reads in flight
	// ctx is the pull's context for this source's reads; cancel (with
	// errSlow) ends them when the source is dropped for slowness.
	ctx    context.Context
	cancel context.CancelCauseFunc
	rate   rateTrack // owned by the rate monitor
	// Guarded by queue.mu.
	failures int // in a row
	dropped  bool
	slow     bool
	lastErr  error
}

// piece is a byte range of a file to fetch.
type piece struct {
	f        *fileState
	off, len int64
}

// item is the unit of work: the pieces one Read call fetches.
type item struct {
	pieces  []piece
	avoid   map[*source]bool // sources that cannot serve it
	lastErr error
}

// fetchManifest gets u's manifest from the first source that gives one;
// from a lone FastManifester (unless ManifestFirst), without digests: then
// u.fast is set, and startDigests gets them.
func (p *puller) fetchManifest(ctx context.Context, u *unitPull) (*Manifest, error) {
	var errs []error
	fp, fast := p.o.Sources[0].(FastManifester)
	fast = fast && len(p.o.Sources) == 1 && !p.o.ManifestFirst && !u.inPlace
	for _, peer := range p.o.Sources {
		mctx, cancel := context.WithTimeout(ctx, p.o.StallTimeout)
		var m *Manifest
		var err error
		if fast {
			m, err = fp.FastManifest(mctx, u.pfn)
		} else {
			m, err = peer.Manifest(mctx, u.pfn)
		}
		cancel()
		if err == nil {
			if err = m.Validate(); err == nil && !fast {
				err = m.checkDigests()
			}
			if err == nil {
				u.fast = fast && m.Files() > 0
				return m, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		u.log.Debug("manifest failed", "peer", peer.Name(), "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", peer.Name(), err))
	}
	return nil, fmt.Errorf("manifest: %w", mostTelling(errs))
}

// mostTelling picks the error to report when every source failed: a
// timeout or unreachable source before NOT_FOUND (a unit is missing only if
// every source that answered says so and none failed to answer), and a
// refusal or corruption before either. The others are kept in the message.
func mostTelling(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	for _, want := range []error{ErrCorrupt, ErrChanged, ErrRefused, ErrInvalid, ErrTimeout, ErrUnavailable, ErrNotFound} {
		for i, err := range errs {
			if errors.Is(err, want) {
				others := slices.Delete(slices.Clone(errs), i, i+1)
				return fmt.Errorf("%w (also: %v)", err, errors.Join(others...))
			}
		}
	}
	return errors.Join(errs...)
}

// prepare sets up u's staging directory for its manifest: it keeps what an earlier
// run did for files that did not change, creates directories and files,
// verifies empty files, and queues the work.
func (p *puller) prepare(u *unitPull) error {
	m := u.m
	old, recs := u.st.load()
	keep := map[string]bool{} // files whose earlier records hold
	if old != nil {
		prev := map[string]*Entry{}
		for i := range old.Entries {
			prev[old.Entries[i].Path] = &old.Entries[i]
		}
		for i := range m.Entries {
			e := &m.Entries[i]
			if o := prev[e.Path]; o != nil && !e.Dir && !o.Dir && o.Size == e.Size && sameVersion(o, e) {
				keep[e.Path] = true
			}
		}
	}
	unit := u.st.unitPath()
	if err := os.MkdirAll(unit, 0o755); err != nil {
		return localErr(err)
	}
	byPath := map[string]*fileState{}
	for i := range m.Entries {
		e := &m.Entries[i]
		path := filepath.Join(unit, filepath.FromSlash(e.Path))
		if e.Dir {
			if fi, err := os.Lstat(path); err == nil && !fi.IsDir() {
				os.RemoveAll(path)
			}
			if err := os.MkdirAll(path, 0o755); err != nil {
				return localErr(err)
			}
			continue
		}
		f := &fileState{u: u, e: e, path: path, want: e.SHA256, contribs: map[*source]bool{}, corrupted: map[*source]int{}}
		u.files = append(u.files, f)
		byPath[e.Path] = f
	}
	var kept []journalRec
	for _, r := range recs {
		f := byPath[r.Path]
		if f == nil || !keep[r.Path] {
			continue
		}
		switch r.Op {
		case "range":
			if r.Off >= 0 && r.Len > 0 && r.Off+r.Len <= f.e.Size {
				f.done = f.done.add(r.Off, r.Off+r.Len)
				kept = append(kept, r)
			}
		case "verified":
			f.verified = true
			kept = append(kept, r)
		case "reset":
			f.done, f.verified = nil, false
		}
	}
	// Files claimed verified must still be there with their size; records
	// before a reset are dropped with it. Without digests yet, a file
	// verified against an earlier manifest's digest is verified again,
	// against the digest to come.
	kept = kept[:0]
	for _, f := range u.files {
		if f.verified {
			if fi, err := os.Stat(f.path); err != nil || fi.Size() != f.e.Size {
				f.verified, f.done = false, nil
			} else if u.fast {
				f.verified, f.done = false, intervals{{0, f.e.Size}}
			}
		}
		switch {
		case f.verified:
			u.resumed += f.e.Size
			kept = append(kept, journalRec{Op: "verified", Path: f.e.Path})
		default:
			for _, x := range f.done {
				kept = append(kept, journalRec{Op: "range", Path: f.e.Path, Off: x.off, Len: x.end - x.off})
			}
			u.resumed += f.done.bytes()
		}
	}
	if err := u.st.begin(m, kept); err != nil {
		return err
	}
	u.known.Store(!u.fast)
	p.resumed += u.resumed
	p.progress.Add(u.resumed)
	if u.resumed > 0 {
		u.log.Info("resuming pull", "staging", u.st.dir, "resumed_bytes", u.resumed)
	}
	for _, f := range u.files {
		if f.verified {
			continue
		}
		u.left++
		if f.e.Size > 0 && f.done == nil && f.e.Size <= p.o.RangeSize {
			continue // a whole piece: fetch creates it
		}
		if err := p.createFile(f); err != nil {
			return err
		}
	}
	return nil
}

// sameVersion reports whether entries o (of an earlier manifest) and e
// describe the same version of a file: the same digest, or, when either
// was listed without one, the same Version from the source.
func sameVersion(o, e *Entry) bool {
	if !o.SHA256.IsZero() && !e.SHA256.IsZero() {
		return o.SHA256 == e.SHA256
	}
	return o.Version != "" && o.Version == e.Version
}

// startQueue sets up the sources and the queue, verifies the files that
// need no bytes, and queues the rest of the running units' work.
func (p *puller) startQueue() {
	for i, peer := range p.o.Sources {
		p.sources = append(p.sources, &source{peer: peer, idx: i})
	}
	p.q = newQueue(p.sources)
	p.q.max = p.o.MaxFailures
	if p.o.RateLimit > 0 {
		p.limit = &limiter{rate: float64(p.o.RateLimit)}
	}
	var pieces []piece
	for _, u := range p.units {
		if u.state.Load() != unitRunning || u.m == nil {
			continue
		}
		var up []piece
		err := func() error {
			for _, f := range u.files {
				if f.verified {
					continue
				}
				if f.done.bytes() == f.e.Size {
					// Empty, or every byte written by an earlier run that died
					// before it verified the file: nothing to fetch, so verify
					// now (a bad file is queued again).
					if _, err := p.verify(f); err != nil {
						return err
					}
					continue
				}
				up = append(up, p.piecesOf(f)...)
			}
			return nil
		}()
		if err != nil {
			p.failUnit(u, err)
			continue
		}
		pieces = append(pieces, up...)
	}
	p.q.add(p.batch(pieces, nil)...)
}

// createFile makes f's staging file with its final size (sparse), keeping
// bytes already there.
func (p *puller) createFile(f *fileState) error {
	if fi, err := os.Lstat(f.path); err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(f.path); err != nil {
			return localErr(err)
		}
	}
	h, err := os.OpenFile(f.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return localErr(err)
	}
	err = h.Truncate(f.e.Size)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	return localErr(err)
}

// piecesOf splits what f still misses into pieces of at most RangeSize.
// Called with p.mu held, or before the workers start.
func (p *puller) piecesOf(f *fileState) []piece {
	var out []piece
	for _, x := range f.done.missing(f.e.Size) {
		if f.isolate {
			out = append(out, piece{f: f, off: x.off, len: x.end - x.off})
			continue
		}
		for off := x.off; off < x.end; off += p.o.RangeSize {
			out = append(out, piece{f: f, off: off, len: min(p.o.RangeSize, x.end-off)})
		}
	}
	return out
}

// batch groups pieces into items: whole files smaller than BatchBytes/8
// (and than RangeSize) travel together, up to BatchFiles files of
// BatchUnits units and min(BatchBytes, RangeSize) bytes per item; other
// pieces go alone.
func (p *puller) batch(pieces []piece, avoid map[*source]bool) []*item {
	var items []*item
	var cur *item
	var curBytes int64
	var curUnits int
	var lastUnit *unitPull
	limit := min(p.o.BatchBytes, p.o.RangeSize)
	newItem := func() *item {
		it := &item{avoid: map[*source]bool{}}
		for s := range avoid {
			it.avoid[s] = true
		}
		return it
	}
	for _, pc := range pieces {
		whole := pc.off == 0 && pc.len == pc.f.e.Size
		if !whole || pc.len >= p.o.BatchBytes/8 || pc.len >= limit {
			it := newItem()
			it.pieces = []piece{pc}
			items = append(items, it)
			continue
		}
		newUnit := cur == nil || pc.f.u != lastUnit && !slices.ContainsFunc(cur.pieces, func(x piece) bool { return x.f.u == pc.f.u })
		if cur == nil || len(cur.pieces) >= p.o.BatchFiles || curBytes+pc.len > limit || newUnit && curUnits >= p.o.BatchUnits {
			cur, curBytes, curUnits = newItem(), 0, 0
			items = append(items, cur)
			newUnit = true
		}
		cur.pieces = append(cur.pieces, pc)
		curBytes += pc.len
		if newUnit {
			curUnits++
		}
		lastUnit = pc.f.u
	}
	return items
}

// run fetches every queued item with Streams workers per source, and
// returns when all files are verified or the pull cannot finish.
func (p *puller) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { p.q.fail(ctx.Err()) })
	defer stop()
	var wg sync.WaitGroup
	for _, s := range p.sources {
		s.ctx, s.cancel = context.WithCancelCause(ctx)
		defer s.cancel(nil)
		for range p.o.Streams {
			wg.Go(func() { p.worker(ctx, s) })
		}
	}
	var mon sync.WaitGroup
	if len(p.sources) > 1 && p.o.SlowFactor > 0 {
		mon.Go(func() { p.monitorRates(ctx) })
	}
	wg.Wait()
	cancel()
	mon.Wait()
	return p.q.result()
}

func (p *puller) worker(ctx context.Context, s *source) {
	for {
		it := p.q.take(s)
		if it == nil {
			return
		}
		s.busy.Add(1)
		err := p.fetch(s.ctx, s, it)
		s.busy.Add(-1)
		if err == nil {
			p.q.finish(it, s)
			continue
		}
		var le *localError
		switch {
		case ctx.Err() != nil:
			p.q.fail(ctx.Err())
			return
		case errors.As(err, &le):
			p.q.fail(err)
			return
		case len(it.pieces) == 0:
			p.q.finish(it, s) // everything arrived before the error
		case s.ctx.Err() != nil:
			// Dropped for slowness: the rest goes to the others, and this
			// source's next take returns nil.
			p.q.requeue(it, s, nil)
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrRefused), errors.Is(err, ErrChanged), errors.Is(err, ErrInvalid):
			// This source cannot serve these files; others may.
			p.log.Warn("source cannot serve a range", "peer", s.peer.Name(), "error", err)
			it.avoid[s], it.lastErr = true, fmt.Errorf("%s: %w", s.peer.Name(), err)
			p.q.requeue(it, s, nil)
		default:
			p.log.Warn("source failed", "peer", s.peer.Name(), "error", err)
			failures := p.q.requeue(it, s, fmt.Errorf("%s: %w", s.peer.Name(), err))
			// Back off a little before the next try of this source.
			select {
			case <-time.After(time.Duration(failures) * 100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

// errStalled cancels a Read whose stream sent nothing for StallTimeout.
var errStalled = errors.New("stream stalled")

// fetch reads it's pieces from s into the staging files. On return,
// it.pieces holds what is still missing (none when fetch returns nil).
// Ranges received in full or in part are synced and journaled first, so
// that a retry, here or after a restart, fetches only the rest.
//
// A piece that is a whole file is hashed as it arrives: when its digest
// matches, the file gets its mode and mtime and is journaled as verified
// at once, without being read back. Such files of an item with several
// pieces are synced together by one syncfs(2) (where there is one) before
// the journal records them, instead of one fsync each; they are created
// here, not in prepare, so that the streams create files in parallel.
func (p *puller) fetch(ctx context.Context, s *source, it *item) (err error) {
	ranges := make([]Range, len(it.pieces))
	for i, pc := range it.pieces {
		ranges[i] = Range{PFN: pc.f.u.pfn, Path: pc.f.e.Path, Offset: pc.off, Length: pc.len}
		if pc.f.u.fast {
			// A Version means something only to the source that listed it,
			// the pull's only source when the unit was listed fast.
			ranges[i].Version = pc.f.e.Version
		}
		if pc.f.u.known.Load() {
			ranges[i].SHA256 = pc.f.want
		}
	}
	got := make([]int64, len(ranges))
	deferSync := canSyncFS && !p.o.NoSync && len(it.pieces) > 1
	var (
		cur      = -1
		h        *os.File
		herr     error // first error of a write, sync or close
		synced   = make([]bool, len(ranges))
		inline   = make([]bool, len(ranges)) // whole file received, digest matched, mode and mtime set
		held     = make([]bool, len(ranges)) // whole file received before its digest was known
		sums     = make([]Digest, len(ranges))
		sum      hash.Hash // of range cur so far, if it is a whole file
		unsynced []int     // inline or held ranges closed without fsync
		dw       *directWriter
		ckptAt   int64                        // got[cur] at the last checkpoint
		ckptEnd  = make([]int64, len(ranges)) // bytes synced and journaled by checkpoints
	)
	closeCur := func() {
		if h == nil {
			return
		}
		pc := it.pieces[cur]
		if dw != nil {
			if err := dw.Close(); err != nil && herr == nil {
				herr = err
			}
			dw = nil
		}
		if sum != nil && herr == nil && got[cur] == pc.len {
			sum.Sum(sums[cur][:0])
			switch {
			case !pc.f.u.known.Load():
				held[cur] = true // judged once the digests come (or in the journaling below)
			case sums[cur] == pc.f.want:
				herr = h.Chmod(pc.f.e.FileMode())
				if herr == nil {
					herr = os.Chtimes(pc.f.path, time.Time{}, pc.f.e.MTime)
				}
				inline[cur] = herr == nil
			}
		}
		sum = nil
		if (inline[cur] || held[cur]) && deferSync {
			if err := h.Close(); err != nil && herr == nil {
				herr = err
			}
			h = nil
			if herr == nil {
				unsynced = append(unsynced, cur)
			}
			return
		}
		if !p.o.NoSync {
			if err := h.Sync(); err != nil && herr == nil {
				herr = err
			}
		}
		if err := h.Close(); err != nil && herr == nil {
			herr = err
		}
		h = nil
		synced[cur] = herr == nil
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(p.o.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	err = s.peer.Read(sctx, ranges, func(i int, off int64, b []byte) error {
		stall.Reset(p.o.StallTimeout)
		if i < 0 || i >= len(ranges) || i < cur || off != ranges[i].Offset+got[i] || int64(len(b)) > ranges[i].Length-got[i] {
			return fmt.Errorf("%w: source sent bytes %d+%d of range %d out of order", ErrCorrupt, off, len(b), i)
		}
		if i != cur {
			closeCur()
			if herr != nil {
				return localErr(herr)
			}
			cur = i
			if h, herr = p.openPiece(it.pieces[i]); herr != nil {
				return localErr(herr)
			}
			if it.pieces[i].whole() {
				sum = sha256.New()
				if it.pieces[i].len >= directMin {
					dw = newDirectWriter(h, 0)
				}
			}
			ckptAt = 0
		}
		if err := p.limit.wait(sctx, len(b)); err != nil {
			return err
		}
		var werr error
		switch {
		case dw != nil:
			werr = dw.Write(b, off)
		case bytes.Equal(b, zeros[:len(b)]):
			werr = zeroRange(h, off, int64(len(b)))
		default:
			_, werr = h.WriteAt(b, off)
		}
		if werr != nil {
			herr = werr
			return localErr(werr)
		}
		if sum != nil {
			sum.Write(b)
		}
		got[i] += int64(len(b))
		if dw != nil && got[i]-ckptAt >= p.o.CheckpointBytes && got[i] < ranges[i].Length {
			end, err := p.checkpoint(it.pieces[i].f, h, dw)
			if err != nil {
				herr = err
				return err
			}
			ckptAt, ckptEnd[i] = got[i], end
		}
		u := it.pieces[i].f.u
		u.srcBytes[s.idx].Add(int64(len(b)))
		u.fetched.Add(int64(len(b)))
		s.bytes.Add(int64(len(b)))
		p.fetched.Add(int64(len(b)))
		p.progress.Add(int64(len(b)))
		return nil
	})
	closeCur()
	if len(unsynced) > 0 {
		serr := p.syncUnits(it, unsynced)
		for _, i := range unsynced {
			synced[i] = serr == nil
		}
		if herr == nil {
			herr = serr
		}
	}
	if err == nil && herr != nil {
		err = localErr(herr)
	}
	if errors.Is(context.Cause(sctx), errStalled) && ctx.Err() == nil {
		err = fmt.Errorf("%w: no bytes for %v", ErrTimeout, p.o.StallTimeout)
	}

	// Journal what arrived (and was synced), then verify completed files.
	recs := map[*unitPull][]journalRec{}
	var rest []piece
	var complete []*fileState
	var done []*unitPull // units whose last file was verified here
	var judge []awaited  // held files whose digest is known now
	p.mu.Lock()
	for i, pc := range it.pieces {
		n := got[i]
		if n > 0 && synced[i] && held[i] {
			// All bytes, written and synced, but not yet verified.
			recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: "range", Path: pc.f.e.Path, Off: 0, Len: pc.f.e.Size})
			pc.f.done = pc.f.done.add(0, pc.f.e.Size)
			pc.f.contribs[s] = true
			if !pc.f.verified {
				a := awaited{f: pc.f, sum: sums[i], n: n}
				if pc.f.u.known.Load() {
					judge = append(judge, a)
				} else {
					pc.f.u.awaiting = append(pc.f.u.awaiting, a)
				}
			}
			continue
		}
		if n > 0 && synced[i] && inline[i] {
			pc.f.done = pc.f.done.add(0, pc.f.e.Size)
			pc.f.contribs[s] = true
			if !pc.f.verified {
				pc.f.verified = true
				recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: "verified", Path: pc.f.e.Path})
				if pc.f.u.left--; pc.f.u.left == 0 {
					done = append(done, pc.f.u)
				}
			}
			continue
		}
		if n > 0 && synced[i] {
			recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: "range", Path: pc.f.e.Path, Off: pc.off, Len: n})
			pc.f.done = pc.f.done.add(pc.off, pc.off+n)
			pc.f.contribs[s] = true
		} else {
			// Lost but for what checkpoints made durable (and journaled).
			p.progress.Add(-(n - ckptEnd[i]))
			if n = ckptEnd[i]; n > 0 {
				pc.f.done = pc.f.done.add(pc.off, pc.off+n)
				pc.f.contribs[s] = true
			}
		}
		if n < pc.len {
			rest = append(rest, piece{f: pc.f, off: pc.off + n, len: pc.len - n})
		} else if pc.f.done.bytes() == pc.f.e.Size && !pc.f.verified {
			complete = append(complete, pc.f)
		}
	}
	var jerr error
	for u, rs := range recs {
		if st := u.state.Load(); st == unitRunning || st == unitFailed { // a placed unit's staging is gone
			jerr = cmp.Or(jerr, u.st.append(rs...))
		}
	}
	p.mu.Unlock()
	if jerr != nil {
		return jerr
	}
	for _, u := range done {
		p.placeUnit(u)
	}
	if err := p.judge(judge); err != nil {
		return err
	}
	for i, pc := range it.pieces {
		if got[i] > 0 && !pc.whole() && pc.f.e.Size > p.o.RangeSize && !slices.Contains(complete, pc.f) {
			p.bg.Go(func() { p.advanceHash(pc.f) })
		}
	}
	it.pieces = rest
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%w: stream ended %d ranges early", ErrCorrupt, len(rest))
	}
	for _, f := range slices.Compact(complete) {
		unitDone, verr := p.verify(f)
		if verr != nil {
			return verr
		}
		if unitDone {
			p.placeUnit(f.u)
		}
	}
	return err
}

// checkpoint makes what dw has written of f (a whole file arriving front
// to back) durable and journals it, so that a pull killed before the file
// is complete resumes after it.
// It returns the end of the bytes it journaled (0 if none).
func (p *puller) checkpoint(f *fileState, h *os.File, dw *directWriter) (int64, error) {
	end, err := dw.Drain()
	if err != nil {
		return 0, localErr(err)
	}
	if end == 0 {
		return 0, nil
	}
	if !p.o.NoSync {
		if err := h.Sync(); err != nil {
			return 0, localErr(err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := f.u.state.Load(); st != unitRunning && st != unitFailed {
		return 0, nil
	}
	if err := f.u.st.append(journalRec{Op: "range", Path: f.e.Path, Off: 0, Len: end}); err != nil {
		return 0, err
	}
	return end, nil
}

// whole reports whether pc is all of its file (which then has no bytes
// yet: pieces cover what is missing).
func (pc piece) whole() bool { return pc.off == 0 && pc.len == pc.f.e.Size }

// openPiece opens the staging file of pc for writing. A whole file is
// created (or emptied) here, with its final size; prepare created the
// others.
func (p *puller) openPiece(pc piece) (*os.File, error) {
	if !pc.whole() {
		return os.OpenFile(pc.f.path, os.O_WRONLY, 0)
	}
	h, err := os.OpenFile(pc.f.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		// Something else in the way (a directory of an older manifest)?
		if err := p.createFile(pc.f); err != nil {
			return nil, err
		}
		return os.OpenFile(pc.f.path, os.O_WRONLY, 0)
	}
	if err := h.Truncate(pc.f.e.Size); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// syncUnits makes the files of ranges idx of it durable: one syncfs(2)
// per file system of their units' staging directories.
func (p *puller) syncUnits(it *item, idx []int) error {
	seen := map[*unitPull]bool{}
	devs := map[uint64]bool{}
	for _, i := range idx {
		u := it.pieces[i].f.u
		if seen[u] {
			continue
		}
		seen[u] = true
		dev, err := devOf(u.st.lock)
		if err != nil {
			return err
		}
		if devs[dev] {
			continue
		}
		devs[dev] = true
		if err := syncFS(u.st.lock); err != nil {
			return err
		}
	}
	return nil
}

var zeros = make([]byte, ChunkSize)

// hashTo extends f's running digest (f.hsum, of bytes [0, f.hat)) with
// the bytes of h up to end, or to its end of file if end < 0, and returns
// the digest and the number of bytes it covers. Called with f.hmu held.
func (p *puller) hashTo(f *fileState, h *os.File, end int64) (d Digest, n int64, err error) {
	if f.hsum == nil {
		f.hsum, f.hat = sha256.New(), 0
	}
	if end < 0 {
		fi, err := h.Stat()
		if err != nil {
			return d, 0, err
		}
		end = fi.Size()
	}
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	for f.hat < end {
		k, err := h.ReadAt((*buf)[:min(int64(len(*buf)), end-f.hat)], f.hat)
		f.hsum.Write((*buf)[:k])
		f.hat += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			f.hsum, f.hat = nil, 0
			return d, 0, err
		}
	}
	f.hsum.Sum(d[:0])
	return d, f.hat, nil
}

// advanceHash hashes, in the background of a multi-piece file's fetch,
// the bytes of its synced and journaled prefix (which stay as they are
// until the file is reset), so that verify has only the rest to read once
// the last piece lands. Only one goroutine hashes a file at a time; a call
// while one does makes it look again.
func (p *puller) advanceHash(f *fileState) {
	f.hwant.Store(true)
	for f.hwant.Load() {
		if !f.hmu.TryLock() {
			return
		}
		var h *os.File
		for f.hwant.Swap(false) {
			p.mu.Lock()
			var end int64
			if !f.verified && len(f.done) > 0 && f.done[0].off == 0 {
				end = f.done[0].end
			}
			p.mu.Unlock()
			if end <= f.hat {
				continue
			}
			if h == nil {
				var err error
				if h, err = os.Open(f.path); err != nil {
					break
				}
			}
			if _, _, err := p.hashTo(f, h, end); err != nil {
				break // verify hashes it all again
			}
		}
		if h != nil {
			h.Close()
		}
		f.hmu.Unlock()
	}
}

// verify checks a complete staging file against its digest. A good file
// gets its mode and mtime, is synced and journaled as verified; a bad one is
// emptied and queued again, avoiding sources that sent it bad bytes twice.
// If the digest is not known yet, the file waits in its unit's awaiting
// with the digest of its bytes. unitDone reports that it was the last file
// of its unit to verify.
func (p *puller) verify(f *fileState) (unitDone bool, err error) {
	h, err := os.OpenFile(f.path, os.O_RDWR, 0)
	if err != nil {
		return false, localErr(err)
	}
	defer h.Close()
	// Hashing holds hmu until the file is verified or reset, so that
	// advanceHash never hashes bytes about to be thrown away.
	f.hmu.Lock()
	defer f.hmu.Unlock()
	d, n, err := p.hashTo(f, h, -1)
	if err != nil {
		f.hsum, f.hat = nil, 0
		return false, localErr(err)
	}
	p.mu.Lock()
	if !f.u.known.Load() {
		// f.hat covers the whole file now, so advanceHash leaves it be.
		f.u.awaiting = append(f.u.awaiting, awaited{f: f, sum: d, n: n})
		p.mu.Unlock()
		return false, nil
	}
	p.mu.Unlock()
	f.hsum, f.hat = nil, 0
	if n == f.e.Size && d == f.want {
		if err := h.Chmod(f.e.FileMode()); err != nil {
			return false, localErr(err)
		}
		if err := os.Chtimes(f.path, time.Time{}, f.e.MTime); err != nil {
			return false, localErr(err)
		}
		if !p.o.NoSync {
			if err := h.Sync(); err != nil {
				return false, localErr(err)
			}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if f.verified {
			return false, nil
		}
		f.verified = true
		f.u.left--
		return f.u.left == 0, f.u.st.append(journalRec{Op: "verified", Path: f.e.Path})
	}
	return false, p.reject(f, h, d, n)
}

// reject throws away the bytes of f, whose digest is d (of n bytes), not
// f.want: the file is emptied (sparse again), its records reset, and it is
// queued again, avoiding sources that sent it bad bytes twice. h, if not
// nil, is f's staging file open for writing. The caller holds f.hmu.
func (p *puller) reject(f *fileState, h *os.File, d Digest, n int64) error {
	if h == nil {
		var err error
		if h, err = os.OpenFile(f.path, os.O_RDWR, 0); err != nil {
			return localErr(err)
		}
		defer h.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	avoid := map[*source]bool{}
	for s := range f.contribs {
		names = append(names, s.peer.Name())
		// Only a source that sent the whole bad copy is to blame; one
		// mismatch may be a fluke, two are not.
		if len(f.contribs) == 1 {
			if f.corrupted[s]++; f.corrupted[s] >= 2 {
				avoid[s] = true
			}
		}
	}
	f.isolate = len(f.contribs) > 1
	slices.Sort(names)
	cerr := fmt.Errorf("%w: file %q: SHA-256 %s, want %s (%d bytes, from %s)",
		ErrCorrupt, f.e.Path, d, f.want, n, strings.Join(names, ", "))
	p.log.Warn("digest mismatch; bytes thrown away", "path", f.e.Path, "error", cerr)
	f.u.refetch.Add(f.done.bytes())
	p.progress.Add(-f.done.bytes())
	f.done, f.contribs = nil, map[*source]bool{}
	if err := h.Truncate(0); err != nil {
		return localErr(err)
	}
	if err := h.Truncate(f.e.Size); err != nil {
		return localErr(err)
	}
	if err := f.u.st.append(journalRec{Op: "reset", Path: f.e.Path}); err != nil {
		return err
	}
	items := p.batch(p.piecesOf(f), avoid)
	for _, it := range items {
		it.lastErr = cerr
	}
	p.q.add(items...)
	return nil
}

// awaited is a file whose bytes are all written and synced, and their
// digest, waiting for the digest the file should have.
type awaited struct {
	f   *fileState
	sum Digest
	n   int64 // bytes hashed
}

// judge verifies files whose digests are known now: good ones are
// accepted, bad ones rejected.
func (p *puller) judge(files []awaited) error {
	var good []*fileState
	for _, a := range files {
		if a.n == a.f.e.Size && a.sum == a.f.want {
			good = append(good, a.f)
			continue
		}
		a.f.hmu.Lock()
		a.f.hsum, a.f.hat = nil, 0
		err := p.reject(a.f, nil, a.sum, a.n)
		a.f.hmu.Unlock()
		if err != nil {
			return err
		}
	}
	return p.accept(good)
}

// accept finishes files whose bytes (written and synced) matched their
// digests: they get their modes and mtimes, are synced again for those
// (one syncfs(2) per file system where there is one), and journaled as
// verified. A unit whose last file it was is placed.
func (p *puller) accept(files []*fileState) error {
	if len(files) == 0 {
		return nil
	}
	for _, f := range files {
		if err := os.Chmod(f.path, f.e.FileMode()); err != nil {
			return localErr(err)
		}
		if err := os.Chtimes(f.path, time.Time{}, f.e.MTime); err != nil {
			return localErr(err)
		}
	}
	if !p.o.NoSync {
		if err := p.syncFiles(files); err != nil {
			return localErr(err)
		}
	}
	recs := map[*unitPull][]journalRec{}
	var done []*unitPull
	p.mu.Lock()
	for _, f := range files {
		if f.verified {
			continue
		}
		f.verified = true
		recs[f.u] = append(recs[f.u], journalRec{Op: "verified", Path: f.e.Path})
		if f.u.left--; f.u.left == 0 {
			done = append(done, f.u)
		}
	}
	var jerr error
	for u, rs := range recs {
		if st := u.state.Load(); st == unitRunning || st == unitFailed {
			jerr = cmp.Or(jerr, u.st.append(rs...))
		}
	}
	p.mu.Unlock()
	if jerr != nil {
		return jerr
	}
	for _, u := range done {
		p.placeUnit(u)
	}
	return nil
}

// syncFiles makes files durable: one syncfs(2) per file system of their
// units' staging directories where there is one, else one fsync each.
func (p *puller) syncFiles(files []*fileState) error {
	if !canSyncFS {
		for _, f := range files {
			h, err := os.Open(f.path)
			if err != nil {
				return err
			}
			err = h.Sync()
			if cerr := h.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	devs := map[uint64]bool{}
	seen := map[*unitPull]bool{}
	for _, f := range files {
		if seen[f.u] {
			continue
		}
		seen[f.u] = true
		dev, err := devOf(f.u.st.lock)
		if err != nil {
			return err
		}
		if !devs[dev] {
			devs[dev] = true
			if err := syncFS(f.u.st.lock); err != nil {
				return err
			}
		}
	}
	return nil
}

// startDigests gets, in the background, the digests of the running units
// listed without them (at most 8 Manifest calls at a time), while their
// bytes travel. The queue is held open until each unit's digests are
// applied or the unit fails; the goroutines end with ctx.
func (p *puller) startDigests(ctx context.Context) {
	sem := make(chan struct{}, 8)
	for _, u := range p.units {
		if !u.fast || u.state.Load() != unitRunning {
			continue
		}
		p.q.hold()
		p.bg.Go(func() {
			defer p.q.release()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			err := p.fetchDigests(ctx, u)
			var le *localError
			switch {
			case err == nil || ctx.Err() != nil:
			case errors.As(err, &le):
				p.q.fail(err)
			default:
				u.fail(err)
			}
		})
	}
}

// digestRate is the slowest hashing rate a source is granted: the call
// for a unit's digests may take StallTimeout plus its size at this rate.
const digestRate = 16 << 20

// fetchDigests gets u's manifest with digests from its source (which
// hashes the unit meanwhile), checks that it lists the same versions as
// the manifest the pull started from, and applies the digests. A
// transient failure is retried, up to MaxFailures tries.
func (p *puller) fetchDigests(ctx context.Context, u *unitPull) error {
	peer := p.o.Sources[0]
	timeout := p.o.StallTimeout + time.Duration(u.m.TotalBytes()/digestRate)*time.Second
	var m *Manifest
	var err error
	for try := 1; ; try++ {
		mctx, cancel := context.WithTimeout(ctx, timeout)
		m, err = peer.Manifest(mctx, u.pfn)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		if try >= p.o.MaxFailures || !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrUnavailable) {
			break
		}
		u.log.Debug("digests failed; trying again", "peer", peer.Name(), "error", err)
		select {
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	if err == nil {
		err = m.Validate()
	}
	if err == nil {
		err = m.checkDigests()
	}
	if err == nil {
		err = sameListing(u.m, m)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("digests from %s: %w", peer.Name(), err)
	}
	return p.applyDigests(u, m)
}

// sameListing checks that full (a manifest with digests) lists what
// listed (the same unit's manifest without digests) did: the same
// entries, and for each the same size, mode, mtime and Version. Else the
// unit changed at the source in between: ErrChanged.
func sameListing(listed, full *Manifest) error {
	if len(listed.Entries) != len(full.Entries) {
		return fmt.Errorf("%w: the unit has %d entries now, %d when listed", ErrChanged, len(full.Entries), len(listed.Entries))
	}
	for i := range listed.Entries {
		a, b := &listed.Entries[i], &full.Entries[i]
		if a.Path != b.Path || a.Dir != b.Dir || a.Size != b.Size || a.Mode != b.Mode || !a.MTime.Equal(b.MTime) || a.Version != b.Version {
			return fmt.Errorf("%w: %q changed since the unit was listed", ErrChanged, a.Path)
		}
	}
	return nil
}

// applyDigests sets the digests of u's files from full (checked by
// sameListing), records them in the staging manifest, and judges the
// files that were waiting for them.
func (p *puller) applyDigests(u *unitPull, full *Manifest) error {
	sums := make(map[string]Digest, len(full.Entries))
	withSums := &Manifest{PFN: u.m.PFN, Entries: slices.Clone(u.m.Entries)}
	for i := range full.Entries {
		sums[full.Entries[i].Path] = full.Entries[i].SHA256
		withSums.Entries[i].SHA256 = full.Entries[i].SHA256
	}
	p.mu.Lock()
	if u.state.Load() != unitRunning {
		p.mu.Unlock()
		return nil
	}
	// First the staging manifest: a journal record "verified" is only ever
	// made against a manifest with digests.
	if err := u.st.setManifest(withSums); err != nil {
		p.mu.Unlock()
		return err
	}
	for _, f := range u.files {
		f.want = sums[f.e.Path]
	}
	u.known.Store(true)
	waiting := u.awaiting
	u.awaiting = nil
	left := u.left
	p.mu.Unlock()
	u.log.Debug("digests applied", "waiting_files", len(waiting))
	if err := p.judge(waiting); err != nil {
		return err
	}
	if left == 0 {
		p.placeUnit(u)
	}
	return nil
}

// place finishes unit u in staging (directory modes and mtimes, removal
// of anything an older manifest left), syncs it, and renames it to dest.
func (p *puller) place(u *unitPull) error {
	unit := u.st.unitPath()
	want := map[string]bool{}
	for _, e := range u.m.Entries {
		want[filepath.Join(unit, filepath.FromSlash(e.Path))] = true
	}
	var extra []string
	err := filepath.WalkDir(unit, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != unit && !want[path] {
			extra = append(extra, path)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return localErr(err)
	}
	for _, x := range extra {
		if err := os.RemoveAll(x); err != nil {
			return localErr(err)
		}
	}
	// Deepest first: entries are sorted, so children follow their parent.
	for i := len(u.m.Entries) - 1; i >= 0; i-- {
		e := &u.m.Entries[i]
		if !e.Dir {
			continue
		}
		path := filepath.Join(unit, filepath.FromSlash(e.Path))
		if err := u.st.syncDir(path); err != nil {
			return localErr(err)
		}
		if err := os.Chmod(path, e.FileMode()); err != nil {
			return localErr(err)
		}
		if err := os.Chtimes(path, time.Time{}, e.MTime); err != nil {
			return localErr(err)
		}
	}
	if err := u.st.syncDir(unit); err != nil {
		return localErr(err)
	}
	if _, err := os.Lstat(u.dest); err == nil && p.o.Force {
		// Swap, then delete the old unit, now in staging.
		if err := exchange(unit, u.dest); err != nil {
			old := unit + ".old"
			if err := os.Rename(u.dest, old); err != nil {
				return localErr(err)
			}
			if err := os.Rename(unit, u.dest); err != nil {
				return localErr(err)
			}
			unit = old
		}
		if err := os.RemoveAll(unit); err != nil {
			u.log.Warn("could not remove the replaced unit", "path", unit, "error", err)
		}
	} else if err := os.Rename(unit, u.dest); err != nil {
		return localErr(err)
	}
	return localErr(u.st.syncDir(filepath.Dir(u.dest)))
}

func (p *puller) reportProgress() (stop func()) {
	if p.o.Progress == nil {
		return func() {}
	}
	var total int64
	for _, u := range p.units {
		if u.m != nil {
			total += u.m.TotalBytes()
		}
	}
	report := func() { p.o.Progress(Progress{Done: p.progress.Load(), Total: total, Resumed: p.resumed}) }
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-done:
				report()
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// result reports on u, once the pull is over.
func (p *puller) result(u *unitPull) *PullResult {
	r := &PullResult{
		PFN: u.pfn, Dest: u.dest, Resumed: u.resumed,
		Fetched: u.fetched.Load(), Refetched: u.refetch.Load(), Elapsed: u.elapsed, Err: u.err,
		InPlace: u.inPlace,
	}
	if u.m != nil {
		r.Bytes, r.Files = u.m.TotalBytes(), u.m.Files()
		r.Dirs = len(u.m.Entries) - r.Files
		if u.state.Load() == unitPlaced {
			r.Manifest = u.m.Digest()
		}
	}
	if p.q == nil {
		return r // before the queue starts (a unit found in place): no sources yet
	}
	p.q.mu.Lock()
	defer p.q.mu.Unlock()
	for i, s := range p.sources {
		r.Sources = append(r.Sources, SourceResult{Name: s.peer.Name(), Bytes: u.srcBytes[i].Load(), Dropped: s.dropped, Slow: s.slow, Err: s.lastErr})
	}
	return r
}

// writeZeros writes n zero bytes at off.
func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}
