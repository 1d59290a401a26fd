package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/pgtest"
)

func TestSchemaVersionRefused(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	openDSN(t, dsn).Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, tc := range []struct {
		sql  string
		want error
		text string
	}{
		{`UPDATE rls_schema_migrations SET version = 99`, ErrSchemaTooNew, fmt.Sprintf("version 99, this rls knows versions up to %d", SchemaVersion())},
		{`UPDATE rls_schema_migrations SET version = 1, dirty = true`, ErrSchemaDirty, "version 1"},
	} {
		if _, err := conn.Exec(ctx, tc.sql); err != nil {
			t.Fatal(err)
		}
		c, err := Open(ctx, dsn, &Options{Logger: quiet})
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Fatalf("Open after %q: %v; want %v naming %q", tc.sql, err, tc.want, tc.text)
		}
	}
	// Refusing changed nothing: the meta row and the version are as left.
	var v int
	if err := conn.QueryRow(ctx, `SELECT version FROM rls_schema_migrations`).Scan(&v); err != nil || v != 1 {
		t.Fatalf("version %d, %v", v, err)
	}
}

// TestSharedWriters has two processes' catalogs (two pools) write the same
// names concurrently. Exactly one create of each LFN wins; the feed's
// positions are dense and in commit order, so that replaying the feed's
// LFN additions and removals gives the LFNs the catalog holds; and the
// counts match.
func TestSharedWriters(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	cats := []*Catalog{openDSN(t, dsn), openDSN(t, dsn)}
	const workers, ops, names = 8, 60, 20
	var wins [names]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cats[w%2]
			for i := range ops {
				n := (w*7 + i*3) % names
				lfn := "l" + strconv.Itoa(n)
				pfn := fmt.Sprintf("/p%d", w%3)
				var err error
				switch i % 4 {
				case 0, 1:
					if _, err = c.Create(ctx, lfn, pfn); err == nil {
						wins[n].Add(1)
					}
				case 2:
					_, err = c.Add(ctx, lfn, pfn+"x")
				case 3:
					_, err = c.Delete(ctx, lfn, pfn)
				}
				var ce *catalog.Error
				if err != nil && !errors.As(err, &ce) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	chs, err := cats[0].Changes(ctx, 1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for i, ch := range chs {
		if ch.Seq != uint64(i+1) {
			t.Fatalf("record %d has position %d: positions must be dense", i, ch.Seq)
		}
		if ch.LFNAdded {
			if live[ch.LFN] {
				t.Fatalf("position %d adds LFN %s, which the feed already holds", ch.Seq, ch.LFN)
			}
			live[ch.LFN] = true
		}
		if ch.LFNRemoved {
			if !live[ch.LFN] {
				t.Fatalf("position %d removes LFN %s, which the feed does not hold", ch.Seq, ch.LFN)
			}
			delete(live, ch.LFN)
		}
	}
	var have []string
	seq, err := cats[1].ForEachLFN(ctx, func(l string) error { have = append(have, l); return nil })
	if err != nil || seq != uint64(len(chs)) {
		t.Fatalf("ForEachLFN at %d, %v; the feed has %d records", seq, err, len(chs))
	}
	replayed := make([]string, 0, len(live))
	for l := range live {
		replayed = append(replayed, l)
	}
	slices.Sort(replayed)
	if !slices.Equal(have, replayed) {
		t.Fatalf("the catalog holds %v, the feed replays to %v", have, replayed)
	}
	st, err := cats[1].Stats(ctx)
	if err != nil || st.LFNs != uint64(len(have)) || st.Seq != seq {
		t.Fatalf("stats %+v, %v; want %d LFNs at %d", st, err, len(have), seq)
	}
	creates := 0
	for _, ch := range chs {
		if ch.Kind == catalog.ChangeCreate {
			creates++
		}
	}
	total := 0
	for i := range wins {
		total += int(wins[i].Load())
	}
	if total != creates {
		t.Fatalf("%d creates acknowledged, the feed has %d", total, creates)
	}
}

// TestWaitChangesAcrossProcesses: a waiter wakes on another process's
// write, by notification and, without one, by polling.
func TestWaitChangesAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := newDB(t)
	reader := openDSN(t, dsn)
	slow, err := Open(ctx, dsn, &Options{Logger: quiet, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	writer := openDSN(t, dsn)
	for i, tc := range []struct {
		name   string
		waiter *Catalog
		notify bool
	}{{"notified", slow, true}, {"polled", reader, false}} {
		t.Run(tc.name, func(t *testing.T) {
			waitListening(t, tc.waiter)
			writer.notify.Store(tc.notify)
			done := make(chan error, 1)
			go func() { done <- tc.waiter.WaitChanges(ctx, uint64(i+1)) }()
			if _, err := writer.Create(ctx, "w"+strconv.Itoa(i), "/p"); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitListening waits until c's listener runs.
func waitListening(t *testing.T, c *Catalog) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !c.notify.Load(); {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestExclusive: of two processes, one at a time runs the task; when the
// holder's session ends (its process died), the other takes over.
func TestExclusive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := newDB(t)
	var running, maxRunning atomic.Int32
	started := make(chan int, 10)
	task := func(id int) func(context.Context) error {
		return func(ctx context.Context) error {
			n := running.Add(1)
			defer running.Add(-1)
			for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
			}
			started <- id
			<-ctx.Done()
			return nil
		}
	}
	var wg sync.WaitGroup
	for id := range 2 {
		c := openDSN(t, dsn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Exclusive(ctx, "t", 100*time.Millisecond, task(id))
		}()
	}
	first := <-started
	// The holder's process dies: its session ends.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted`); err != nil {
		t.Fatal(err)
	}
	second := <-started
	cancel()
	wg.Wait()
	if maxRunning.Load() != 1 {
		t.Fatalf("%d tasks ran at once", maxRunning.Load())
	}
	t.Logf("first holder %d, then %d", first, second)
}

// TestServerRestart: with the server down, operations fail with
// ErrUnavailable; once it is back, they succeed again without reopening,
// and what was acknowledged is there.
func TestServerRestart(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t, pgtest.Options{})
	c := openDSN(t, createDB(t, srv))
	if _, err := c.Create(ctx, "a", "/p"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, "b", "/p"); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("create with the server down: %v, want ErrUnavailable", err)
	}
	if _, err := c.QueryLFN(ctx, "a"); !errors.Is(err, catalog.ErrUnavailable) {
		t.Fatalf("query with the server down: %v, want ErrUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The pool may hand out a connection that died with the server once;
	// the call after it succeeds.
	var pfns []string
	var err error
	for range 3 {
		if pfns, err = c.QueryLFN(ctx, "a"); err == nil {
			break
		}
	}
	if err != nil || len(pfns) != 1 {
		t.Fatalf("after the restart: %v, %v", pfns, err)
	}
	if _, err := c.Create(ctx, "b", "/p"); err != nil {
		t.Fatal(err)
	}
}
