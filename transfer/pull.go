package transfer

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
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
	DefaultJournalMin      = 1 << 20
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
	// placed (or found in place), durably, before PullUnits returns,
	// possibly from several goroutines at once. The result's Err is nil;
	// Elapsed and the per-source figures may still grow.
	OnPlaced func(i int, r *PullResult)
	// BeforePlace, if set, is called for each unit about to be placed
	// (renamed into place, or taken as found in place), with its index,
	// possibly from several goroutines at once: an error fails the unit
	// with that error instead, and it is not placed (a unit found in place
	// stays where it is). It is how a caller takes back a unit it no longer
	// wants without stopping the others.
	BeforePlace func(i int) error
	// JournalMin: a unit of fewer bytes is built without a resume journal
	// (nothing of it is worth resuming: after a crash it is fetched again
	// whole), its files are not synced one by one as they arrive, and it
	// is made durable with the other units placed at the same time (one
	// syncfs(2) for them all, where there is one). Default
	// DefaultJournalMin; negative: every unit is journaled.
	JournalMin int64
	// Logger, default slog.Default().
	Logger *slog.Logger

	hooks pullHooks // for tests (export_test.go)
}

// pullHooks are called at points of a pull that tests wait for, instead of
// sleeping. Nil in production.
type pullHooks struct {
	// fetched is called after each Read call of the pull, once what it
	// brought is written, synced and journaled (and the files it completed
	// verified, or set waiting for their digests), with the number of bytes
	// it received. It may be called from several goroutines at once.
	fetched func(n int64)
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
	// Entries are the placed unit's manifest entries, with the digests it
	// was verified against (nil unless placed): a Source exporting Dest
	// adopts them (Source.Adopt) to serve the unit without hashing it.
	Entries []Entry
	Err     error // nil once the unit is placed
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
	if o.JournalMin == 0 {
		o.JournalMin = DefaultJournalMin
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
		dests := make([]string, len(p.units))
		defer removeStagingRoots(dests)
		for i, u := range p.units {
			dests[i] = u.dest
			if u.st != nil {
				// An unjournaled unit's staging holds nothing a later
				// pull would use.
				u.st.close(u.state.Load() == unitPlaced || (u.m == nil && u.fresh) || u.st.unjournaled)
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
	var ready []*unitPull
	for _, u := range p.units {
		if u.state.Load() == unitRunning && u.m != nil && u.left == 0 && !u.fast {
			ready = append(ready, u) // a fast unit is placed once its digests are checked
		}
	}
	p.placeUnits(ready)
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
	parents := map[string]bool{} // directories seen to be directories
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
			if !parents[parent] {
				if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
					return fmt.Errorf("%w: destination's parent %s is not a directory", ErrInvalid, parent)
				}
				parents[parent] = true // once per call: a batch's units share it
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
	var g errgroup.Group
	g.SetLimit(8)
	for _, u := range p.units {
		if u.state.Load() != unitRunning {
			continue
		}
		g.Go(func() error {
			m, err := p.fetchManifest(ctx, u)
			if err != nil {
				p.failUnit(u, err) // the unit's failure, not the pull's
				return nil
			}
			u.m = m
			return nil
		})
	}
	_ = g.Wait()
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
func (p *puller) placeUnit(u *unitPull) { p.placeUnits([]*unitPull{u}) }

// puller is the state of one PullUnits.
type puller struct {
	o       PullOptions
	log     *slog.Logger
	units   []*unitPull
	sources []*source
	q       *queue
	limit   *rate.Limiter // nil: no RateLimit

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
