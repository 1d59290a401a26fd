package pgcatalog

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Exclusive runs fn while this process holds the catalog-wide lock called
// name, so that among the processes sharing the database one at a time
// runs it (rlsd sends the site's soft state so). It returns when ctx ends,
// with ctx's error, or when fn returns an error while ctx lives.
//
// The lock is a PostgreSQL session advisory lock, held on a connection of
// its own. A process that does not hold it asks again every interval. The
// holder pings the server on that connection every interval and cancels
// fn's context when a ping fails (the server restarted, or is
// unreachable), waits for fn to return, and competes again. When the holder
// dies its connection closes and the server releases the lock at once;
// when its machine vanishes, TCP keepalives on the connection (idle 5 s,
// then 3 probes 2 s apart) end the session within about 11 s, later than
// the holder's own ping timeout, so that two holders never overlap.
// When fn returns nil while ctx lives, the lock is released and competed
// for again.
func (c *Catalog) Exclusive(ctx context.Context, name string, interval time.Duration, fn func(ctx context.Context) error) error {
	if interval <= 0 {
		interval = time.Second
	}
	h := fnv.New64a()
	h.Write([]byte("rls.pgcatalog.exclusive:" + name))
	key := int64(h.Sum64())
	for {
		err := c.exclusiveOnce(ctx, key, interval, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fnErr fnError
		if errors.As(err, &fnErr) {
			return fnErr.err
		}
		if err != nil {
			c.logger.Debug("pgcatalog: exclusive lock", "name", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// fnError carries an error of the caller's fn out of exclusiveOnce.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// exclusiveOnce connects, waits until it holds the lock (or the
// connection fails), runs fn while pings succeed, and returns.
func (c *Catalog) exclusiveOnce(ctx context.Context, key int64, interval time.Duration, fn func(ctx context.Context) error) error {
	cfg := c.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["tcp_keepalives_idle"] = "5"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "2"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cfg.RuntimeParams["application_name"] = "rls exclusive"
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			return err
		}
		if got {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- fn(fctx) }()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				return fnError{err}
			}
			_, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
			return uerr
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, interval)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				stop()
				<-done
				return err
			}
		}
	}
}
