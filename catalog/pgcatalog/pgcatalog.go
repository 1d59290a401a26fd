package pgcatalog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/solar-archive/rls/catalog"
)

// Options tune a catalog. The zero value (or nil) is the default.
type Options struct {
	// MaxConns caps the connection pool. Default 16.
	MaxConns int32
	// PollInterval is how often WaitChanges and the cached positions look
	// at the database when no notification came (another process's writes
	// on a server without LISTEN/NOTIFY). Default 500 ms.
	PollInterval time.Duration
	// Logger receives the catalog's messages. Default slog.Default().
	Logger *slog.Logger
	// Background makes Open succeed when the database cannot be reached
	// (refused, down, starting up: an error wrapping
	// catalog.ErrUnavailable): the catalog then connects in the
	// background, retrying with backoff from RetryMin to RetryMax and
	// logging failed attempts (at most one line every 10 s), and its
	// operations fail with catalog.ErrUnavailable until Ready is closed.
	// Other errors (a malformed DSN, a schema newer than known or dirty)
	// still fail Open; met only later, they end the retrying (see Ready).
	Background bool
	// SenderLock chooses how Exclusive keeps one holder: LockAuto (the
	// default), LockAdvisory or LockLease. See Exclusive.
	SenderLock SenderLock
	// RetryMin and RetryMax bound the wait between two attempts to
	// connect in the background. Default 200 ms and 5 s.
	RetryMin, RetryMax time.Duration
}

// Catalog is a local replica catalog kept in a PostgreSQL database. It is
// safe for concurrent use, and several processes may open the same
// database at once.
type Catalog struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	poll   time.Duration

	incarnation [catalog.IncarnationLen]byte

	// notify says writers announce new positions with pg_notify; it is
	// set once the listener's LISTEN succeeded.
	notify atomic.Bool

	// lastSeq and firstSeq cache the feed's positions as last seen by this
	// process (its own writes, notifications, polls); they only grow.
	lastSeq, firstSeq atomic.Uint64

	notifyMu sync.Mutex
	notifyCh chan struct{} // closed and replaced when lastSeq grows

	// writeMu serializes this process's write transactions: they take the
	// meta row's lock in turn anyway, and one waiter a process spares the
	// server waking every waiter at every commit.
	writeMu sync.Mutex

	// The queue of single writes for group commit (group.go).
	opsMu      sync.Mutex
	ops        []*pendingOp
	committing bool // a commitOps goroutine runs

	// ready is closed once the schema is migrated and the meta row read
	// (then the fields set by init are fixed), or when connecting in the
	// background gave up: readyErr (set before) says why.
	ready    chan struct{}
	readyErr error
	// lastErr is the last failed attempt to connect, while not ready.
	lastErr atomic.Pointer[error]
	// cockroach says the server is CockroachDB (set before ready closes).
	cockroach bool
	// sizeUnknown logs once that StorageStats cannot read sizes.
	sizeUnknown sync.Once
	// lockOpt is Options.SenderLock; lockKind the lock Exclusive uses
	// (LockAuto until the server is recognised).
	lockOpt  SenderLock
	lockKind atomic.Int32
	// migrateCfg is the connection the schema is migrated through.
	migrateCfg *pgx.ConnConfig
	retryMin   time.Duration
	retryMax   time.Duration

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup     // the listener, commitOps and connectLoop
	bgCtx     context.Context    // the background goroutines' context
	cancel    context.CancelFunc // ends bgCtx
}

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string), brings its schema to SchemaVersion (refusing a newer
// or dirty one), and makes the catalog's meta row if it has none. A
// malformed dsn is an error wrapping ErrDSN. With Options.Background, a
// database that cannot be reached does not fail Open (see Options). The
// caller must Close the catalog.
func Open(ctx context.Context, dsn string, opts *Options) (*Catalog, error) {
	if opts == nil {
		opts = &Options{}
	}
	c, err := newCatalog(dsn, opts)
	if err != nil {
		return nil, err
	}
	err = c.connect(ctx)
	switch {
	case err == nil:
		return c, nil
	case opts.Background && errors.Is(err, catalog.ErrUnavailable) && ctx.Err() == nil:
		c.wg.Add(1)
		go c.connectLoop(err)
		return c, nil
	}
	c.cancel()
	c.pool.Close()
	return nil, err
}

// newCatalog makes a catalog that is not connected yet: its pool connects
// on first use.
func newCatalog(dsn string, opts *Options) (*Catalog, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgcatalog: %w: %w", ErrDSN, err)
	}
	cfg.MaxConns = 16
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.AfterConnect = afterConnect
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg) // connects lazily
	if err != nil {
		return nil, fmt.Errorf("pgcatalog: %w: %w", ErrDSN, err)
	}
	c := &Catalog{
		pool: pool, logger: opts.Logger, poll: opts.PollInterval,
		notifyCh: make(chan struct{}), closed: make(chan struct{}), ready: make(chan struct{}),
		migrateCfg: cfg.ConnConfig.Copy(), retryMin: opts.RetryMin, retryMax: opts.RetryMax,
	}
	c.lockOpt = opts.SenderLock
	c.lockKind.Store(int32(opts.SenderLock))
	if c.migrateCfg.ConnectTimeout == 0 {
		c.migrateCfg.ConnectTimeout = connectTimeout
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.poll <= 0 {
		c.poll = 500 * time.Millisecond
	}
	if c.retryMin <= 0 {
		c.retryMin = 200 * time.Millisecond
	}
	if c.retryMax < c.retryMin {
		c.retryMax = max(5*time.Second, c.retryMin)
	}
	c.bgCtx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// ErrDSN reports a catalog DSN that cannot be parsed.
var ErrDSN = errors.New("malformed catalog DSN")

// afterConnect checks that the database is UTF-8 (the wildcard '?' is one
// UTF-8 character).
func afterConnect(_ context.Context, conn *pgx.Conn) error {
	if enc := conn.PgConn().ParameterStatus("server_encoding"); enc != "" && enc != "UTF8" {
		return fmt.Errorf("pgcatalog: the database's encoding is %s; the catalog needs UTF8", enc)
	}
	return nil
}

// init makes the meta row if needed and reads the incarnation and the
// feed's positions.
func (c *Catalog) init(ctx context.Context) error {
	var inc [catalog.IncarnationLen]byte
	if _, err := rand.Read(inc[:]); err != nil {
		return err
	}
	if _, err := c.pool.Exec(ctx, `INSERT INTO rls_meta (id, incarnation) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, inc[:]); err != nil {
		return unavailable("open", err)
	}
	var b []byte
	var seq, first int64
	var version string
	if err := c.pool.QueryRow(ctx, `SELECT incarnation, seq, first_seq, version() FROM rls_meta WHERE id = 1`).Scan(&b, &seq, &first, &version); err != nil {
		return unavailable("open", err)
	}
	// CockroachDB: no COPY (see the package doc), and a lease for
	// Exclusive (its advisory lock functions do not lock).
	c.cockroach = strings.Contains(version, "CockroachDB")
	if len(b) != catalog.IncarnationLen {
		return fmt.Errorf("pgcatalog: corrupt incarnation (%d bytes)", len(b))
	}
	copy(c.incarnation[:], b)
	c.observe(uint64(seq), uint64(first))
	return nil
}

// Close stops the listener and closes the pool, waiting for connections in
// use to be returned. Operations called after Close return ErrClosed. Close
// is idempotent.
func (c *Catalog) Close() error {
	c.closeOnce.Do(func() {
		c.opsMu.Lock() // no write is queued after this
		close(c.closed)
		c.opsMu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.pool.Close()
		c.notifyMu.Lock()
		close(c.notifyCh)
		c.notifyMu.Unlock()
	})
	return nil
}

// closedErr is the error of an operation called after Close.
func closedErr(op string) error { return fmt.Errorf("catalog: %s: %w", op, catalog.ErrClosed) }

// enter refuses to start an operation after Close or once ctx has ended.
func (c *Catalog) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("catalog: %s: %w", op, err)
	}
	if c.isClosed() {
		return closedErr(op)
	}
	select {
	case <-c.ready:
		if c.readyErr != nil {
			return fmt.Errorf("catalog: %s: %w: %w", op, catalog.ErrUnavailable, c.readyErr)
		}
		return nil
	default:
		return c.notReady(op)
	}
}

// checkEvery is how many rows a scan reads between two checks of its
// context: a result already received is not interrupted by pgx.
const checkEvery = 256

// canceled returns ctx's error, naming op, at every checkEvery-th call
// once ctx has ended.
func canceled(ctx context.Context, op string, n int) error {
	if n%checkEvery == checkEvery-1 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("catalog: %s: %w", op, err)
		}
	}
	return nil
}

func (c *Catalog) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Incarnation returns the catalog's incarnation, made with the meta row and
// shared by every process that opens the database.
// Until Ready is closed it is all zero.
func (c *Catalog) Incarnation() [catalog.IncarnationLen]byte {
	select {
	case <-c.ready:
		return c.incarnation
	default:
		return [catalog.IncarnationLen]byte{}
	}
}

// observe records feed positions read from the database or written, and
// wakes waiters when the last one grew.
func (c *Catalog) observe(seq, first uint64) {
	for {
		f := c.firstSeq.Load()
		if first <= f || c.firstSeq.CompareAndSwap(f, first) {
			break
		}
	}
	grew := false
	for {
		s := c.lastSeq.Load()
		if seq <= s {
			break
		}
		if c.lastSeq.CompareAndSwap(s, seq) {
			grew = true
			break
		}
	}
	if grew {
		c.notifyMu.Lock()
		if !c.isClosed() {
			close(c.notifyCh)
			c.notifyCh = make(chan struct{})
		}
		c.notifyMu.Unlock()
	}
}

// grown returns a channel that is closed after this process next sees the
// feed grow (its own write, a notification or a poll), or when the
// catalog closes.
func (c *Catalog) grown() <-chan struct{} {
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	return c.notifyCh
}

// LastSeq returns the position of the last feed record committed by any
// process (0 if none was ever written). It reads the meta row.
func (c *Catalog) LastSeq(ctx context.Context) (uint64, error) {
	if err := c.enter(ctx, "last seq"); err != nil {
		return 0, err
	}
	if err := c.refresh(ctx); err != nil {
		return 0, err
	}
	return c.lastSeq.Load(), nil
}

// unavailable wraps err in catalog.ErrUnavailable when it says the database
// could not be reached or went away (a refused or broken connection, a
// server shutting down or starting up), so that callers retry; other errors
// pass through.
func unavailable(op string, err error) error {
	if err == nil || !isUnavailable(err) {
		return err
	}
	return fmt.Errorf("%s: %w: %w", op, catalog.ErrUnavailable, err)
}

// unsupported reports whether err says the server lacks a function, table
// or feature that PostgreSQL has (42883 undefined function, 42P01
// undefined table, 42704 undefined object, 0A000 feature not supported):
// the mark of a PostgreSQL-compatible server's gaps.
func unsupported(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42883", "42P01", "42704", "0A000":
		return true
	}
	return false
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01..57P05: the server is
		// shutting down, crashed or not yet accepting connections; 53300
		// too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || pgErr.Code == "53300"
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "conn closed") ||
		strings.Contains(err.Error(), "unexpected EOF")
}
