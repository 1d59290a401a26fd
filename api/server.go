// Package api serves rls over gRPC: the rls.v1 services (package rlsv1) on
// top of the role packages, and the *grpc.Server they run in, with its
// interceptors, metrics, health service and reflection.
//
// The services are thin: they convert between rlsv1 and the role packages'
// types, check what only the wire can get wrong (unset enums, oversized bulk
// calls), and map errors to gRPC status codes in one place. Everything else,
// including validation of names and values, belongs to the role packages.
package api

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/solar-archive/rls/internal/secure"
)

// MaxMsgSize is the largest message the server receives, and by default
// (see ServerOptions.MaxReplyBytes) about the largest it sends. Bulk calls
// carry up to 100,000 items, typically a few MiB; names of the maximum
// length would need more, and such calls must be split by the client.
const MaxMsgSize = 64 << 20

// streamWorkers is the least number of goroutines that serve streams.
const streamWorkers = 128

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Logger receives one "finished call" line per request (debug level,
	// or warn for failures that are not the client's: codes other than
	// NOT_FOUND, ALREADY_EXISTS and INVALID_ARGUMENT), with the fields of
	// go-grpc-middleware's logging interceptor (grpc.method, grpc.code,
	// grpc.time_ms, peer.address, ...), and handler panics (error level).
	// Default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the standard gRPC server metrics of
	// go-grpc-middleware's Prometheus provider: grpc_server_started_total,
	// grpc_server_handled_total{grpc_code}, grpc_server_msg_received_total,
	// grpc_server_msg_sent_total and the grpc_server_handling_seconds
	// histogram, labelled by grpc_type, grpc_service and grpc_method.
	Registerer prometheus.Registerer
	// MaxReplyBytes and MaxReplyItems bound every reply while it is
	// built (names, mappings, sites, manifest entries): a call whose
	// reply would pass either fails with RESOURCE_EXHAUSTED naming the
	// limit, and a page ends early. Defaults DefaultMaxReplyBytes
	// (64 MiB) and DefaultMaxReplyItems (1 Mi); the server sends
	// messages of up to MaxReplyBytes plus 1 MiB.
	MaxReplyBytes, MaxReplyItems int64
	// Unary and Stream are extra interceptors (authorization, say), run in
	// this order after metrics and logging and before recovery: what they
	// refuse is counted and logged, and a panic in them becomes INTERNAL.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// TLS, when set, makes the server serve TLS with its material (read
	// at each handshake, so that a reload applies to new connections),
	// requiring client certificates signed by its CA when it has one.
	TLS *secure.Store
	// Authorizer checks every call by the method table of package secure
	// (PERMISSION_DENIED when refused). Default: the built-in policy for
	// TLS (see secure.NewPolicy).
	Authorizer *secure.Authorizer
}

// Server is a *grpc.Server set up for rls: interceptors for recovery,
// logging, metrics and authorization, TLS when configured, message size
// limits, keepalive enforcement, the
// standard health service and server reflection. It is safe for concurrent
// use.
//
// Register services on it (it is a grpc.ServiceRegistrar) before Serve; each
// registered service reports SERVING in the health service, as does the
// overall service "".
type Server struct {
	grpc   *grpc.Server
	health *health.Server
}

// NewServer builds a Server. It fails only if the metrics cannot be
// registered.
func NewServer(opts ServerOptions) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// Authorization runs among the extra interceptors: inside logging and
	// metrics, so that refusals are logged and counted, and inside
	// recovery too.
	auth := opts.Authorizer
	if auth == nil {
		p, err := secure.NewPolicy(nil, opts.TLS.MutualTLS())
		if err != nil {
			return nil, err
		}
		auth = secure.NewAuthorizer(p, log)
	}
	opts.Unary = append([]grpc.UnaryServerInterceptor{auth.UnaryInterceptor()}, opts.Unary...)
	opts.Stream = append([]grpc.StreamServerInterceptor{auth.StreamInterceptor()}, opts.Stream...)
	chain, err := newInterceptorChain(opts, log)
	if err != nil {
		return nil, err
	}
	limits := replyLimits{maxBytes: opts.MaxReplyBytes, maxItems: opts.MaxReplyItems}.orDefault()
	rejects := &rejectLog{logger: log}
	chain.unary = append(chain.unary, requestUnary(limits, rejects))
	chain.stream = append(chain.stream, requestStream(limits, rejects))

	sopts := []grpc.ServerOption{}
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(opts.TLS.GRPCCredentials()))
	}
	gs := grpc.NewServer(append(sopts,
		grpc.ChainUnaryInterceptor(chain.unary...),
		grpc.ChainStreamInterceptor(chain.stream...),
		// Reuse goroutines for streams instead of starting one per call:
		// their stacks stay grown, which spares every call a stack copy.
		// A stream finding every worker busy gets a new goroutine, so
		// there are enough for the concurrent calls of a busy server (a
		// worker per CPU was one worker on a one-CPU server, where
		// profiles of 32 concurrent lookups showed a sixth of the CPU in
		// stack growth); an idle worker costs only its stack.
		grpc.NumStreamWorkers(uint32(max(streamWorkers, runtime.GOMAXPROCS(0)))),
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxSendMsgSize(int(max(MaxMsgSize, limits.maxBytes+replySlack))),
		experimental.BufferPool(bufferPool),
		grpc.ForceServerCodecV2(serverCodec{}),
		// Clients may ping every 10 s, even when idle (long-lived
		// connections between sites); more often is abuse and gets the
		// connection closed. The server checks on idle connections every
		// minute and drops peers that do not answer in 20 s.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Minute,
			Timeout: 20 * time.Second,
		}),
	)...)
	hs := health.NewServer() // the overall service "" starts SERVING
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	return &Server{grpc: gs, health: hs}, nil
}

// RegisterService registers a service implementation and marks it SERVING in
// the health service. It implements grpc.ServiceRegistrar, so that generated
// Register functions take a *Server: rlsv1.RegisterCatalogServer(s, impl).
// It must be called before Serve.
func (s *Server) RegisterService(sd *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(sd, impl)
	s.health.SetServingStatus(sd.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

// SetServing sets a registered service's status in the health service:
// SERVING, or NOT_SERVING while it cannot answer (its storage is not
// reachable yet). After Shutdown it changes nothing.
func (s *Server) SetServing(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(service, st)
}

// Serve accepts connections on lis until Shutdown. It returns nil after
// Shutdown, and the listener's error if accepting fails otherwise.
func (s *Server) Serve(lis net.Listener) error {
	return s.grpc.Serve(lis)
}

// Shutdown stops the server: every service turns NOT_SERVING in the health
// service (so that load balancers and probes stop sending work), then calls
// in flight may finish until ctx is done, after which the remaining ones are
// cancelled (their contexts are done) and their connections closed.
// Shutdown returns once every handler has returned, so that storage can be
// closed after it: nil if the server drained in time, ctx.Err() if it had to
// cancel calls.
func (s *Server) Shutdown(ctx context.Context) error {
	s.health.Shutdown()
	drained := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(drained)
	}()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		s.grpc.Stop()
		<-drained
		return ctx.Err()
	}
}
