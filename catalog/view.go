package catalog

import (
	"context"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Reads of mappings, attributes and the feed go through a readView: the
// live store, or, while a bulk write's ingested tables and its batch are
// being applied (ingest.go), a snapshot of the store as it was before that
// write. Pebble makes each of the two steps visible at once, but not both
// together: a read of the live store between them would see the ingested
// keys (LFN records, mappings by LFN, feed records) without the batch
// (PFN records, mappings by PFN, the counts), or, for a read that looks
// more than once, one before and the other after.
//
// A bulk write therefore switches reads to a snapshot before its first
// step and back to the live store after its second (pinReads, unpinReads);
// before its first step it waits for the reads of the live store already
// in flight, as it did at the read barrier this replaces. Reads are never
// blocked by it: a read that starts in the window sees the catalog as
// before the write, which holds every write acknowledged so far (the
// writer holds c.mu, so no other write is applied in the window, and a
// write is acknowledged only after it was applied); a read that starts
// after the window sees all of the write.
type readView struct {
	r    pebble.Reader
	snap *pebble.Snapshot // r, if the view is a snapshot
	// inUse is held shared by every read of this view, and exclusively
	// once the view is retired: then no read uses it any more.
	inUse sync.RWMutex
}

// views holds the current view and the snapshot views being retired.
type views struct {
	mu      sync.RWMutex // guards cur
	cur     *readView
	retired sync.WaitGroup // snapshot views not yet closed (see unpinReads)
}

// acquire returns the current view, held for a read until release.
func (vs *views) acquire() *readView {
	vs.mu.RLock()
	v := vs.cur
	v.inUse.RLock()
	vs.mu.RUnlock()
	return v
}

func (v *readView) release() { v.inUse.RUnlock() }

// swap makes v the current view and returns the one before.
func (vs *views) swap(v *readView) *readView {
	vs.mu.Lock()
	old := vs.cur
	vs.cur = v
	vs.mu.Unlock()
	return old
}

// enterRead is enter for a read of mappings, attributes or the feed: it
// returns the view to read, which the caller must give back with
// c.leaveRead when done. It must not be held while taking c.mu.
func (c *Catalog) enterRead(ctx context.Context, op string) (*readView, error) {
	if err := c.enter(ctx, op); err != nil {
		return nil, err
	}
	return c.views.acquire(), nil
}

func (c *Catalog) leaveRead(v *readView) {
	v.release()
	c.leave()
}

// pinReads starts a window in which reads see a snapshot of the store as
// it is now, and returns once no read of the live store is in flight. It
// runs with c.mu held; unpinReads ends the window.
func (c *Catalog) pinReads() *readView {
	snap := c.db.NewSnapshot()
	pinned := &readView{r: snap, snap: snap}
	live := c.views.swap(pinned)
	live.inUse.Lock() // reads that started before the window end first
	return pinned
}

// unpinReads ends the window that pinReads started: reads see the live
// store again. The snapshot is closed once the reads that use it are done
// (Close waits for that). It runs with c.mu held, and only once the
// window's writes are all applied; a failed catalog (see Err) stays
// pinned, as nothing more is read from it.
func (c *Catalog) unpinReads(pinned *readView) {
	c.views.swap(&readView{r: c.db})
	c.views.retired.Add(1)
	go func() {
		defer c.views.retired.Done()
		pinned.inUse.Lock()
		_ = pinned.snap.Close()
	}()
}
