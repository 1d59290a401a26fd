package catalog

import (
	"context"
	"sync"
)

// Group commit of single mapping writes (Create, Add, Delete).
//
// Each such call reads what it will check without the writers' lock (its
// prefetch), then queues itself. Whichever queued call next takes the
// writers' lock takes every call queued so far with it: it checks and
// applies them in queue order into one Pebble batch, commits that batch once
// (one state record, one pass through Pebble's commit pipeline), releases
// the lock, waits for the one fsync that makes the batch durable, and then
// answers every call of the group. Calls that arrive meanwhile queue up for
// the next group, whose batch reaches the log while this one's fsync runs.
// A call that finds its entry already taken by another group only waits
// for that group's answer.
//
// 32 concurrent writers thus share one batch and one fsync, instead of each
// paying Pebble's per-batch costs under the lock while the others wait.
// Each call stays atomic, in the one logical order of the change feed, and
// is acknowledged only once durable; an item error (ErrExists, ...) fails
// that call alone, a storage error fails every call of its group.

// pendingWrite is one queued single write.
type pendingWrite struct {
	w    *writer // the call's own writer: its prefetched overlays
	fn   func(w *writer) error
	seq  uint64
	err  error
	done chan struct{} // closed when seq and err are set
}

// writeQueue holds the single writes waiting for a group.
type writeQueue struct {
	mu      sync.Mutex
	pending []*pendingWrite
}

func (q *writeQueue) push(p *pendingWrite) {
	q.mu.Lock()
	q.pending = append(q.pending, p)
	q.mu.Unlock()
}

func (q *writeQueue) take() []*pendingWrite {
	q.mu.Lock()
	defer q.mu.Unlock()
	ps := q.pending
	q.pending = nil
	return ps
}

// writeOne is write for one single mapping write: pre reads the records fn
// will check, without the lock; fn checks and writes. It returns the
// change-feed sequence number of the call's record once it is durable.
func (c *Catalog) writeOne(ctx context.Context, op string, pre, fn func(w *writer) error) (uint64, error) {
	if c.noSync {
		// Without fsyncs to share, a call costs no more alone.
		return c.write(ctx, op, false, pre, fn)
	}
	if err := c.enter(ctx, op); err != nil {
		return 0, err
	}
	defer c.leave()
	w := &writer{c: c, r: c.db, deferred: true, readSeq: c.stats.seq.Load()}
	err := pre(w)
	if err == nil {
		err = canceled(ctx, op) // the last check: once queued, it is applied
	}
	if err != nil {
		return 0, err
	}
	p := &pendingWrite{w: w, fn: fn, done: make(chan struct{})}
	c.queue.push(p)
	c.mu.Lock()
	group := c.queue.take()
	if len(group) == 0 { // another call took ours into its group
		c.mu.Unlock()
		<-p.done
		return p.seq, p.err
	}
	c.commitGroup(group) // unlocks c.mu
	<-p.done
	return p.seq, p.err
}

// commitGroup applies the group's calls in order into one batch, commits
// it, and answers each call once the batch is durable (or failed). It runs
// with c.mu held and releases it before waiting for the fsync.
func (c *Catalog) commitGroup(group []*pendingWrite) {
	answer := func(err error) {
		for _, p := range group {
			if p.err == nil {
				p.err = err
			}
			if p.err != nil {
				p.seq = 0
			}
			close(p.done)
		}
	}
	g := c.newWriter(false)
	g.next = c.state
	for _, p := range group {
		p.w.validate()
		g.adopt(p.w)
		before := g.next
		if err := p.fn(g); err != nil {
			if !itemError(err) {
				c.mu.Unlock()
				_ = g.b.Close()
				answer(err)
				return
			}
			// Single writes fail their checks before they change anything
			// (see create, add, delete), so the group's state is as before.
			g.next = before
			p.err = err
			continue
		}
		p.seq = g.next.seq
	}
	err := g.flush()
	if err == nil && g.b.Empty() {
		c.mu.Unlock()
		_ = g.b.Close()
		answer(nil)
		return
	}
	var wait func() error
	if err == nil {
		wait, err = c.commit(g.b, g.next)
	}
	if err != nil {
		c.mu.Unlock()
		_ = g.b.Close()
		answer(err)
		return
	}
	for _, i := range g.touched {
		c.stripes[i] = g.next.seq
	}
	c.mu.Unlock()
	answer(wait())
}

// adopt takes into w's overlays the records that p read before the lock
// and that are still valid (p.validate ran), unless w already holds a
// record for the key: that one is newer, written by an earlier call of
// the group.
func (w *writer) adopt(p *writer) {
	for name, n := range p.lfns {
		if _, ok := w.lfns[name]; !ok {
			w.cacheRefs(tagLFN, name, n)
		}
	}
	for name, n := range p.pfns {
		if _, ok := w.pfns[name]; !ok {
			w.cacheRefs(tagPFN, name, n)
		}
	}
	for m, ok := range p.maps {
		if _, found := w.maps[m]; !found {
			if w.maps == nil {
				w.maps = make(map[Mapping]bool)
			}
			w.maps[m] = ok
		}
	}
}
