package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
)

// Exclusive runs fn while this process holds the catalog-wide lock called
// name, once the catalog is connected (see Ready), so that among the
// processes sharing the database one at a time runs it (rlsd sends the
// site's soft state so). It returns when ctx ends, with ctx's error, or
// when fn returns an error while ctx lives.
//
// Options.SenderLock chooses the lock: by default a session advisory lock
// where the server has them, else a lease row (see lease.go, and LockAuto
// for how the server is recognised). Every process sharing a database
// must use the same kind.
//
// The advisory lock is a session advisory lock, held on a connection of
// its own. A process that does not hold it asks again every interval; once
// it has it, it waits one more interval before it starts fn, the time a
// previous holder needs to notice that it lost the lock. The holder reads
// its connection all the time fn runs, so it learns at once when its
// session ends (the server restarted or terminated it) and cancels fn's
// context; a holder that cannot reach the server any more notices within
// about 4 s (TCP keepalives on its side), well before the server, whose
// keepalives (idle 5 s, then 3 probes 2 s apart) end the session and free
// the lock. When the holder process dies, its socket closes and the server
// frees the lock at once. So holders do not overlap, and a standby takes
// over within about two intervals of the holder's end. When fn returns nil
// while ctx lives, the lock (advisory or lease) is released and competed
// for again.
func (c *Catalog) Exclusive(ctx context.Context, name string, interval time.Duration, fn func(ctx context.Context) error) error {
	if interval <= 0 {
		interval = time.Second
	}
	h := fnv.New64a()
	h.Write([]byte("rls.pgcatalog.exclusive:" + name))
	key := int64(h.Sum64())
	// A catalog still connecting in the background has no incarnation
	// yet, and fn would only meet ErrUnavailable.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ready:
		if c.readyErr != nil {
			return fmt.Errorf("pgcatalog: exclusive %s: %w", name, c.readyErr)
		}
	}
	holder := leaseHolder()
	for {
		var err error
		if c.lockMode() == LockLease {
			err = c.leaseOnce(ctx, name, holder, interval, fn)
		} else {
			err = c.exclusiveOnce(ctx, key, interval, fn)
			if errors.Is(err, errNoAdvisory) && c.lockOpt == LockAuto {
				c.lockKind.Store(int32(LockLease))
				c.logger.Info("pgcatalog: no session advisory locks on this server; one holder is kept by a lease row", "name", name, "err", err)
				continue
			}
		}
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
// connection fails), runs fn until it returns or the session ends, and
// closes the connection, which releases the lock.
func (c *Catalog) exclusiveOnce(ctx context.Context, key int64, interval time.Duration, fn func(ctx context.Context) error) error {
	cfg := c.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["tcp_keepalives_idle"] = "5"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "2"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cfg.RuntimeParams["application_name"] = "rls exclusive"
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 2 * time.Second, Interval: time.Second, Count: 2}}
	cfg.DialFunc = d.DialContext
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
			if noAdvisory(err) {
				return fmt.Errorf("%w: %w", errNoAdvisory, err)
			}
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
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(interval): // a previous holder's time to notice
	}
	// Read the connection while fn runs: the read ends with an error when
	// the session ends.
	wctx, stopWatch := context.WithCancel(context.Background())
	lost := make(chan error, 1)
	go func() {
		for {
			if _, err := conn.WaitForNotification(wctx); err != nil {
				lost <- err
				return
			}
		}
	}()
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fn(fctx) }()
	var out error
	watching := true
	select {
	case err := <-done:
		if err != nil && ctx.Err() == nil {
			out = fnError{err}
		}
	case err := <-lost:
		watching = false
		stop()
		c.drain(done, "task after the lock was lost")
		out = err
	case <-ctx.Done():
		stop()
		c.drain(done, "task at shutdown")
		out = ctx.Err()
	}
	stop()
	stopWatch()
	if watching {
		c.drain(lost, "lock watcher") // then it no longer uses conn
	}
	return out
}

// drain waits for a goroutine's result that no longer decides anything, and
// logs it.
func (c *Catalog) drain(ch <-chan error, what string) {
	if err := <-ch; err != nil {
		c.logger.Debug("pgcatalog: exclusive: "+what, "err", err)
	}
}
