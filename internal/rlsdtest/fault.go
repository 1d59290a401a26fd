package rlsdtest

import (
	"hash/fnv"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// Eventually calls check until it returns nil, every 20 ms, and fails the
// test with check's last error once timeout has passed. It is the one way
// the integration tests wait for a state that nothing notifies them of
// (polling a lookup, a file, a log): bounded, and never a sleep followed by
// an assertion. check runs on the test's goroutine and may call t.Fatal.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DefaultFaultRounds is the number of rounds a fault test runs when
// RLS_FAULT_ROUNDS is not set: enough for `make test` to run every kill
// path once or twice. `make test-faults` sets more.
const DefaultFaultRounds = 2

// FaultRounds is the number of rounds (kill, restart, check) a fault test
// runs: $RLS_FAULT_ROUNDS, else DefaultFaultRounds.
func FaultRounds(t testing.TB) int {
	t.Helper()
	s := os.Getenv("RLS_FAULT_ROUNDS")
	if s == "" {
		return DefaultFaultRounds
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("RLS_FAULT_ROUNDS=%q: want a positive integer", s)
	}
	return n
}

// FaultRand returns the random source of a fault test's choices (when to
// kill, whom, which operations). Its seed is $RLS_FAULT_SEED, else the
// clock; it is mixed with the test's name, so that one seed repeats the
// choices of every test of a run. The seed is logged at the start and again
// if the test fails. The choices repeat; the timing of real processes on a
// shared machine does not, so a seed makes a failure likely again rather
// than certain.
func FaultRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RLS_FAULT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("RLS_FAULT_SEED=%q: want an unsigned integer", s)
		}
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	t.Logf("fault seed %d (RLS_FAULT_SEED=%d repeats it), %d rounds", seed, seed, FaultRounds(t))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s FAILED with fault seed %d: run it again with RLS_FAULT_SEED=%d", t.Name(), seed, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// Delay draws a kill delay in [lo, hi) from r.
func Delay(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}
