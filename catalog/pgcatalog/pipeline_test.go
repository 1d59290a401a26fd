package pgcatalog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// TestConcurrentBulkWritesPipelined runs bulk writes from several
// goroutines at once (as rlsctl lrc bulk --inflight sends them): some
// commit without waiting for their WAL flush while another waits for the
// lock (their commits overlap), and the feed contract holds: a follower
// reading while they run sees dense positions in increasing order, each
// acknowledged write's records once, and the counts match what is stored.
func TestConcurrentBulkWritesPipelined(t *testing.T) {
	c := openDSN(t, newDB(t))
	if !c.pipeline {
		t.Fatal("writes are not pipelined on the test server (synchronous_commit on, no standbys)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const writers, calls, chunk = 4, 12, 200

	var followed []catalog.Change
	stop := make(chan struct{})
	followErr := make(chan error, 1)
	go func() { followErr <- followFeed(ctx, c, stop, &followed) }()

	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[uint64]bool{} // the last position of each call
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range calls {
				ms := make([]catalog.Mapping, chunk)
				for i := range ms {
					lfn := fmt.Sprintf("w%d-c%02d-%04d", w, k, i)
					ms[i] = catalog.Mapping{LFN: lfn, PFN: fmt.Sprintf("/SUM%d/%s", i%7, lfn)}
				}
				op := catalog.OpCreate
				if k%3 == 2 { // delete the previous call's mappings: tombstones
					op = catalog.OpDelete
					for i := range ms {
						lfn := fmt.Sprintf("w%d-c%02d-%04d", w, k-1, i)
						ms[i] = catalog.Mapping{LFN: lfn, PFN: fmt.Sprintf("/SUM%d/%s", i%7, lfn)}
					}
				}
				errs, seq, err := c.BulkWrite(ctx, op, ms)
				if err == nil {
					err = errors.Join(errs...)
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-followErr; err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}
	if c.pipelined.Load() == 0 {
		t.Fatal("no write committed without waiting for its flush while another waited for the lock")
	}
	const records = writers * calls * chunk
	if len(followed) != records {
		t.Fatalf("the follower saw %d records, the writes made %d", len(followed), records)
	}
	creates, deletes := 0, 0
	for i, ch := range followed {
		if ch.Seq != uint64(i+1) {
			t.Fatalf("record %d of the feed is at position %d: not dense, or out of order", i, ch.Seq)
		}
		delete(acked, ch.Seq)
		switch ch.Kind {
		case catalog.ChangeCreate:
			creates++
		case catalog.ChangeDelete:
			deletes++
			if !ch.LFNRemoved {
				t.Fatalf("tombstone %d does not say the LFN went", ch.Seq)
			}
		}
	}
	if len(acked) != 0 {
		t.Fatalf("%d acknowledged calls' last positions were not in the feed", len(acked))
	}
	if want := writers * calls / 3 * chunk; deletes != want || creates != records-want {
		t.Fatalf("%d creates and %d tombstones, want %d and %d", creates, deletes, records-want, want)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lfns, pfns, maps uint64
	if err := c.pool.QueryRow(ctx, `SELECT count(DISTINCT lfn), count(DISTINCT pfn), count(*) FROM rls_map`).Scan(&lfns, &pfns, &maps); err != nil {
		t.Fatal(err)
	}
	if st.LFNs != lfns || st.PFNs != pfns || st.Mappings != maps || st.Seq != records {
		t.Fatalf("stats %+v; stored %d LFNs, %d PFNs, %d mappings, %d records", st, lfns, pfns, maps, records)
	}
}

// followFeed reads the feed from position 1 until stop is closed and it
// has read to the end, checking that positions only grow.
func followFeed(ctx context.Context, c *Catalog, stop <-chan struct{}, out *[]catalog.Change) error {
	from := uint64(1)
	stopped := false
	for {
		chs, err := c.Changes(ctx, from, 500)
		if err != nil {
			return err
		}
		for _, ch := range chs {
			if ch.Seq < from {
				return fmt.Errorf("Changes(%d) returned a record at %d", from, ch.Seq)
			}
			from = ch.Seq + 1
		}
		*out = append(*out, chs...)
		if len(chs) > 0 {
			continue
		}
		if stopped {
			return nil
		}
		select {
		case <-stop:
			stopped = true // one more read: everything acknowledged is visible
		case <-c.grown():
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
