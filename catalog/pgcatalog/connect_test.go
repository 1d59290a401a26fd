package pgcatalog

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/pgtest"
)

// syncBuffer is a log destination safe for concurrent use.
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

// TestOpenBackground opens catalogs on a server that is down: without
// Options.Background Open fails with ErrUnavailable; with it, Open
// returns a catalog whose operations fail with ErrUnavailable (and that
// logs its failed attempts) until the server is started, after which it
// connects by itself, migrates, and serves. A database whose schema turns
// out newer than known when it comes back ends the retrying with
// ErrSchemaTooNew.
func TestOpenBackground(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t, pgtest.Options{NoSync: true})
	dsn := createDB(t, srv)
	newer := createDB(t, srv)
	openDSN(t, newer).Close()
	conn, err := pgx.Connect(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE rls_schema_migrations SET version = 99`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}

	if c, err := Open(ctx, dsn, &Options{Logger: quiet}); !errors.Is(err, catalog.ErrUnavailable) {
		if err == nil {
			c.Close()
		}
		t.Fatalf("Open with the server down = %v, want ErrUnavailable", err)
	}
	var logs syncBuffer
	opts := &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Background: true, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	c, err := Open(ctx, dsn, opts)
	if err != nil {
		t.Fatalf("Open(Background) with the server down: %v", err)
	}
	defer c.Close()
	tooNew, err := Open(ctx, newer, &Options{Logger: quiet, Background: true, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(Background) with the server down: %v", err)
	}
	defer tooNew.Close()

	select {
	case <-c.Ready():
		t.Fatal("Ready closed with the server down")
	default:
	}
	if _, err := c.Create(ctx, "100", "/p/100"); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("Create before connecting = %v, want ErrUnavailable", err)
	}
	if _, err := c.QueryLFN(ctx, "100"); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("QueryLFN before connecting = %v, want ErrUnavailable", err)
	}
	if inc := c.Incarnation(); inc != ([catalog.IncarnationLen]byte{}) {
		t.Fatalf("incarnation before connecting = %x, want none", inc)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "cannot be reached") })

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, cat := range []*Catalog{c, tooNew} {
		select {
		case <-cat.Ready():
		case <-time.After(30 * time.Second):
			t.Fatal("not connected 30 s after the server started")
		}
	}
	if err := c.ReadyErr(); err != nil {
		t.Fatalf("ReadyErr = %v", err)
	}
	if _, err := c.Create(ctx, "100", "/p/100"); err != nil {
		t.Fatalf("Create once connected: %v", err)
	}
	if pfns, err := c.QueryLFN(ctx, "100"); err != nil || len(pfns) != 1 || pfns[0] != "/p/100" {
		t.Fatalf("QueryLFN once connected = %v, %v", pfns, err)
	}
	if inc := c.Incarnation(); inc == ([catalog.IncarnationLen]byte{}) {
		t.Fatal("no incarnation once connected")
	}
	if err := tooNew.ReadyErr(); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("ReadyErr of a database with a newer schema = %v, want ErrSchemaTooNew", err)
	}
	if _, err := tooNew.QueryLFN(ctx, "100"); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("QueryLFN after giving up = %v, want ErrSchemaTooNew", err)
	}
}

// TestOpenBadDSN: a DSN that cannot be parsed fails Open at once with
// ErrDSN, with or without Background.
func TestOpenBadDSN(t *testing.T) {
	for _, bg := range []bool{false, true} {
		c, err := Open(context.Background(), "postgres://rls@127.0.0.1:99999999/rls", &Options{Logger: quiet, Background: bg})
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, ErrDSN) {
			t.Fatalf("Open(Background %v) of a malformed DSN = %v, want ErrDSN", bg, err)
		}
	}
}

// waitFor polls cond (a log line written by another goroutine) for up to
// 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
	}
}
