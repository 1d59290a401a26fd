package catalog

import (
	"context"
	"io"
)

// Store is a replica catalog backend: the operations of a local replica
// catalog, whatever holds it. *Catalog (Pebble, embedded, one process) is
// one; a backend on a shared SQL server is another. Every backend passes
// the conformance suite in package catalogtest, which is the executable
// form of the contracts below and of the methods' doc comments on
// *Catalog.
//
// Store is composed of small interfaces (as Perkeep's blobserver.Storage
// is); a consumer takes the smallest one it needs. Figures that only some
// backends have (disk use, compaction debt) are behind optional interfaces
// (StorageReporter, FailStopper) that consumers check by type assertion.
//
// Contracts common to every method of every backend:
//
//   - Every method is safe for concurrent use.
//   - ctx bounds the call: a backend returns an error wrapping ctx.Err()
//     once ctx has ended, and a long scan or bulk call stops early. A
//     write whose context ended before it was applied writes nothing; a
//     write is either acknowledged (durable, see the package doc) or
//     reported failed, and a write that failed because ctx ended changed
//     nothing.
//   - Bad input (a malformed name, value, pattern, operator or object
//     type) is an *Error wrapping ErrInvalid that names the item and the
//     reason, and changes nothing. Errors about one item are *Error values
//     wrapping ErrNotFound, ErrExists, ErrInvalid or ErrPrecondition.
//   - Errors of the store as a whole are never *Error values: ErrClosed
//     after Close, ErrFailed (fail-stop backends, see FailStopper),
//     ErrUnavailable when a backend's server cannot be reached, and
//     context errors. In a bulk call such an error is the call's err (and
//     nothing was written), never an item's.
//   - A write call is atomic: readers see all of it or none of it. A write
//     returns the change-feed position after it (seq); writes that append
//     no record return the current position.
//   - Names are 1..MaxNameLen bytes of UTF-8 without NUL (ValidateName);
//     every ordering ("in byte order") is by the names' bytes.
//   - Close waits for operations in flight and is idempotent; operations
//     after it fail with ErrClosed.
type Store interface {
	MappingWriter
	UnitRegisterer
	Querier
	Attributes
	Feed
	StatsReporter
	io.Closer
}

// MappingWriter writes mappings: the Create/Add/Delete/Rename operations of
// the Globus RLS LRC (see the package doc) and their bulk forms. Each
// returns the change-feed position after the write; bulk calls return one
// error per item (nil for success; a failed item changes nothing) and err
// only when the whole call failed and nothing was written. Later items of a
// bulk call see the effects of earlier ones.
type MappingWriter interface {
	// Create makes a new LFN with its first PFN; ErrExists if the LFN
	// exists.
	Create(ctx context.Context, lfn, pfn string) (seq uint64, err error)
	// Add maps an existing LFN to another PFN; ErrNotFound if the LFN does
	// not exist, ErrExists if the mapping does.
	Add(ctx context.Context, lfn, pfn string) (seq uint64, err error)
	// Delete removes one mapping (ErrNotFound if there is none), leaving a
	// tombstone in the change feed. An LFN or PFN left without mappings
	// disappears, with its attribute values.
	Delete(ctx context.Context, lfn, pfn string) (seq uint64, err error)
	// RenameLFN and RenamePFN give a name a new one, keeping its mappings
	// and attribute values; ErrNotFound if old does not exist, ErrExists
	// if new does.
	RenameLFN(ctx context.Context, old, new string) (seq uint64, err error)
	RenamePFN(ctx context.Context, old, new string) (seq uint64, err error)
	// BulkWrite applies op to every mapping, in order, as one atomic and
	// durable write. An unknown op fails the call with ErrInvalid.
	BulkWrite(ctx context.Context, op Op, ms []Mapping) (errs []error, seq uint64, err error)
	// BulkRename renames many LFNs or PFNs (obj), in order, as one atomic
	// and durable write. An unknown obj fails the call with ErrInvalid.
	BulkRename(ctx context.Context, obj ObjectType, rs []Rename) (errs []error, seq uint64, err error)
}

// UnitRegisterer records placed storage units: mappings with their LFN
// attribute values, in one write (the mirror's registration).
type UnitRegisterer interface {
	// RegisterUnits records, for each unit, the mapping LFN → PFN and the
	// LFN's attribute values (upserted; an attribute not yet defined for
	// LFNs is defined with its value's type), all units in one atomic and
	// durable write. Registering a unit again is not an error. Each unit is
	// checked before anything of it is written: errs[i] != nil means unit i
	// changed nothing.
	RegisterUnits(ctx context.Context, units []Unit) (errs []error, seq uint64, err error)
}

// Querier reads mappings. Reads see every write acknowledged before they
// started; a bulk read answers from one consistent view.
type Querier interface {
	// QueryEach calls fn with each name mapped to name (the PFNs of an
	// LFN for obj LFN, the LFNs of a PFN for obj PFN), in byte order.
	// ErrNotFound if name has no mapping. If fn returns an error,
	// QueryEach stops and returns it.
	QueryEach(ctx context.Context, obj ObjectType, name string, fn func(other string) error) error
	// BulkQueryEach does QueryEach for each of names in turn, calling
	// fn(i, other), and returns one error per name (nil, or an *Error:
	// ErrNotFound, ErrInvalid). If fn returns an error, it stops and
	// returns it as err; errs then holds the outcomes of the names before.
	BulkQueryEach(ctx context.Context, obj ObjectType, names []string, fn func(i int, other string) error) (errs []error, err error)
	// BulkExists answers, for every item, whether the mapping exists (LFN
	// and PFN both set), or the LFN (only LFN set), or the PFN (only PFN
	// set); an item with neither is ErrInvalid.
	BulkExists(ctx context.Context, items []Mapping) (exists []bool, errs []error, err error)
	// Wildcard returns a page of the mappings that match q (see
	// WildcardQuery for the order and the paging), and whether more lie
	// past it.
	Wildcard(ctx context.Context, q WildcardQuery) (ms []Mapping, more bool, err error)
}

// Attributes defines, sets, reads and searches typed attribute values of
// LFNs and PFNs (see the package doc). Attribute writes are durable like
// mapping writes but are not in the change feed. Values are checked with
// Value.Check; times are kept to the microsecond at least (Pebble keeps the
// nanosecond), and -0 and +0 are one float value.
type Attributes interface {
	// DefineAttr defines an attribute; ErrExists if it is already defined
	// for that object type.
	DefineAttr(ctx context.Context, d AttrDef) error
	// UndefineAttr removes a definition; ErrPrecondition if objects still
	// carry values of it, unless clearValues (then they go too, in the same
	// atomic write).
	UndefineAttr(ctx context.Context, attr string, obj ObjectType, clearValues bool) error
	// AttrDefs lists the definitions for obj (0: for both; another
	// unknown type is ErrInvalid), ordered by object type and name.
	AttrDefs(ctx context.Context, obj ObjectType) ([]AttrDef, error)
	// SetAttr sets a value on an existing LFN or PFN; mode says what it
	// requires of an existing value (ErrExists for AddOnly, ErrNotFound for
	// ModifyOnly). ErrNotFound if the object or the definition does not
	// exist, ErrInvalid if the value's type is not the attribute's.
	SetAttr(ctx context.Context, obj ObjectType, object, attr string, v Value, mode SetMode) error
	// RemoveAttr removes a value (ErrNotFound if there is none).
	RemoveAttr(ctx context.Context, obj ObjectType, object, attr string) error
	// BulkSetAttrs sets (or, for a nil Value, removes) many values in
	// order, as one atomic and durable write, with one error per item.
	BulkSetAttrs(ctx context.Context, obj ObjectType, mode SetMode, ws []AttrWrite) (errs []error, err error)
	// BulkAttrsEach calls fn(i, a) with the attribute values of each object
	// in turn (all of them, or those named in attrs), in name order, and
	// returns one error per object: ErrNotFound if the object does not
	// exist, or naming the first of attrs it has no value of (after fn saw
	// those it has). If fn returns an error, it stops and returns it as
	// err. An unknown obj fails the call with ErrInvalid.
	BulkAttrsEach(ctx context.Context, obj ObjectType, objects, attrs []string, fn func(i int, a Attr) error) (errs []error, err error)
	// SearchAttr returns a page of the objects whose value of s.Attr
	// satisfies the condition, ordered by (value, object name), and
	// whether more lie past it (see Search).
	SearchAttr(ctx context.Context, s Search) (hits []Hit, more bool, err error)
}

// Feed is the change feed: every committed create, add, delete (a
// tombstone) and rename, as a Change with a position (Seq), for soft-state
// deltas and other subscribers.
//
// Positions increase in commit order and are never reused within one
// incarnation. A backend may leave gaps between positions (it says so in
// its doc; Pebble's are dense), so a reader follows the Seq of the records
// it read, never from+count. Once a reader has seen a record at position
// s, no record at a position <= s appears later: a reader that goes on
// from s+1 misses nothing.
type Feed interface {
	// Incarnation identifies the feed's history: positions are compared
	// only within one incarnation, and a catalog rebuilt from scratch has
	// a new one.
	Incarnation() [IncarnationLen]byte
	// LastSeq returns the position of the last record (0 if none was ever
	// written).
	LastSeq(ctx context.Context) (uint64, error)
	// Changes returns up to limit records at positions >= from, in order
	// (limit <= 0: 10,000). If records at or after from were pruned, it
	// fails with ErrNotFound: the reader has missed changes and must start
	// over from a full state (ForEachLFN).
	Changes(ctx context.Context, from uint64, limit int) ([]Change, error)
	// WaitChanges blocks until the feed holds a record at position from or
	// later, ctx ends (its error), or the store closes (ErrClosed).
	WaitChanges(ctx context.Context, from uint64) error
	// ForEachLFN calls fn for every LFN, in byte order, from one consistent
	// snapshot, and returns the position that snapshot reflects: a reader
	// that follows with Changes(seq+1, …) misses nothing and sees nothing
	// twice. Writers are not blocked while fn runs (fn may write to the
	// store). If fn returns an error, the scan stops and returns it.
	ForEachLFN(ctx context.Context, fn func(lfn string) error) (seq uint64, err error)
	// PruneChanges removes the records at positions below before (never
	// past the last record). The store never prunes by itself.
	PruneChanges(ctx context.Context, before uint64) error
}

// StatsReporter reports a catalog's counts.
type StatsReporter interface {
	// Stats returns the counts as of the last write applied; it may cost a
	// little more than a point read, so call it for stats and scrapes, not
	// per request.
	Stats(ctx context.Context) (Stats, error)
}

// Stats holds a catalog's counts.
type Stats struct {
	LFNs, PFNs, Mappings uint64
	// Seq is the last change-feed position; FirstSeq the oldest kept
	// (Seq+1 when the feed is empty).
	Seq, FirstSeq uint64
	AttrDefs      uint64
}

// StorageReporter is implemented by backends that keep their own storage
// (Pebble): figures of that storage, for stats pages and metrics.
type StorageReporter interface {
	StorageStats(ctx context.Context) (StorageStats, error)
}

// StorageStats are figures of a backend's own storage.
type StorageStats struct {
	// DiskBytes is the space the store uses on disk.
	DiskBytes uint64
	// CompactionDebtBytes estimates what is still to compact (Pebble keeps
	// it above 0 below its compaction thresholds), and CompactionsRunning
	// counts compactions in progress, which drop to 0 once the store has
	// settled after a bulk load.
	CompactionDebtBytes, CompactionsRunning uint64
}

// FailStopper is implemented by backends that stop at their first storage
// error instead of retrying (Pebble, see the package doc): after it, every
// operation fails with an error wrapping ErrFailed, and the process should
// exit so that a restart recovers the acknowledged writes. A backend whose
// server may come back (ErrUnavailable) does not implement it.
type FailStopper interface {
	// Err returns nil while the store is healthy, and its failure after.
	Err() error
	// Failed is closed when the store fails.
	Failed() <-chan struct{}
}

// The Pebble catalog is a Store, reports its storage and stops on failure.
var (
	_ Store           = (*Catalog)(nil)
	_ StorageReporter = (*Catalog)(nil)
	_ FailStopper     = (*Catalog)(nil)
)
