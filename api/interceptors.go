package api

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The server's cross-cutting concerns come from go-grpc-middleware, one
// interceptor each. chain orders them outermost first:
//
//	metrics → logging → opts.Unary/opts.Stream (e.g. authorization) → recovery → request
//
// Recovery is innermost so that a panic reaches logging and metrics as the
// INTERNAL status it becomes; the extra interceptors run after a call is
// counted and logged, so that what they refuse is counted and logged too.
// The request interceptor (badinput.go: undecodable requests, reply limits)
// is added last by NewServer.

// interceptorChain is the server's interceptor chain, in the order above.
type interceptorChain struct {
	unary  []grpc.UnaryServerInterceptor
	stream []grpc.StreamServerInterceptor
}

func (c *interceptorChain) add(u grpc.UnaryServerInterceptor, s grpc.StreamServerInterceptor) {
	c.unary = append(c.unary, u)
	c.stream = append(c.stream, s)
}

// newInterceptorChain builds the chain for opts; log is the resolved
// logger. It fails only if the metrics cannot be registered.
func newInterceptorChain(opts ServerOptions, log *slog.Logger) (*interceptorChain, error) {
	c := &interceptorChain{}
	if opts.Registerer != nil {
		m, err := newServerMetrics(opts.Registerer)
		if err != nil {
			return nil, err
		}
		c.add(m.UnaryServerInterceptor(), m.StreamServerInterceptor())
	}
	logOpts := []logging.Option{
		logging.WithLogOnEvents(logging.FinishCall),
		logging.WithLevels(logLevel),
	}
	c.add(quietUnaryLogging(log, logging.UnaryServerInterceptor(slogLogger(log), logOpts...)),
		logging.StreamServerInterceptor(slogLogger(log), logOpts...))
	c.unary = append(c.unary, opts.Unary...)
	c.stream = append(c.stream, opts.Stream...)
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		return recovered(ctx, log, p)
	})
	c.add(recovery.UnaryServerInterceptor(rec), recovery.StreamServerInterceptor(rec))
	return c, nil
}

// newServerMetrics registers the standard gRPC server metrics with reg:
//
//	grpc_server_started_total{grpc_type,grpc_service,grpc_method}             counter
//	grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}   counter
//	grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}        counter
//	grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}            counter
//	grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}          histogram
//
// grpc_code is the Go name of the status code ("OK", "NotFound").
func newServerMetrics(reg prometheus.Registerer) (*grpcprom.ServerMetrics, error) {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		// 100µs .. ~100s: a single lookup is sub-millisecond, a bulk
		// write of 100,000 items with fsync can take seconds.
		grpcprom.WithHistogramBuckets(prometheus.ExponentialBuckets(0.0001, 4, 11)),
	))
	if err := reg.Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

// quietUnaryLogging returns full, go-grpc-middleware's logging
// interceptor, for when log writes debug lines; otherwise, when only the
// calls that end with a warn-level code (see logLevel) are logged, it runs
// the handler without it and writes their "finished call" line itself,
// with the library's field names and values (the start time, the
// deadline, the duration as grpc.time_ms). The library builds a call's
// fields before the call (a formatted start time, the peer's address),
// which was 8% of a one-CPU server's time for single-LFN lookups, for a
// line that is then dropped; here a successful call costs a clock read
// and a level check.
func quietUnaryLogging(log *slog.Logger, full grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if log.Enabled(ctx, slog.LevelDebug) {
			return full(ctx, req, info, handler)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		code := status.Code(err)
		level := logLevel(code)
		if level == logging.LevelDebug || !log.Enabled(ctx, slog.Level(level)) {
			return resp, err
		}
		cm := interceptors.NewServerCallMeta(info.FullMethod, nil, req)
		fields := logging.Fields{
			logging.SystemTag[0], logging.SystemTag[1],
			logging.ComponentFieldKey, logging.KindServerFieldValue,
			logging.ServiceFieldKey, cm.Service,
			logging.MethodFieldKey, cm.Method,
			logging.MethodTypeFieldKey, string(cm.Typ),
		}
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			fields = append(fields, "peer.address", p.Addr.String())
		}
		fields = append(fields, "grpc.start_time", start.Format(time.RFC3339))
		if d, ok := ctx.Deadline(); ok {
			fields = append(fields, "grpc.request.deadline", d.Format(time.RFC3339))
		}
		fields = append(fields, "grpc.code", code.String())
		if err != nil {
			fields = append(fields, "grpc.error", fmt.Sprintf("%v", err))
		}
		fields = append(fields, logging.DurationToTimeMillisFields(time.Since(start))...)
		log.Log(ctx, slog.Level(level), "finished call", fields...)
		return resp, err
	}
}

// logLevel is the level of a finished call's log line: debug when it
// succeeded or failed because of what the client asked (NOT_FOUND,
// ALREADY_EXISTS, INVALID_ARGUMENT), warn otherwise.
func logLevel(code codes.Code) logging.Level {
	switch code {
	case codes.OK, codes.NotFound, codes.AlreadyExists, codes.InvalidArgument:
		return logging.LevelDebug
	}
	return logging.LevelWarn
}

// slogLogger adapts log to the logging interceptor: one "finished call"
// line per call, with the interceptor's grpc.* and peer.address fields.
func slogLogger(log *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, level logging.Level, msg string, fields ...any) {
		log.Log(ctx, slog.Level(level), msg, fields...)
	})
}

// recovered handles a handler panic p for the recovery interceptor, which
// calls it from its deferred recover, while the panicking frames are still
// on the stack. The client gets INTERNAL, never the panic value; the log
// gets the value and the stack at error level.
//
// A panic raised inside Pebble is not recovered: Pebble panics with its
// commit pipeline's locks held, so a server that went on would hang or serve
// a store in an unknown state. Such a panic is logged and re-raised, which
// ends the process (the stores turn their own Pebble panics into a clean
// fail-stop first; this catches the rest).
func recovered(ctx context.Context, log *slog.Logger, p any) error {
	stack := debug.Stack()
	method, _ := grpc.Method(ctx)
	if bytes.Contains(stack, []byte("github.com/cockroachdb/pebble")) {
		log.ErrorContext(ctx, "panic inside Pebble; stopping the process", "method", method, "panic", p, "stack", string(stack))
		panic(p)
	}
	log.ErrorContext(ctx, "panic in gRPC handler", "method", method, "panic", p, "stack", string(stack))
	return status.Errorf(codes.Internal, "internal error in %s", method)
}
