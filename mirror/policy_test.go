package mirror

import (
	"testing"
	"time"
)

// The optimizer starts slow: it doubles a source's limit at each window
// whose throughput did not fall, until one did not allow a rise; from
// then on it adds one, and failures still lower it.
func TestOptimizerSlowStart(t *testing.T) {
	o := newOptimizer(2, 16)
	window := func(perCall time.Duration, ok bool) int {
		var l int
		for range o.window {
			l = o.observe(1<<20, perCall, ok)
		}
		return l
	}
	// Each call as fast as the last: the aggregate rate grows with the
	// limit. 2 → 4 → 8 → 16, capped.
	for _, want := range []int{4, 8, 16, 16} {
		if got := window(100*time.Millisecond, true); got != want {
			t.Fatalf("slow start: limit %d, want %d", got, want)
		}
	}
	// Calls four times slower: throughput fell by half, one less.
	if got := window(800*time.Millisecond, true); got != 15 {
		t.Fatalf("after a fall: limit %d, want 15", got)
	}
	// No more doubling: one more per window that allows a rise.
	for _, want := range []int{16, 16} {
		if got := window(700*time.Millisecond, true); got != want {
			t.Fatalf("after the slow start: limit %d, want %d", got, want)
		}
	}
	// Half the calls failed: halved.
	o.observe(1<<20, 100*time.Millisecond, false)
	o.observe(1<<20, 100*time.Millisecond, false)
	o.observe(1<<20, 100*time.Millisecond, true)
	if got := o.observe(1<<20, 100*time.Millisecond, true); got != 8 {
		t.Fatalf("after failures: limit %d, want 8", got)
	}
	// A fresh source whose first window does not allow a rise adds one at
	// a time from then on.
	o = newOptimizer(2, 16)
	window(100*time.Millisecond, true) // 4
	if got := window(time.Second, true); got != 3 {
		t.Fatalf("limit %d, want 3", got)
	}
	if got := window(500*time.Millisecond, true); got != 4 {
		t.Fatalf("limit %d, want 4 (one more, no doubling)", got)
	}
}
