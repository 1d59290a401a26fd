package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/internal/pgtest"
)

func TestServerRoundTrip(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	conn, err := pgx.Connect(ctx, srv.DSN)
	if err != nil {
		t.Fatalf("connect %s: %v", srv.DSN, err)
	}
	defer conn.Close(ctx)

	// The server is durable unless asked otherwise.
	for name, want := range map[string]string{"fsync": "on", "synchronous_commit": "on", "listen_addresses": "127.0.0.1"} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatalf("current_setting(%s): %v", name, err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}

	if _, err := conn.Exec(ctx, `CREATE TABLE t (lfn text NOT NULL, pfn text NOT NULL, UNIQUE (lfn, pfn))`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	rows := [][2]string{{"100000001", "/SUM1/D100000001"}, {"100000001", "/SUM2/D100000001"}, {"100000002", "/SUM1/D100000002"}}
	for _, r := range rows {
		if _, err := conn.Exec(ctx, `INSERT INTO t (lfn, pfn) VALUES ($1, $2)`, r[0], r[1]); err != nil {
			t.Fatalf("insert %v: %v", r, err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t (lfn, pfn) VALUES ($1, $2)`, rows[0][0], rows[0][1]); err == nil {
		t.Errorf("duplicate insert succeeded; the unique constraint is not enforced")
	}
	got, err := pgx.CollectRows(mustQuery(t, conn, `SELECT pfn FROM t WHERE lfn = $1 ORDER BY pfn`, "100000001"), pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if want := []string{"/SUM1/D100000001", "/SUM2/D100000001"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("pfns of 100000001 = %q, want %q", got, want)
	}
}

func mustQuery(t *testing.T, conn *pgx.Conn, sql string, args ...any) pgx.Rows {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return rows
}

func TestStopRemovesDirectory(t *testing.T) {
	srv, err := pgtest.StartServer(pgtest.Options{NoSync: true, Settings: map[string]string{"max_connections": "20"}})
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var fsync, maxConns string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('max_connections')").Scan(&fsync, &maxConns); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if fsync != "off" || maxConns != "20" {
		t.Errorf("fsync=%s max_connections=%s, want off and 20", fsync, maxConns)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := os.Stat(srv.Dir); !os.IsNotExist(err) {
		t.Errorf("after Stop, %s still exists (stat: %v)", srv.Dir, err)
	}
	if _, err := pgx.Connect(ctx, srv.DSN); err == nil {
		t.Errorf("connected to %s after Stop", srv.DSN)
	}
}

// A restart keeps the cluster, its port and its DSN: committed rows survive,
// clients connected before lose their connection, and new ones get in.
func TestShutdownRestartKeepsData(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := srv.DSN

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)`); err != nil {
		t.Fatal(err)
	}

	if err := srv.Shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := srv.Shutdown(); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		c.Close(ctx)
		t.Fatalf("connected to %s while shut down", dsn)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Errorf("a connection from before the shutdown still answers")
	}

	if err := srv.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if srv.DSN != dsn {
		t.Errorf("DSN changed across restart: %s, then %s", dsn, srv.DSN)
	}
	conn2, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	defer conn2.Close(context.Background())
	var n int
	if err := conn2.QueryRow(ctx, `SELECT n FROM kept`).Scan(&n); err != nil || n != 42 {
		t.Fatalf("after restart: n=%d err=%v, want 42", n, err)
	}

	// Restart of a running server works too (shut down, then start).
	if err := srv.Restart(); err != nil {
		t.Fatalf("restart of a running server: %v", err)
	}
	if err := conn2.Ping(ctx); err == nil {
		t.Errorf("a connection from before the second restart still answers")
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := srv.Restart(); err == nil {
		t.Errorf("restart after Stop succeeded")
	}
}
