// Package backoff is rls's one backoff function, for every loop that retries
// a peer, a server or a database.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay is the wait before retry n (n >= 1): lo·2^(n-1), at most hi, with the
// upper half jittered, so that many clients failing together spread out.
// It is safe for concurrent use.
func Delay(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n >= 1 && n < 32 && lo<<(n-1) < hi && lo<<(n-1) > 0 {
		d = lo << (n - 1)
	}
	return d/2 + rand.N(d/2+1)
}
