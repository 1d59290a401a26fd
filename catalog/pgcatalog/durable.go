package pgcatalog

import (
	"context"
	"fmt"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// Pipelined commits. A write holds the writers' lock (the meta row's) until
// its COMMIT returns, and with synchronous_commit on COMMIT returns once
// the write's WAL is on disk: the next write could not start its work
// before that flush, so that writes in sequence left PostgreSQL idle for
// a flush each (14-220 ms for a 10,000-item bulk call on a busy disk).
//
// Instead, a write that another write of this process is waiting for
// commits with synchronous_commit off (SET LOCAL): COMMIT returns, and
// releases the lock, once the commit record is in the WAL, not yet on
// disk. The write then waits, without the lock, until the server's WAL
// flush position passes the end of its commit record (polled, see
// waitFlushed), and only then is it acknowledged; meanwhile the next write
// runs. Every write still commits in the order it took the lock, so feed
// positions stay dense and visible in order; each is acknowledged only
// once durable; and a write that read another one's rows committed after
// it, so that flushing its own commit record flushed the other's. The
// last write of a burst (none waiting) commits synchronously, as every
// write did before.
//
// What changes is that a write may be seen by readers before it is
// durable, for up to one WAL flush (the WAL writer flushes at least every
// wal_writer_delay, 200 ms by default). Should the server crash in that
// window, the write, never acknowledged, is gone after recovery. The change
// feed does not let that through: Changes and ForEachLFN wait until
// everything their snapshot sees is flushed before returning any of it,
// so that a feed reader never sees a record that a crash could take back
// (and never sees a position reused).
//
// Pipelining is used only where a local flush is what COMMIT would wait
// for: synchronous_commit on (or local) and no synchronous standbys
// (synchronous_standby_names empty), on PostgreSQL (not CockroachDB). With
// synchronous replication every commit waits for the standbys, as before.

// flushTimeout bounds the wait for a pipelined write's flush.
const flushTimeout = time.Minute

// probePipeline says whether writes may be pipelined on this server (see
// above). Its errors are those of an unreachable server; a server without
// the functions it reads does not pipeline.
func (c *Catalog) probePipeline(ctx context.Context) (bool, error) {
	if c.cockroach {
		return false, nil
	}
	var syncCommit, standbys string
	err := c.pool.QueryRow(ctx, `SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names'),
		pg_current_wal_flush_lsn()::text`).Scan(&syncCommit, &standbys, new(string))
	if isUnavailable(err) {
		return false, unavailable("open", err)
	}
	if err != nil {
		c.logger.Info("pgcatalog: writes are not pipelined (the server does not report its WAL positions)", "err", err)
		return false, nil
	}
	return (syncCommit == "on" || syncCommit == "local") && standbys == "", nil
}

// walInsertLSN is the SQL of the server's WAL insert position, as text
// (an empty string where writes are not pipelined, so that readers need
// not wait).
func (c *Catalog) walInsertLSN() string {
	if c.pipeline {
		return `pg_current_wal_insert_lsn()::text`
	}
	return `''`
}

// waitFlushed waits until the server's WAL is flushed up to lsn (a
// pg_lsn as text; "" returns at once). It polls, with a wait that grows
// from 1 to 20 ms, for at most flushTimeout or until ctx ends. A pipelined
// write calls it with a context that does not end: it has committed, and
// its caller must not be told that it failed unless it may really be
// lost. A failure other than ctx's wraps catalog.ErrUnavailable.
func (c *Catalog) waitFlushed(ctx context.Context, op, lsn string) error {
	if lsn == "" {
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	wait := time.Millisecond
	for {
		var flushed bool
		err := c.pool.QueryRow(tctx, `SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn`, lsn).Scan(&flushed)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("catalog: %s: %w", op, ctx.Err())
		case err != nil:
			return fmt.Errorf("%s: %w: waiting for the WAL to be flushed to %s: %w", op, catalog.ErrUnavailable, lsn, err)
		case flushed:
			return nil
		}
		select {
		case <-time.After(wait):
		case <-tctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("catalog: %s: %w", op, ctx.Err())
			}
			return fmt.Errorf("%s: %w: the WAL was not flushed to %s within %v", op, catalog.ErrUnavailable, lsn, flushTimeout)
		}
		wait = min(2*wait, 20*time.Millisecond)
	}
}
