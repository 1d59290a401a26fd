package pgcatalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SenderLock says how Exclusive keeps one holder among the processes
// sharing the database.
type SenderLock int

const (
	// LockAuto uses a session advisory lock where the server has one
	// (PostgreSQL), and a lease row where it does not: CockroachDB
	// (recognised by version(), whatever its advisory lock functions do:
	// they are not real session locks there), or a server or role on which
	// pg_try_advisory_lock is missing, not supported or not permitted.
	LockAuto SenderLock = iota
	// LockAdvisory always uses a session advisory lock.
	LockAdvisory
	// LockLease always uses a lease row (table rls_lease).
	LockLease
)

// A lease is a row of rls_lease naming its holder and when it expires, in
// the database's clock. The holder takes it when it is free or expired
// (one INSERT ... ON CONFLICT DO UPDATE ... WHERE, atomic on every server),
// renews it every ttl/4, and stops its task when it could not renew for
// long enough that the lease might expire: it counts the lease valid until
// its own clock reads ttl minus a margin (ttl/5) after it sent the last
// renewal that succeeded, which is before the database's expiry (set at
// the statement's arrival, later than its sending). A standby asks every
// interval and takes the lease once it expired: when the holder dies
// (kill -9), within ttl plus an interval. A holder that returns, or whose
// context ends, deletes its row, so that a standby takes over at the next
// interval. ttl is leaseTTLFactor intervals (5 s for rlsd's 1 s).
const leaseTTLFactor = 5

// errNoAdvisory says the server cannot take session advisory locks.
var errNoAdvisory = errors.New("session advisory locks are not available on this server")

// errLeaseLost says a lease expired or was taken before its holder renewed it.
var errLeaseLost = errors.New("lease lost: not renewed in time")

// noAdvisory reports whether err, from pg_try_advisory_lock, says the
// server or role has no usable advisory locks: the function is missing
// or not supported (see unsupported; YugabyteDB without advisory locks
// answers 0A000) or not permitted (42501).
func noAdvisory(err error) bool {
	var pgErr *pgconn.PgError
	return unsupported(err) || errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// lockMode returns the lock Exclusive uses: the configured one, or for
// LockAuto the lease on CockroachDB and the advisory lock elsewhere (until
// an attempt finds advisory locks missing, see noAdvisory). The catalog is
// connected.
func (c *Catalog) lockMode() SenderLock {
	if m := SenderLock(c.lockKind.Load()); m != LockAuto { // forced, or resolved
		return m
	}
	m := LockAdvisory
	if c.cockroach {
		m = LockLease
		c.logger.Info("pgcatalog: CockroachDB has no session advisory locks; one holder is kept by a lease row")
	}
	c.lockKind.CompareAndSwap(int32(LockAuto), int32(m))
	return SenderLock(c.lockKind.Load())
}

// leaseHolder names a holder of a lease: host, process and a random part
// (two Exclusive calls of one process are two holders).
func leaseHolder() string {
	host, _ := os.Hostname()
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// testHookLeaseBusy, when set by a test, is called after each attempt to
// take a lease that another holder had.
var testHookLeaseBusy func()

// leaseOnce waits until it holds the lease called name (or fails to reach
// the database), runs fn while it holds it, and releases it.
func (c *Catalog) leaseOnce(ctx context.Context, name, holder string, interval time.Duration, fn func(ctx context.Context) error) error {
	ttl := leaseTTLFactor * interval
	var validUntil time.Time
	for {
		sent := time.Now()
		got, err := c.takeLease(ctx, name, holder, ttl)
		if err != nil {
			return err
		}
		if got {
			validUntil = sent.Add(ttl - ttl/5)
			break
		}
		if testHookLeaseBusy != nil {
			testHookLeaseBusy()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	defer c.releaseLease(ctx, name, holder)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- fn(fctx) }()
	renew := time.NewTicker(ttl / 4)
	defer renew.Stop()
	for {
		expiry := time.NewTimer(time.Until(validUntil))
		select {
		case err := <-done:
			expiry.Stop()
			if err != nil && ctx.Err() == nil {
				return fnError{err}
			}
			return nil
		case <-ctx.Done():
			expiry.Stop()
			stop()
			c.drain(done, "task at shutdown")
			return ctx.Err()
		case <-expiry.C:
			stop()
			c.drain(done, "task after the lease was lost")
			return errLeaseLost
		case <-renew.C:
			expiry.Stop()
			sent := time.Now()
			rctx, cancel := context.WithDeadline(ctx, validUntil)
			got, err := c.renewLease(rctx, name, holder, ttl)
			cancel()
			switch {
			case got:
				validUntil = sent.Add(ttl - ttl/5)
			case err == nil: // the row is gone or another's: lost
				stop()
				c.drain(done, "task after the lease was lost")
				return errLeaseLost
			default: // the database did not answer: try again until validUntil
				c.logger.Debug("pgcatalog: renew lease", "name", name, "err", err)
			}
		}
	}
}

// takeLease takes the lease if it is free, expired or already this
// holder's, for ttl from now in the database's clock.
func (c *Catalog) takeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var h string
	err := c.pool.QueryRow(ctx, `INSERT INTO rls_lease AS l (name, holder, expires)
		VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE l.expires < now() OR l.holder = excluded.holder
		RETURNING l.holder`, name, holder, ttl.Milliseconds()).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, unavailable("exclusive", err)
}

// renewLease extends this holder's unexpired lease by ttl from now; false
// without error when the holder no longer has it.
func (c *Catalog) renewLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	tag, err := c.pool.Exec(ctx, `UPDATE rls_lease SET expires = now() + $3 * interval '1 millisecond'
		WHERE name = $1 AND holder = $2 AND expires > now()`, name, holder, ttl.Milliseconds())
	if err != nil {
		return false, unavailable("exclusive", err)
	}
	return tag.RowsAffected() == 1, nil
}

// releaseLease deletes this holder's lease, so that a standby need not wait
// for it to expire. A failure only delays the takeover until expiry.
func (c *Catalog) releaseLease(ctx context.Context, name, holder string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := c.pool.Exec(rctx, `DELETE FROM rls_lease WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		c.logger.Debug("pgcatalog: release lease", "name", name, "err", err)
	}
}
