package mirror

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/solar-archive/rls/transfer"
)

// sourceState is what the engine observed of one source site. Guarded by
// Engine.srcMu.
type sourceState struct {
	name       string
	throughput ewma // bytes/s of its pull calls
	failRate   ewma // share of failed units, recent-weighted
	units      int64
	bytes      int64
	failures   int64
	corrupt    int64
	outcomes   map[string]int64 // pull calls by outcome: ok, partial, failed
	opt        *optimizer
	active     int // pull calls in flight
}

// SourceInfo is what Sources reports of one source site.
type SourceInfo struct {
	Site        string           `json:"site"`
	Units       int64            `json:"units"`
	Bytes       int64            `json:"bytes"`
	Throughput  float64          `json:"throughput"` // bytes/s, moving average
	FailureRate float64          `json:"failure_rate"`
	Failures    int64            `json:"failures"`
	Corrupt     int64            `json:"corrupt"`
	Concurrency int              `json:"concurrency"` // current limit
	Active      int              `json:"active"`
	Pulls       map[string]int64 `json:"pulls"`
}

func (e *Engine) sourceLocked(name string) *sourceState {
	s, ok := e.sources[name]
	if !ok {
		s = &sourceState{name: name, opt: newOptimizer(e.cfg.MinPerSource, e.cfg.MaxPerSource), outcomes: map[string]int64{}}
		e.sources[name] = s
	}
	return s
}

// score ranks a source: expected throughput discounted by recent failures.
// A source never tried is given the best throughput seen, so that it gets
// tried.
func (e *Engine) scoreLocked(name string, best float64) float64 {
	s, ok := e.sources[name]
	thr := best
	if ok && s.throughput.set {
		thr = s.throughput.v
	}
	fr := 0.0
	if ok {
		fr = s.failRate.v
	}
	return max(thr, 1) * math.Pow(1-min(fr, 0.99), 2)
}

// rank orders peers best first: by observed throughput (moving average)
// and recent failure rate; ties by site name.
func (e *Engine) rank(peers []Location) {
	e.srcMu.Lock()
	defer e.srcMu.Unlock()
	best := 1e6
	for _, s := range e.sources {
		if s.throughput.set && s.throughput.v > best {
			best = s.throughput.v
		}
	}
	score := make(map[string]float64, len(peers))
	for _, p := range peers {
		score[p.Site] = e.scoreLocked(p.Site, best)
	}
	slices.SortStableFunc(peers, func(a, b Location) int {
		return cmp.Or(cmp.Compare(score[b.Site], score[a.Site]), cmp.Compare(a.Site, b.Site))
	})
}

// acquire takes a concurrency slot of source name if one is free.
func (e *Engine) acquire(name string) bool {
	e.srcMu.Lock()
	defer e.srcMu.Unlock()
	s := e.sourceLocked(name)
	if s.active >= s.opt.limit {
		return false
	}
	s.active++
	return true
}

// observe records a pull call at source name: its placed units and bytes,
// elapsed time, and each failed unit's class; it frees the call's slot.
func (e *Engine) observe(name string, placed int, bytes int64, elapsed time.Duration, fails []errClass) {
	e.srcMu.Lock()
	defer e.srcMu.Unlock()
	s := e.sourceLocked(name)
	s.active--
	s.units += int64(placed)
	s.bytes += bytes
	if elapsed > 0 && bytes > 0 {
		s.throughput.add(float64(bytes)/elapsed.Seconds(), 0.3)
	}
	for range placed {
		s.failRate.add(0, 0.1)
	}
	for _, c := range fails {
		switch c {
		case classCorrupt:
			s.corrupt++
			s.failures++
			s.failRate.add(1, 0.5) // a corrupt copy costs a source its rank
		case classTransient:
			s.failures++
			s.failRate.add(1, 0.2)
		}
	}
	outcome := "ok"
	switch {
	case placed == 0 && len(fails) > 0:
		outcome = "failed"
	case len(fails) > 0:
		outcome = "partial"
	}
	s.outcomes[outcome]++
	s.opt.observe(bytes, elapsed, placed > 0 || len(fails) == 0)
}

// Sources reports, per source site, what the engine observed.
func (e *Engine) Sources() []SourceInfo {
	e.srcMu.Lock()
	defer e.srcMu.Unlock()
	out := make([]SourceInfo, 0, len(e.sources))
	for _, s := range e.sources {
		out = append(out, SourceInfo{Site: s.name, Units: s.units, Bytes: s.bytes, Throughput: s.throughput.v,
			FailureRate: s.failRate.v, Failures: s.failures, Corrupt: s.corrupt, Concurrency: s.opt.limit,
			Active: s.active, Pulls: maps0(s.outcomes)})
	}
	slices.SortFunc(out, func(a, b SourceInfo) int { return cmp.Compare(a.Site, b.Site) })
	return out
}

func maps0(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// classify sorts a pull error: not found (try the next source; INVD at the
// authority), corrupt (rank the source down), transient (timeout,
// unreachable, refused: the next source, then FAIL) or local. A timeout
// is never "not found".
func classify(err error) errClass {
	switch {
	case errors.Is(err, transfer.ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, transfer.ErrUnavailable), errors.Is(err, transfer.ErrRefused):
		return classTransient
	case errors.Is(err, transfer.ErrCorrupt), errors.Is(err, transfer.ErrChanged):
		return classCorrupt
	case errors.Is(err, transfer.ErrNotFound):
		return classNotFound
	}
	return classLocal
}
