package api

import (
	"context"
	"fmt"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// Default reply limits (ServerOptions.MaxReplyBytes, MaxReplyItems). A
// reply is refused with RESOURCE_EXHAUSTED before it holds more, so that a
// request of a few KiB (one LFN with many PFNs, repeated 100,000 times)
// cannot make the server allocate GiBs to build an answer it could not
// send anyway.
const (
	DefaultMaxReplyBytes = MaxMsgSize
	DefaultMaxReplyItems = 1 << 20
)

// replySlack is what the server may send beyond MaxReplyBytes: a reply's
// size is estimated from what it holds (see strSize), a little above its
// encoded size, so that the budget, with its clear message, refuses a
// reply before gRPC's own send limit would.
const replySlack = 1 << 20

// replyLimits bound every reply of one server.
type replyLimits struct {
	maxBytes, maxItems int64
}

func (l replyLimits) orDefault() replyLimits {
	if l.maxBytes <= 0 {
		l.maxBytes = DefaultMaxReplyBytes
	}
	if l.maxItems <= 0 {
		l.maxItems = DefaultMaxReplyItems
	}
	return l
}

type limitsKey struct{}

// withReplyLimits is what the server's request interceptor gives every
// handler's context.
func withReplyLimits(ctx context.Context, l replyLimits) context.Context {
	return context.WithValue(ctx, limitsKey{}, l)
}

// replyBudget bounds one reply while it is built: each handler that builds
// a reply of a size the request does not bound (names with many mappings,
// pages, manifests, located sites) makes one, and charges it as it appends
// entries, so that it stops at the limit instead of checking the size of
// a finished reply. It is safe for concurrent use (Locate with verify
// charges it from one goroutine per site).
type replyBudget struct {
	lim          replyLimits
	hint         string // what the client may do instead: "ask for fewer LFNs or page"
	bytes, items atomic.Int64
}

// newReplyBudget returns a budget with the limits of ctx's server (the
// defaults outside one). hint completes its error message.
func newReplyBudget(ctx context.Context, hint string) *replyBudget {
	l, _ := ctx.Value(limitsKey{}).(replyLimits)
	return &replyBudget{lim: l.orDefault(), hint: hint}
}

// charge adds the bytes and items of what the caller is about to append.
// Once either total passes its limit, charge returns RESOURCE_EXHAUSTED
// naming the limit (and keeps doing so): the caller drops the reply.
func (b *replyBudget) charge(bytes, items int) error {
	if n := b.bytes.Add(int64(bytes)); n > b.lim.maxBytes {
		return status.Errorf(codes.ResourceExhausted, "reply would exceed %s (max_reply_bytes); %s", sizeText(b.lim.maxBytes), b.hint)
	}
	if n := b.items.Add(int64(items)); n > b.lim.maxItems {
		return status.Errorf(codes.ResourceExhausted, "reply would exceed %d items (max_reply_items); %s", b.lim.maxItems, b.hint)
	}
	return nil
}

// strSize is the most a string field of n bytes takes in a message: its
// tag, its length and its bytes. msgSize is the same for a message field
// (the tag and the length) holding n bytes of fields.
func strSize(s string) int { return 2 + protowire.SizeBytes(len(s)) }

func msgSize(n int) int { return 2 + protowire.SizeBytes(n) }

// sizeText prints a byte count as "64 MiB" when it is a whole number of
// MiB, else as "1234 bytes".
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// statusOverhead is the most an OK or short Status takes in a bulk
// result; the message of a failed item is charged on its own.
const statusOverhead = 2 + 2 + 6 + 4
