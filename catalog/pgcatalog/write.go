package pgcatalog

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/solar-archive/rls/catalog"
)

// A write is one transaction that first locks the meta row (SELECT ... FOR
// UPDATE): writers are serialized across every process that shares the
// database, each one's checks read every write committed before it, and
// feed positions, assigned under the lock, are dense and become visible in
// order (a reader never sees position n+1 before n). The lock is held until
// COMMIT returns, that is until the write is durable (synchronous_commit
// on), so that a write acknowledged to its caller survives a crash of
// rlsd or of the server. Reads take no lock.

// A write takes few round trips, since the meta row's lock is held across
// them: BEGIN, the lock and the write's reads go in one (writeReading),
// the statements whose results are not needed (the feed's and small
// writes' INSERTs, DELETEs, the meta row's UPDATE, NOTIFY) go with COMMIT
// in another (w.final), and only large writes add their COPY in between.
// A statement of w.final that fails fails the COMMIT, so the whole write.

// wtx is one write transaction, holding the meta row's lock.
type wtx struct {
	c    *Catalog
	tx   *pgx.Conn // in the write's transaction
	now  time.Time
	seq  uint64 // the feed's last position, counting this write's records so far
	base uint64 // ... before this write
	// deltas of the meta row's counts
	lfns, pfns, mappings int64
	// feed holds the records of item-by-item operations, written at the end.
	feed []catalog.Change
	// final holds the statements sent with COMMIT.
	final pgx.Batch
}

// write runs fn in a write transaction and commits it. It returns the
// feed's last position after the write. An error from fn rolls everything
// back. A write whose COMMIT fails with the connection lost may or may not
// have been applied; it is reported as ErrUnavailable, never acknowledged.
func (c *Catalog) write(ctx context.Context, op string, fn func(ctx context.Context, w *wtx) error) (uint64, error) {
	return c.writeReading(ctx, op, nil, fn)
}

// writeReading is write with reads: it queues them on b, after BEGIN and
// the meta row's lock, and their callbacks have run when fn is called.
func (c *Catalog) writeReading(ctx context.Context, op string, reads func(b *pgx.Batch), fn func(ctx context.Context, w *wtx) error) (uint64, error) {
	if err := c.enter(ctx, op); err != nil {
		return 0, err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	pc, err := c.pool.Acquire(ctx)
	if err != nil {
		return 0, unavailable(op, err)
	}
	defer endTx(ctx, pc)
	var seq int64
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(`SELECT seq FROM rls_meta WHERE id = 1 FOR UPDATE`).QueryRow(func(row pgx.Row) error { return row.Scan(&seq) })
	if reads != nil {
		reads(b)
	}
	if err := pc.SendBatch(ctx, b).Close(); err != nil {
		return 0, unavailable(op, err)
	}
	w := &wtx{c: c, tx: pc.Conn(), now: time.Now(), seq: uint64(seq), base: uint64(seq)}
	if err := fn(ctx, w); err != nil {
		return 0, unavailable(op, err)
	}
	if err := w.commit(ctx); err != nil {
		return 0, unavailable(op, err)
	}
	c.observe(w.seq, 0)
	return w.seq, nil
}

// endTx rolls back what a failed write left open on the connection, and
// returns the connection to the pool (which drops it if it is broken).
func endTx(ctx context.Context, pc *pgxpool.Conn) {
	if conn := pc.Conn(); !conn.IsClosed() && conn.PgConn().TxStatus() != 'I' {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, err := conn.Exec(rctx, `ROLLBACK`); err != nil {
			_ = conn.Close(rctx)
		}
		cancel()
	}
	pc.Release()
}

// errRolledBack reports a COMMIT that rolled back.
var errRolledBack = errors.New("pgcatalog: the write's transaction rolled back at COMMIT")

// commit writes the item-by-item feed records and the meta row, notifies
// listeners (delivered at COMMIT), and commits: w.final and COMMIT in one
// round trip.
func (w *wtx) commit(ctx context.Context) error {
	if err := w.finish(ctx); err != nil {
		return err
	}
	w.final.Queue(`COMMIT`).Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return errRolledBack
		}
		return nil
	})
	return w.tx.SendBatch(ctx, &w.final).Close()
}

// addChange appends one feed record of an item-by-item operation.
func (w *wtx) addChange(ch catalog.Change) {
	w.seq++
	ch.Seq = w.seq
	w.feed = append(w.feed, ch)
}

// finish writes (COPY) or queues on w.final (INSERT) the item-by-item feed
// records, and queues the meta row's update and the notification.
func (w *wtx) finish(ctx context.Context) error {
	if n := len(w.feed); n >= copyThreshold && !w.c.cockroach {
		_, err := w.tx.CopyFrom(ctx, pgx.Identifier{"rls_feed"}, []string{"seq", "kind", "lfn", "pfn", "old", "lfn_added", "lfn_removed", "at"},
			pgx.CopyFromSlice(n, func(i int) ([]any, error) {
				ch := &w.feed[i]
				return []any{int64(ch.Seq), int16(ch.Kind), ch.LFN, ch.PFN, ch.Old, ch.LFNAdded, ch.LFNRemoved, w.now}, nil
			}))
		if err != nil {
			return err
		}
	} else if n > 0 {
		seqs := make([]int64, n)
		kinds := make([]int16, n)
		lfns, pfns, olds := make([]string, n), make([]string, n), make([]string, n)
		added, removed := make([]bool, n), make([]bool, n)
		for i, ch := range w.feed {
			seqs[i], kinds[i] = int64(ch.Seq), int16(ch.Kind)
			lfns[i], pfns[i], olds[i] = ch.LFN, ch.PFN, ch.Old
			added[i], removed[i] = ch.LFNAdded, ch.LFNRemoved
		}
		w.final.Queue(`INSERT INTO rls_feed (seq, kind, lfn, pfn, old, lfn_added, lfn_removed, at)
			SELECT s, k, l, p, o, a, r, $8 FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::boolean[]) AS u(s, k, l, p, o, a, r)`,
			seqs, kinds, lfns, pfns, olds, added, removed, w.now)
	}
	if w.seq == w.base && w.lfns == 0 && w.pfns == 0 && w.mappings == 0 {
		return nil
	}
	w.final.Queue(`UPDATE rls_meta SET seq = $1, lfns = lfns + $2, pfns = pfns + $3, mappings = mappings + $4 WHERE id = 1`,
		int64(w.seq), w.lfns, w.pfns, w.mappings)
	if w.seq != w.base && w.c.notify.Load() {
		w.final.Queue(`SELECT pg_notify('`+notifyChannel+`', $1)`, strconv.FormatUint(w.seq, 10))
	}
	return nil
}
