package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// rec is a change-feed record without its position and time.
type rec struct {
	kind           catalog.ChangeKind
	lfn, pfn, old  string
	added, removed bool
}

func recOf(ch catalog.Change) rec {
	return rec{ch.Kind, ch.LFN, ch.PFN, ch.Old, ch.LFNAdded, ch.LFNRemoved}
}

func testChangeFeed(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	start := time.Now()
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "size", Object: catalog.LFN, Type: catalog.TypeInt}))
	var seqs []uint64
	seqs = append(seqs, create(t, s, "a", "/1"), add(t, s, "a", "/2"))
	must(t, s.SetAttr(ctx, catalog.LFN, "a", "size", catalog.IntValue(1), catalog.Upsert)) // not in the feed
	seqs = append(seqs, del(t, s, "a", "/1"), del(t, s, "a", "/2"), create(t, s, "b", "/3"))
	for _, f := range []func() (uint64, error){
		func() (uint64, error) { return s.RenameLFN(ctx, "b", "c") },
		func() (uint64, error) { return s.RenamePFN(ctx, "/3", "/4") },
	} {
		seq, err := f()
		must(t, err)
		seqs = append(seqs, seq)
	}
	_, err := s.Create(ctx, "c", "/9") // fails: not in the feed
	wantItemErr(t, "create of an existing LFN", err, catalog.ErrExists)
	errs, seq, err := s.BulkWrite(ctx, catalog.OpAdd, []mapping{{LFN: "c", PFN: "/5"}, {LFN: "nope", PFN: "/5"}, {LFN: "c", PFN: "/6"}})
	must(t, err)
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("bulk add: %v", errs)
	}
	seqs = append(seqs, seq)

	chs := allChanges(t, s, 1)
	want := []rec{
		{catalog.ChangeCreate, "a", "/1", "", true, false},
		{catalog.ChangeAdd, "a", "/2", "", false, false},
		{catalog.ChangeDelete, "a", "/1", "", false, false},
		{catalog.ChangeDelete, "a", "/2", "", false, true}, // the tombstone of LFN a
		{catalog.ChangeCreate, "b", "/3", "", true, false},
		{catalog.ChangeRenameLFN, "c", "", "b", true, true},
		{catalog.ChangeRenamePFN, "", "/4", "/3", false, false},
		{catalog.ChangeAdd, "c", "/5", "", false, false},
		{catalog.ChangeAdd, "c", "/6", "", false, false},
	}
	var got []rec
	for i, ch := range chs {
		got = append(got, recOf(ch))
		if i > 0 && ch.Seq <= chs[i-1].Seq {
			t.Errorf("record %d at position %d after %d: positions must increase", i, ch.Seq, chs[i-1].Seq)
		}
		if ch.Time.Before(start.Add(-time.Hour)) || ch.Time.After(time.Now().Add(time.Hour)) {
			t.Errorf("record %d has time %v, not about now", i, ch.Time)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("feed:\n got %+v\nwant %+v", got, want)
	}
	// Each write returned its record's position (a bulk call its last).
	for i, j := range []int{0, 1, 2, 3, 4, 5, 6, 8} {
		if seqs[i] != chs[j].Seq {
			t.Errorf("write %d returned position %d, its record is at %d", i, seqs[i], chs[j].Seq)
		}
	}
	if last := lastSeq(t, s); last != chs[len(chs)-1].Seq {
		t.Errorf("LastSeq %d, last record at %d", last, chs[len(chs)-1].Seq)
	}
	if st := stats(t, s); st.Seq != chs[len(chs)-1].Seq || st.FirstSeq == 0 || st.FirstSeq > chs[0].Seq {
		t.Errorf("stats: feed %d..%d, records %d..%d", st.FirstSeq, st.Seq, chs[0].Seq, chs[len(chs)-1].Seq)
	}

	// Reading from a position, with a limit.
	page, err := s.Changes(ctx, chs[4].Seq, 2)
	must(t, err)
	if len(page) != 2 || page[0].Seq != chs[4].Seq || page[1].Seq != chs[5].Seq {
		t.Fatalf("Changes(%d, 2) = %+v", chs[4].Seq, page)
	}
	page, err = s.Changes(ctx, chs[3].Seq+1, 1) // from just after a record
	must(t, err)
	if len(page) != 1 || page[0].Seq != chs[4].Seq {
		t.Fatalf("Changes(%d, 1) = %+v", chs[3].Seq+1, page)
	}
	if page, err := s.Changes(ctx, 0, 0); err != nil || !reflect.DeepEqual(page, chs) {
		t.Fatalf("Changes(0, 0) = %+v, %v; want the whole feed", page, err)
	}
	if page, err := s.Changes(ctx, chs[len(chs)-1].Seq+1, 0); err != nil || len(page) != 0 {
		t.Fatalf("Changes after the last record = %+v, %v; want none", page, err)
	}
}

func testChangeFeedPrune(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	var seqs []uint64
	for i := 0; i < 7; i++ {
		seqs = append(seqs, create(t, s, fmt.Sprint(i), "/p"))
	}
	must(t, s.PruneChanges(ctx, seqs[3]))
	_, err := s.Changes(ctx, seqs[1], 0)
	wantItemErr(t, "changes from a pruned position", err, catalog.ErrNotFound)
	chs := allChanges(t, s, seqs[3])
	if len(chs) != 4 || chs[0].Seq != seqs[3] {
		t.Fatalf("after the prune: %+v", chs)
	}
	if st := stats(t, s); st.FirstSeq != seqs[3] || st.Seq != seqs[6] {
		t.Fatalf("after the prune the feed is %d..%d, want %d..%d", st.FirstSeq, st.Seq, seqs[3], seqs[6])
	}
	// A lower horizon changes nothing.
	must(t, s.PruneChanges(ctx, seqs[1]))
	if chs := allChanges(t, s, seqs[3]); len(chs) != 4 {
		t.Fatalf("a lower horizon pruned records: %+v", chs)
	}
	// A horizon past the end prunes everything, and no more.
	must(t, s.PruneChanges(ctx, seqs[6]+1000))
	if st := stats(t, s); st.FirstSeq != st.Seq+1 || st.Seq != seqs[6] {
		t.Fatalf("with every record pruned the feed is %d..%d, want %d..%d", st.FirstSeq, st.Seq, seqs[6]+1, seqs[6])
	}
	_, err = s.Changes(ctx, seqs[6], 0)
	wantItemErr(t, "changes from the pruned last record", err, catalog.ErrNotFound)
	next := create(t, s, "next", "/p")
	if next <= seqs[6] {
		t.Fatalf("a write after pruning got position %d, not after %d", next, seqs[6])
	}
	chs = allChanges(t, s, seqs[6]+1)
	if len(chs) != 1 || chs[0].Seq != next || chs[0].LFN != "next" {
		t.Fatalf("the feed after pruning everything and one write: %+v", chs)
	}
}

func testForEachLFNSnapshot(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	var ms []mapping
	for i := 0; i < 100; i++ {
		ms = append(ms, mapping{LFN: fmt.Sprint(i), PFN: "/p"})
	}
	_, _, err := s.BulkWrite(ctx, catalog.OpCreate, ms[50:])
	must(t, err)
	for _, m := range ms[:50] {
		create(t, s, m.LFN, m.PFN)
	}
	add(t, s, "7", "/q") // an LFN with two PFNs is listed once
	last := lastSeq(t, s)
	var got []string
	seq, err := s.ForEachLFN(ctx, func(lfn string) error {
		if len(got) == 0 {
			// Writers are not blocked, and the scan does not see them.
			done := make(chan error, 1)
			go func() { _, err := s.Create(ctx, "zzz-late", "/p"); done <- err }()
			select {
			case err := <-done:
				must(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("a write blocked while ForEachLFN ran")
			}
		}
		got = append(got, lfn)
		return nil
	})
	must(t, err)
	if len(got) != 100 || seq != last || got[0] != "0" || got[1] != "1" || got[2] != "10" || got[99] != "99" {
		t.Fatalf("ForEachLFN saw %d LFNs (%q…) at position %d, want 100 in byte order at %d", len(got), got[:min(3, len(got))], seq, last)
	}
	chs := allChanges(t, s, seq+1)
	if len(chs) != 1 || chs[0].LFN != "zzz-late" {
		t.Fatalf("changes after the snapshot = %+v", chs)
	}
	stop := errors.New("enough")
	n := 0
	if _, err := s.ForEachLFN(ctx, func(string) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("ForEachLFN whose fn fails: %v after %d calls, want its error after 1", err, n)
	}
}

func testWaitChanges(t *testing.T, s catalog.Store) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.WaitChanges(ctx, 1) }()
	seq := create(t, s, "a", "/p")
	if err := <-done; err != nil {
		t.Fatalf("WaitChanges after a write: %v", err)
	}
	// A position already written returns at once.
	must(t, s.WaitChanges(ctx, seq))
	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	if err := s.WaitChanges(short, seq+1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChanges with no new record = %v, want the context's deadline", err)
	}
	// An attribute write is not a change.
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "n", Object: catalog.LFN, Type: catalog.TypeInt}))
	short2, cancelShort2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort2()
	if err := s.WaitChanges(short2, seq+1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChanges after an attribute write = %v, want the context's deadline", err)
	}
	go func() { done <- s.WaitChanges(ctx, seq+1) }()
	del(t, s, "a", "/p") // a tombstone wakes waiters too
	if err := <-done; err != nil {
		t.Fatalf("WaitChanges after a delete: %v", err)
	}
	next := lastSeq(t, s) + 1
	go func() { done <- s.WaitChanges(ctx, next) }()
	must(t, s.Close())
	if err := <-done; !errors.Is(err, catalog.ErrClosed) {
		t.Fatalf("WaitChanges across Close = %v, want ErrClosed", err)
	}
}

func testIncarnation(t *testing.T, s catalog.Store) {
	inc := s.Incarnation()
	if inc == ([catalog.IncarnationLen]byte{}) {
		t.Fatal("zero incarnation")
	}
	create(t, s, "a", "/p")
	if s.Incarnation() != inc {
		t.Fatal("the incarnation changed with a write")
	}
}

func testClose(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	create(t, s, "a", "/p")
	must(t, s.Close())
	must(t, s.Close()) // idempotent
	calls := map[string]error{}
	_, calls["create"] = s.Create(ctx, "b", "/p")
	_, _, calls["bulk write"] = s.BulkWrite(ctx, catalog.OpCreate, []mapping{{LFN: "b", PFN: "/p"}})
	_, _, calls["register"] = s.RegisterUnits(ctx, []catalog.Unit{{LFN: "b", PFN: "/p"}})
	calls["query"] = s.QueryEach(ctx, catalog.LFN, "a", func(string) error { return nil })
	_, calls["bulk query"] = s.BulkQueryEach(ctx, catalog.LFN, []string{"a"}, func(int, string) error { return nil })
	_, _, calls["bulk exists"] = s.BulkExists(ctx, []mapping{{LFN: "a"}})
	_, _, calls["wildcard"] = s.Wildcard(ctx, catalog.WildcardQuery{Pattern: "*"})
	calls["define"] = s.DefineAttr(ctx, catalog.AttrDef{Name: "n", Object: catalog.LFN, Type: catalog.TypeInt})
	_, calls["bulk get attributes"] = s.BulkAttrsEach(ctx, catalog.LFN, []string{"a"}, nil, func(int, catalog.Attr) error { return nil })
	_, calls["changes"] = s.Changes(ctx, 1, 0)
	_, calls["for each lfn"] = s.ForEachLFN(ctx, func(string) error { return nil })
	_, calls["stats"] = s.Stats(ctx)
	for name, err := range calls {
		var e *catalog.Error
		if !errors.Is(err, catalog.ErrClosed) || errors.As(err, &e) {
			t.Errorf("%s after Close: %v, want ErrClosed (not an item's *Error)", name, err)
		}
	}
}
