package api

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
)

// testEnv is a catalog in a temporary directory served by a Server on a
// loopback port, with clients connected to it.
type testEnv struct {
	cat     *catalog.Catalog
	reg     *prometheus.Registry
	logs    *syncBuffer
	conn    *grpc.ClientConn
	catalog rlsv1.CatalogClient
	admin   rlsv1.AdminClient
	health  healthpb.HealthClient
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestEnv starts a server running the Catalog and Admin services, plus
// any extra services given by register. Everything is stopped when the test
// ends.
func newTestEnv(t *testing.T, register ...func(*Server)) *testEnv {
	t.Helper()
	return newTestEnvOpts(t, ServerOptions{}, register...)
}

// newTestEnvOpts is newTestEnv with server options; Logger and Registerer
// are the env's.
func newTestEnvOpts(t *testing.T, opts ServerOptions, register ...func(*Server)) *testEnv {
	t.Helper()
	cat, err := catalog.Open(t.TempDir(), &catalog.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{cat: cat, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Logger, opts.Registerer = log, e.reg
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	rlsv1.RegisterCatalogServer(srv, NewCatalogServer(cat))
	rlsv1.RegisterAdminServer(srv, NewAdminServer(AdminInfo{
		Site: "jsoc", Version: "v0.0.0-test", Roles: []string{"lrc"}, Started: time.Now(), Catalog: cat,
	}))
	for _, r := range register {
		r(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := cat.Close(); err != nil {
			t.Errorf("catalog Close: %v", err)
		}
	})
	e.conn = conn
	e.catalog = rlsv1.NewCatalogClient(conn)
	e.admin = rlsv1.NewAdminClient(conn)
	e.health = healthpb.NewHealthClient(conn)
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantCode fails the test unless err has code want and, when want is not OK,
// a message containing every one of contains.
func wantCode(t *testing.T, what string, err error, want codes.Code, contains ...string) {
	t.Helper()
	s := status.Convert(err)
	if s.Code() != want {
		t.Fatalf("%s: code %v (%q), want %v", what, s.Code(), s.Message(), want)
	}
	for _, c := range contains {
		if !strings.Contains(s.Message(), c) {
			t.Errorf("%s: message %q does not contain %q", what, s.Message(), c)
		}
	}
}

func TestHealth(t *testing.T) {
	e := newTestEnv(t)
	for _, svc := range []string{"", "rls.v1.Catalog", "rls.v1.Admin"} {
		resp, err := e.health.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("Check(%q): %v", svc, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, want SERVING", svc, resp.GetStatus())
		}
	}
	_, err := e.health.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: "rls.v1.Nope"})
	wantCode(t, "Check(unknown service)", err, codes.NotFound)
}

func TestReflectionRegistered(t *testing.T) {
	srv, err := NewServer(ServerOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	info := srv.grpc.GetServiceInfo()
	for _, svc := range []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if _, ok := info[svc]; !ok {
			t.Errorf("service %s not registered", svc)
		}
	}
}

// TestShutdownDrains checks that Shutdown lets a call in flight finish when
// it has time, and cancels it when it has not.
func TestShutdownDrains(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		wantErr bool
	}{
		{"graceful", 10 * time.Second, false},
		{"forced", 50 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			srv, err := NewServer(ServerOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			rlsv1.RegisterAdminServer(srv, blockingAdmin{entered: entered, release: release})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(lis) }()
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			called := make(chan error, 1)
			go func() {
				_, err := rlsv1.NewAdminClient(conn).Ping(ctxT(t), &rlsv1.PingRequest{})
				called <- err
			}()
			<-entered

			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- srv.Shutdown(ctx) }()
			if !tc.wantErr {
				close(release)
			}
			if err := <-shut; (err != nil) != tc.wantErr {
				t.Errorf("Shutdown = %v, want error %v", err, tc.wantErr)
			}
			err = <-called
			if tc.wantErr && err == nil {
				t.Error("call in flight succeeded after a forced stop")
			}
			if !tc.wantErr && err != nil {
				t.Errorf("call in flight failed during a graceful stop: %v", err)
			}
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
}

// blockingAdmin answers Ping once release is closed, or fails it when the
// call is cancelled.
type blockingAdmin struct {
	rlsv1.UnimplementedAdminServer
	entered, release chan struct{}
}

func (b blockingAdmin) Ping(ctx context.Context, _ *rlsv1.PingRequest) (*rlsv1.PingResponse, error) {
	close(b.entered)
	select {
	case <-b.release:
		return &rlsv1.PingResponse{}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// panickyAdmin panics in every call.
type panickyAdmin struct{ rlsv1.UnimplementedAdminServer }

func (panickyAdmin) Ping(context.Context, *rlsv1.PingRequest) (*rlsv1.PingResponse, error) {
	panic("boom")
}

func TestInterceptors(t *testing.T) {
	// A second Admin-shaped service cannot share the server with the real
	// one, so the panicking handler gets a server of its own.
	log := &syncBuffer{}
	reg := prometheus.NewRegistry()
	srv, err := NewServer(ServerOptions{Logger: slog.New(slog.NewTextHandler(log, nil)), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rlsv1.RegisterAdminServer(srv, panickyAdmin{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	defer func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	_, err = rlsv1.NewAdminClient(conn).Ping(ctxT(t), &rlsv1.PingRequest{})
	wantCode(t, "Ping", err, codes.Internal)
	if strings.Contains(status.Convert(err).Message(), "boom") {
		t.Errorf("panic value leaked to the client: %v", err)
	}
	out := log.String()
	for _, want := range []string{
		`level=ERROR msg="panic in gRPC handler" method=/rls.v1.Admin/Ping panic=boom`,
		`level=WARN msg="finished call"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`level=WARN msg="finished call" .*grpc.method=Ping .*grpc.code=Internal`).MatchString(out) {
		t.Errorf("log lacks the WARN line of the failed Ping:\n%s", out)
	}
	const expected = `
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="Internal",grpc_method="Ping",grpc_service="rls.v1.Admin",grpc_type="unary"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "grpc_server_handled_total"); err != nil {
		t.Error(err)
	}
}

func TestRequestLogAndMetrics(t *testing.T) {
	e := newTestEnv(t)
	ctx := ctxT(t)
	if _, err := e.catalog.Create(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/a"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.catalog.Create(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/a"})
	wantCode(t, "second Create", err, codes.AlreadyExists)

	out := e.logs.String()
	for _, code := range []string{"OK", "AlreadyExists"} {
		re := regexp.MustCompile(`level=DEBUG msg="finished call" .*grpc.service=rls.v1.Catalog grpc.method=Create .*peer.address=127.0.0.1:\d+ .*grpc.code=` + code)
		if !re.MatchString(out) {
			t.Errorf("log lacks a DEBUG line for Create with code %s:\n%s", code, out)
		}
	}
	if strings.Contains(out, "started call") {
		t.Errorf("call starts logged:\n%s", out)
	}
	if strings.Contains(out, "level=WARN") {
		t.Errorf("client errors logged at warn level:\n%s", out)
	}

	const expected = `
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="AlreadyExists",grpc_method="Create",grpc_service="rls.v1.Catalog",grpc_type="unary"} 1
grpc_server_handled_total{grpc_code="OK",grpc_method="Create",grpc_service="rls.v1.Catalog",grpc_type="unary"} 1
# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{grpc_method="Create",grpc_service="rls.v1.Catalog",grpc_type="unary"} 2
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(expected), "grpc_server_handled_total", "grpc_server_started_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(e.reg, "grpc_server_handling_seconds"); err != nil || n != 1 {
		t.Errorf("grpc_server_handling_seconds: %d series, %v; want 1", n, err)
	}
}

func TestCatalogCollector(t *testing.T) {
	e := newTestEnv(t)
	ctx := ctxT(t)
	for _, m := range []*rlsv1.MappingRequest{{Lfn: "1", Pfn: "/a"}, {Lfn: "2", Pfn: "/a"}} {
		if _, err := e.catalog.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.catalog.Add(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/b"}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCatalogCollector(e.cat))
	const expected = `
# HELP rls_catalog_lfns LFNs in the local replica catalog.
# TYPE rls_catalog_lfns gauge
rls_catalog_lfns 2
# HELP rls_catalog_mappings LFN-PFN mappings in the local replica catalog.
# TYPE rls_catalog_mappings gauge
rls_catalog_mappings 3
# HELP rls_catalog_pfns PFNs in the local replica catalog.
# TYPE rls_catalog_pfns gauge
rls_catalog_pfns 2
# HELP rls_catalog_seq Last change-feed sequence number of the local replica catalog.
# TYPE rls_catalog_seq gauge
rls_catalog_seq 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected)); err != nil {
		t.Error(err)
	}
}
