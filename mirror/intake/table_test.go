package intake

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A queue table that is missing, lacks a column, or has one of the wrong
// type is refused with an error naming the table and the column, by Check
// and by Run, and nothing is claimed.
func TestBadTable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create string
		table  string
		want   []string
	}{
		{"missing table", "", "sunum_queue", []string{`"sunum_queue"`, "does not exist"}},
		{"missing column", "CREATE TABLE sunum_queue (sunum bigint, series_name text)", "sunum_queue",
			[]string{`"sunum_queue"`, `no column "recnum"`, "bigint"}},
		{"wrong type", "CREATE TABLE q (sunum text, recnum bigint, series_name text)", "q",
			[]string{`column "sunum"`, `"q"`, "is text, want bigint"}},
		{"schema-qualified, wrong series type", "CREATE SCHEMA drms; CREATE TABLE drms.q (sunum bigint, recnum bigint, series_name int)", "drms.q",
			[]string{`"drms"."q"`, `column "series_name"`, "is integer"}},
		{"bad rejected table", "CREATE TABLE q (sunum bigint, recnum bigint, series_name text); CREATE TABLE q_rejected (sunum bigint)", "q",
			[]string{`"q_rejected"`, `no column "recnum"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := newDB(t)
			conn := connect(t, dsn)
			if tc.create != "" {
				exec(t, conn, tc.create)
			}
			in := newIntake(t, Config{DSN: dsn, Table: tc.table}, newPebbleSink(t))
			err := in.Check(testCtx(t))
			checkBadTable(t, "Check", err, tc.want)

			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err = in.Run(ctx)
			if ctx.Err() != nil {
				t.Fatalf("Run did not return on a bad table")
			}
			checkBadTable(t, "Run", err, tc.want)
		})
	}
}

func checkBadTable(t *testing.T, what string, err error, want []string) {
	t.Helper()
	if !errors.Is(err, ErrBadTable) {
		t.Fatalf("%s: err = %v, want ErrBadTable", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %s", what, err, w)
		}
	}
}

// A table name with quotes, spaces, a dot, a semicolon and capitals is
// quoted wherever it is used (queue and rejected table), and runs nothing.
func TestOddTableName(t *testing.T) {
	dsn := newDB(t)
	conn := connect(t, dsn)
	const schema, name = `Odd "Schema"`, `q.ue; DROP TABLE victim; --`
	exec(t, conn, "CREATE TABLE victim (x int)")
	exec(t, conn, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	table := pgx.Identifier{schema, name}
	exec(t, conn, "CREATE TABLE "+table.Sanitize()+" (sunum bigint, recnum bigint, series_name varchar(64))")
	exec(t, conn, "INSERT INTO "+table.Sanitize()+" VALUES (11, 1, 'hmi.m_45s'), (12, 2, 'hmi.m_45s'), (-5, 3, 'hmi.m_45s')")

	sink := newPebbleSink(t)
	ev := newEvents()
	in := newIntake(t, Config{DSN: dsn, Table: schema + "." + name, PollInterval: time.Hour}, sink)
	in.hook = ev.hook
	startIntake(t, in)
	ev.await(t, "waiting")

	sink.checkExactlyOnce(t, []uint64{11, 12}, "hmi.m_45s")
	if n := countRows(t, conn, table); n != 0 {
		t.Errorf("%d rows left in %s", n, table.Sanitize())
	}
	if n := countRows(t, conn, pgx.Identifier{schema, name + "_rejected"}); n != 1 {
		t.Errorf("%d rows in the rejected table, want 1", n)
	}
	if n := countRows(t, conn, pgx.Identifier{"victim"}); n != 0 {
		t.Errorf("victim has %d rows", n) // it exists: countRows would fail otherwise
	}
}

// Rows the mirror cannot use are moved to <table>_rejected with the reason,
// logged and counted, and do not hold up the rows behind them.
func TestRejectedRows(t *testing.T) {
	dsn := newDB(t)
	conn := connect(t, dsn)
	applyScript(t, conn) // makes sunum_queue with queued_at, and sunum_queue_rejected
	exec(t, conn, `INSERT INTO sunum_queue (sunum, recnum, series_name) VALUES
		(NULL, 1, 'hmi.m_45s'), (-7, 2, 'hmi.m_45s'), (30, 3, 'mdi.fd_m_96m'),
		(31, 4, 'hmi.m_45s'), (32, 5, 'hmi.m_45s'), (32, 6, 'hmi.m_45s'), (33, NULL, 'hmi.m_45s')`)

	sink := newPebbleSink(t)
	ev := newEvents()
	log, logs := newLogRecorder(t)
	in := newIntake(t, Config{
		DSN: dsn, PollInterval: time.Hour, Logger: log,
		KnownSeries: func(s string) bool { return strings.HasPrefix(s, "hmi.") || strings.HasPrefix(s, "aia.") },
	}, sink)
	in.hook = ev.hook
	startIntake(t, in)
	ev.await(t, "waiting")

	sink.checkExactlyOnce(t, []uint64{31, 32, 33}, "hmi.m_45s")
	if o := sink.offersOf(32); o != 1 {
		t.Errorf("sunum 32, queued twice, offered %d times, want once", o)
	}
	if v := sink.stored(t)[33]; v != "NQUE hmi.m_45s 0" {
		t.Errorf("sunum 33 (recnum NULL) recorded as %q", v)
	}
	rows, err := conn.Query(testCtx(t), `SELECT coalesce(sunum::text, 'NULL'), reason FROM sunum_queue_rejected ORDER BY recnum`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var su, reason string
		err := r.Scan(&su, &reason)
		return su + " " + reason, err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"NULL null_sunum", "-7 negative_sunum", "30 unknown_series"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rejected rows %q, want %q", got, want)
	}
	if n := countRows(t, conn, pgx.Identifier{"sunum_queue"}); n != 0 {
		t.Errorf("%d rows left in the queue", n)
	}
	for reason, want := range map[string]float64{reasonNullSunum: 1, reasonNegativeSunum: 1, reasonUnknownSeries: 1} {
		if got := metricValue(t, in, "rls_mirror_intake_rows_rejected_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("rejected{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if n := logs.count("queue row rejected"); n != 3 {
		t.Errorf("%d rejected rows logged, want 3", n)
	}
}

// With queued_at in the table, the lag while a backlog drains is the age of
// the oldest row seen; without it, the time since the queue was last empty.
func TestLagMetric(t *testing.T) {
	dsn := newDB(t)
	conn := connect(t, dsn)
	applyScript(t, conn)
	exec(t, conn, `INSERT INTO sunum_queue (sunum, recnum, series_name, queued_at)
		SELECT 40 + g, g, 'hmi.m_45s', now() - interval '2 hours' FROM generate_series(0, 3) g`)

	sink := newPebbleSink(t)
	entered, release := make(chan struct{}), make(chan struct{})
	calls := 0
	sink.before = func(context.Context, string, []Request) error {
		if calls++; calls == 2 {
			close(entered)
			<-release
		}
		return nil
	}
	in := newIntake(t, Config{DSN: dsn, BatchSize: 2, PollInterval: time.Hour}, sink)
	startIntake(t, in)
	<-entered // the first, full batch is committed; a backlog remains
	if lag := metricValue(t, in, "rls_mirror_intake_lag_seconds", nil); lag < 7200 {
		t.Errorf("lag during the backlog = %vs, want at least the oldest row's age, 7200s", lag)
	}
	close(release)
	sink.awaitRecorded(t, 4)
}

func TestParseTable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want pgx.Identifier
		err  string
	}{
		{"sunum_queue", pgx.Identifier{"sunum_queue"}, ""},
		{"drms.sunum_queue", pgx.Identifier{"drms", "sunum_queue"}, ""},
		{"a.b.c", pgx.Identifier{"a", "b.c"}, ""},
		{`Weird "Name"`, pgx.Identifier{`Weird "Name"`}, ""},
		{"", nil, "table name is empty"},
		{".q", nil, "table schema name is empty"},
		{"s.", nil, "table name is empty"},
		{"q\x00", nil, "NUL"},
		{"q\xff", nil, "not UTF-8"},
		{strings.Repeat("x", 64), nil, "64 bytes"},
		{strings.Repeat("x", 55), nil, "too long"},
	} {
		got, err := ParseTable(tc.in)
		if tc.err != "" {
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTable(%q) = %v, want ErrBadConfig mentioning %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got.Sanitize() != tc.want.Sanitize() {
			t.Errorf("ParseTable(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	sink := SinkFunc(func(context.Context, []Request) error { return nil })
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no DSN"},
		{Config{DSN: "postgres://x/y", BatchSize: -1}, "batch size"},
		{Config{DSN: "postgres://x/y", PollInterval: -time.Second}, "poll interval"},
		{Config{DSN: "postgres://x/y", Channel: strings.Repeat("c", 64)}, "channel name"},
		{Config{DSN: "postgres://x/y", RetryMin: time.Second, RetryMax: time.Millisecond}, "retry bounds"},
		{Config{DSN: "postgres://x:secret@y/z?sslmode=bogus"}, "DSN"},
	} {
		_, err := New(tc.cfg, sink)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want ErrBadConfig mentioning %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q shows the password", err)
		}
	}
}
