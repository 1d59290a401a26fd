package pgcatalog

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/catalog"
)

// notifyChannel is the LISTEN/NOTIFY channel on which every write that
// appends to the feed announces its last position (delivered at COMMIT).
const notifyChannel = "rls_feed"

// Changes returns up to limit feed records with positions from `from` on,
// in order. Positions are dense (no gaps): they are assigned under the
// writers' lock, and a record becomes visible only with every record
// before it. If from is below FirstSeq (the records were pruned), it fails
// with ErrNotFound: the reader must start over from a full state
// (ForEachLFN). limit <= 0 means 10,000. Record times have microsecond
// precision.
func (c *Catalog) Changes(ctx context.Context, from uint64, limit int) ([]catalog.Change, error) {
	const op = "changes"
	if err := c.enter(ctx, op); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 10000
	}
	if from == 0 {
		from = 1
	}
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, unavailable(op, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var first, last int64
	if err := tx.QueryRow(ctx, `SELECT first_seq, seq FROM rls_meta WHERE id = 1`).Scan(&first, &last); err != nil {
		return nil, unavailable(op, err)
	}
	c.observe(uint64(last), uint64(first))
	if from < uint64(first) {
		return nil, errorf(op, strconv.FormatUint(from, 10), catalog.ErrNotFound,
			"the feed was pruned; the oldest record kept is "+strconv.FormatUint(uint64(first), 10))
	}
	rows, err := tx.Query(ctx, `SELECT seq, kind, lfn, pfn, old, lfn_added, lfn_removed, at FROM rls_feed
		WHERE seq >= $1 ORDER BY seq LIMIT $2`, int64(from), limit)
	if err != nil {
		return nil, unavailable(op, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (catalog.Change, error) {
		var ch catalog.Change
		var seq int64
		var kind int16
		err := r.Scan(&seq, &kind, &ch.LFN, &ch.PFN, &ch.Old, &ch.LFNAdded, &ch.LFNRemoved, &ch.Time)
		ch.Seq, ch.Kind, ch.Time = uint64(seq), catalog.ChangeKind(kind), ch.Time.UTC()
		return ch, err
	})
	return out, unavailable(op, err)
}

// WaitChanges blocks until the feed holds a record at position `from` or
// later, the context ends, or the catalog closes. It wakes on this
// process's writes and on other processes' through LISTEN/NOTIFY, and
// polls every PollInterval in case a notification was missed (the
// listener reconnecting, or a server without NOTIFY).
func (c *Catalog) WaitChanges(ctx context.Context, from uint64) error {
	t := time.NewTicker(c.poll)
	defer t.Stop()
	if err := c.enter(ctx, "wait changes"); err != nil {
		return err
	}
	for {
		ch := c.grown()
		if c.lastSeq.Load() >= from {
			return nil
		}
		if c.isClosed() {
			return closedErr("wait changes")
		}
		select {
		case <-ch:
		case <-t.C:
			if err := c.refresh(ctx); err != nil && ctx.Err() == nil {
				c.logger.Debug("pgcatalog: poll feed position", "err", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// refresh reads the feed's positions from the database.
func (c *Catalog) refresh(ctx context.Context) error {
	var first, last int64
	if err := c.pool.QueryRow(ctx, `SELECT first_seq, seq FROM rls_meta WHERE id = 1`).Scan(&first, &last); err != nil {
		return unavailable("feed position", err)
	}
	c.observe(uint64(last), uint64(first))
	return nil
}

// PruneChanges removes the feed records with positions below before (a
// horizon past which readers must resynchronize from a full state). It
// never removes records past LastSeq. Pruning is explicit: the catalog
// never prunes by itself.
func (c *Catalog) PruneChanges(ctx context.Context, before uint64) error {
	_, err := c.write(ctx, "prune changes", func(ctx context.Context, w *wtx) error {
		before := min(before, w.base+1)
		var first int64
		if err := w.tx.QueryRow(ctx, `SELECT first_seq FROM rls_meta WHERE id = 1`).Scan(&first); err != nil {
			return err
		}
		if before <= uint64(first) {
			return nil
		}
		if _, err := w.tx.Exec(ctx, `DELETE FROM rls_feed WHERE seq < $1`, int64(before)); err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, `UPDATE rls_meta SET first_seq = $1 WHERE id = 1`, int64(before)); err != nil {
			return err
		}
		w.c.observe(0, before) // published early: a reader that sees it only refuses sooner
		return nil
	})
	return err
}

// ForEachLFN calls fn for every LFN, in byte order, from one consistent
// snapshot (a REPEATABLE READ transaction), and returns the feed position
// that snapshot reflects: a reader that follows with Changes(seq+1, …)
// misses nothing and sees nothing twice. Writers are not blocked while fn
// runs. If fn returns an error, the scan stops and ForEachLFN returns it.
func (c *Catalog) ForEachLFN(ctx context.Context, fn func(lfn string) error) (uint64, error) {
	const op = "for each lfn"
	if err := c.enter(ctx, op); err != nil {
		return 0, err
	}
	tx, err := c.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, unavailable(op, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var seq int64
	if err := tx.QueryRow(ctx, `SELECT seq FROM rls_meta WHERE id = 1`).Scan(&seq); err != nil {
		return 0, unavailable(op, err)
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT lfn FROM rls_map ORDER BY lfn`)
	if err != nil {
		return 0, unavailable(op, err)
	}
	defer rows.Close()
	var lfn string
	for n := 0; rows.Next(); n++ {
		if err := rows.Scan(&lfn); err != nil {
			return 0, err
		}
		if err := fn(lfn); err != nil {
			return 0, err
		}
		if err := canceled(ctx, op, n); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, unavailable(op, err)
	}
	return uint64(seq), nil
}

// Stats returns the catalog's counts as of the last committed write, read
// from the meta row.
func (c *Catalog) Stats(ctx context.Context) (catalog.Stats, error) {
	const op = "stats"
	if err := c.enter(ctx, op); err != nil {
		return catalog.Stats{}, err
	}
	var seq, first, lfns, pfns, mappings, defs int64
	err := c.pool.QueryRow(ctx, `SELECT seq, first_seq, lfns, pfns, mappings, (SELECT count(*) FROM rls_attr_def)
		FROM rls_meta WHERE id = 1`).Scan(&seq, &first, &lfns, &pfns, &mappings, &defs)
	if err != nil {
		return catalog.Stats{}, unavailable(op, err)
	}
	c.observe(uint64(seq), uint64(first))
	return catalog.Stats{
		LFNs: uint64(lfns), PFNs: uint64(pfns), Mappings: uint64(mappings),
		Seq: uint64(seq), FirstSeq: uint64(first), AttrDefs: uint64(defs),
	}, nil
}

// StorageStats returns the on-disk size of the catalog's tables with their
// indexes and TOAST (pg_total_relation_size); PostgreSQL has no compaction
// debt to report.
func (c *Catalog) StorageStats(ctx context.Context) (catalog.StorageStats, error) {
	const op = "storage stats"
	if err := c.enter(ctx, op); err != nil {
		return catalog.StorageStats{}, err
	}
	var size int64
	err := c.pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		WHERE c.relkind = 'r' AND c.relname IN ('rls_meta', 'rls_map', 'rls_feed', 'rls_attr_def', 'rls_attr')
		AND c.relnamespace = to_regnamespace(current_schema())::oid`).Scan(&size)
	if unsupported(err) {
		// A server without PostgreSQL's size functions (CockroachDB):
		// the size is not reported rather than every Admin.Stats failing.
		c.sizeUnknown.Do(func() {
			c.logger.Info("pgcatalog: the server does not report table sizes; catalog disk use shows 0", "err", err)
		})
		return catalog.StorageStats{}, nil
	}
	if err != nil {
		return catalog.StorageStats{}, unavailable(op, err)
	}
	return catalog.StorageStats{DiskBytes: uint64(size)}, nil
}

// The PostgreSQL catalog is a Store and reports its storage; it does not
// fail-stop (an unreachable server is ErrUnavailable, and the pool
// reconnects when it is back).
var (
	_ catalog.Store           = (*Catalog)(nil)
	_ catalog.StorageReporter = (*Catalog)(nil)
)
