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
// is reported as unavailable, never acknowledged. With Options.Background
// the database may also be down when Open is called: Open returns a
// catalog that answers ErrUnavailable, retries with backoff (logging its
// failed attempts, rate-limited) and migrates once it connects; Ready says
// when (rlsd keeps its catalog service NOT_SERVING until then). A
// malformed DSN (ErrDSN) and a schema newer than known or dirty fail Open
// at once, or end the retrying when first met later.
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
// Exclusive runs a task while the process holds a catalog-wide lock, so
// that of several rlsd sharing the catalog one sends the site's soft
// state, and another takes over within seconds when it dies. The lock is a
// PostgreSQL session advisory lock where the server has them, else a lease
// row in rls_lease (Options.SenderLock forces either): the holder renews
// its row every ttl/4 (ttl: five Exclusive intervals, 5 s in rlsd) and
// stops its task before the row can expire unrenewed; a standby takes an
// expired row, so a holder killed with -9 is replaced within ttl plus an
// interval, and one that stops deletes its row. Both kinds are tested on
// PostgreSQL, the lease with a holder process killed (-9).
//
// # Other servers: the SQL used, and what differs on CockroachDB and YugabyteDB
//
// The catalog speaks the PostgreSQL wire protocol through pgx, which
// CockroachDB and YugabyteDB (YSQL) also serve. Its SQL keeps to:
//
//   - DDL (migrations/*.sql): CREATE TABLE with text, bigint, smallint,
//     integer, boolean, bytea, double precision and timestamptz columns,
//     PRIMARY KEY and CHECK constraints, COLLATE "C" on names, btree
//     indexes, partial indexes (WHERE v IS NOT NULL) and one expression
//     index (left(vs, 128)); no sequences, triggers, stored procedures,
//     temporary tables or extensions.
//   - Statements: SELECT with = ANY($1::text[]), unnest of array
//     parameters (several arrays zipped), joins, EXISTS, GROUP BY, ORDER BY,
//     LIMIT/OFFSET, LIKE with '\' escapes, row comparisons ((a, b) > ($1,
//     $2)); INSERT ... SELECT FROM unnest, INSERT ... ON CONFLICT DO
//     NOTHING / DO UPDATE ... WHERE ... RETURNING; UPDATE; DELETE ...
//     USING unnest; SELECT ... FOR UPDATE (the writers' lock on the meta
//     row); REPEATABLE READ READ ONLY transactions (ForEachLFN and
//     Changes: one snapshot; CockroachDB runs them SERIALIZABLE, which is
//     stronger); now(), left(), coalesce(), version(), interval
//     arithmetic (now() + $1 * interval '1 millisecond').
//
// What is specific to PostgreSQL, and what the catalog does without it:
//
//   - COPY (pgx's CopyFrom, binary format, inside the write's
//     transaction) for writes of 64 rows or more. CockroachDB (recognised
//     by version()): never used; every write inserts from array
//     parameters (INSERT ... SELECT FROM unnest), as small writes do
//     everywhere. YugabyteDB has COPY.
//   - LISTEN/NOTIFY (pg_notify), to wake WaitChanges in other processes.
//     Not in CockroachDB: when LISTEN is refused, writers stop notifying
//     and WaitChanges polls every Options.PollInterval.
//   - Session advisory locks (pg_try_advisory_lock) for Exclusive.
//     CockroachDB (recognised by version(), whatever its advisory lock
//     functions do: they are not real session locks there) and servers or
//     roles where the function is missing, unsupported (YugabyteDB
//     without advisory locks) or not permitted: the lease row (see
//     above), chosen by itself.
//   - pg_total_relation_size, pg_class, to_regnamespace for StorageStats.
//     Where they are missing, StorageStats reports 0 bytes (logged once).
//   - golang-migrate's pgx driver holds pg_advisory_lock while it
//     migrates, so that processes starting at once migrate once. No
//     fallback: on CockroachDB start one rlsd first and the others once it
//     serves (or migrate with golang-migrate's cockroachdb driver, which
//     keeps its lock in a table).
//   - Error codes: class 08 and 57P01..57P05 mean the server cannot be
//     reached (ErrUnavailable). CockroachDB also asks clients to retry
//     serializable conflicts (40001); the catalog does not retry them
//     (writers are serialized by the meta row's lock, so they should not
//     arise) and returns them as errors.
//
// Tested only on PostgreSQL (15, the machine's), the lease and the
// fallback from a missing advisory lock function included; CockroachDB
// cannot be installed here and YugabyteDB was not tried. Untested there in
// particular: COLLATE "C" (byte order), the partial and expression
// indexes, timestamptz precision, FOR UPDATE under CockroachDB's
// serializable isolation, and the migrations themselves.
package pgcatalog
