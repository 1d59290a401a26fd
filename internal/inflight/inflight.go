// Package inflight sends the chunks of a bulk load with several in flight
// at once, with the results of a load sent one chunk at a time: results
// are handed back in input order, and a chunk that names a key (an LFN)
// also named by a chunk still in flight waits until that one is done, so
// that every item sees the effect of the items before it that concern the
// same key.
//
// rlsctl's bulk commands and the backends benchmark (scripts/pgbench-lrc)
// use it, so that both load a catalog the same way.
//
//	err := inflight.Run(ctx, 4, next, send, done)
package inflight

import (
	"context"
	"slices"
	"sync"
)

// DefaultK is the number of chunks in flight that rlsctl and the benchmark
// use by default: one, sent while the next is read. More did not pay on
// loopback, where the server is the bottleneck (PostgreSQL's writes are
// serialized on one lock, and Pebble spent more CPU per item); they hide
// the round trips of a distant server.
const DefaultK = 1

// A Chunk is one request's worth of items, and the keys they lock on (for
// mapping writes, their LFNs; nil when the chunk's items do not depend on
// each other's effects, as queries). Keys may repeat.
type Chunk[C any] struct {
	Items C
	Keys  []string
}

// slot is one chunk sent, until it was handed to done.
type slot[C, R any] struct {
	items    C
	keys     []string
	r        R
	err      error
	sent     chan struct{} // closed when send returned
	released chan struct{} // closed once handed to done and its keys freed
}

// Run sends the chunks that next returns (until it returns ok false) with
// send, at most k at once (k < 1 means 1), and hands each chunk's result
// to done in the order next returned them, from one goroutine other than
// the caller's (next runs in the caller's). A chunk is sent only after
// every chunk before it was sent, and only once no chunk in flight (sent,
// not yet handed to done) shares one of its keys.
//
// The first error in input order (of send or done) stops the sending of
// further chunks; chunks already in flight are waited for, and those that
// succeeded are still handed to done, since their effects are real. Run
// returns that error, or ctx's error if ctx ended before next said the
// input was over, once every send and done call has returned.
func Run[C, R any](ctx context.Context, k int, next func() (Chunk[C], bool),
	send func(context.Context, C) (R, error), done func(C, R) error) error {
	k = max(k, 1)
	r := &runner[C, R]{
		send: send, done: done,
		sem: make(chan struct{}, k), order: make(chan *slot[C, R], k),
		busy: make(map[string]*slot[C, R]), stop: make(chan struct{}),
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		r.deliver()
	}()
	err := r.start(ctx, next)
	close(r.order)
	<-delivered
	r.wg.Wait()
	if r.err != nil {
		return r.err
	}
	return err
}

type runner[C, R any] struct {
	send func(context.Context, C) (R, error)
	done func(C, R) error

	sem   chan struct{}    // a token per chunk in flight
	order chan *slot[C, R] // the chunks sent, in input order, to deliver
	wg    sync.WaitGroup   // the send goroutines
	mu    sync.Mutex       // guards busy
	busy  map[string]*slot[C, R]

	stop     chan struct{} // closed at the first error
	stopOnce sync.Once
	err      error // the first error in input order; set by deliver only
}

// start reads chunks and sends them, in order; it returns ctx's error if
// ctx ended before the input was over.
func (r *runner[C, R]) start(ctx context.Context, next func() (Chunk[C], bool)) error {
	for {
		select {
		case <-r.stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		c, ok := next()
		if !ok {
			return nil
		}
		select {
		case r.sem <- struct{}{}:
		case <-r.stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, s := range r.conflicts(c.Keys) {
			select {
			case <-s.released:
			case <-ctx.Done():
				<-r.sem
				return ctx.Err()
			}
		}
		select {
		case <-r.stop: // an earlier chunk failed while this one waited
			<-r.sem
			return nil
		default:
		}
		s := &slot[C, R]{items: c.Items, keys: c.Keys, sent: make(chan struct{}), released: make(chan struct{})}
		r.mu.Lock()
		for _, key := range c.Keys {
			r.busy[key] = s
		}
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(s.sent)
			s.r, s.err = r.send(ctx, s.items)
		}()
		r.order <- s // never blocks: at most k slots are not released
	}
}

// conflicts returns the chunks in flight that hold one of keys. Only start
// adds keys, so once those are released none of keys is held.
func (r *runner[C, R]) conflicts(keys []string) []*slot[C, R] {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*slot[C, R]
	for _, key := range keys {
		if s := r.busy[key]; s != nil && !slices.Contains(out, s) {
			out = append(out, s) // at most k-1 distinct slots
		}
	}
	return out
}

// deliver hands the chunks' results to done in input order, and frees
// their keys and tokens.
func (r *runner[C, R]) deliver() {
	for s := range r.order {
		<-s.sent
		err := s.err
		if err == nil {
			err = r.done(s.items, s.r)
		}
		if err != nil && r.err == nil {
			r.err = err
			r.stopOnce.Do(func() { close(r.stop) })
		}
		r.mu.Lock()
		for _, key := range s.keys {
			if r.busy[key] == s {
				delete(r.busy, key)
			}
		}
		r.mu.Unlock()
		close(s.released)
		<-r.sem
	}
}
