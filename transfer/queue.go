package transfer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/time/rate"
)

// queue hands items to the sources' workers. It is safe for concurrent use.
// The pull is over when every item is finished or dropped (result nil), or
// when it fails: every source dropped, a local error, or cancellation. An
// item that no live source can serve fails its units, and the pieces of
// failed units are dropped.
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []*item
	pending int // queued or being fetched
	err     error
	sources []*source
	max     int
}

func newQueue(sources []*source) *queue {
	q := &queue{sources: sources, max: DefaultMaxFailures}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) add(items ...*item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, items...)
	q.pending += len(items)
	q.checkLocked()
	q.cond.Broadcast()
}

// hold counts work that is not an item yet (a unit's digests to come), so
// that the pull does not end before it; release ends it.
func (q *queue) hold() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending++
}

func (q *queue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending--
	q.cond.Broadcast()
}

// take returns the next item s may fetch, waiting for one; nil when s
// should stop (the pull is over or s was dropped).
func (q *queue) take(s *source) *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.err != nil || s.dropped || q.pending == 0 {
			return nil
		}
		for i := 0; i < len(q.items); i++ {
			it := q.items[i]
			it.pieces = slices.DeleteFunc(it.pieces, func(pc piece) bool { return pc.f.u.failed() })
			if len(it.pieces) == 0 { // all of failed units
				q.items = slices.Delete(q.items, i, i+1)
				i--
				q.pending--
				continue
			}
			if !it.avoid[s] {
				q.items = slices.Delete(q.items, i, i+1)
				return it
			}
		}
		if q.pending == 0 {
			q.cond.Broadcast()
			return nil
		}
		q.cond.Wait()
	}
}

// finish marks an item done by s, which resets s's failure count.
func (q *queue) finish(it *item, s *source) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending--
	s.failures = 0
	q.cond.Broadcast()
}

// requeue puts back an item s could not finish. A non-nil failure counts
// against s (which is dropped after too many in a row); the return value
// is s's failures in a row.
func (q *queue) requeue(it *item, s *source, failure error) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if failure != nil {
		s.failures++
		s.lastErr = failure
		if it.lastErr == nil || errors.Is(it.lastErr, ErrTimeout) || errors.Is(it.lastErr, ErrUnavailable) {
			it.lastErr = failure
		}
		if s.failures >= q.max && !s.dropped {
			s.dropped = true
		}
	}
	q.items = append(q.items, it)
	q.checkLocked()
	q.cond.Broadcast()
	return s.failures
}

// live reports whether s has not been dropped.
func (q *queue) live(s *source) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !s.dropped
}

// dropSlow drops s for being slow, with err, unless it is the last live
// source or already dropped; it reports whether it dropped s. The caller
// cancels s's reads; their items come back through requeue.
func (q *queue) dropSlow(s *source, err error) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.dropped || q.err != nil || !slices.ContainsFunc(q.sources, func(o *source) bool { return o != s && !o.dropped }) {
		return false
	}
	s.dropped, s.slow, s.lastErr = true, true, err
	q.checkLocked()
	q.cond.Broadcast()
	return true
}

// checkLocked fails the pull if no live source is left, or if a queued
// item is avoided by every live source.
func (q *queue) checkLocked() {
	if q.err != nil {
		return
	}
	var live []*source
	var last error
	for _, s := range q.sources {
		if !s.dropped {
			live = append(live, s)
		} else if s.lastErr != nil {
			last = s.lastErr
		}
	}
	if len(live) == 0 {
		if last == nil {
			last = ErrUnavailable
		}
		q.err = fmt.Errorf("every source failed; last: %w", last)
		return
	}
	// An item no live source can serve fails its units, not the pull.
	q.items = slices.DeleteFunc(q.items, func(it *item) bool {
		if slices.ContainsFunc(live, func(s *source) bool { return !it.avoid[s] }) {
			return false
		}
		err := it.lastErr
		for _, pc := range it.pieces {
			if err == nil {
				err = fmt.Errorf("%w: no source can serve %q", ErrNotFound, pc.f.e.Path)
			}
			pc.f.u.fail(err)
		}
		q.pending--
		return true
	})
	if q.pending == 0 {
		q.cond.Broadcast()
	}
}

// fail ends the pull with err, unless it is already over.
func (q *queue) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil && (q.pending > 0 || !errors.Is(err, context.Canceled)) {
		q.err = err
	}
	q.cond.Broadcast()
}

func (q *queue) result() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	if q.pending > 0 {
		return fmt.Errorf("%d items left unfetched", q.pending)
	}
	return nil
}

// newLimiter paces a pull's bytes to bytesPerSec (nil: no limit). Its
// bucket holds one chunk, so a pull may run a chunk ahead of its rate.
func newLimiter(bytesPerSec int64) *rate.Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSec), ChunkSize)
}

// waitBytes waits until l allows n more bytes (at once if l is nil), or
// ctx ends. A peer may deliver more than a bucket at once: such bytes are
// waited for a bucket at a time.
func waitBytes(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
