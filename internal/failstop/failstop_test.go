package failstop

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// stallHandler is a slog handler whose first record blocks until release
// is closed, holding Fail between publishing the failure and closing Done.
type stallHandler struct {
	entered chan struct{}
	release chan struct{}
}

func (h *stallHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *stallHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *stallHandler) WithGroup(string) slog.Handler            { return h }
func (h *stallHandler) Handle(context.Context, slog.Record) error {
	close(h.entered)
	<-h.release
	return nil
}

// TestErrImpliesDone: a caller told the store failed (by Err, by Apply's
// early check) finds Done closed. Pebble's WAL goroutine may fail the store
// while a writer is between its commit and its sync wait; the writer then
// returns the failure, and its caller must be able to rely on Done.
func TestErrImpliesDone(t *testing.T) {
	h := &stallHandler{entered: make(chan struct{}), release: make(chan struct{})}
	g := New("test", t.TempDir(), slog.New(h))
	go func() { _ = g.Fail(syscall.ENOSPC) }() // as Pebble's WAL writer does on a failed write
	<-h.entered                                // the failure is published; Done not closed yet

	type result struct {
		err  error
		done bool
	}
	observe := func(err error) result {
		select {
		case <-g.Done():
			return result{err, true}
		default:
			return result{err, false}
		}
	}
	res := make(chan result, 2)
	go func() { res <- observe(g.Err()) }()
	go func() { res <- observe(g.Apply(func() error { return nil })) }()

	// Without the wait in Err, both return at once with Done still open.
	select {
	case r := <-res:
		t.Fatalf("returned %v while Fail was still running (Done closed: %v)", r.err, r.done)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.release)
	for range 2 {
		r := <-res
		var e *Error
		if !errors.As(r.err, &e) || !errors.Is(r.err, syscall.ENOSPC) {
			t.Errorf("got %v, want the store's *Error wrapping ENOSPC", r.err)
		}
		if !r.done {
			t.Errorf("got %v with Done still open", r.err)
		}
	}
}
