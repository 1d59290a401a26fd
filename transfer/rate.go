package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errSlow cancels the reads of a source dropped for being slow.
var errSlow = errors.New("source dropped for being slow")

// rateTicks is how many samples make a SlowWindow.
const rateTicks = 10

// rateTrack is a source's recent throughput, sampled by monitorRates. Not
// safe for concurrent use: the monitor goroutine owns it.
type rateTrack struct {
	last   int64         // source.bytes at the previous sample
	window []rateSample  // the current run of busy samples, newest last, at most rateTicks
	ewma   float64       // bytes per second while busy
	judged int64         // bytes received in busy samples
	busyAt time.Duration // total busy time sampled
}

type rateSample struct {
	bytes int64
	dt    time.Duration
}

// windowRate is the rate over the whole window, and whether the source was
// busy for all of it.
func (r *rateTrack) windowRate() (float64, bool) {
	if len(r.window) < rateTicks {
		return 0, false
	}
	var n int64
	var dt time.Duration
	for _, x := range r.window {
		n += x.bytes
		dt += x.dt
	}
	return float64(n) / dt.Seconds(), true
}

// sample adds the interval of length dt that ended now.
func (r *rateTrack) sample(bytes int64, busy bool, dt time.Duration) {
	d := bytes - r.last
	r.last = bytes
	if !busy && d == 0 {
		r.window = r.window[:0]
		return
	}
	if len(r.window) == rateTicks {
		r.window = append(r.window[:0], r.window[1:]...)
	}
	r.window = append(r.window, rateSample{d, dt})
	rate := float64(d) / dt.Seconds()
	if r.busyAt == 0 {
		r.ewma = rate
	} else {
		// A time constant of about half a window.
		const alpha = 2.0 / (rateTicks/2 + 1)
		r.ewma += alpha * (rate - r.ewma)
	}
	r.judged += d
	r.busyAt += dt
}

// monitorRates samples every source's bytes rateTicks times per
// SlowWindow and drops a source that is much slower than the best other
// one (see PullOptions.SlowFactor). It returns when ctx ends.
func (p *puller) monitorRates(ctx context.Context) {
	tick := max(p.o.SlowWindow/rateTicks, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			dt := now.Sub(last)
			last = now
			if dt <= 0 {
				continue
			}
			for _, s := range p.sources {
				s.rate.sample(s.bytes.Load(), s.busy.Load() > 0, dt)
			}
			p.dropSlow()
		}
	}
}

// dropSlow drops the sources that were busy for a whole window at less
// than 1/SlowFactor of the best rate of another live source that has
// received enough bytes to be judged.
func (p *puller) dropSlow() {
	for _, s := range p.sources {
		rate, full := s.rate.windowRate()
		if !full || !p.q.live(s) {
			continue
		}
		var best *source
		for _, o := range p.sources {
			if o != s && o.rate.judged >= p.o.SlowMinBytes && p.q.live(o) && (best == nil || o.rate.ewma > best.rate.ewma) {
				best = o
			}
		}
		if best == nil || rate*p.o.SlowFactor >= best.rate.ewma {
			continue
		}
		err := fmt.Errorf("%w: too slow: %s/s over the last %v, %s/s from %s",
			ErrTimeout, fmtBytes(rate), p.o.SlowWindow, fmtBytes(best.rate.ewma), best.peer.Name())
		if p.q.dropSlow(s, err) {
			p.log.Warn("source dropped for being slow", "peer", s.peer.Name(), "error", err)
			s.cancel(errSlow)
		}
	}
}

func fmtBytes(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
