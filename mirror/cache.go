package mirror

import "sync"

// recordCache holds decoded records of units in flight (in any state but
// DONE and INVD), so that a unit's state changes, from NQUE to DONE, and
// the re-checks of a PNDG unit every interval read it from Pebble at most
// once, not at every step: on a tier-2 site re-checking thousands of PNDG
// units, point reads that went through the many small tables of a
// rewritten store were a third of the CPU.
//
// Each entry is exactly the record as last committed: the cache is
// changed only by the Store's writers, under Store.mu, right after a
// commit (or after reading a committed record from Pebble), so a record
// can leave or enter the cache but never go stale. Readers that do not
// hold Store.mu see an entry from just before or just after a concurrent
// commit, as they would reading Pebble. Records in the cache are never
// modified; readers that hand one out copy it.
//
// It holds at most max records; one more evicts one at random (Go's map
// order). Final records (DONE, INVD) are not kept: a unit leaves the
// cache when it is done. Safe for concurrent use.
type recordCache struct {
	mu  sync.Mutex
	m   map[uint64]*Record
	max int
}

func (c *recordCache) init(max int) {
	if max == 0 {
		max = DefaultCachedRecords
	}
	c.max = max
	if max > 0 {
		c.m = make(map[uint64]*Record, min(max, 1024))
	}
}

// get returns the cached record of sunum, which the caller must not
// modify.
func (c *recordCache) get(sunum uint64) (*Record, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	r, ok := c.m[sunum]
	c.mu.Unlock()
	return r, ok
}

// put caches r, the committed record of sunum (dropping it if it is
// final). The caller holds Store.mu.
func (c *recordCache) put(sunum uint64, r *Record) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !cacheable(r.State) {
		delete(c.m, sunum)
		return
	}
	if _, ok := c.m[sunum]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[sunum] = r
}

// remove forgets sunum (its record was removed). The caller holds
// Store.mu.
func (c *recordCache) remove(sunum uint64) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	delete(c.m, sunum)
	c.mu.Unlock()
}

// cacheable reports whether records in state st are cached: those of
// units in flight, not the final ones.
func cacheable(st State) bool { return st != DONE && st != INVD }
