package catalogtest

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/solar-archive/rls/catalog"
)

func testWildcard(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	var all []mapping
	for i := 0; i < 50; i++ {
		lfn := fmt.Sprint(1000 + i)
		all = append(all, mapping{LFN: lfn, PFN: "/SUM1/D" + lfn}, mapping{LFN: lfn, PFN: "/SUM2/D" + lfn})
	}
	// Written out of order, in single and bulk writes.
	errs, _, err := s.BulkWrite(ctx, catalog.OpCreate, []mapping{all[99], all[0]})
	must(t, err)
	must(t, errs[0])
	must(t, errs[1])
	for _, m := range all[1:99] {
		if _, err := s.Add(ctx, m.LFN, m.PFN); err != nil {
			create(t, s, m.LFN, m.PFN)
		}
	}
	create(t, s, "x*y", "/lit")
	create(t, s, "xzy", "/lit2")
	create(t, s, "x?y", "/lit3")

	cases := []struct {
		q     catalog.WildcardQuery
		want  int
		first mapping
		more  bool
	}{
		{catalog.WildcardQuery{Pattern: "10*"}, 100, mapping{LFN: "1000", PFN: "/SUM1/D1000"}, false},
		{catalog.WildcardQuery{Pattern: "101?"}, 20, mapping{LFN: "1010", PFN: "/SUM1/D1010"}, false},
		{catalog.WildcardQuery{Pattern: "*9"}, 10, mapping{LFN: "1009", PFN: "/SUM1/D1009"}, false},
		{catalog.WildcardQuery{Pattern: "1001"}, 2, mapping{LFN: "1001", PFN: "/SUM1/D1001"}, false},
		{catalog.WildcardQuery{Pattern: "100"}, 0, mapping{}, false},
		{catalog.WildcardQuery{Pattern: "10*", Offset: 10, Limit: 5}, 5, mapping{LFN: "1005", PFN: "/SUM1/D1005"}, true},
		{catalog.WildcardQuery{Pattern: "10*", Offset: 95, Limit: 5}, 5, mapping{LFN: "1047", PFN: "/SUM2/D1047"}, false},
		{catalog.WildcardQuery{Pattern: "10*", Offset: 100}, 0, mapping{}, false},
		{catalog.WildcardQuery{Pattern: "/SUM2/*", PFN: true, Limit: 3}, 3, mapping{LFN: "1000", PFN: "/SUM2/D1000"}, true},
		{catalog.WildcardQuery{Pattern: "*/D1049", PFN: true}, 2, mapping{LFN: "1049", PFN: "/SUM1/D1049"}, false},
		{catalog.WildcardQuery{Pattern: `x\*y`}, 1, mapping{LFN: "x*y", PFN: "/lit"}, false},
		{catalog.WildcardQuery{Pattern: `x\?y`}, 1, mapping{LFN: "x?y", PFN: "/lit3"}, false},
		{catalog.WildcardQuery{Pattern: `x*y`}, 3, mapping{LFN: "x*y", PFN: "/lit"}, false},
		{catalog.WildcardQuery{Pattern: `x?y`}, 3, mapping{LFN: "x*y", PFN: "/lit"}, false},
		{catalog.WildcardQuery{Pattern: "*"}, 103, mapping{LFN: "1000", PFN: "/SUM1/D1000"}, false},
		{catalog.WildcardQuery{Pattern: "nomatch*"}, 0, mapping{}, false},
	}
	for _, tc := range cases {
		got, more, err := s.Wildcard(ctx, tc.q)
		must(t, err)
		if len(got) != tc.want || more != tc.more || (tc.want > 0 && got[0] != tc.first) {
			t.Errorf("%+v: %d results (first %v), more=%v; want %d (first %v), more=%v",
				tc.q, len(got), first(got), more, tc.want, tc.first, tc.more)
		}
	}
	// Paging through everything gives every match once, in a stable order,
	// by LFN and PFN, or by PFN and LFN.
	if paged := pageAll(t, s, catalog.WildcardQuery{Pattern: "1*", Limit: 7}); !reflect.DeepEqual(paged, all) {
		t.Fatalf("paging gave %d mappings, want the %d in order", len(paged), len(all))
	}
	byPFN := append(append([]mapping(nil), evens(all)...), odds(all)...)
	if paged := pageAll(t, s, catalog.WildcardQuery{Pattern: "/SUM*", PFN: true, Limit: 9}); !reflect.DeepEqual(paged, byPFN) {
		t.Fatalf("paging by PFN gave %d mappings, want the %d in PFN order", len(paged), len(byPFN))
	}
}

// pageAll reads every page of q from offset 0, each of q.Limit (or
// q.MaxBytes), checking that only the last says there is no more.
func pageAll(t *testing.T, s catalog.Store, q catalog.WildcardQuery) []mapping {
	t.Helper()
	var out []mapping
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("%+v: more than 1000 pages", q)
		}
		q.Offset = len(out)
		page, more, err := s.Wildcard(t.Context(), q)
		must(t, err)
		if more && len(page) == 0 {
			t.Fatalf("%+v: an empty page that says there is more", q)
		}
		out = append(out, page...)
		if !more {
			return out
		}
	}
}

func first(ms []mapping) mapping {
	if len(ms) == 0 {
		return mapping{}
	}
	return ms[0]
}

func evens(ms []mapping) (out []mapping) {
	for i := 0; i < len(ms); i += 2 {
		out = append(out, ms[i])
	}
	return out
}

func odds(ms []mapping) (out []mapping) {
	for i := 1; i < len(ms); i += 2 {
		out = append(out, ms[i])
	}
	return out
}

// testWildcardMaxBytes checks the page bound in bytes: each mapping counts
// its LFN and PFN plus 16 bytes, and a page holds at least one mapping.
func testWildcardMaxBytes(t *testing.T, s catalog.Store) {
	var all []mapping
	for i := 0; i < 10; i++ {
		lfn := fmt.Sprint(1000 + i) // 4 + 7 + 16 = 27 bytes a mapping
		all = append(all, mapping{LFN: lfn, PFN: "/p/" + lfn})
	}
	_, _, err := s.BulkWrite(t.Context(), catalog.OpCreate, all)
	must(t, err)
	for _, tc := range []struct {
		max, want int
		more      bool
	}{{60, 2, true}, {54, 2, true}, {53, 1, true}, {1, 1, true}, {270, 10, false}, {269, 9, true}} {
		page, more, err := s.Wildcard(t.Context(), catalog.WildcardQuery{Pattern: "1*", MaxBytes: tc.max})
		must(t, err)
		if len(page) != tc.want || more != tc.more {
			t.Errorf("MaxBytes %d: %d mappings, more=%v; want %d, more=%v", tc.max, len(page), more, tc.want, tc.more)
		}
	}
	if paged := pageAll(t, s, catalog.WildcardQuery{Pattern: "1*", MaxBytes: 80}); !reflect.DeepEqual(paged, all) {
		t.Fatalf("paging by bytes gave %v, want %v", paged, all)
	}
	if page, more, _ := s.Wildcard(t.Context(), catalog.WildcardQuery{Pattern: "1*", MaxBytes: 1000, Limit: 3}); len(page) != 3 || !more {
		t.Fatalf("Limit under MaxBytes: %d mappings, more=%v; want 3, more", len(page), more)
	}
}
