package mirror

import (
	"math"
	"time"
)

// RetryPolicy is when a failed unit is tried again. The first Fast failed
// rounds retry after FastDelay (each round tries every source again); after
// that, the delay grows exponentially from Base to Cap, with full jitter.
type RetryPolicy struct {
	Fast      int
	FastDelay time.Duration
	Base, Cap time.Duration
}

// DefaultRetry is the default RetryPolicy: three quick rounds, then from
// one minute doubling to a day (Rucio retries over days).
var DefaultRetry = RetryPolicy{Fast: 3, FastDelay: 5 * time.Second, Base: time.Minute, Cap: 24 * time.Hour}

// Backoff is the one backoff function of the package: the delay before
// round streak+1, given streak failed rounds so far (≥ 1), and jitter, a
// uniform number in [0, 1). The slow delay is uniform in [d/2, d), where d
// = min(Cap, Base·2^(streak-Fast-1)).
func (p RetryPolicy) Backoff(streak int, jitter float64) time.Duration {
	if streak <= p.Fast {
		return p.FastDelay
	}
	n := streak - p.Fast - 1
	d := p.Cap
	if n < 62 {
		if b := float64(p.Base) * math.Pow(2, float64(n)); b < float64(p.Cap) {
			d = time.Duration(b)
		}
	}
	return d/2 + time.Duration(jitter*float64(d/2))
}

// BatchPolicy bounds the units of one pull call: at most Units units and
// Bytes bytes, sent when full or when no unit joined for Idle. A unit of
// Large bytes or more travels alone.
type BatchPolicy struct {
	Units int
	Bytes int64
	Idle  time.Duration
	Large int64
}

// DefaultBatch is Remote SUMS's batching: 48 units, 512 MB, 2 s idle.
var DefaultBatch = BatchPolicy{Units: 48, Bytes: 512 << 20, Idle: 2 * time.Second, Large: 64 << 20}

// ewma is an exponentially weighted moving average.
type ewma struct {
	v   float64
	set bool
}

func (e *ewma) add(x, alpha float64) {
	if !e.set {
		e.v, e.set = x, true
		return
	}
	e.v += alpha * (x - e.v)
}

// optimizer adapts a source's concurrency within [min, max], as FTS3's
// optimizer does: after every window of samples it raises the limit if
// the window had no failures and throughput did not fall, lowers it by
// one if a tenth or more failed (halving it if half did), and otherwise
// keeps it. It starts slow, as TCP does: from min it doubles the limit at
// each window that allows a rise, until the first window that does not,
// and from then on raises it by one. Rising by one from the start, a
// source took 14 windows (56 calls, a quarter of the 10,000 small units
// of the mirror benchmark) to reach 16 calls, with the CPU half idle.
type optimizer struct {
	min, max, limit int
	window          int
	n, failed       int
	bytes           int64
	busy            time.Duration
	lastRate        float64
	grown           bool // a window did not allow a rise: no more doubling
}

func newOptimizer(min, max int) *optimizer {
	min = max1(min)
	if max < min {
		max = min
	}
	return &optimizer{min: min, max: max, limit: min, window: 4}
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// observe records one pull call's outcome and returns the limit.
func (o *optimizer) observe(bytes int64, elapsed time.Duration, ok bool) int {
	o.n++
	if !ok {
		o.failed++
	}
	o.bytes += bytes
	o.busy += elapsed
	if o.n < o.window {
		return o.limit
	}
	rate := 0.0
	if o.busy > 0 {
		rate = float64(o.bytes) / o.busy.Seconds() * float64(o.limit)
	}
	switch {
	case o.failed == 0 && rate >= o.lastRate*0.95 && !o.grown:
		o.limit = min(o.max, o.limit*2)
	case o.failed == 0 && rate >= o.lastRate*0.95:
		o.limit = min(o.max, o.limit+1)
	case o.failed*2 >= o.n:
		o.limit, o.grown = max(o.min, o.limit/2), true
	case o.failed*10 >= o.n:
		o.limit, o.grown = max(o.min, o.limit-1), true
	case rate < o.lastRate*0.8:
		o.limit, o.grown = max(o.min, o.limit-1), true
	default:
		o.grown = true
	}
	o.lastRate = rate
	o.n, o.failed, o.bytes, o.busy = 0, 0, 0, 0
	return o.limit
}
