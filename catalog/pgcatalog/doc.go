// Package pgcatalog is a local replica catalog kept in PostgreSQL: a
// catalog.Store that several rlsd processes (one site) serve at once, in
// the database a site's DRMS already runs, replicates and backs up. The
// embedded default stays the Pebble catalog (package catalog); rlsd uses
// this one with --catalog-dsn.
//
//	cat, err := pgcatalog.Open(ctx, "postgres://rls@db/rls", nil)
//	...
//	seq, err := cat.Create(ctx, "123456789", "/SUM12/D123456789")
//
// Every operation behaves as on Pebble, word for word in its errors (the
// test TestSameAsPebble drives both with the same random operations and
// compares every answer, and the conformance suite catalogtest runs on
// both).
//
// # Schema
//
// Open applies the schema's versioned migrations (embedded SQL, applied by
// golang-migrate under an advisory lock, so that several processes starting
// at once migrate once) and refuses a database whose schema is newer than
// it knows (ErrSchemaTooNew, naming both versions) or was left dirty by a
// failed migration. The tables: rls_map (lfn, pfn) with primary key (lfn,
// pfn) and an index (pfn, lfn); rls_feed, the change feed; rls_attr_def
// and rls_attr, attribute values typed in SQL (bigint, double precision,
// text, timestamptz plus the nanoseconds PostgreSQL does not keep) with a
// partial index a type serving =, !=, <, <=, >, >=, between and like in
// (value, name) order; and rls_meta, one row holding the incarnation, the
// feed's positions and the counts. Names are text in the "C" collation, so
// that they sort by bytes as on Pebble. The database must be UTF-8.
//
// # Writes, durability, concurrency
//
// A write is one transaction that first locks the meta row (SELECT ... FOR
// UPDATE), so writers are serialized across every process sharing the
// database: each one's checks see every write committed before it, and a
// write is acknowledged when its COMMIT returned (synchronous_commit on:
// it survives a crash of rlsd or of the server). A mapping write reads what
// it checks with two set-based lookups (= ANY of the call's names), applies
// its items in order in memory, and writes the difference with COPY
// (bulk.go). Single writes of one process are group-committed: those that
// arrive while a transaction is in flight share the next one and its
// fsync (group.go). Reads are single statements, prepared and cached per
// connection by pgx; they take no lock and see every committed write.
//
// The database down or restarting makes operations fail with an error
// wrapping catalog.ErrUnavailable (gRPC UNAVAILABLE, rlsctl exit 5); the
// connection pool reconnects by itself once it is back. A write whose
// COMMIT was lost with the connection may or may not have been applied; it
// is reported as unavailable, never acknowledged.
//
// # Change feed
//
// Every create, add, delete (a tombstone) and rename appends a record. Its
// position is assigned under the meta row's lock from the last one, so
// positions are dense (no gaps, even across processes: a rolled-back
// write leaves none, since its increment of the meta row rolls back with
// it) and become visible in order: a reader that has seen position n never
// later sees a record at a position <= n. Readers need no horizon of
// in-flight transactions. WaitChanges wakes on this process's writes, on
// other processes' through LISTEN/NOTIFY (a write notifies its last
// position at COMMIT), and polls every Options.PollInterval in case a
// notification was missed. Record times have microsecond precision.
//
// # One sender of soft state
//
// Exclusive runs a task while the process holds a PostgreSQL session
// advisory lock, so that of several rlsd sharing the catalog one sends the
// site's soft state, and another takes over within seconds when it dies.
//
// # Other servers
//
// The SQL stays within what CockroachDB and YugabyteDB accept where it can:
// plain tables and btree indexes, SELECT ... FOR UPDATE, INSERT ... ON
// CONFLICT, = ANY(array), unnest, row comparisons, COPY through pgx, no
// temporary tables, no stored procedures or triggers. What is
// PostgreSQL-specific, and its fallback:
//
//   - LISTEN/NOTIFY (not in CockroachDB): when LISTEN is refused, writers
//     stop notifying and WaitChanges relies on polling.
//   - Session advisory locks (pg_try_advisory_lock; CockroachDB accepts
//     the call but does not lock): Exclusive needs a server that has them.
//     On CockroachDB run one sending rlsd (the others without
//     --update-to). Not implemented: a lease row as a fallback.
//   - Partial indexes (rls_attr_*), COLLATE "C", timestamptz: CockroachDB
//     and YugabyteDB have them; untested there.
//   - golang-migrate's pgx driver takes pg_advisory_lock while migrating.
//   - StorageStats reads pg_total_relation_size.
//
// Tested only on PostgreSQL (15, the machine's); CockroachDB cannot be
// installed here and YugabyteDB was not tried.
package pgcatalog
