package intake

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Reasons a row is rejected; they are the values of the rejected table's
// reason column and of the rejected-rows metric's reason label.
const (
	reasonNullSunum     = "null_sunum"
	reasonNegativeSunum = "negative_sunum"
	reasonUnknownSeries = "unknown_series"
)

// row is one claimed queue row.
type row struct {
	ctid     pgtype.TID
	sunum    *int64
	recnum   *int64
	series   *string
	queuedAt *time.Time
}

// rejectedRow is a row moved aside, with why.
type rejectedRow struct {
	row
	reason string
}

// drain claims batches until one comes back short of BatchSize: the table
// then holds no row that another intake has not claimed.
func (in *Intake) drain(ctx context.Context, conn *pgx.Conn) error {
	for {
		n, oldest, err := in.claimBatch(ctx, conn)
		if err != nil {
			in.metrics.batchFailed(err)
			return err
		}
		in.metrics.noteBatch(n, n == in.cfg.BatchSize, oldest, time.Now())
		if n < in.cfg.BatchSize {
			return nil
		}
	}
}

// claimBatch runs one transaction: claim up to BatchSize rows, hand the
// usable ones to the sink, and only after the sink has made them durable,
// move the rejected rows aside, delete all claimed rows and commit. Any
// failure rolls everything back, leaving the rows for the next attempt. It
// returns how many rows it claimed and the oldest queued_at among them
// (zero when unknown).
func (in *Intake) claimBatch(ctx context.Context, conn *pgx.Conn) (n int, oldest time.Time, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			// A rollback on a broken connection fails too; the server rolls
			// back when the session ends, so that error says nothing new.
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()

	rows, err := in.claim(ctx, tx)
	if err != nil {
		return 0, time.Time{}, err
	}
	if len(rows) == 0 {
		return 0, time.Time{}, tx.Commit(ctx)
	}
	reqs, rejected := in.sort(rows)
	for _, r := range rows {
		if r.queuedAt != nil && (oldest.IsZero() || r.queuedAt.Before(oldest)) {
			oldest = *r.queuedAt
		}
	}
	if err := in.at("claimed"); err != nil {
		return 0, time.Time{}, err
	}
	if len(reqs) > 0 {
		if err := in.sink.Accept(ctx, reqs); err != nil {
			return 0, time.Time{}, &sinkError{rows: len(reqs), err: err}
		}
	}
	if err := in.at("accepted"); err != nil {
		return 0, time.Time{}, err
	}
	if err := in.moveAside(ctx, tx, rejected); err != nil {
		return 0, time.Time{}, err
	}
	ctids := make([]pgtype.TID, len(rows))
	for i, r := range rows {
		ctids[i] = r.ctid
	}
	tag, err := tx.Exec(ctx, `DELETE FROM `+in.table.Sanitize()+` WHERE ctid = ANY($1::tid[])`, ctids)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("delete claimed rows: %w", err)
	}
	if tag.RowsAffected() != int64(len(rows)) {
		// Rows locked FOR UPDATE cannot change or vanish under us.
		return 0, time.Time{}, fmt.Errorf("delete claimed rows: deleted %d of %d", tag.RowsAffected(), len(rows))
	}
	if err := in.at("deleted"); err != nil {
		return 0, time.Time{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, time.Time{}, fmt.Errorf("commit: %w", err)
	}
	for _, r := range rejected {
		in.log.Warn("queue row rejected", "moved_to", in.rejected.Sanitize(),
			"sunum", nullable(r.sunum), "recnum", nullable(r.recnum), "series", nullable(r.series), "reason", r.reason)
		in.metrics.rejected(r.reason)
	}
	in.log.Debug("batch accepted", "rows", len(rows), "requests", len(reqs), "rejected", len(rejected))
	return len(rows), oldest, nil
}

// claim selects and locks up to BatchSize rows that no other transaction
// has locked.
func (in *Intake) claim(ctx context.Context, tx pgx.Tx) ([]row, error) {
	cols := "ctid, sunum, recnum, series_name"
	if in.hasQueuedAt {
		cols += ", " + queuedAtColumn
	}
	q := `SELECT ` + cols + ` FROM ` + in.table.Sanitize() + ` LIMIT $1 FOR UPDATE SKIP LOCKED`
	rs, err := tx.Query(ctx, q, in.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	var rows []row
	var r row
	dest := []any{&r.ctid, &r.sunum, &r.recnum, &r.series}
	if in.hasQueuedAt {
		dest = append(dest, &r.queuedAt)
	}
	_, err = pgx.ForEachRow(rs, dest, func() error {
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim rows: %w", err)
	}
	return rows, nil
}

// sort splits claimed rows into requests for the sink, each sunum once, and
// rows to reject.
func (in *Intake) sort(rows []row) (reqs []Request, rejected []rejectedRow) {
	seen := make(map[uint64]bool, len(rows))
	for _, r := range rows {
		series := ""
		if r.series != nil {
			series = *r.series
		}
		switch {
		case r.sunum == nil:
			rejected = append(rejected, rejectedRow{r, reasonNullSunum})
		case *r.sunum < 0:
			rejected = append(rejected, rejectedRow{r, reasonNegativeSunum})
		case in.cfg.KnownSeries != nil && !in.cfg.KnownSeries(series):
			rejected = append(rejected, rejectedRow{r, reasonUnknownSeries})
		case seen[uint64(*r.sunum)]:
			// The same unit queued twice (a series row updated back and
			// forth): one request, both rows deleted.
		default:
			seen[uint64(*r.sunum)] = true
			req := Request{Sunum: uint64(*r.sunum), Series: series}
			if r.recnum != nil {
				req.Recnum = *r.recnum
			}
			reqs = append(reqs, req)
		}
	}
	return reqs, rejected
}

// moveAside copies rejected rows into the rejected table; the DELETE that
// follows removes them from the queue with the others.
func (in *Intake) moveAside(ctx context.Context, tx pgx.Tx, rejected []rejectedRow) error {
	if len(rejected) == 0 {
		return nil
	}
	sunums := make([]*int64, len(rejected))
	recnums := make([]*int64, len(rejected))
	series := make([]*string, len(rejected))
	reasons := make([]string, len(rejected))
	for i, r := range rejected {
		sunums[i], recnums[i], series[i], reasons[i] = r.sunum, r.recnum, r.series, r.reason
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+in.rejected.Sanitize()+` (sunum, recnum, series_name, reason)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])`, sunums, recnums, series, reasons)
	if err != nil {
		return fmt.Errorf("move rejected rows to %s: %w", in.rejected.Sanitize(), err)
	}
	return nil
}

// at runs the test hook for a point of the batch, if one is set.
func (in *Intake) at(point string) error {
	if in.hook == nil {
		return nil
	}
	return in.hook(point)
}

// nullable is a log value: the pointed-to value, or nil for NULL.
func nullable[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
