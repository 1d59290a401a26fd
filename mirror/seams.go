package mirror

import (
	"context"
	"time"
)

// Source is a site to pull from.
type Source struct {
	Site     string // its name, as the index knows it (or its address)
	Endpoint string // its gRPC address
}

// Location is one confirmed holder of an LFN.
type Location struct {
	Source
	PFN  string
	Size int64 // bytes, 0 if unknown
}

// Locator finds confirmed holders of LFNs: an index Locate with verify,
// which asks the candidate catalogs and returns only confirmed sites with
// their PFNs. One slice per LFN, in order. An error means no answer (the
// units are retried), never "nobody holds them".
type Locator interface {
	Locate(ctx context.Context, lfns []string) ([][]Location, error)
}

// Authority is the authoritative site of some series: the last source of a
// tier-1 pull and the judge of "this sunum does not exist".
type Authority interface {
	// Source is how to pull from it.
	Source() Source
	// Lookup asks the authority's catalog for lfns: the PFN of each, or ""
	// when its catalog definitively has no such LFN. An error (timeout,
	// unreachable) is no answer.
	Lookup(ctx context.Context, lfns []string) ([]string, error)
	// Units lists the sunums its catalog holds for series, sorted.
	Units(ctx context.Context, series string) ([]uint64, error)
}

// PullUnit is one unit of a Pull call.
type PullUnit struct {
	Sunum uint64
	PFN   string // at the source
	Dest  string // the final directory, STORE/D<sunum>
	// Place, if set, is asked just before the unit is placed (renamed
	// into place, or taken as found in place): false takes it back (it is
	// not placed, and its result's Err is ErrCancelled). It may be called
	// from several goroutines at once.
	Place func() bool
}

// PullResult is what became of one unit of a Pull call.
type PullResult struct {
	Bytes   int64 // the unit's size
	Fetched int64 // bytes received in this call
	Files   int64
	// SHA256 is the hex SHA-256 of the unit's manifest.
	SHA256 string
	// InPlace: Dest already held the unit (an earlier run placed it), and
	// it matched the manifest; nothing was pulled.
	InPlace bool
	Elapsed time.Duration
	// Err is nil once the unit is placed; otherwise it wraps one of
	// transfer's sentinel errors (ErrNotFound, ErrTimeout, ErrUnavailable,
	// ErrCorrupt, ErrChanged, ErrRefused, ErrExists, ErrInvalid).
	Err error
}

// Puller pulls units from one source into place, verified and atomically
// (transfer.PullUnits). It returns one result per unit, in order. A unit
// whose Dest already holds it is checked against the manifest and
// reported InPlace, not pulled again.
type Puller interface {
	Pull(ctx context.Context, src Source, units []PullUnit) []PullResult
}

// Placed is a unit to register in the own catalog.
type Placed struct {
	LFN, PFN string
	Bytes    int64
	Files    int64
	SHA256   string
	Series   string
	Source   string
}

// Registrar is the own catalog.
type Registrar interface {
	// Register maps each unit's LFN to its PFN with its attributes (size,
	// files, sha256, series, source), each unit in one atomic and durable
	// catalog batch; registering a unit already registered to that PFN
	// succeeds. One error per unit; err if nothing was written.
	Register(ctx context.Context, units []Placed) (errs []error, err error)
	// Registered reports, per LFN, the unit registered as lfns[i] at
	// pfns[i]: nil if the LFN is not mapped to that PFN, else what the
	// catalog holds of it (attributes it lacks are zero: a unit put there
	// by hand has none).
	Registered(ctx context.Context, lfns, pfns []string) ([]*Placed, error)
}

// OnDone is the post-placement hook: called after a unit became DONE (not
// for units found present at intake), with its sunum, path and series. It
// runs at least once: the DONE record and a pending mark are written in
// one batch, the mark is cleared after the hook returned, and marks left by
// a stop or kill are run at the next Run. It should be idempotent. Its
// error is logged; the unit stays DONE and the hook is not retried.
type OnDone func(ctx context.Context, sunum uint64, path, series string) error
