package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/time/rate"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/backoff"
)

// Connecting is migrating the schema and reading the meta row (init). Open
// tries once; with Options.Background, a failure that says the database
// cannot be reached leaves the rest to connectLoop, and operations fail
// with catalog.ErrUnavailable (naming the last attempt's error) until it
// succeeds.

// connectTimeout bounds establishing one connection when the DSN sets no
// connect_timeout, so that an attempt at an unreachable host (packets
// dropped) ends in time to be retried.
const connectTimeout = 10 * time.Second

// attemptTimeout bounds one background attempt (migration included).
const attemptTimeout = time.Minute

// retryLogEvery is the least time between two log lines about failed
// attempts; each line counts the attempts since the last one.
const retryLogEvery = 10 * time.Second

// connect migrates the schema, reads the meta row, closes ready and starts
// the listener. Its errors wrap catalog.ErrUnavailable when the database
// could not be reached.
func (c *Catalog) connect(ctx context.Context) error {
	if err := migrateSchema(c.migrateCfg); err != nil {
		// A connection attempt that timed out is unavailability too
		// (isUnavailable takes a context error for the caller's).
		if ctx.Err() == nil && errors.As(err, new(*pgconn.ConnectError)) {
			return fmt.Errorf("open: %w: %w", catalog.ErrUnavailable, err)
		}
		return unavailable("open", err)
	}
	if err := c.init(ctx); err != nil {
		return err
	}
	close(c.ready)
	c.wg.Add(1)
	go c.listen(c.bgCtx)
	return nil
}

// connectLoop retries connect with backoff until it succeeds, fails for a
// reason retrying cannot cure (then ready closes with readyErr set), or
// the catalog closes. first is the error of Open's attempt.
func (c *Catalog) connectLoop(first error) {
	defer c.wg.Done()
	ctx := c.bgCtx
	logEvery := rate.Sometimes{Interval: retryLogEvery}
	err, failed := first, 0
	for n := 1; ; n++ {
		c.lastErr.Store(&err)
		failed++
		wait := backoff.Delay(c.retryMin, c.retryMax, n)
		logEvery.Do(func() {
			c.logger.Warn("pgcatalog: the database cannot be reached; serving UNAVAILABLE until it can",
				"attempts", n, "failed_since_last_line", failed, "retry_in", wait.Round(time.Millisecond), "err", err)
			failed = 0
		})
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err = c.connect(actx)
		cancel()
		switch {
		case err == nil:
			c.logger.Info("pgcatalog: connected to the database", "attempts", n+1)
			return
		case ctx.Err() != nil:
			return
		case !errors.Is(err, catalog.ErrUnavailable):
			c.logger.Error("pgcatalog: giving up connecting", "attempts", n+1, "err", err)
			c.readyErr = err
			close(c.ready)
			return
		}
	}
}

// Ready returns a channel that is closed once the catalog is connected (at
// once when Open returned after connecting), or when connecting in the
// background gave up for a reason retrying cannot cure; ReadyErr then
// says why.
func (c *Catalog) Ready() <-chan struct{} { return c.ready }

// ReadyErr returns, once Ready is closed, nil if the catalog connected, or
// why connecting in the background gave up (ErrSchemaTooNew,
// ErrSchemaDirty, ...). Before Ready is closed it returns nil.
func (c *Catalog) ReadyErr() error {
	select {
	case <-c.ready:
		return c.readyErr
	default:
		return nil
	}
}

// Ping checks that the database answers now: one empty statement on a
// pooled connection (a new one if none is idle), bounded by ctx. It fails
// with an error wrapping catalog.ErrUnavailable when the database cannot
// be reached (rlsd turns the catalog service NOT_SERVING on it), and with
// ErrClosed after Close.
func (c *Catalog) Ping(ctx context.Context) error {
	const op = "ping"
	if err := c.enter(ctx, op); err != nil {
		return err
	}
	if err := c.pool.Ping(ctx); err != nil {
		// A ping that ran out of time is a database that did not answer.
		return fmt.Errorf("catalog: %s: %w: %w", op, catalog.ErrUnavailable, err)
	}
	return nil
}

// notReady is the error of an operation before the catalog connected.
func (c *Catalog) notReady(op string) error {
	last := errors.New("connecting")
	if p := c.lastErr.Load(); p != nil {
		last = *p
	}
	return fmt.Errorf("catalog: %s: %w: not connected to the database yet: %v", op, catalog.ErrUnavailable, last)
}
