package transfer

// What a pull is asked to do (PullOptions and their defaults), and what
// it reports (Progress, PullResult, SourceResult).

import (
	"log/slog"
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
