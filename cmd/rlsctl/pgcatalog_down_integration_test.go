package main

import (
	"regexp"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/solar-archive/rls/internal/pgtest"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// TestPostgresCatalogDownAtStart starts rlsd on the DSN of a PostgreSQL
// server that is stopped: rlsd serves, its health service says the
// catalog is NOT_SERVING, calls fail with UNAVAILABLE (rlsctl exit 5) and
// rlsd logs its attempts to connect. Once PostgreSQL is started, and
// nothing else is done, rlsd connects, migrates the schema, turns the
// catalog SERVING and answers.
func TestPostgresCatalogDownAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and rlsd")
	}
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := sharedCatalogDB(t, pg) // empty: rlsd migrates it once connected
	if err := pg.Shutdown(); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, "", "jsoc", t.TempDir(), "--roles", "lrc", "--catalog-dsn", dsn)
	n.WaitLog(t, 0, regexp.MustCompile(`database cannot be reached`), 10*time.Second)

	health := grpc_health_v1.NewHealthClient(n.cc)
	r, err := health.Check(ctxT(t), &grpc_health_v1.HealthCheckRequest{Service: "rls.v1.Catalog"})
	if err != nil || r.GetStatus() != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("catalog health with PostgreSQL down = %v, %v; want NOT_SERVING", r.GetStatus(), err)
	}
	for _, args := range [][]string{{"lrc", "create", "100", "/jsoc/D100"}, {"lrc", "query", "lfn", "100"}} {
		if code, out, errs := runCLI(t, "", append([]string{"--server", n.Addr}, args...)...); code != 5 {
			t.Fatalf("rlsctl %v with PostgreSQL down: exit %d, %s %s; want 5", args, code, out, errs)
		}
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := rlsdtest.WaitServing(n.Addr, "rls.v1.Catalog", 30*time.Second); err != nil {
		t.Fatalf("catalog not SERVING 30 s after PostgreSQL started: %v\n%s", err, n.Log())
	}
	if code, out, errs := runCLI(t, "", "--server", n.Addr, "lrc", "create", "100", "/jsoc/D100"); code != 0 {
		t.Fatalf("rlsctl lrc create once PostgreSQL is up: exit %d, %s %s", code, out, errs)
	}
	code, out, errs := runCLI(t, "", "--server", n.Addr, "lrc", "query", "lfn", "100")
	if code != 0 || !regexp.MustCompile(`/jsoc/D100`).MatchString(out) {
		t.Fatalf("rlsctl lrc query once PostgreSQL is up: exit %d, %s %s", code, out, errs)
	}
	select {
	case <-n.Exited():
		t.Fatalf("rlsd exited:\n%s", n.Log())
	default:
	}
}
