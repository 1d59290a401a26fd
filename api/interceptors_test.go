package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
)

// pebblePanicAdmin panics inside Pebble on Ping: its store's merge
// operator panics, so that Pebble's frames are on the panicking stack.
type pebblePanicAdmin struct {
	rlsv1.UnimplementedAdminServer
	db *pebble.DB
}

func (a pebblePanicAdmin) Ping(context.Context, *rlsv1.PingRequest) (*rlsv1.PingResponse, error) {
	_, closer, err := a.db.Get([]byte("k"))
	if err == nil {
		closer.Close()
	}
	return &rlsv1.PingResponse{}, err
}

const pebblePanicEnv = "RLS_API_TEST_PEBBLE_PANIC"

// TestPebblePanicNotRecovered checks that a panic raised inside Pebble
// ends the process, logged, instead of becoming INTERNAL: the server runs
// in a child process (this test binary again), which must die.
func TestPebblePanicNotRecovered(t *testing.T) {
	if os.Getenv(pebblePanicEnv) == "1" {
		servePebblePanic(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebblePanicNotRecovered$", "-test.v")
	cmd.Env = append(os.Environ(), pebblePanicEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("child process: %v, want it to die of the panic:\n%s", err, out)
	}
	for _, want := range []string{
		`level=ERROR msg="panic inside Pebble; stopping the process" method=/rls.v1.Admin/Ping panic="merge boom"`,
		"panic: merge boom",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "call returned") {
		t.Errorf("the call returned; the panic was recovered:\n%s", out)
	}
}

// servePebblePanic runs in the child process: it serves pebblePanicAdmin
// and calls Ping, which should never return.
func servePebblePanic(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{
		FS: vfs.NewMem(),
		Merger: &pebble.Merger{
			Name:  "panicky",
			Merge: func(key, value []byte) (pebble.ValueMerger, error) { panic("merge boom") },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Merge([]byte("k"), []byte("v"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rlsv1.RegisterAdminServer(srv, pebblePanicAdmin{db: db})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis) //nolint:errcheck // the process dies before it returns
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rlsv1.NewAdminClient(conn).Ping(ctxT(t), &rlsv1.PingRequest{})
	t.Errorf("call returned: %v", err)
}

// TestExtraInterceptors checks where ServerOptions.Unary runs: after
// metrics and logging, so that what it refuses is counted and logged.
func TestExtraInterceptors(t *testing.T) {
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	deny := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return nil, status.Error(codes.PermissionDenied, "no")
	}
	srv, err := NewServer(ServerOptions{
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Registerer: reg,
		Unary:      []grpc.UnaryServerInterceptor{deny},
	})
	if err != nil {
		t.Fatal(err)
	}
	rlsv1.RegisterAdminServer(srv, panickyAdmin{}) // never reached
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
	wantCode(t, "Ping", err, codes.PermissionDenied)
	const expected = `
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="PermissionDenied",grpc_method="Ping",grpc_service="rls.v1.Admin",grpc_type="unary"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "grpc_server_handled_total"); err != nil {
		t.Error(err)
	}
	if out := logs.String(); !strings.Contains(out, `level=WARN msg="finished call"`) || !strings.Contains(out, "grpc.code=PermissionDenied") {
		t.Errorf("refusal not logged at warn level:\n%s", out)
	}
}

// TestQuietUnaryLogging checks the logging interceptor's fast path (a
// logger without debug lines): a successful call allocates nothing for
// logging, and a failure is logged with the same fields as the
// library's interceptor writes when debug lines are on.
func TestQuietUnaryLogging(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/rls.v1.Catalog/QueryLFN"}
	ok := func(ctx context.Context, req any) (any, error) { return req, nil }
	denied := func(ctx context.Context, req any) (any, error) {
		return nil, status.Error(codes.PermissionDenied, "no")
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}})
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	lines := func(level slog.Level, h grpc.UnaryHandler) string {
		logs := &syncBuffer{}
		log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
		chain, err := newInterceptorChain(ServerOptions{}, log)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = chain.unary[0](ctx, "req", info, h)
		return logs.String()
	}
	keys := func(line string) []string {
		var ks []string
		for _, f := range strings.Fields(line) {
			if k, _, ok := strings.Cut(f, "="); ok {
				ks = append(ks, k)
			}
		}
		return ks
	}
	quiet, full := lines(slog.LevelInfo, denied), lines(slog.LevelDebug, denied)
	if !strings.Contains(quiet, `level=WARN msg="finished call"`) || !strings.Contains(quiet, "grpc.code=PermissionDenied") ||
		!strings.Contains(quiet, "peer.address=127.0.0.1:4242") || !strings.Contains(quiet, "grpc.method=QueryLFN") {
		t.Errorf("fast path's failure line:\n%s", quiet)
	}
	if q, f := keys(quiet), keys(full); !slices.Equal(q, f) {
		t.Errorf("fast path logs fields %v, the library %v", q, f)
	}
	if out := lines(slog.LevelInfo, ok); out != "" {
		t.Errorf("successful call logged at info level: %s", out)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	chain, err := newInterceptorChain(ServerOptions{}, log)
	if err != nil {
		t.Fatal(err)
	}
	logged := chain.unary[0]
	if n := testing.AllocsPerRun(100, func() { _, _ = logged(ctx, "req", info, ok) }); n > 0 {
		t.Errorf("a successful call allocates %.0f times in the logging interceptor at info level, want 0", n)
	}
}
