package catalog

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// queued waits, bounded, until n single writes wait in c's queue.
func queued(t *testing.T, c *Catalog, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.queue.mu.Lock()
		got := len(c.queue.pending)
		c.queue.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued after 10 s, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	seq uint64
	err error
}

// TestGroupCommitSharesOneBatch holds the writers' lock while 64 durable
// Creates queue up: they are then committed as one batch, each with its
// own feed record, and each is answered.
func TestGroupCommitSharesOneBatch(t *testing.T) {
	c, dir := openTest(t)
	const n = 64
	c.mu.Lock()
	before := c.batches.Load()
	results := make(chan result, n)
	for i := range n {
		go func() {
			seq, err := c.Create(t.Context(), fmt.Sprint(1000+i), fmt.Sprintf("/SUM1/D%d", 1000+i))
			results <- result{seq, err}
		}()
	}
	queued(t, c, n)
	c.mu.Unlock()
	seqs := map[uint64]bool{}
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		seqs[r.seq] = true
	}
	if got := c.batches.Load() - before; got != 1 {
		t.Errorf("%d creates queued together took %d batches, want 1", n, got)
	}
	if len(seqs) != n {
		t.Errorf("%d distinct sequence numbers for %d creates", len(seqs), n)
	}
	chs, err := c.Changes(t.Context(), 1, 0)
	must(t, err)
	if len(chs) != n || stats(t, c).Mappings != n || stats(t, c).LFNs != n {
		t.Errorf("feed has %d records, stats %+v; want %d of each", len(chs), stats(t, c), n)
	}
	for _, ch := range chs {
		if !seqs[ch.Seq] {
			t.Errorf("feed record %d answered to no caller", ch.Seq)
		}
	}
	// Durable: the group is there after a reopen.
	must(t, c.Close())
	c2, err := Open(dir, nil)
	must(t, err)
	defer c2.Close()
	if st := stats(t, c2); st.Mappings != n || st.Seq != uint64(n) {
		t.Errorf("after reopen: %+v, want %d mappings", st, n)
	}
}

// TestGroupCommitOrder queues conflicting single writes into one group, in
// a known order: each sees the effects of those before it in the group.
func TestGroupCommitOrder(t *testing.T) {
	c, _ := openTest(t)
	_, err := c.Create(t.Context(), "old", "/p/old")
	must(t, err)
	type step struct {
		name string
		do   func() (uint64, error)
		want error
	}
	steps := []step{
		{"create a", func() (uint64, error) { return c.Create(t.Context(), "a", "/p/1") }, nil},
		{"create a again", func() (uint64, error) { return c.Create(t.Context(), "a", "/p/2") }, ErrExists},
		{"add to a", func() (uint64, error) { return c.Add(t.Context(), "a", "/p/3") }, nil},
		{"add the same", func() (uint64, error) { return c.Add(t.Context(), "a", "/p/3") }, ErrExists},
		{"delete a's first", func() (uint64, error) { return c.Delete(t.Context(), "a", "/p/1") }, nil},
		{"delete it again", func() (uint64, error) { return c.Delete(t.Context(), "a", "/p/1") }, ErrNotFound},
		{"delete old", func() (uint64, error) { return c.Delete(t.Context(), "old", "/p/old") }, nil},
		{"add to old", func() (uint64, error) { return c.Add(t.Context(), "old", "/p/x") }, ErrNotFound},
		{"create old anew", func() (uint64, error) { return c.Create(t.Context(), "old", "/p/new") }, nil},
		{"bad name", func() (uint64, error) { return c.Create(t.Context(), "", "/p") }, ErrInvalid},
	}
	c.mu.Lock()
	before := c.batches.Load()
	results := make([]chan result, len(steps))
	queuedSoFar := 0
	for i, s := range steps {
		results[i] = make(chan result, 1)
		go func() {
			seq, err := s.do()
			results[i] <- result{seq, err}
		}()
		queuedSoFar++
		queued(t, c, queuedSoFar)
	}
	c.mu.Unlock()
	var last uint64
	for i, s := range steps {
		r := <-results[i]
		if !errors.Is(r.err, s.want) || (s.want == nil) != (r.err == nil) {
			t.Errorf("%s: %v, want %v", s.name, r.err, s.want)
			continue
		}
		if r.err == nil {
			if r.seq <= last {
				t.Errorf("%s: seq %d after %d", s.name, r.seq, last)
			}
			last = r.seq
		}
	}
	if got := c.batches.Load() - before; got != 1 {
		t.Errorf("the group took %d batches, want 1", got)
	}
	for lfn, want := range map[string][]string{"a": {"/p/3"}, "old": {"/p/new"}} {
		got, err := c.QueryLFN(t.Context(), lfn)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("QueryLFN(%s) = %v, %v; want %v", lfn, got, err, want)
		}
	}
	if st := stats(t, c); st.Mappings != 2 || st.LFNs != 2 || st.PFNs != 2 {
		t.Errorf("stats %+v, want 2 mappings, LFNs and PFNs", st)
	}
}
