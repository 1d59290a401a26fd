// Package intake feeds the mirror from a DRMS site's PostgreSQL queue table.
//
// DRMS replication triggers (scripts/drms-sunum-queue.sql) append a row
// (sunum, recnum, series_name) to a queue table, by default sunum_queue, for
// every storage unit a series gains, and NOTIFY a channel. An Intake LISTENs
// on that channel, polls as a fallback, and moves the rows into a Sink (the
// mirror's state store) exactly once across crashes:
//
//  1. In one transaction it claims up to BatchSize rows with
//     SELECT ... FOR UPDATE SKIP LOCKED, so that several intakes on one table
//     never claim the same row and never wait for each other.
//  2. It hands the usable rows to Sink.Accept, which returns only once they
//     are durable (NQUE records synced to disk).
//  3. Only then, in the same transaction, it deletes the claimed rows and
//     commits.
//
// A crash or a lost connection before the commit rolls the transaction back:
// the rows are still in the table and are offered again, and the sink, which
// is idempotent, recognises the sunums it already recorded. A row is never
// deleted before its record is durable, so nothing is lost; a sunum is never
// recorded twice, so nothing is duplicated.
//
// Rows that cannot be used — a NULL or negative sunum, or a series the site
// does not mirror (Config.KnownSeries) — are not allowed to block the queue:
// in the same transaction they are moved to the table "<queue>_rejected"
// (sunum, recnum, series_name, reason, rejected_at), logged and counted. An
// operator can inspect them there and move them back once fixed.
//
// An Intake survives PostgreSQL restarting: it reconnects with a jittered,
// capped backoff, logs the outage once and the recovery once, and LISTENs
// again; rows inserted meanwhile are picked up by the drain that follows
// every (re)connection.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/internal/backoff"
)

// Request is one storage unit a queue row asks the mirror to hold.
type Request struct {
	Sunum  uint64
	Series string // "schema.table" of the DRMS series, as the trigger writes it; "" if NULL
	Recnum int64  // the series record; 0 if NULL
}

// Sink receives the requests an Intake claims.
//
// Accept must be durable: when it returns nil, every request in reqs is
// recorded (the mirror's NQUE records are synced to disk), because the
// intake then deletes the rows they came from. It must be idempotent: a
// sunum it already recorded, in this call or an earlier one, is not recorded
// twice, because after a crash between Accept and the commit of the delete
// the same rows are offered again. An error means nothing need have been
// recorded; the intake rolls back and offers the rows again later. reqs
// holds each sunum once; Accept must not keep reqs after it returns.
type Sink interface {
	Accept(ctx context.Context, reqs []Request) error
}

// SinkFunc adapts a function, such as a method value of the mirror's state
// store, to a Sink. The function must keep Sink's promises.
type SinkFunc func(ctx context.Context, reqs []Request) error

// Accept calls f.
func (f SinkFunc) Accept(ctx context.Context, reqs []Request) error { return f(ctx, reqs) }

// Defaults of Config.
const (
	DefaultTable        = "sunum_queue"
	DefaultChannel      = "rls_sunum_queue"
	DefaultPollInterval = 5 * time.Second
	DefaultBatchSize    = 1000
	DefaultRetryMin     = 100 * time.Millisecond
	DefaultRetryMax     = 30 * time.Second
	// DefaultApplicationName is the application_name the intake's session
	// shows in pg_stat_activity, unless the DSN sets one.
	DefaultApplicationName = "rlsd-mirror-intake"
)

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: longer names are truncated by
// the server, which would make "<table>_rejected" silently collide.
const maxIdentLen = 63

// rejectedSuffix names the table rejected rows go to.
const rejectedSuffix = "_rejected"

// Config configures an Intake. Zero fields take the defaults above.
type Config struct {
	// DSN is the PostgreSQL connection string (URL or key=value), as pgx
	// parses it. Required.
	DSN string
	// Table is the queue table, "name" or "schema.name" (split at the first
	// dot). Names are taken exactly as written, case and all, and quoted;
	// they may hold any character but NUL, up to 63 bytes each, and the name
	// must leave room for the "_rejected" suffix.
	Table string
	// Channel is the LISTEN channel the triggers NOTIFY, exactly as given to
	// pg_notify.
	Channel string
	// PollInterval is how long the intake waits for a notification before it
	// looks at the table anyway, so that a missed notification, or a trigger
	// that does not NOTIFY, delays rows by at most this much.
	PollInterval time.Duration
	// BatchSize is the most rows claimed, accepted and deleted in one
	// transaction.
	BatchSize int
	// KnownSeries, when set, says whether the site mirrors a series; rows of
	// other series are rejected. Nil accepts every series. It is called from
	// Run's goroutine only.
	KnownSeries func(series string) bool
	// RetryMin and RetryMax bound the backoff between reconnection attempts
	// and after a sink error.
	RetryMin, RetryMax time.Duration
	// Logger receives the intake's log lines; nil means slog.Default().
	Logger *slog.Logger
}

// ErrBadTable reports a queue table that does not exist or lacks a column
// the intake needs (or has it with another type). The error names the table
// and the column; a caller treats it as bad configuration (rlsd exits 2).
var ErrBadTable = errors.New("intake: bad queue table")

// ErrBadConfig reports an unusable Config: the error names the setting.
var ErrBadConfig = errors.New("intake: bad configuration")

// Intake moves rows from a queue table into a Sink. Run does the work; the
// other methods are safe for concurrent use, also while Run runs.
type Intake struct {
	cfg      Config
	connCfg  *pgx.ConnConfig
	table    pgx.Identifier
	rejected pgx.Identifier
	sink     Sink
	log      *slog.Logger
	metrics  *metrics

	running atomic.Bool

	// hook, when set (by tests), is called at the named points: of a batch,
	// "claimed", "accepted", "deleted" (before the commit); of a session,
	// "waiting" (drained, about to wait for a notification). An error it
	// returns counts as a database error.
	hook func(point string) error

	// Loop state, owned by Run's goroutine.
	hasQueuedAt bool      // the table has the optional queued_at timestamptz column
	down        bool      // in an outage: the last connection attempt or session failed
	downSince   time.Time // when the outage began
	attempts    int       // failed attempts in a row (connection or sink)
}

// New checks cfg and returns an Intake that will feed sink. It does not
// connect; Run does.
func New(cfg Config, sink Sink) (*Intake, error) {
	if sink == nil {
		return nil, fmt.Errorf("%w: no sink", ErrBadConfig)
	}
	if cfg.DSN == "" {
		return nil, fmt.Errorf("%w: no DSN", ErrBadConfig)
	}
	connCfg, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		// pgx's error may quote the DSN, password and all; say only why.
		why := errors.Unwrap(err)
		if why == nil {
			why = errors.New("cannot parse it")
		}
		return nil, fmt.Errorf("%w: DSN: %v", ErrBadConfig, why)
	}
	if _, ok := connCfg.RuntimeParams["application_name"]; !ok {
		connCfg.RuntimeParams["application_name"] = DefaultApplicationName
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	table, err := ParseTable(cfg.Table)
	if err != nil {
		return nil, err
	}
	if cfg.Channel == "" {
		cfg.Channel = DefaultChannel
	}
	if err := checkIdent("channel", cfg.Channel); err != nil {
		return nil, err
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("%w: poll interval %v is negative", ErrBadConfig, cfg.PollInterval)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchSize < 0 {
		return nil, fmt.Errorf("%w: batch size %d is negative", ErrBadConfig, cfg.BatchSize)
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RetryMin < 0 || cfg.RetryMax < cfg.RetryMin {
		return nil, fmt.Errorf("%w: retry bounds %v..%v", ErrBadConfig, cfg.RetryMin, cfg.RetryMax)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	rejected := append(pgx.Identifier(nil), table...)
	rejected[len(rejected)-1] += rejectedSuffix
	return &Intake{
		cfg:      cfg,
		connCfg:  connCfg,
		table:    table,
		rejected: rejected,
		sink:     sink,
		log:      log.With("component", "mirror-intake", "table", cfg.Table),
		metrics:  newMetrics(cfg.Table, time.Now()),
	}, nil
}

// ParseTable validates a queue table setting, "name" or "schema.name", and
// returns it as an identifier ready for quoting. See Config.Table.
func ParseTable(s string) (pgx.Identifier, error) {
	var id pgx.Identifier
	if schema, name, ok := strings.Cut(s, "."); ok {
		id = pgx.Identifier{schema, name}
	} else {
		id = pgx.Identifier{s}
	}
	for i, part := range id {
		what := "table"
		if i == 0 && len(id) == 2 {
			what = "table schema"
		}
		if err := checkIdent(what, part); err != nil {
			return nil, fmt.Errorf("%w (table setting %q)", err, s)
		}
	}
	if n := len(id[len(id)-1]) + len(rejectedSuffix); n > maxIdentLen {
		return nil, fmt.Errorf("%w: table name %q is too long: %q would be %d bytes, PostgreSQL keeps %d",
			ErrBadConfig, id[len(id)-1], id[len(id)-1]+rejectedSuffix, n, maxIdentLen)
	}
	return id, nil
}

func checkIdent(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s name is empty", ErrBadConfig, what)
	case len(s) > maxIdentLen:
		return fmt.Errorf("%w: %s name %q is %d bytes, PostgreSQL keeps %d", ErrBadConfig, what, s, len(s), maxIdentLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s name %q is not UTF-8", ErrBadConfig, what, s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("%w: %s name %q holds a NUL", ErrBadConfig, what, s)
	}
	return nil
}

// Check connects once and verifies the queue table (see ErrBadTable), so a
// caller can refuse bad configuration at start-up before it runs. Run checks
// again on every connection.
func (in *Intake) Check(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, in.connCfg)
	if err != nil {
		return fmt.Errorf("intake: connect: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = in.verify(ctx, conn)
	return err
}

// Run moves rows into the sink until ctx is done, then returns nil. It
// returns early only with an ErrBadTable error: a table that is missing or
// has the wrong shape is configuration to fix, not an outage to wait out.
// Connection failures and sink errors are retried with backoff forever.
// Run must not be called again while it runs.
func (in *Intake) Run(ctx context.Context) error {
	if !in.running.CompareAndSwap(false, true) {
		return errors.New("intake: Run called while running")
	}
	defer in.running.Store(false)
	for {
		err := in.session(ctx)
		in.metrics.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrBadTable) {
			in.log.Error("queue table unusable; intake stops", "err", err)
			return err
		}
		in.attempts++
		if !in.down {
			in.down, in.downSince = true, time.Now()
			in.log.Warn("PostgreSQL unavailable; reconnecting with backoff", "err", err)
		} else {
			in.log.Debug("reconnection failed", "attempt", in.attempts, "err", err)
		}
		if !sleep(ctx, backoff.Delay(in.cfg.RetryMin, in.cfg.RetryMax, in.attempts)) {
			return nil
		}
	}
}

// session connects, verifies the table, LISTENs, and drains the queue
// whenever a notification arrives or the poll interval passes. It returns
// when the connection fails or ctx is done.
func (in *Intake) session(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, in.connCfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if in.hasQueuedAt, err = in.verify(ctx, conn); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{in.cfg.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen %q: %w", in.cfg.Channel, err)
	}
	in.metrics.setConnected(true)
	if in.down {
		in.log.Info("PostgreSQL reachable again; intake resumes",
			"outage", time.Since(in.downSince).Round(time.Millisecond), "attempts", in.attempts)
	} else {
		in.log.Info("intake listening", "channel", in.cfg.Channel, "poll", in.cfg.PollInterval)
	}
	in.down, in.attempts = false, 0

	sinkFailures := 0
	for {
		// Notifications that arrived before this drain began are answered
		// by it: drop them, so that a burst of commits costs one drain.
		swallowNotifications(conn)
		err := in.drain(ctx, conn)
		var se *sinkError
		switch {
		case err == nil:
			sinkFailures = 0
		case errors.As(err, &se) && !conn.IsClosed() && ctx.Err() == nil:
			// The batch was rolled back and the connection is fine: wait,
			// then offer the rows again.
			sinkFailures++
			in.log.Warn("sink refused a batch; the rows stay queued", "rows", se.rows, "err", se.err, "attempt", sinkFailures)
			if !sleep(ctx, backoff.Delay(in.cfg.RetryMin, in.cfg.RetryMax, sinkFailures)) {
				return ctx.Err()
			}
			continue
		default:
			return err
		}
		if err := in.at("waiting"); err != nil {
			return err
		}
		if err := in.wait(ctx, conn); err != nil {
			return err
		}
	}
}

// wait returns when a notification arrives or the poll interval passes, or
// with an error when the connection fails or ctx is done.
func (in *Intake) wait(ctx context.Context, conn *pgx.Conn) error {
	wctx, cancel := context.WithTimeout(ctx, in.cfg.PollInterval)
	defer cancel()
	_, err := conn.WaitForNotification(wctx)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil && !conn.IsClosed() {
		return nil // the poll interval passed
	}
	if err != nil {
		return fmt.Errorf("wait for notification: %w", err)
	}
	return nil
}

// swallowNotifications drops the notifications pgx has already read from
// the connection, without waiting for more.
func swallowNotifications(conn *pgx.Conn) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		// With a done context, WaitForNotification returns a buffered
		// notification or, without reading the socket, an error.
		if n, _ := conn.WaitForNotification(done); n == nil {
			return
		}
	}
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sinkError is a batch the sink refused; the transaction was rolled back.
type sinkError struct {
	rows int
	err  error
}

func (e *sinkError) Error() string { return fmt.Sprintf("sink: %v", e.err) }
func (e *sinkError) Unwrap() error { return e.err }
