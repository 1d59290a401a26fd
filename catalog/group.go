package catalog

import (
	"context"
	"sync"
)

// Group commit of single mapping writes (Create, Add, Delete).
//
// Each such call reads what it will check without the writers' lock (its
// prefetch), then queues itself. The call that leads (see writeQueue) takes
// the writers' lock and every call queued so far: it checks and applies
// them in queue order into one Pebble batch, commits that batch once (one
// state record, one pass through Pebble's commit pipeline), releases the
// lock, hands the lead to the next queued call, waits for the one fsync
// that makes the batch durable, and then answers every call of the group.
// Calls that arrive meanwhile queue up for the next group, whose batch
// reaches the log while this one's fsync runs.
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
	lead chan struct{} // closed when the call is to lead the next group
}

// writeQueue holds the single writes waiting for a group, and whether a
// call leads one: at most one does at a time, from taking the queue until
// its group is applied, when it hands the lead to the first call queued
// meanwhile. The others only wait for their answer, so that no call waits
// for a later group's fsync after its own is done.
type writeQueue struct {
	mu      sync.Mutex
	pending []*pendingWrite
	leading bool
}

// push queues p and reports whether p leads the next group.
func (q *writeQueue) push(p *pendingWrite) (lead bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, p)
	if !q.leading {
		q.leading = true
		return true
	}
	return false
}

func (q *writeQueue) take() []*pendingWrite {
	q.mu.Lock()
	defer q.mu.Unlock()
	ps := q.pending
	q.pending = nil
	return ps
}

// handoff ends the current lead: the first call queued meanwhile leads the
// next group.
func (q *writeQueue) handoff() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		q.leading = false
		return
	}
	close(q.pending[0].lead)
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
	p := &pendingWrite{w: w, fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	if !c.queue.push(p) {
		select {
		case <-p.done:
			return p.seq, p.err
		case <-p.lead:
		}
	}
	c.mu.Lock()
	finish := c.commitGroup(c.queue.take()) // unlocks c.mu
	c.queue.handoff()
	finish()
	<-p.done
	return p.seq, p.err
}

// commitGroup applies the group's calls in order into one batch and
// commits it. It runs with c.mu held and releases it; the returned finish
// waits for the fsync and answers every call of the group.
func (c *Catalog) commitGroup(group []*pendingWrite) (finish func()) {
	answer := func(err error) func() {
		return func() {
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
				return answer(err)
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
		return answer(nil)
	}
	var wait func() error
	if err == nil {
		wait, err = c.commit(g.b, g.next)
	}
	if err != nil {
		c.mu.Unlock()
		_ = g.b.Close()
		return answer(err)
	}
	for _, i := range g.touched {
		c.stripes[i] = g.next.seq
	}
	c.mu.Unlock()
	return func() { answer(wait())() }
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
