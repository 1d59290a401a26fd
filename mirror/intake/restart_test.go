package intake

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/internal/pgtest"
)

// PostgreSQL goes down while a batch is inside Accept and stays down for a
// few reconnection attempts. The intake logs the outage once, reconnects
// when the server is back, offers the rolled-back batch again (the sink
// dedupes it), LISTENs again (rows inserted afterwards arrive by NOTIFY
// alone, polling being practically off) and logs the recovery once.
func TestPostgresRestart(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{NoSync: true})
	dsn := createDB(t, srv)
	setup := connect(t, dsn)
	applyScript(t, setup)
	makeSeries(t, setup, "hmi", "m_45s")
	insertSeries(t, setup, "hmi.m_45s", 2000, 25, 1)
	setup.Close(context.Background())

	sink := newPebbleSink(t)
	entered, release := make(chan struct{}), make(chan struct{})
	held := false
	var first []Request
	sink.before = func(_ context.Context, _ string, reqs []Request) error {
		if !held {
			held = true
			first = append(first, reqs...)
			close(entered)
			<-release // the sink records the batch while the server is down
		}
		return nil
	}
	log, logs := newLogRecorder(t)
	ev := newEvents()
	in := newIntake(t, Config{DSN: dsn, BatchSize: 10, PollInterval: time.Hour, Logger: log}, sink)
	in.hook = ev.hook
	startIntake(t, in)

	<-entered
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	close(release)
	logs.await(t, "PostgreSQL unavailable")
	logs.await(t, "reconnection failed") // it keeps trying while the server is down
	logs.await(t, "reconnection failed")
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	logs.await(t, "PostgreSQL reachable again")
	sink.awaitRecorded(t, 25)
	ev.awaitIdle(t, sink)

	conn := connect(t, dsn)
	insertSeries(t, conn, "hmi.m_45s", 3000, 15, 100)
	sink.awaitRecorded(t, 40)
	ev.awaitIdle(t, sink)

	sink.checkExactlyOnce(t, append(sunums(2000, 25), sunums(3000, 15)...), "hmi.m_45s")
	if n := countRows(t, conn, pgx.Identifier{"sunum_queue"}); n != 0 {
		t.Errorf("%d rows left in the queue", n)
	}
	for _, r := range first {
		if o := sink.offersOf(r.Sunum); o != 2 {
			t.Errorf("sunum %d (in Accept when the server stopped) offered %d times, want 2", r.Sunum, o)
		}
	}
	if n := logs.count("PostgreSQL unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want once", n)
	}
	if n := logs.count("PostgreSQL reachable again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	if got := metricValue(t, in, "rls_mirror_intake_connected", nil); got != 1 {
		t.Errorf("connected = %v after recovery, want 1", got)
	}
}
