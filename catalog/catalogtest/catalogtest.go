// Package catalogtest is the conformance suite of catalog.Store: the same
// tests run against every catalog backend (as Perkeep's storagetest runs
// against every blob server). A backend's own tests call Run with a function
// that opens a fresh, empty store; what is not in the suite (durability
// across a reopen, fail-stop, a backend's storage figures) stays in the
// backend's own tests.
//
// The suite asks only what the catalog.Store contract promises: change-feed
// positions are compared, never counted (a backend may leave gaps), and
// time values are whole seconds (a backend keeps at least microseconds).
package catalogtest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/solar-archive/rls/catalog"
)

// Run runs the suite. open must return a fresh, empty store for each subtest
// and register its cleanup (Close, which is idempotent, and removal of its
// data) with t.Cleanup; a subtest may close the store itself.
func Run(t *testing.T, open func(t *testing.T) catalog.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s catalog.Store)
	}{
		{"MappingOperations", testMappingOperations},
		{"BadInput", testBadInput},
		{"ErrorNamesItemAndReason", testErrorNamesItemAndReason},
		{"Exists", testExists},
		{"SharedPrefixesStayApart", testSharedPrefixes},
		{"Rename", testRename},
		{"BulkWrite", testBulkWrite},
		{"BulkQuery", testBulkQuery},
		{"RegisterUnits", testRegisterUnits},
		{"WildcardPagingAndOrder", testWildcard},
		{"WildcardMaxBytes", testWildcardMaxBytes},
		{"AttributeDefinitions", testAttrDefs},
		{"AttributeValues", testAttrValues},
		{"AttributeSearch", testAttrSearch},
		{"AttributeSearchPaging", testAttrSearchPaging},
		{"AttributesFollowObjects", testAttrsFollowObjects},
		{"BulkAttributes", testBulkAttrs},
		{"ChangeFeed", testChangeFeed},
		{"ChangeFeedPrune", testChangeFeedPrune},
		{"ForEachLFNSnapshot", testForEachLFNSnapshot},
		{"WaitChanges", testWaitChanges},
		{"Incarnation", testIncarnation},
		{"Close", testClose},
		{"ContextEnded", testContextEnded},
		{"ContextEndsLongScans", testContextEndsScans},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentConflicts", testConcurrentConflicts},
		{"ConcurrentFeedFollower", testConcurrentFeedFollower},
		{"ConcurrentBulkAndReaders", testConcurrentBulkAndReaders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

type (
	mapping = catalog.Mapping
	// step is one write of a scripted sequence.
	step struct {
		op       string // create, add, delete
		lfn, pfn string
		want     error
	}
)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantItemErr checks that err is nil when want is, and otherwise an
// *catalog.Error wrapping want.
func wantItemErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("%s: %v, want success", what, err)
		}
		return
	}
	var e *catalog.Error
	if !errors.Is(err, want) || !errors.As(err, &e) {
		t.Errorf("%s: %v, want an *Error wrapping %v", what, err, want)
	}
}

// write applies one step and returns its position.
func write(ctx context.Context, s catalog.Store, op, lfn, pfn string) (uint64, error) {
	switch op {
	case "create":
		return s.Create(ctx, lfn, pfn)
	case "add":
		return s.Add(ctx, lfn, pfn)
	case "delete":
		return s.Delete(ctx, lfn, pfn)
	}
	panic("unknown op " + op)
}

func create(t testing.TB, s catalog.Store, lfn, pfn string) uint64 {
	t.Helper()
	seq, err := s.Create(t.Context(), lfn, pfn)
	if err != nil {
		t.Fatalf("create %q %q: %v", lfn, pfn, err)
	}
	return seq
}

func add(t testing.TB, s catalog.Store, lfn, pfn string) uint64 {
	t.Helper()
	seq, err := s.Add(t.Context(), lfn, pfn)
	if err != nil {
		t.Fatalf("add %q %q: %v", lfn, pfn, err)
	}
	return seq
}

func del(t testing.TB, s catalog.Store, lfn, pfn string) uint64 {
	t.Helper()
	seq, err := s.Delete(t.Context(), lfn, pfn)
	if err != nil {
		t.Fatalf("delete %q %q: %v", lfn, pfn, err)
	}
	return seq
}

// query returns the names mapped to name (QueryLFN or QueryPFN).
func query(t testing.TB, s catalog.Store, obj catalog.ObjectType, name string) ([]string, error) {
	t.Helper()
	var out []string
	err := s.QueryEach(t.Context(), obj, name, func(other string) error {
		out = append(out, other)
		return nil
	})
	return out, err
}

// wantQuery checks the names mapped to name.
func wantQuery(t testing.TB, s catalog.Store, obj catalog.ObjectType, name string, want ...string) {
	t.Helper()
	got, err := query(t, s, obj, name)
	if len(want) == 0 {
		if !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("query %v %q = %q, %v; want ErrNotFound", obj, name, got, err)
		}
		return
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("query %v %q = %q, %v; want %q", obj, name, got, err, want)
	}
}

// exists reports BulkExists of one item.
func exists(t testing.TB, s catalog.Store, lfn, pfn string) bool {
	t.Helper()
	ok, errs, err := s.BulkExists(t.Context(), []mapping{{LFN: lfn, PFN: pfn}})
	if err == nil {
		err = errs[0]
	}
	must(t, err)
	return ok[0]
}

func stats(t testing.TB, s catalog.Store) catalog.Stats {
	t.Helper()
	st, err := s.Stats(t.Context())
	must(t, err)
	return st
}

// wantCounts checks the LFN, PFN and mapping counts.
func wantCounts(t testing.TB, s catalog.Store, lfns, pfns, mappings uint64) {
	t.Helper()
	if st := stats(t, s); st.LFNs != lfns || st.PFNs != pfns || st.Mappings != mappings {
		t.Fatalf("stats = %+v, want %d LFNs, %d PFNs, %d mappings", st, lfns, pfns, mappings)
	}
}

func lastSeq(t testing.TB, s catalog.Store) uint64 {
	t.Helper()
	seq, err := s.LastSeq(t.Context())
	must(t, err)
	return seq
}

// allChanges reads the feed from position from to its end.
func allChanges(t testing.TB, s catalog.Store, from uint64) []catalog.Change {
	t.Helper()
	var out []catalog.Change
	for {
		chs, err := s.Changes(t.Context(), from, 100)
		must(t, err)
		if len(chs) == 0 {
			return out
		}
		out = append(out, chs...)
		from = chs[len(chs)-1].Seq + 1
	}
}

func attrs(t testing.TB, s catalog.Store, obj catalog.ObjectType, object string, names ...string) ([]catalog.Attr, error) {
	t.Helper()
	var out []catalog.Attr
	errs, err := s.BulkAttrsEach(t.Context(), obj, []string{object}, names, func(_ int, a catalog.Attr) error {
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, errs[0]
}

func hitNames(hs []catalog.Hit) string {
	var s []string
	for _, h := range hs {
		s = append(s, h.Name)
	}
	return strings.Join(s, ",")
}
