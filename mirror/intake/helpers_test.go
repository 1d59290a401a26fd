package intake

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/solar-archive/rls/internal/pebblelog"
	"github.com/solar-archive/rls/internal/pgtest"
)

// shared is one PostgreSQL server for the tests that do not restart it;
// each test gets its own database on it.
var (
	shared    *pgtest.Server
	sharedErr error
	dbSeq     atomic.Int64
	// seq orders the events of intakes and the Accepts of sinks.
	seq atomic.Int64
)

func TestMain(m *testing.M) {
	shared, sharedErr = pgtest.StartServer(pgtest.Options{NoSync: true})
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testTimeout bounds every wait: a wait that runs out is a failure (the
// event did not happen), never a statement about speed.
const testTimeout = 60 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newDB makes a fresh database on the shared server and returns its DSN.
func newDB(t *testing.T) string {
	t.Helper()
	if errors.Is(sharedErr, pgtest.ErrNoPostgres) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", sharedErr)
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return createDB(t, shared)
}

func createDB(t *testing.T, srv *pgtest.Server) string {
	t.Helper()
	ctx := testCtx(t)
	name := fmt.Sprintf("intake_%d", dbSeq.Add(1))
	admin := connect(t, srv.DSN)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return srv.DSNFor(name)
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// applyScript installs the shipped trigger SQL, as a DRMS site would.
func applyScript(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	sql, err := os.ReadFile(filepath.Join("..", "..", "scripts", "drms-sunum-queue.sql"))
	if err != nil {
		t.Fatal(err)
	}
	exec(t, conn, string(sql))
}

// makeSeries creates a DRMS-like series table and watches it with the
// shipped trigger.
func makeSeries(t *testing.T, conn *pgx.Conn, schema, table string) {
	t.Helper()
	exec(t, conn, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	id := pgx.Identifier{schema, table}.Sanitize()
	exec(t, conn, "CREATE TABLE "+id+" (recnum bigint PRIMARY KEY, sunum bigint, slotnum int, t_obs double precision)")
	exec(t, conn, "SELECT rls_watch_series($1)", id)
}

// countRows counts the rows of a table.
func countRows(t *testing.T, conn *pgx.Conn, table pgx.Identifier) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(testCtx(t), "SELECT count(*) FROM "+table.Sanitize()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// startIntake runs in until the test ends; the returned channel yields Run's
// result.
func startIntake(t *testing.T, in *Intake) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("Run did not return after its context was cancelled")
		}
	})
	return done
}

// events is a test hook that reports every point an intake reaches.
type events struct {
	mu sync.Mutex
	fn map[string]func() error // optional action per point, run before it is reported
	ch chan event
}

type event struct {
	point string
	seq   int64
}

func newEvents() *events { return &events{fn: map[string]func() error{}, ch: make(chan event, 1000)} }

func (e *events) hook(point string) error {
	e.mu.Lock()
	fn := e.fn[point]
	e.mu.Unlock()
	var err error
	if fn != nil {
		err = fn()
	}
	select {
	case e.ch <- event{point, seq.Add(1)}:
	default:
	}
	return err
}

func (e *events) on(point string, fn func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fn[point] = fn
}

// await waits until the intake reaches point.
func (e *events) await(t *testing.T, point string) { t.Helper(); e.awaitAfter(t, point, 0) }

// awaitIdle waits until the intake, after the sink's latest Accept, has
// committed and drained the queue and waits for more.
func (e *events) awaitIdle(t *testing.T, sink *pebbleSink) {
	t.Helper()
	sink.mu.Lock()
	last := sink.lastSeq
	sink.mu.Unlock()
	e.awaitAfter(t, "waiting", last)
}

// awaitAfter waits until the intake reaches point after the event or
// Accept numbered after.
func (e *events) awaitAfter(t *testing.T, point string, after int64) {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case ev := <-e.ch:
			if ev.point == point && ev.seq > after {
				return
			}
		case <-timeout:
			t.Fatalf("intake never reached %q", point)
		}
	}
}

// pebbleSink is a small real Sink: Pebble in a temporary directory, keyed
// by sunum, synced before Accept returns, and idempotent. It remembers how
// often each sunum was offered, so tests can see redeliveries.
type pebbleSink struct {
	dir string
	db  *pebble.DB

	mu       sync.Mutex
	offers   map[uint64]int
	byName   map[string]int // requests accepted per caller name (see named)
	recorded int            // sunums newly recorded
	batches  []int          // size of each accepted batch
	lastSeq  int64          // seq of the latest Accept
	changed  chan struct{}  // closed and replaced on every Accept
	before   func(ctx context.Context, name string, reqs []Request) error
}

func newPebbleSink(t *testing.T) *pebbleSink {
	t.Helper()
	s := &pebbleSink{dir: t.TempDir(), offers: map[uint64]int{}, byName: map[string]int{}, changed: make(chan struct{})}
	s.open(t)
	t.Cleanup(func() { s.db.Close() })
	return s
}

func (s *pebbleSink) open(t *testing.T) {
	t.Helper()
	db, err := pebble.Open(s.dir, &pebble.Options{Logger: pebblelog.New(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	s.db = db
}

func key(sunum uint64) []byte { return binary.BigEndian.AppendUint64(nil, sunum) }

func (s *pebbleSink) Accept(ctx context.Context, reqs []Request) error {
	return s.accept(ctx, "", reqs)
}

// named returns a Sink that accepts into s under a caller's name.
func (s *pebbleSink) named(name string) Sink { return namedSink{s, name} }

type namedSink struct {
	s    *pebbleSink
	name string
}

func (n namedSink) Accept(ctx context.Context, reqs []Request) error {
	return n.s.accept(ctx, n.name, reqs)
}

func (s *pebbleSink) accept(ctx context.Context, name string, reqs []Request) error {
	s.mu.Lock()
	before := s.before
	s.mu.Unlock()
	if before != nil {
		if err := before(ctx, name, reqs); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	fresh := 0
	for _, r := range reqs {
		_, closer, err := s.db.Get(key(r.Sunum))
		if err == nil {
			closer.Close()
			continue
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
		if err := b.Set(key(r.Sunum), fmt.Appendf(nil, "NQUE %s %d", r.Series, r.Recnum), nil); err != nil {
			return err
		}
		fresh++
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for _, r := range reqs {
		s.offers[r.Sunum]++
	}
	s.byName[name] += len(reqs)
	s.recorded += fresh
	s.batches = append(s.batches, len(reqs))
	s.lastSeq = seq.Add(1)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// awaitRecorded waits until at least n sunums are recorded.
func (s *pebbleSink) awaitRecorded(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		s.mu.Lock()
		got, changed := s.recorded, s.changed
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("sink recorded %d sunums, waited for %d", got, n)
		}
	}
}

// stored reads every record back from Pebble: sunum → value.
func (s *pebbleSink) stored(t *testing.T) map[uint64]string {
	t.Helper()
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[uint64]string{}
	for it.First(); it.Valid(); it.Next() {
		out[binary.BigEndian.Uint64(it.Key())] = string(it.Value())
	}
	return out
}

// checkExactlyOnce checks that the sink holds exactly the sunums want, each
// recorded once, with the given series.
func (s *pebbleSink) checkExactlyOnce(t *testing.T, want []uint64, series string) {
	t.Helper()
	got := s.stored(t)
	s.mu.Lock()
	recorded := s.recorded
	s.mu.Unlock()
	if recorded != len(want) || len(got) != len(want) {
		t.Errorf("sink recorded %d sunums (%d stored), want %d", recorded, len(got), len(want))
	}
	for _, su := range want {
		v, ok := got[su]
		if !ok {
			t.Errorf("sunum %d lost", su)
			continue
		}
		if !strings.HasPrefix(v, "NQUE "+series+" ") {
			t.Errorf("sunum %d recorded as %q, want series %s", su, v, series)
		}
	}
}

func (s *pebbleSink) offersOf(su uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offers[su]
}

// sunums returns first, first+1, ... (n of them).
func sunums(first uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

// metricValue reads one sample of the intake's metrics.
func metricValue(t *testing.T, in *Intake, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(in); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return value(m)
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

// logRecorder is a slog handler that keeps messages and reports them on a
// channel, so tests can wait for a log line as an event. Handlers derived
// with WithAttrs share its record.
type logRecorder struct {
	*logState
	next slog.Handler
}

type logState struct {
	mu   sync.Mutex
	msgs []string
	ch   chan string
}

func newLogRecorder(t *testing.T) (*slog.Logger, *logRecorder) {
	r := &logRecorder{&logState{ch: make(chan string, 1000)}, slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})}
	return slog.New(r), r
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	select {
	case r.ch <- rec.Message:
	default:
	}
	return r.next.Handle(ctx, rec)
}
func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{r.logState, r.next.WithAttrs(as)}
}
func (r *logRecorder) WithGroup(g string) slog.Handler {
	return &logRecorder{r.logState, r.next.WithGroup(g)}
}

// count returns how many messages started with prefix.
func (r *logRecorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// await waits for a message starting with prefix.
func (r *logRecorder) await(t *testing.T, prefix string) {
	t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case m := <-r.ch:
			if strings.HasPrefix(m, prefix) {
				return
			}
		case <-timeout:
			t.Fatalf("no log line %q", prefix)
		}
	}
}
