package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/mirror"
)

func TestStatusOf(t *testing.T) {
	item := func(sentinel error) error {
		return &catalog.Error{Op: "create", Item: "123", Reason: "why", Err: sentinel}
	}
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{nil, codes.OK},
		{item(catalog.ErrNotFound), codes.NotFound},
		{item(catalog.ErrExists), codes.AlreadyExists},
		{item(catalog.ErrInvalid), codes.InvalidArgument},
		{item(catalog.ErrPrecondition), codes.FailedPrecondition},
		{item(catalog.ErrClosed), codes.Unavailable},
		{fmt.Errorf("wrapped: %w", item(catalog.ErrNotFound)), codes.NotFound},
		{fmt.Errorf("%w: 123", mirror.ErrNotFound), codes.NotFound},
		{fmt.Errorf("%w: sunum \"01\"", mirror.ErrInvalid), codes.InvalidArgument},
		{mirror.ErrClosed, codes.Unavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("waiting: %w", context.Canceled), codes.Canceled},
		{status.Error(codes.InvalidArgument, "op: bad"), codes.InvalidArgument},
		{errors.New("disk on fire"), codes.Internal},
	} {
		s := statusOf(tc.err)
		if s.Code() != tc.code {
			t.Errorf("statusOf(%v) = %v, want %v", tc.err, s.Code(), tc.code)
		}
		if tc.err != nil && s.Message() != tc.err.Error() && status.Convert(tc.err).Message() != s.Message() {
			t.Errorf("statusOf(%v) message %q lost the error's text", tc.err, s.Message())
		}
		if st := itemStatus(tc.err); st.GetCode() != int32(tc.code) || st.GetMessage() != s.Message() {
			t.Errorf("itemStatus(%v) = %v, want the same code and message as statusOf", tc.err, st)
		}
	}
}

func TestBulkStatuses(t *testing.T) {
	errs := []error{nil, &catalog.Error{Op: "add", Item: "1", Err: catalog.ErrExists}, nil, errors.New("x")}
	got, failed := bulkStatuses(errs)
	if failed != 2 || len(got) != len(errs) {
		t.Fatalf("bulkStatuses: %d statuses, %d failed; want %d, 2", len(got), failed, len(errs))
	}
	for i, want := range []codes.Code{codes.OK, codes.AlreadyExists, codes.OK, codes.Internal} {
		if got[i].GetCode() != int32(want) {
			t.Errorf("status %d = %v, want %v", i, got[i], want)
		}
	}
}

// TestCodeName checks every code's name, as google.rpc.Code and scripts
// reading rlsctl's output spell it, and that CodeFromName reverses it.
func TestCodeName(t *testing.T) {
	for c, want := range []string{
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
		"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
		"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
	} {
		code := codes.Code(c)
		if got := CodeName(code); got != want {
			t.Errorf("CodeName(%v) = %q, want %q", code, got, want)
		}
		if back, ok := CodeFromName(want); !ok || back != code {
			t.Errorf("CodeFromName(%q) = %v, %v; want %v", want, back, ok, code)
		}
	}
	if got := CodeName(99); got != "CODE_99" {
		t.Errorf("CodeName(99) = %q, want CODE_99", got)
	}
	for _, name := range []string{"CODE_99", "NotFound", "not_found", ""} {
		if c, ok := CodeFromName(name); ok {
			t.Errorf("CodeFromName(%q) = %v, want none", name, c)
		}
	}
}
