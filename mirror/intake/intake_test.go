package intake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/internal/rlsdtest"
)

// newIntake makes an intake for a test, logging to the test.
func newIntake(t *testing.T, cfg Config, sink Sink) *Intake {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = newLogRecorder(t)
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 200*time.Millisecond
	}
	in, err := New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// insertSeries inserts series rows (recnum i+1, sunum first+i) in one
// transaction; the shipped trigger queues them.
func insertSeries(t *testing.T, conn *pgx.Conn, series string, first uint64, n int, recnum0 int64) {
	t.Helper()
	exec(t, conn, "INSERT INTO "+series+" (recnum, sunum) SELECT $1::bigint + g, $2::bigint + g FROM generate_series(0, $3::int - 1) g",
		recnum0, int64(first), n)
}

// The shipped SQL, applied to a real server, queues what a series gains
// and NOTIFYs: with polling practically off, the notification alone brings
// the rows to the sink, and the rows leave the queue.
func TestTriggerScriptNotifyDelivers(t *testing.T) {
	dsn := newDB(t)
	conn := connect(t, dsn)
	applyScript(t, conn)
	applyScript(t, conn) // a site may run it twice
	makeSeries(t, conn, "hmi", "m_45s")

	sink := newPebbleSink(t)
	ev := newEvents()
	in := newIntake(t, Config{DSN: dsn, PollInterval: time.Hour}, sink)
	in.hook = ev.hook
	startIntake(t, in)
	ev.await(t, "waiting") // listening, queue drained

	insertSeries(t, conn, "hmi.m_45s", 1000, 50, 1)
	// A row without a storage unit (sunum -1) is not queued; an update that
	// keeps the sunum is not either; one that changes it is.
	exec(t, conn, "INSERT INTO hmi.m_45s (recnum, sunum) VALUES (100, -1)")
	exec(t, conn, "UPDATE hmi.m_45s SET sunum = sunum, slotnum = 1 WHERE recnum <= 50")
	exec(t, conn, "UPDATE hmi.m_45s SET sunum = 5000 WHERE recnum = 100")

	sink.awaitRecorded(t, 51)
	ev.await(t, "waiting")
	sink.checkExactlyOnce(t, append(sunums(1000, 50), 5000), "hmi.m_45s")
	if v := sink.stored(t)[1000]; v != "NQUE hmi.m_45s 1" {
		t.Errorf("sunum 1000 recorded as %q, want series hmi.m_45s, recnum 1", v)
	}
	// The "waiting" above may be the one after the first drain (the 51st
	// row can come in a drain of its own): wait for the last commit.
	rlsdtest.Eventually(t, 10*time.Second, func() error {
		if n := countRows(t, conn, pgx.Identifier{"sunum_queue"}); n != 0 {
			return fmt.Errorf("%d rows left in sunum_queue", n)
		}
		if got := metricValue(t, in, "rls_mirror_intake_rows_claimed_total", nil); got != 51 {
			return fmt.Errorf("rows claimed = %v, want 51", got)
		}
		return nil
	})
	for _, su := range append(sunums(1000, 50), 5000) {
		if o := sink.offersOf(su); o != 1 {
			t.Fatalf("sunum %d offered %d times, want once", su, o)
		}
	}
	if got := metricValue(t, in, "rls_mirror_intake_connected", nil); got != 1 {
		t.Errorf("connected = %v, want 1", got)
	}
}

// A queue filled without NOTIFY (an old trigger, or a notification lost)
// is still drained: by polling.
func TestPollingFallback(t *testing.T) {
	dsn := newDB(t)
	conn := connect(t, dsn)
	exec(t, conn, "CREATE TABLE sunum_queue (sunum bigint, recnum bigint, series_name text)")

	sink := newPebbleSink(t)
	ev := newEvents()
	in := newIntake(t, Config{DSN: dsn, PollInterval: 20 * time.Millisecond}, sink)
	in.hook = ev.hook
	startIntake(t, in)
	ev.await(t, "waiting")

	exec(t, conn, "INSERT INTO sunum_queue SELECT 7000 + g, g, 'aia.lev1' FROM generate_series(0, 29) g")
	sink.awaitRecorded(t, 30)
	sink.checkExactlyOnce(t, sunums(7000, 30), "aia.lev1")
}

// Rows are claimed, accepted and deleted BatchSize at a time.
func TestBatches(t *testing.T) {
	dsn := newDB(t)
	conn := connect(t, dsn)
	exec(t, conn, "CREATE TABLE sunum_queue (sunum bigint, recnum bigint, series_name text)")
	exec(t, conn, "INSERT INTO sunum_queue SELECT 100 + g, g, 'hmi.v_45s' FROM generate_series(0, 94) g")

	sink := newPebbleSink(t)
	in := newIntake(t, Config{DSN: dsn, BatchSize: 10, PollInterval: time.Hour}, sink)
	startIntake(t, in)
	sink.awaitRecorded(t, 95)
	sink.checkExactlyOnce(t, sunums(100, 95), "hmi.v_45s")

	sink.mu.Lock()
	batches := append([]int(nil), sink.batches...)
	sink.mu.Unlock()
	if len(batches) != 10 {
		t.Errorf("%d batches %v, want 10", len(batches), batches)
	}
	for i, b := range batches {
		if want := min(10, 95-10*i); b != want {
			t.Errorf("batch %d has %d requests, want %d (all: %v)", i, b, want, batches)
		}
	}
	// The sink saw the last batch before the intake committed its delete
	// and counted it: wait for the count.
	rlsdtest.Eventually(t, 10*time.Second, func() error {
		if got := metricValue(t, in, "rls_mirror_intake_batches_total", map[string]string{"result": "ok"}); got != 10 {
			return fmt.Errorf("batches ok = %v, want 10", got)
		}
		return nil
	})
}

// terminateIntake ends the intake's server session (as a crash of the
// intake or a lost connection would) and waits until it is gone.
func terminateIntake(ctx context.Context, admin *pgx.Conn, appName string) error {
	// Find the pids first: in one WHERE clause the planner may call
	// pg_terminate_backend before it filters on the name.
	rows, err := admin.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, appName)
	if err != nil {
		return err
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return err
	}
	if len(pids) != 1 {
		return fmt.Errorf("%d sessions of %s, want 1", len(pids), appName)
	}
	var ok bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1, 30000)`, pids[0]).Scan(&ok); err != nil || !ok {
		return fmt.Errorf("terminate %s (pid %d): %v %v", appName, pids[0], ok, err)
	}
	return nil
}

// Whatever point of a batch a crash hits, the rows come back, the sink
// recognises what it recorded, and every sunum ends recorded exactly once
// with the queue empty. A crash before Accept offers nothing twice; one
// after Accept offers that batch again.
func TestExactlyOnceAcrossCrashPoints(t *testing.T) {
	for _, tc := range []struct {
		name      string
		point     string // where the failure strikes the first batch
		sinkFails bool   // the sink refuses the first batch instead
		restart   bool   // the intake "process" dies there: a new Intake, the sink reopened
		redeliver bool   // the first batch's sunums are offered twice
	}{
		{name: "before accept", point: "claimed"},
		{name: "sink error", sinkFails: true},
		{name: "after accept before delete", point: "accepted", redeliver: true},
		{name: "after delete before commit", point: "deleted", redeliver: true},
		{name: "intake dies after accept", point: "accepted", restart: true, redeliver: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := newDB(t)
			conn := connect(t, dsn)
			exec(t, conn, "CREATE TABLE sunum_queue (sunum bigint, recnum bigint, series_name text)")
			exec(t, conn, "INSERT INTO sunum_queue SELECT 500 + g, g, 'hmi.m_720s' FROM generate_series(0, 24) g")
			const appName = "crash-test"
			dsn += "&application_name=" + appName
			admin := connect(t, dsn[:strings.Index(dsn, "&")]) // another session

			sink := newPebbleSink(t)
			ev := newEvents()
			cfg := Config{DSN: dsn, BatchSize: 10, PollInterval: time.Hour}
			in := newIntake(t, cfg, sink)
			in.hook = ev.hook
			var first []Request
			struck := false
			if tc.sinkFails {
				sink.before = func(_ context.Context, _ string, reqs []Request) error {
					if struck {
						return nil
					}
					struck = true
					first = append(first, reqs...)
					return errors.New("injected: disk full")
				}
			} else {
				sink.before = func(_ context.Context, _ string, reqs []Request) error {
					if first == nil {
						first = append(first, reqs...)
					}
					return nil
				}
				ev.on(tc.point, func() error {
					if struck {
						return nil
					}
					struck = true
					// The session dies and the intake goes no further in
					// this batch, as if it crashed here.
					if err := terminateIntake(testCtx(t), admin, appName); err != nil {
						t.Error(err)
					}
					return errors.New("injected crash at " + tc.point)
				})
			}
			if !tc.restart {
				startIntake(t, in)
			} else {
				// The intake dies with its batch accepted but not committed:
				// Run is cancelled at that point, Pebble closed and reopened
				// (synced records survive), and a new intake takes over.
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				ev.on(tc.point, func() error { cancel(); return nil })
				go func() { done <- in.Run(ctx) }()
				if err := <-done; err != nil {
					t.Fatalf("Run: %v", err)
				}
				if err := sink.db.Close(); err != nil {
					t.Fatal(err)
				}
				sink.open(t)
				struck = true
				in2 := newIntake(t, cfg, sink)
				in2.hook = ev.hook
				startIntake(t, in2)
			}
			sink.awaitRecorded(t, 25)
			ev.await(t, "waiting")
			sink.checkExactlyOnce(t, sunums(500, 25), "hmi.m_720s")
			if !struck && !tc.restart {
				t.Fatalf("the failure never struck")
			}
			if n := countRows(t, admin, pgx.Identifier{"sunum_queue"}); n != 0 {
				t.Errorf("%d rows left in the queue", n)
			}
			if len(first) == 0 {
				t.Fatal("no first batch seen")
			}
			for _, r := range first {
				want := 1
				if tc.redeliver {
					want = 2
				}
				if tc.sinkFails {
					want = 1 // the refused offer is not counted: nothing was recorded
				}
				if got := sink.offersOf(r.Sunum); got != want {
					t.Errorf("sunum %d of the first batch offered %d times, want %d", r.Sunum, got, want)
				}
			}
		})
	}
}

// Two intakes on one table never claim the same row, and neither waits for
// the other's locked rows: while one holds a batch inside Accept, the other
// drains the rest.
func TestTwoIntakesSkipLocked(t *testing.T) {
	dsn := newDB(t)
	conn := connect(t, dsn)
	exec(t, conn, "CREATE TABLE sunum_queue (sunum bigint, recnum bigint, series_name text)")
	exec(t, conn, "INSERT INTO sunum_queue SELECT 900 + g, g, 'aia.lev1_euv_12s' FROM generate_series(0, 29) g")

	sink := newPebbleSink(t)
	entered, release := make(chan struct{}), make(chan struct{})
	held := false
	sink.before = func(ctx context.Context, name string, reqs []Request) error {
		if name == "a" && !held {
			held = true
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	cfg := Config{DSN: dsn, BatchSize: 10, PollInterval: time.Hour}
	a := newIntake(t, cfg, sink.named("a"))
	startIntake(t, a)
	<-entered // a holds 10 rows locked, inside Accept

	b := newIntake(t, cfg, sink.named("b"))
	startIntake(t, b)
	sink.awaitRecorded(t, 20) // b took the 20 rows a does not hold
	close(release)
	sink.awaitRecorded(t, 30)

	sink.checkExactlyOnce(t, sunums(900, 30), "aia.lev1_euv_12s")
	for _, su := range sunums(900, 30) {
		if o := sink.offersOf(su); o != 1 {
			t.Errorf("sunum %d offered %d times, want once", su, o)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.byName["a"] != 10 || sink.byName["b"] != 20 {
		t.Errorf("a accepted %d, b %d; want 10 and 20", sink.byName["a"], sink.byName["b"])
	}
}
