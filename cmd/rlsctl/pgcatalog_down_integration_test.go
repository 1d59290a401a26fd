package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
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

// TestPostgresCatalogOutage stops PostgreSQL under a running rlsd: within
// 15 s the health service says the catalog is NOT_SERVING, and calls fail
// with UNAVAILABLE (rlsctl exit 5). Once PostgreSQL is started again, and
// nothing else is done, the catalog turns SERVING, and every write
// acknowledged before the outage (a bulk load sent with several chunks in
// flight, and a single create) is there.
func TestPostgresCatalogOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and rlsd")
	}
	pg := pgtest.Start(t, pgtest.Options{})
	dsn := sharedCatalogDB(t, pg)
	n := startNode(t, "", "jsoc", t.TempDir(), "--roles", "lrc", "--catalog-dsn", dsn)
	const service = "rls.v1.Catalog"
	if err := rlsdtest.WaitServing(n.Addr, service, 30*time.Second); err != nil {
		t.Fatalf("catalog not SERVING: %v\n%s", err, n.Log())
	}
	var in, names strings.Builder
	for i := range 200 {
		fmt.Fprintf(&in, "%d\t/jsoc/D%d\n", 1000+i, 1000+i)
		fmt.Fprintf(&names, "%d\n", 1000+i)
	}
	if code, out, errs := runCLI(t, in.String(), "--server", n.Addr, "lrc", "bulk", "create", "--chunk", "16", "--inflight", "4"); code != 0 {
		t.Fatalf("bulk create: exit %d, %s %s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "", "--server", n.Addr, "lrc", "create", "100", "/jsoc/D100"); code != 0 {
		t.Fatalf("create: exit %d, %s %s", code, out, errs)
	}

	if err := pg.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, n, service, grpc_health_v1.HealthCheckResponse_NOT_SERVING, 15*time.Second)
	if code, out, errs := runCLI(t, "", "--server", n.Addr, "lrc", "query", "lfn", "100"); code != 5 {
		t.Fatalf("rlsctl lrc query with PostgreSQL down: exit %d, %s %s; want 5", code, out, errs)
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, n, service, grpc_health_v1.HealthCheckResponse_SERVING, 30*time.Second)
	code, out, errs := runCLI(t, names.String()+"100\n", "--server", n.Addr, "-o", "json", "lrc", "bulk", "query")
	if code != 0 {
		t.Fatalf("bulk query after the outage: exit %d, %s %s", code, out, errs)
	}
	for i := range 200 {
		if !strings.Contains(out, fmt.Sprintf(`"/jsoc/D%d"`, 1000+i)) {
			t.Fatalf("mapping %d, acknowledged before the outage, is gone:\n%s", 1000+i, out)
		}
	}
	if !strings.Contains(out, `"/jsoc/D100"`) {
		t.Fatalf("mapping 100, acknowledged before the outage, is gone:\n%s", out)
	}
	select {
	case <-n.Exited():
		t.Fatalf("rlsd exited:\n%s", n.Log())
	default:
	}
}

// waitHealth watches n's health service until service has status want,
// failing the test if it has not within timeout.
func waitHealth(t *testing.T, n *node, service string, want grpc_health_v1.HealthCheckResponse_ServingStatus, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	w, err := grpc_health_v1.NewHealthClient(n.cc).Watch(ctx, &grpc_health_v1.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("%s not %v within %v: %v\n%s", service, want, timeout, err, n.Log())
		}
		if r.GetStatus() == want {
			return
		}
	}
}
