package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

func testConcurrentWriters(t *testing.T, s catalog.Store) {
	const writers, each = 16, 50
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				seq, err := s.Create(t.Context(), fmt.Sprintf("w%d-%d", w, i), "/p")
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for seq := range seqs {
		if seen[seq] {
			t.Fatalf("position %d given twice", seq)
		}
		seen[seq] = true
	}
	wantCounts(t, s, writers*each, 1, writers*each)
	if chs := allChanges(t, s, 1); len(chs) != writers*each {
		t.Fatalf("%d records for %d creates", len(chs), writers*each)
	}
}

// testConcurrentConflicts races writers on the same names: two creates of
// one LFN never both succeed, and the counts never drift from what is
// stored.
func testConcurrentConflicts(t *testing.T, s catalog.Store) {
	const rounds, writers = 30, 8
	for r := 0; r < rounds; r++ {
		lfn := fmt.Sprint("race-", r)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Create(t.Context(), lfn, fmt.Sprint("/p", w)); err == nil {
					wins.Add(1)
				} else if !errors.Is(err, catalog.ErrExists) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d creates of %s succeeded, want 1", r, n, lfn)
		}
		// Adds and deletes of one mapping, racing, and renames of the
		// shared PFN back and forth: the mapping ends in a state consistent
		// with the counts.
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				switch w % 4 {
				case 0, 2:
					_, err = s.Add(t.Context(), lfn, "/shared")
				case 1:
					_, err = s.Delete(t.Context(), lfn, "/shared")
				case 3:
					_, _, err = s.BulkWrite(t.Context(), catalog.OpDelete, []mapping{{LFN: lfn, PFN: "/shared"}})
				}
				if err != nil && !errors.Is(err, catalog.ErrExists) && !errors.Is(err, catalog.ErrNotFound) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	st := stats(t, s)
	var mappings uint64
	for r := 0; r < rounds; r++ {
		pfns, err := query(t, s, catalog.LFN, fmt.Sprint("race-", r))
		must(t, err)
		mappings += uint64(len(pfns))
	}
	if st.LFNs != rounds || st.Mappings != mappings {
		t.Fatalf("stats %+v, but %d LFNs with %d mappings are stored", st, rounds, mappings)
	}
	shared, err := query(t, s, catalog.PFN, "/shared")
	if errors.Is(err, catalog.ErrNotFound) {
		err = nil
	}
	must(t, err)
	if uint64(len(shared)) != mappings-rounds {
		t.Fatalf("PFN /shared has %d LFNs, want %d", len(shared), mappings-rounds)
	}
	all, _, err := s.Wildcard(t.Context(), catalog.WildcardQuery{Pattern: "*", PFN: true})
	must(t, err)
	pfns := map[string]bool{}
	for _, m := range all {
		pfns[m.PFN] = true
	}
	if uint64(len(pfns)) != st.PFNs || uint64(len(all)) != st.Mappings {
		t.Fatalf("stats count %d PFNs and %d mappings, %d and %d are stored", st.PFNs, st.Mappings, len(pfns), len(all))
	}
}

// testConcurrentFeedFollower follows the change feed while writers run: the
// follower sees every acknowledged write's record exactly once, in
// increasing positions, even where concurrent writes commit in another order
// than they were given positions.
func testConcurrentFeedFollower(t *testing.T, s catalog.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const writers, each = 8, 40
	var (
		final    atomic.Uint64 // LastSeq once the writers are done
		followed []uint64
		done     = make(chan error, 1)
	)
	go func() { done <- follow(ctx, s, &final, &followed) }()
	var wg sync.WaitGroup
	acked := make(chan uint64, 2*writers*each) // a create each, and a delete every fourth
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				lfn := fmt.Sprintf("f%d-%d", w, i)
				seq, err := s.Create(ctx, lfn, "/p/"+lfn)
				if err == nil && i%4 == 3 {
					acked <- seq
					prev := fmt.Sprintf("f%d-%d", w, i-1)
					seq, err = s.Delete(ctx, prev, "/p/"+prev)
				}
				if err != nil {
					t.Error(err)
					return
				}
				acked <- seq
			}
		}()
	}
	wg.Wait()
	close(acked)
	final.Store(lastSeq(t, s))
	if err := <-done; err != nil {
		t.Fatalf("follower: %v", err)
	}
	want := slices.Sorted(func(yield func(uint64) bool) {
		for seq := range acked {
			if !yield(seq) {
				return
			}
		}
	})
	if !slices.Equal(followed, want) {
		t.Fatalf("the follower saw %d records, the writers were acknowledged %d (first difference at %d)",
			len(followed), len(want), firstDiff(followed, want))
	}
}

// follow reads the feed from its start until it has read the record at
// final (once final is set), appending each position to out and checking
// that positions increase.
func follow(ctx context.Context, s catalog.Store, final *atomic.Uint64, out *[]uint64) error {
	from := uint64(1)
	for {
		if f := final.Load(); f != 0 && from > f {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := s.WaitChanges(wctx, from)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("not done after reading up to %d: %w", from, ctx.Err())
		}
		if errors.Is(err, context.DeadlineExceeded) {
			continue // no record yet; check final again
		}
		if err != nil {
			return err
		}
		chs, err := s.Changes(ctx, from, 50)
		if err != nil {
			return err
		}
		for _, ch := range chs {
			if ch.Seq < from {
				return fmt.Errorf("Changes(%d) returned a record at %d", from, ch.Seq)
			}
			*out = append(*out, ch.Seq)
			from = ch.Seq + 1
		}
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// testConcurrentBulkAndReaders checks that readers never see part of a
// bulk call: 300 LFNs on one PFN are created and deleted in single calls
// while readers count them every way there is.
func testConcurrentBulkAndReaders(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	const n, rounds = 300, 15
	ms := make([]mapping, n)
	names := make([]string, n)
	for i := range ms {
		names[i] = fmt.Sprintf("k%03d", i)
		ms[i] = mapping{LFN: names[i], PFN: "/bulk"}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	check := func(what string, got int) {
		if got != 0 && got != n {
			t.Errorf("%s saw %d of the %d LFNs of one bulk call", what, got, n)
		}
	}
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				found := 0
				_, err := s.BulkQueryEach(ctx, catalog.LFN, names, func(int, string) error { found++; return nil })
				if err != nil {
					t.Error(err)
					return
				}
				check("BulkQueryEach", found)
				page, _, err := s.Wildcard(ctx, catalog.WildcardQuery{Pattern: "k*"})
				if err != nil {
					t.Error(err)
					return
				}
				check("Wildcard", len(page))
				lfns := 0
				err = s.QueryEach(ctx, catalog.PFN, "/bulk", func(string) error { lfns++; return nil })
				if err != nil && !errors.Is(err, catalog.ErrNotFound) {
					t.Error(err)
					return
				}
				check("QueryEach", lfns)
				lfns = 0
				if _, err := s.ForEachLFN(ctx, func(string) error { lfns++; return nil }); err != nil {
					t.Error(err)
					return
				}
				check("ForEachLFN", lfns)
			}
		}()
	}
	for i := 0; i < rounds; i++ {
		for _, op := range []catalog.Op{catalog.OpCreate, catalog.OpDelete} {
			errs, _, err := s.BulkWrite(ctx, op, ms)
			must(t, err)
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("bulk %v: %v", op, err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
}
