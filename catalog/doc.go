// Package catalog is a site's local replica catalog (LRC): a durable map from
// logical names (LFNs) to physical names (PFNs) and back, with typed
// attributes and an ordered change feed, stored in Pebble.
//
// It is embeddable: another Go program opens a catalog directory with Open and
// uses the returned *Catalog directly, without gRPC. A directory may be open
// in one process at a time (Pebble holds a lock file).
//
// # Backends
//
// Store is the catalog as an interface of small parts (MappingWriter,
// UnitRegisterer, Querier, Attributes, Feed, StatsReporter, io.Closer):
// *Catalog, on Pebble, is the embedded default; other backends (a shared SQL
// server) implement the same contracts, checked by one conformance suite,
// package catalogtest. Consumers take the smallest part they need. Every
// operation takes a context.Context first: a caller's deadline or
// cancellation ends a long scan or bulk call early, and a write whose
// context ended before it was applied writes nothing.
//
// # Semantics
//
// The operations follow the LRC of Globus RLS:
//
//   - Create makes a new LFN with its first PFN and fails if the LFN exists.
//   - Add gives an existing LFN another PFN and fails if the LFN does not
//     exist or the mapping does.
//   - Delete removes one mapping. An LFN disappears with its last PFN, a PFN
//     with its last LFN, and their attribute values with them.
//   - RenameLFN and RenamePFN give a name a new one, keeping its mappings and
//     attribute values.
//
// Names (LFNs and PFNs) are 1..MaxNameLen bytes of valid UTF-8 without NUL.
// Anything else is refused with an *Error wrapping ErrInvalid that names the
// item and the reason, and nothing is written.
//
// # Durability and concurrency
//
// A *Catalog is safe for concurrent use by many goroutines. Writes are
// serialized in a single logical order (the order of the change feed) and each
// write call is durable when it returns without error: its batch has reached
// the write-ahead log and the log has been fsynced, unless Options.NoSync
// relaxes this. Concurrent single writes (Create, Add, Delete) are committed
// in groups: the calls waiting for the writers' lock are checked in order
// and share one Pebble batch and one fsync, so many small writers cost far
// fewer batches and syncs than writes.
//
// A write becomes visible to readers as soon as it is applied, which may be a
// moment before it is durable; a reader can thus see a write whose caller has
// not been acknowledged yet. Readers never see part of a write call, and a
// crash never leaves part of one: each call is one atomic Pebble batch,
// except a large bulk write of new names, whose runs of keys in ranges that
// hold none yet are ingested as table files next to a batch of the rest;
// reads that start while the two are applied see a snapshot from before
// the call, without waiting, and Open takes back the ingested keys of a
// call whose batch did not become durable.
//
// # Storage errors: fail-stop
//
// A write that could not be made durable is never acknowledged, and it is
// never served. The first storage error (a write-ahead-log write or fsync
// that failed, a full disk, a flush or compaction that hit an I/O error, a
// panic inside Pebble's commit path) stops the catalog: that write and every
// later operation return an error wrapping ErrFailed and the cause
// (errors.Is(err, syscall.ENOSPC) for a full disk), Err reports it, and
// Failed is closed. The log is fenced at that moment: each WAL file is cut
// back to what its last successful fsync covered, so a restart recovers
// exactly the acknowledged writes and none whose callers were told they
// failed. The process should exit (rlsd does, with status 3).
//
// The one window in which a reader may see a write that is then not
// acknowledged is group commit's: a batch is visible from the moment it is
// applied to the memtable until its fsync completes, that is for at most one
// WAL fsync (typically well under 10 ms, bounded by the disk's fsync
// latency). If that fsync fails, the catalog stops at once and serves nothing
// more, so such a write is never seen again, in this process or after a
// restart.
//
// # Change feed
//
// Every committed create, add, delete and rename appends one record with a
// dense, increasing sequence number. A delete leaves a tombstone record that
// late readers still see, until PruneChanges removes records below a horizon.
// Attribute changes are not in the feed.
package catalog
