package pgcatalog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/internal/pgtest"
)

// One PostgreSQL server for the package's tests (fsync off: these tests
// are about behaviour; durability across a server restart has its own
// server); each test gets a database of its own.
var (
	server *pgtest.Server
	dbs    atomic.Int64
)

func TestMain(m *testing.M) {
	if dsn := os.Getenv(leaseHelperEnv); dsn != "" {
		os.Exit(leaseHelper(dsn))
	}
	srv, err := pgtest.StartServer(pgtest.Options{NoSync: true, Settings: map[string]string{"max_connections": "300"}})
	if err != nil {
		if os.Getenv("CI") != "true" {
			fmt.Fprintln(os.Stderr, "pgcatalog: skipping the tests:", err)
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server = srv
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// newDB creates an empty database and returns its DSN.
func newDB(t testing.TB) string {
	t.Helper()
	return createDB(t, server)
}

func createDB(t testing.TB, srv *pgtest.Server) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("cat%d", dbs.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return srv.DSNFor(name)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openDSN opens a catalog on dsn, closed at the end of the test.
func openDSN(t testing.TB, dsn string) *Catalog {
	t.Helper()
	c, err := Open(context.Background(), dsn, &Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
