package pgcatalog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// leaseHelperEnv, set to a DSN, makes the test binary a process that holds
// the lease "t" of that database (forced LockLease) until it is killed:
// TestMain runs leaseHelper instead of the tests.
const leaseHelperEnv = "RLS_PGCATALOG_LEASE_HOLDER_DSN"

// leaseInterval is the tests' Exclusive interval (lease ttl 5 × that).
const leaseInterval = 100 * time.Millisecond

// leaseHelper holds the lease and says "holding" on stdout while its task
// runs. It returns only if Exclusive fails.
func leaseHelper(dsn string) int {
	ctx := context.Background()
	c, err := Open(ctx, dsn, &Options{Logger: quiet, SenderLock: LockLease})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err = c.Exclusive(ctx, "t", leaseInterval, func(ctx context.Context) error {
		fmt.Println("holding")
		<-ctx.Done()
		return nil
	})
	fmt.Fprintln(os.Stderr, "lease holder:", err)
	return 1
}

// busyCounter counts, through testHookLeaseBusy, the attempts to take a
// lease that another holder had, and lets a test wait for some.
type busyCounter struct {
	mu   sync.Mutex
	n    int
	more chan struct{} // closed and replaced at each attempt
}

func countBusy(t *testing.T) *busyCounter {
	b := &busyCounter{more: make(chan struct{})}
	testHookLeaseBusy = func() {
		b.mu.Lock()
		b.n++
		close(b.more)
		b.more = make(chan struct{})
		b.mu.Unlock()
	}
	t.Cleanup(func() { testHookLeaseBusy = nil })
	return b
}

// wait returns once n more attempts than now found the lease taken.
func (b *busyCounter) wait(t *testing.T, n int) {
	t.Helper()
	b.mu.Lock()
	want := b.n + n
	b.mu.Unlock()
	timeout := time.After(30 * time.Second)
	for {
		b.mu.Lock()
		got, more := b.n, b.more
		b.mu.Unlock()
		if got >= want {
			return
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("%d of %d attempts on a taken lease in 30 s", got, want)
		}
	}
}

// TestExclusiveLease: with the lease forced, of two processes one at a
// time runs the task; the holder keeps the lease for many times its ttl
// by renewing it while the other keeps asking; when the holder stops, it
// releases the lease and the other takes over. The lease is a row of
// rls_lease and no advisory lock is taken.
func TestExclusiveLease(t *testing.T) {
	dsn := newDB(t)
	busy := countBusy(t)
	var running, maxRunning atomic.Int32
	started := make(chan int, 10)
	var wg sync.WaitGroup
	cancels := make([]context.CancelFunc, 2)
	for id := range 2 {
		c, err := Open(context.Background(), dsn, &Options{Logger: quiet, SenderLock: LockLease})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cancels[id] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Exclusive(ctx, "t", leaseInterval, func(ctx context.Context) error {
				n := running.Add(1)
				defer running.Add(-1)
				for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
				}
				started <- id
				<-ctx.Done()
				return nil
			})
		}()
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
	}()
	first := <-started
	// 20 refused attempts an interval apart: 4 ttl at least.
	busy.wait(t, 20)
	select {
	case id := <-started:
		t.Fatalf("task %d started while %d held the lease", id, first)
	default:
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var holders, advisory int
	if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM rls_lease WHERE name = 't' AND expires > now()),
		(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')`).Scan(&holders, &advisory); err != nil {
		t.Fatal(err)
	}
	if holders != 1 || advisory != 0 {
		t.Fatalf("%d live lease rows and %d advisory locks; want 1 and 0", holders, advisory)
	}
	cancels[first]()
	if second := <-started; second == first {
		t.Fatalf("task %d started again after its context ended", first)
	}
	if maxRunning.Load() != 1 {
		t.Fatalf("%d tasks ran at once", maxRunning.Load())
	}
}

// TestExclusiveLeaseKill9: a process holding the lease is killed (-9): it
// cannot release it, and another process takes over once it expires
// (ttl 500 ms here; rlsd's is 5 s), within 10 s, and not before the kill.
func TestExclusiveLeaseKill9(t *testing.T) {
	dsn := newDB(t)
	openDSN(t, dsn) // migrated before the holder starts
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), leaseHelperEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "holding\n" {
		t.Fatalf("lease holder process: %q, %v\n%s", line, err, stderr.String())
	}

	busy := countBusy(t)
	c, err := Open(context.Background(), dsn, &Options{Logger: quiet, SenderLock: LockLease})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan time.Time, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.Exclusive(ctx, "t", leaseInterval, func(ctx context.Context) error {
			started <- time.Now()
			<-ctx.Done()
			return nil
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("the standby's Exclusive ended with %v, want context.Canceled", err)
		}
	}()
	busy.wait(t, 10) // 2 ttl of refusals
	select {
	case <-started:
		t.Fatal("the standby started while the holder process lived")
	default:
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	select {
	case at := <-started:
		t.Logf("the standby took over %v after the holder's kill -9 (lease ttl %v)", at.Sub(killed).Round(time.Millisecond), leaseTTLFactor*leaseInterval)
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not take over within 10 s of the holder's kill -9")
	}
}

// TestExclusiveAutoLease: on a server (here: a role) where
// pg_try_advisory_lock cannot be called, the default SenderLock (LockAuto)
// falls back to the lease row by itself.
func TestExclusiveAutoLease(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, server.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("noadv%d", dbs.Add(1))
	db := "db" + role
	for _, sql := range []string{"CREATE ROLE " + role + " LOGIN", "CREATE DATABASE " + db + " OWNER " + role} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	dsn := server.DSNFor(db)
	su, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	// Exclusive's function; golang-migrate's pg_advisory_lock stays.
	if _, err := su.Exec(ctx, `REVOKE EXECUTE ON FUNCTION pg_try_advisory_lock(bigint) FROM PUBLIC`); err != nil {
		t.Fatal(err)
	}
	c, err := Open(ctx, strings.Replace(dsn, "postgres://postgres@", "postgres://"+role+"@", 1), &Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	xctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var holder string
	errRan := errors.New("ran")
	err = c.Exclusive(xctx, "t", leaseInterval, func(context.Context) error {
		if err := su.QueryRow(ctx, `SELECT holder FROM rls_lease WHERE name = 't' AND expires > now()`).Scan(&holder); err != nil {
			return err
		}
		return errRan
	})
	if !errors.Is(err, errRan) || holder == "" {
		t.Fatalf("Exclusive without advisory locks: %v, lease holder %q", err, holder)
	}
}
