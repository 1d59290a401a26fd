package api

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/failstop"
	"github.com/solar-archive/rls/internal/secure"
	"github.com/solar-archive/rls/mirror"
)

// statusOf is the one place where errors become gRPC statuses. Every handler
// returns statusOf(err).Err() and every bulk item's Status is built from it,
// so a given failure has the same code whether it ends a call or one item.
//
// The catalog's sentinels, and the index's and mirror's alike, map to their
// codes (ErrNotFound, index.ErrUnknownTarget and mirror.ErrNotFound →
// NOT_FOUND,
// ErrExists → ALREADY_EXISTS, ErrInvalid → INVALID_ARGUMENT, ErrPrecondition →
// FAILED_PRECONDITION, index.ErrFull → RESOURCE_EXHAUSTED, ErrClosed and ErrUnavailable →
// UNAVAILABLE; index.ErrOutOfSequence and index.ErrReplay →
// FAILED_PRECONDITION; secure.ErrDenied → PERMISSION_DENIED), a store
// stopped by a storage error to RESOURCE_EXHAUSTED (disk full) or
// UNAVAILABLE, context errors to
// DEADLINE_EXCEEDED or CANCELED, statuses made by this package pass through,
// and anything else is INTERNAL. The message is err.Error(), which for
// catalog errors names the operation and the item. statusOf(nil) is OK.
func statusOf(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	var code codes.Code
	var failed *failstop.Error
	switch {
	case errors.As(err, &failed):
		// A store that stopped after a storage error: RESOURCE_EXHAUSTED
		// when its disk is full (the message names the data directory),
		// UNAVAILABLE otherwise; rlsd exits and a restart serves again.
		code = codes.Unavailable
		if failed.DiskFull() {
			code = codes.ResourceExhausted
		}
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, index.ErrUnknownTarget), errors.Is(err, mirror.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, catalog.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, catalog.ErrInvalid), errors.Is(err, index.ErrInvalid), errors.Is(err, mirror.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, catalog.ErrPrecondition), errors.Is(err, index.ErrOutOfSequence), errors.Is(err, index.ErrReplay),
		errors.Is(err, index.ErrNoTargets):
		code = codes.FailedPrecondition
	case errors.Is(err, index.ErrFull):
		code = codes.ResourceExhausted
	case errors.Is(err, secure.ErrDenied):
		code = codes.PermissionDenied
	case errors.Is(err, catalog.ErrClosed), errors.Is(err, catalog.ErrUnavailable), errors.Is(err, index.ErrClosed), errors.Is(err, mirror.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	default:
		if s, ok := status.FromError(err); ok {
			return s
		}
		code = codes.Internal
	}
	return status.New(code, err.Error())
}

// toStatusErr converts err for return from a handler; nil stays nil.
func toStatusErr(err error) error {
	if err == nil {
		return nil
	}
	return statusOf(err).Err()
}

// itemStatus is the bulk-call Status of one item whose outcome is err.
func itemStatus(err error) *rlsv1.Status {
	s := statusOf(err)
	return &rlsv1.Status{Code: int32(s.Code()), Message: s.Message()}
}

// bulkStatuses converts the per-item errors of a bulk catalog call into
// Statuses in the same order, and counts the failures.
func bulkStatuses(errs []error) ([]*rlsv1.Status, uint64) {
	out := make([]*rlsv1.Status, len(errs))
	var failed uint64
	for i, err := range errs {
		if err != nil {
			failed++
		}
		out[i] = itemStatus(err)
	}
	return out, failed
}

// invalidArg is the error for a malformed request field, named as in the
// .proto (with an index for repeated fields: "writes[3].value").
func invalidArg(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// codeName is the canonical upper-case name of a gRPC code (NOT_FOUND), as
// in google.rpc.Code; grpc-go's String gives the Go name (NotFound).
func codeName(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	var b strings.Builder
	lower := false // the rune before was lower case
	for _, r := range c.String() {
		if unicode.IsUpper(r) && lower {
			b.WriteByte('_')
		}
		lower = unicode.IsLower(r)
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
