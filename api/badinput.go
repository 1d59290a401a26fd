package api

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Requests with invalid UTF-8 in a string field.
//
// proto3 string fields must hold UTF-8, and the proto codec refuses to
// decode a message where one does not. gRPC turns any codec error into
// INTERNAL before an interceptor or handler runs, so that the client
// would learn nothing and the server would log nothing. Instead, the
// server codec (serverCodec.Unmarshal) finds the offending field, records
// an INVALID_ARGUMENT naming it against the message and reports success;
// the request interceptor (requestUnary, requestStream), which runs before
// any handler sees the message, takes that error and answers with it. The
// two are installed together by NewServer, and only there.

// decodeErrs maps a message that the server codec could not decode to the
// error to answer with. Entries live from the codec's Unmarshal to the
// interceptor's takeDecodeErr a moment later.
var decodeErrs sync.Map // any (the message pointer) → error

// recordBadUTF8 is called by the server codec when decoding b into m
// failed with err. If a string field of b is not UTF-8, it records an
// INVALID_ARGUMENT naming the field for m and returns nil; otherwise it
// returns err.
func recordBadUTF8(b []byte, m any, err error) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return err
	}
	field, ok := invalidUTF8Field(b, pm.ProtoReflect().Descriptor())
	if !ok {
		return err
	}
	decodeErrs.Store(m, invalidArg(field, "not valid UTF-8 (string fields must be UTF-8)"))
	return nil
}

// takeDecodeErr returns, and forgets, the error recorded for m.
func takeDecodeErr(m any) error {
	if err, ok := decodeErrs.LoadAndDelete(m); ok {
		return err.(error)
	}
	return nil
}

// invalidUTF8Field returns the path of the first string field of the
// serialized message b (of type md) that is not valid UTF-8, named as in
// the .proto with an index for repeated fields ("mappings[3].lfn"), and
// whether there is one.
func invalidUTF8Field(b []byte, md protoreflect.MessageDescriptor) (string, bool) {
	var seen map[protowire.Number]int // occurrences of repeated fields so far
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		name := string(fd.Name())
		if fd.IsList() || fd.IsMap() {
			if seen == nil {
				seen = make(map[protowire.Number]int)
			}
			name = fmt.Sprintf("%s[%d]", name, seen[num])
			seen[num]++
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if !utf8.Valid(v) {
				return name, true
			}
		case protoreflect.MessageKind:
			if sub, ok := invalidUTF8Field(v, fd.Message()); ok {
				return name + "." + sub, true
			}
		}
	}
	return "", false
}

// requestUnary is the innermost interceptor: it answers a request the
// codec could not decode with the error recorded for it (logged, see
// rejectLog), and gives the handler's context the server's reply limits.
func requestUnary(l replyLimits, rl *rejectLog) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := takeDecodeErr(req); err != nil {
			rl.log(ctx, info.FullMethod, err)
			return nil, err
		}
		return handler(withReplyLimits(ctx, l), req)
	}
}

func requestStream(l replyLimits, rl *rejectLog) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &checkedStream{ServerStream: ss, ctx: withReplyLimits(ss.Context(), l), method: info.FullMethod, rl: rl})
	}
}

// checkedStream is a server stream whose received messages are checked
// for decoding errors, as requestUnary checks a unary request.
type checkedStream struct {
	grpc.ServerStream
	ctx    context.Context
	method string
	rl     *rejectLog
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := takeDecodeErr(m); err != nil {
		s.rl.log(s.ctx, s.method, err)
		return err
	}
	return nil
}

// rejectLog logs requests refused as undecodable at warn level, at most
// one line a second, counting those it left out. It is safe for concurrent
// use.
type rejectLog struct {
	logger  *slog.Logger
	next    atomic.Int64 // unix nanoseconds before which lines are left out
	dropped atomic.Int64
}

func (r *rejectLog) log(ctx context.Context, method string, err error) {
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(time.Second)) {
		r.dropped.Add(1)
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("error", status.Convert(err).Message()),
		slog.Int64("suppressed", r.dropped.Swap(0)),
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer", p.Addr.String()))
	}
	r.logger.LogAttrs(ctx, slog.LevelWarn, "refused an undecodable request", attrs...)
}
