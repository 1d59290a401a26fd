package pgcatalog

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// listen follows the feed's position: on a connection of its own it
// LISTENs on notifyChannel and records each position announced. When the
// connection breaks it reconnects with backoff; WaitChanges polls in the
// meantime. On a server that refuses LISTEN (CockroachDB), it gives up and
// writers stop notifying; polling carries the positions.
func (c *Catalog) listen(ctx context.Context) {
	defer c.wg.Done()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == errNoListen {
			return
		}
		c.logger.Debug("pgcatalog: listener", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type listenError string

func (e listenError) Error() string { return string(e) }

const errNoListen = listenError("server does not support LISTEN")

func (c *Catalog) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, c.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		if isUnavailable(err) {
			return err
		}
		c.notify.Store(false)
		c.logger.Info("pgcatalog: LISTEN refused; other processes' writes are seen by polling", "err", err)
		return errNoListen
	}
	c.notify.Store(true)
	// Positions written while no listener ran.
	if err := c.refresh(ctx); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if seq, err := strconv.ParseUint(n.Payload, 10, 64); err == nil {
			c.observe(seq, 0)
		}
	}
}
