package api

import (
	"bytes"
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The server's cross-cutting concerns, one interceptor each. NewServer chains
// them outermost first: metrics, logging, recovery, request (badinput.go:
// undecodable requests, reply limits). Recovery is inside logging and
// metrics so that a panic reaches them as the INTERNAL status it becomes.

// recoveryUnary turns a handler panic into INTERNAL and logs it, with the
// stack, at error level. The client never sees the panic value.
func recoveryUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (_ any, err error) {
		defer recoverPanic(ctx, log, info.FullMethod, &err)
		return handler(ctx, req)
	}
}

func recoveryStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer recoverPanic(ss.Context(), log, info.FullMethod, &err)
		return handler(srv, ss)
	}
}

// recoverPanic must be deferred directly by the interceptor.
//
// A panic raised inside Pebble is not recovered: Pebble panics with its
// commit pipeline's locks held, so a server that went on would hang or serve
// a store in an unknown state. Such a panic is logged and re-raised, which
// ends the process (the stores turn their own Pebble panics into a clean
// fail-stop first; this catches the rest).
func recoverPanic(ctx context.Context, log *slog.Logger, method string, errp *error) {
	if r := recover(); r != nil {
		stack := debug.Stack()
		if bytes.Contains(stack, []byte("github.com/cockroachdb/pebble")) {
			log.ErrorContext(ctx, "panic inside Pebble; stopping the process", "method", method, "panic", r, "stack", string(stack))
			panic(r)
		}
		log.ErrorContext(ctx, "panic in gRPC handler", "method", method, "panic", r, "stack", string(stack))
		*errp = status.Errorf(codes.Internal, "internal error in %s", method)
	}
}

// loggingUnary logs every call once it is done: at debug level when it
// succeeded or failed because of what the client asked (NOT_FOUND,
// ALREADY_EXISTS, INVALID_ARGUMENT), at warn level otherwise.
func loggingUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, log, info.FullMethod, start, err)
		return resp, err
	}
}

func loggingStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), log, info.FullMethod, start, err)
		return err
	}
}

func logCall(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelWarn
	switch code {
	case codes.OK, codes.NotFound, codes.AlreadyExists, codes.InvalidArgument:
		level = slog.LevelDebug
	}
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("duration", time.Since(start)),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
	}
	log.LogAttrs(ctx, level, "grpc request", attrs...)
}

// metricsUnary counts every call by method and code and observes its
// duration.
func metricsUnary(m *metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observe(info.FullMethod, start, err)
		return resp, err
	}
}

func metricsStream(m *metrics) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.observe(info.FullMethod, start, err)
		return err
	}
}

func (m *metrics) observe(method string, start time.Time, err error) {
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}
