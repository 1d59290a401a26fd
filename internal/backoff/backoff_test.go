package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 800 * time.Millisecond, 1600 * time.Millisecond},
		{6, time.Second, 2 * time.Second}, // capped at hi
		{40, time.Second, 2 * time.Second},
	} {
		for range 200 {
			if d := Delay(lo, hi, tc.n); d < tc.min || d > tc.max {
				t.Fatalf("Delay(%v, %v, %d) = %v, want in [%v, %v]", lo, hi, tc.n, d, tc.min, tc.max)
			}
		}
	}
}
