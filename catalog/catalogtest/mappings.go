package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

func testMappingOperations(t *testing.T, s catalog.Store) {
	steps := []step{
		{"create", "100", "/SUM1/D100", nil},
		{"create", "100", "/SUM2/D100", catalog.ErrExists},
		{"add", "100", "/SUM2/D100", nil},
		{"add", "100", "/SUM2/D100", catalog.ErrExists},
		{"add", "101", "/SUM1/D101", catalog.ErrNotFound},
		{"create", "101", "/SUM1/D100", nil}, // a PFN may hold several LFNs
		{"delete", "100", "/nope", catalog.ErrNotFound},
		{"delete", "100", "/SUM1/D100", nil},
		{"delete", "100", "/SUM1/D100", catalog.ErrNotFound},
		{"delete", "nope", "/SUM1/D100", catalog.ErrNotFound},
		{"create", strings.Repeat("x", catalog.MaxNameLen), "/x", nil},
	}
	var last uint64
	for i, st := range steps {
		seq, err := write(t.Context(), s, st.op, st.lfn, st.pfn)
		wantItemErr(t, fmt.Sprintf("step %d %s(%.20q, %q)", i, st.op, st.lfn, st.pfn), err, st.want)
		if err != nil {
			if !strings.Contains(err.Error(), st.op) {
				t.Errorf("step %d: error %q does not name the operation", i, err)
			}
			continue
		}
		if seq <= last {
			t.Errorf("step %d: position %d after %d: positions must increase", i, seq, last)
		}
		last = seq
	}
	if got := lastSeq(t, s); got != last {
		t.Fatalf("LastSeq = %d, want %d (the last write's)", got, last)
	}
	wantQuery(t, s, catalog.LFN, "100", "/SUM2/D100")
	wantQuery(t, s, catalog.PFN, "/SUM1/D100", "101")
	wantCounts(t, s, 3, 3, 3)

	// The LFN disappears with its last PFN, and the PFN with its last LFN.
	del(t, s, "100", "/SUM2/D100")
	wantQuery(t, s, catalog.LFN, "100")
	wantQuery(t, s, catalog.PFN, "/SUM2/D100")
	if exists(t, s, "100", "") || exists(t, s, "", "/SUM2/D100") {
		t.Fatal("LFN or PFN exists after its last mapping was deleted")
	}
	wantCounts(t, s, 2, 2, 2)
	// And it can be created again.
	create(t, s, "100", "/SUM3/D100")
	wantQuery(t, s, catalog.LFN, "100", "/SUM3/D100")
}

// badCall is one call with bad input.
type badCall struct {
	name string
	call func(ctx context.Context, s catalog.Store) error
}

func badCalls() []badCall {
	long := strings.Repeat("x", catalog.MaxNameLen+1)
	one := func(_ []error, _ uint64, err error) error { return err }
	item := func(errs []error, _ uint64, err error) error {
		if err != nil {
			return err
		}
		return errs[0]
	}
	nan := catalog.FloatValue(math.NaN())
	return []badCall{
		{"create empty lfn", func(ctx context.Context, s catalog.Store) error { _, err := s.Create(ctx, "", "/x"); return err }},
		{"create empty pfn", func(ctx context.Context, s catalog.Store) error { _, err := s.Create(ctx, "x", ""); return err }},
		{"create NUL", func(ctx context.Context, s catalog.Store) error { _, err := s.Create(ctx, "a\x00b", "/x"); return err }},
		{"create bad UTF-8", func(ctx context.Context, s catalog.Store) error {
			_, err := s.Create(ctx, "\xff\xfe", "/x")
			return err
		}},
		{"create too long", func(ctx context.Context, s catalog.Store) error { _, err := s.Create(ctx, long, "/x"); return err }},
		{"add too long pfn", func(ctx context.Context, s catalog.Store) error { _, err := s.Add(ctx, "1", long); return err }},
		{"delete empty pfn", func(ctx context.Context, s catalog.Store) error { _, err := s.Delete(ctx, "1", ""); return err }},
		{"rename lfn to empty", func(ctx context.Context, s catalog.Store) error { _, err := s.RenameLFN(ctx, "1", ""); return err }},
		{"rename pfn from NUL", func(ctx context.Context, s catalog.Store) error {
			_, err := s.RenamePFN(ctx, "/p\x00", "/q")
			return err
		}},
		{"bulk write unknown op", func(ctx context.Context, s catalog.Store) error {
			return one(s.BulkWrite(ctx, catalog.Op(9), []mapping{{LFN: "2", PFN: "/2"}}))
		}},
		{"bulk write bad item", func(ctx context.Context, s catalog.Store) error {
			return item(s.BulkWrite(ctx, catalog.OpCreate, []mapping{{LFN: "2\x00", PFN: "/2"}}))
		}},
		{"bulk rename unknown type", func(ctx context.Context, s catalog.Store) error {
			return one(s.BulkRename(ctx, catalog.ObjectType(7), []catalog.Rename{{Old: "1", New: "2"}}))
		}},
		{"bulk rename bad item", func(ctx context.Context, s catalog.Store) error {
			return item(s.BulkRename(ctx, catalog.LFN, []catalog.Rename{{Old: "1", New: long}}))
		}},
		{"register bad unit", func(ctx context.Context, s catalog.Store) error {
			return item(s.RegisterUnits(ctx, []catalog.Unit{{LFN: "2", PFN: "/2", Attrs: []catalog.Attr{{Name: "size", Value: nan}}}}))
		}},
		{"register unit of wrong type", func(ctx context.Context, s catalog.Store) error {
			return item(s.RegisterUnits(ctx, []catalog.Unit{{LFN: "2", PFN: "/2", Attrs: []catalog.Attr{{Name: "size", Value: catalog.StringValue("big")}}}}))
		}},
		{"query unknown type", func(ctx context.Context, s catalog.Store) error {
			return s.QueryEach(ctx, catalog.ObjectType(7), "1", func(string) error { return nil })
		}},
		{"query bad name", func(ctx context.Context, s catalog.Store) error {
			return s.QueryEach(ctx, catalog.LFN, "", func(string) error { return nil })
		}},
		{"bulk query unknown type", func(ctx context.Context, s catalog.Store) error {
			_, err := s.BulkQueryEach(ctx, catalog.ObjectType(7), []string{"1"}, func(int, string) error { return nil })
			return err
		}},
		{"exists neither", func(ctx context.Context, s catalog.Store) error {
			_, errs, err := s.BulkExists(ctx, []mapping{{}})
			if err != nil {
				return err
			}
			return errs[0]
		}},
		{"wildcard empty", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.Wildcard(ctx, catalog.WildcardQuery{Pattern: ""})
			return err
		}},
		{"wildcard trailing escape", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.Wildcard(ctx, catalog.WildcardQuery{Pattern: `a\`})
			return err
		}},
		{"wildcard NUL", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.Wildcard(ctx, catalog.WildcardQuery{Pattern: "a\x00*"})
			return err
		}},
		{"wildcard negative offset", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.Wildcard(ctx, catalog.WildcardQuery{Pattern: "a*", Offset: -1})
			return err
		}},
		{"wildcard negative limit", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.Wildcard(ctx, catalog.WildcardQuery{Pattern: "a*", Limit: -1})
			return err
		}},
		{"define unknown object", func(ctx context.Context, s catalog.Store) error {
			return s.DefineAttr(ctx, catalog.AttrDef{Name: "x", Object: 7, Type: catalog.TypeString})
		}},
		{"define unknown type", func(ctx context.Context, s catalog.Store) error {
			return s.DefineAttr(ctx, catalog.AttrDef{Name: "x", Object: catalog.LFN})
		}},
		{"define empty name", func(ctx context.Context, s catalog.Store) error {
			return s.DefineAttr(ctx, catalog.AttrDef{Name: "", Object: catalog.LFN, Type: catalog.TypeInt})
		}},
		{"list definitions of an unknown object type", func(ctx context.Context, s catalog.Store) error {
			_, err := s.AttrDefs(ctx, 7)
			return err
		}},
		{"undefine unknown object", func(ctx context.Context, s catalog.Store) error {
			return s.UndefineAttr(ctx, "size", 7, true)
		}},
		{"set wrong type", func(ctx context.Context, s catalog.Store) error {
			return s.SetAttr(ctx, catalog.LFN, "1", "size", catalog.StringValue("big"), catalog.Upsert)
		}},
		{"set NaN", func(ctx context.Context, s catalog.Store) error {
			return s.SetAttr(ctx, catalog.LFN, "1", "ratio", nan, catalog.Upsert)
		}},
		{"set string with NUL", func(ctx context.Context, s catalog.Store) error {
			return s.SetAttr(ctx, catalog.LFN, "1", "series", catalog.StringValue("a\x00"), catalog.Upsert)
		}},
		{"set string too long", func(ctx context.Context, s catalog.Store) error {
			v := catalog.StringValue(strings.Repeat("s", catalog.MaxStringValueLen+1))
			return s.SetAttr(ctx, catalog.LFN, "1", "series", v, catalog.Upsert)
		}},
		{"set string bad UTF-8", func(ctx context.Context, s catalog.Store) error {
			return s.SetAttr(ctx, catalog.LFN, "1", "series", catalog.StringValue("\xff"), catalog.Upsert)
		}},
		{"set time out of range", func(ctx context.Context, s catalog.Store) error {
			v := catalog.TimeValue(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
			return s.SetAttr(ctx, catalog.LFN, "1", "mtime", v, catalog.Upsert)
		}},
		{"set int for a time", func(ctx context.Context, s catalog.Store) error {
			return s.SetAttr(ctx, catalog.LFN, "1", "mtime", catalog.IntValue(0), catalog.Upsert)
		}},
		{"bulk set bad value", func(ctx context.Context, s catalog.Store) error {
			errs, err := s.BulkSetAttrs(ctx, catalog.LFN, catalog.Upsert, []catalog.AttrWrite{{Object: "1", Attr: "ratio", Value: &nan}})
			if err != nil {
				return err
			}
			return errs[0]
		}},
		{"bulk get unknown object type", func(ctx context.Context, s catalog.Store) error {
			_, err := s.BulkAttrsEach(ctx, 7, []string{"1"}, nil, func(int, catalog.Attr) error { return nil })
			return err
		}},
		{"search operand of wrong type", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpEQ, Value: catalog.StringValue("x")})
			return err
		}},
		{"search like on an int", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpLike, Value: catalog.StringValue("x")})
			return err
		}},
		{"search unknown operator", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Value: catalog.IntValue(1)})
			return err
		}},
		{"search unknown object type", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Attr: "size", Op: catalog.OpEQ, Value: catalog.IntValue(1)})
			return err
		}},
		{"search bad like pattern", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue(`x\`)})
			return err
		}},
		{"search negative offset", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpGE, Value: catalog.IntValue(0), Offset: -1})
			return err
		}},
		{"search between of wrong type", func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpBetween, Value: catalog.IntValue(0), Value2: catalog.FloatValue(1)})
			return err
		}},
	}
}

// snapshot is everything a bad call must leave as it was.
type snapshot struct {
	stats    catalog.Stats
	last     uint64
	mappings []mapping
	attrs    []catalog.Attr
	defs     []catalog.AttrDef
}

func takeSnapshot(t *testing.T, s catalog.Store) snapshot {
	t.Helper()
	ms, _, err := s.Wildcard(t.Context(), catalog.WildcardQuery{Pattern: "*"})
	must(t, err)
	as, err := attrs(t, s, catalog.LFN, "1")
	must(t, err)
	defs, err := s.AttrDefs(t.Context(), 0)
	must(t, err)
	return snapshot{stats(t, s), lastSeq(t, s), ms, as, defs}
}

// testBadInput checks that every kind of bad input is refused with an
// *Error wrapping ErrInvalid that names the operation, and changes nothing.
func testBadInput(t *testing.T, s catalog.Store) {
	create(t, s, "1", "/1")
	for _, d := range []catalog.AttrDef{
		{Name: "size", Object: catalog.LFN, Type: catalog.TypeInt},
		{Name: "ratio", Object: catalog.LFN, Type: catalog.TypeFloat},
		{Name: "series", Object: catalog.LFN, Type: catalog.TypeString},
		{Name: "mtime", Object: catalog.LFN, Type: catalog.TypeTime},
	} {
		must(t, s.DefineAttr(t.Context(), d))
	}
	must(t, s.SetAttr(t.Context(), catalog.LFN, "1", "size", catalog.IntValue(7), catalog.Upsert))
	before := takeSnapshot(t, s)
	for _, c := range badCalls() {
		err := c.call(t.Context(), s)
		var e *catalog.Error
		if !errors.Is(err, catalog.ErrInvalid) || !errors.As(err, &e) || e.Op == "" {
			t.Errorf("%s: %v, want an *Error naming its operation, wrapping ErrInvalid", c.name, err)
		}
	}
	if after := takeSnapshot(t, s); !reflect.DeepEqual(after, before) {
		t.Fatalf("bad input changed the catalog:\nbefore %+v\n after %+v", before, after)
	}
}

func testErrorNamesItemAndReason(t *testing.T, s catalog.Store) {
	_, err := s.Create(t.Context(), "12\x0034", "/p")
	if err == nil || !strings.Contains(err.Error(), `"12\x0034"`) || !strings.Contains(err.Error(), "NUL byte at offset 2") {
		t.Fatalf("error %q should name the item and the NUL offset", err)
	}
	_, err = s.Create(t.Context(), strings.Repeat("9", 5000), "/p")
	if err == nil || !strings.Contains(err.Error(), "5000 bytes") || len(err.Error()) > 400 {
		t.Fatalf("error for an oversized name should give its size and stay short: %q", err)
	}
	if st := stats(t, s); st.Mappings != 0 || st.Seq != 0 {
		t.Fatalf("bad input changed the catalog: %+v", st)
	}
}

func testExists(t *testing.T, s catalog.Store) {
	create(t, s, "lfn1", "pfn1")
	cases := []struct {
		item mapping
		want bool
		err  error
	}{
		{mapping{LFN: "lfn1"}, true, nil},
		{mapping{PFN: "pfn1"}, true, nil},
		{mapping{LFN: "lfn1", PFN: "pfn1"}, true, nil},
		{mapping{LFN: "lfn1", PFN: "pfn2"}, false, nil},
		{mapping{LFN: "lfn2"}, false, nil},
		{mapping{PFN: "pfn2"}, false, nil},
		{mapping{}, false, catalog.ErrInvalid},
		{mapping{LFN: "a\x00"}, false, catalog.ErrInvalid},
		{mapping{LFN: "lfn1", PFN: "\xff"}, false, catalog.ErrInvalid},
	}
	items := make([]mapping, len(cases))
	for i, tc := range cases {
		items[i] = tc.item
	}
	got, errs, err := s.BulkExists(t.Context(), items)
	must(t, err)
	for i, tc := range cases {
		if got[i] != tc.want {
			t.Errorf("exists %q = %v, want %v", tc.item, got[i], tc.want)
		}
		wantItemErr(t, fmt.Sprintf("exists %q", tc.item), errs[i], tc.err)
	}
}

func testSharedPrefixes(t *testing.T, s catalog.Store) {
	// Names that are prefixes of each other, and names that differ only
	// after what would be a separator in a naive encoding.
	pairs := []mapping{
		{LFN: "1", PFN: "/a"}, {LFN: "12", PFN: "/a"}, {LFN: "123", PFN: "/b"}, {LFN: "1\x01", PFN: "/c"},
		{LFN: "1\xc3\xa9", PFN: "/d"}, {LFN: "ab", PFN: "c"}, {LFN: "a", PFN: "bc"}, {LFN: "1%", PFN: "/e"}, {LFN: "1_", PFN: "/f"},
	}
	for _, m := range pairs {
		create(t, s, m.LFN, m.PFN)
	}
	for _, m := range pairs {
		wantQuery(t, s, catalog.LFN, m.LFN, m.PFN)
	}
	wantQuery(t, s, catalog.PFN, "/a", "1", "12")
	if !exists(t, s, "a", "bc") {
		t.Error("mapping a -> bc missing")
	}
	if exists(t, s, "ab", "bc") {
		t.Error("mapping ab -> bc should not exist")
	}
	// Byte order, as in Go's strings.Compare: "1" < "1\x01" < "12" < "1é".
	ms, _, err := s.Wildcard(t.Context(), catalog.WildcardQuery{Pattern: "1*"})
	must(t, err)
	var got []string
	for _, m := range ms {
		got = append(got, m.LFN)
	}
	if want := []string{"1", "1\x01", "1%", "12", "123", "1_", "1\xc3\xa9"}; !reflect.DeepEqual(got, want) {
		t.Errorf("wildcard 1* = %q, want %q (byte order; %% and _ are literal)", got, want)
	}
}

func testRename(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "size", Object: catalog.LFN, Type: catalog.TypeInt}))
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "tier", Object: catalog.PFN, Type: catalog.TypeString}))
	create(t, s, "old", "/p1")
	add(t, s, "old", "/p2")
	create(t, s, "other", "/p1")
	must(t, s.SetAttr(ctx, catalog.LFN, "old", "size", catalog.IntValue(42), catalog.Upsert))
	must(t, s.SetAttr(ctx, catalog.PFN, "/p1", "tier", catalog.StringValue("disk"), catalog.Upsert))

	_, err := s.RenameLFN(ctx, "missing", "x")
	wantItemErr(t, "rename missing", err, catalog.ErrNotFound)
	_, err = s.RenameLFN(ctx, "old", "other")
	wantItemErr(t, "rename onto an existing LFN", err, catalog.ErrExists)
	_, err = s.RenamePFN(ctx, "/p1", "/p2")
	wantItemErr(t, "rename onto an existing PFN", err, catalog.ErrExists)

	before := lastSeq(t, s)
	seq, err := s.RenameLFN(ctx, "old", "new")
	must(t, err)
	if seq <= before {
		t.Fatalf("rename at position %d, not after %d", seq, before)
	}
	wantQuery(t, s, catalog.LFN, "old")
	wantQuery(t, s, catalog.LFN, "new", "/p1", "/p2")
	wantQuery(t, s, catalog.PFN, "/p1", "new", "other")
	as, err := attrs(t, s, catalog.LFN, "new")
	must(t, err)
	if len(as) != 1 || as[0].Value.Int != 42 {
		t.Fatalf("attributes did not follow the rename: %+v", as)
	}
	hits, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpEQ, Value: catalog.IntValue(42)})
	must(t, err)
	if hitNames(hits) != "new" {
		t.Fatalf("attribute search did not follow the rename: %+v", hits)
	}

	_, err = s.RenamePFN(ctx, "/p1", "/q1")
	must(t, err)
	wantQuery(t, s, catalog.LFN, "other", "/q1")
	wantQuery(t, s, catalog.PFN, "/p1")
	as, err = attrs(t, s, catalog.PFN, "/q1", "tier")
	must(t, err)
	if len(as) != 1 || as[0].Value.Str != "disk" {
		t.Fatalf("PFN attributes did not follow the rename: %+v", as)
	}
	wantCounts(t, s, 2, 2, 3)

	// Chained renames in one bulk call see each other.
	errs, _, err := s.BulkRename(ctx, catalog.LFN, []catalog.Rename{{Old: "new", New: "a"}, {Old: "a", New: "b"}, {Old: "zzz", New: "y"}, {Old: "other", New: "b"}})
	must(t, err)
	wantItemErr(t, "bulk rename 0", errs[0], nil)
	wantItemErr(t, "bulk rename 1", errs[1], nil)
	wantItemErr(t, "bulk rename 2", errs[2], catalog.ErrNotFound)
	wantItemErr(t, "bulk rename 3", errs[3], catalog.ErrExists)
	wantQuery(t, s, catalog.LFN, "b", "/p2", "/q1")
	errs, _, err = s.BulkRename(ctx, catalog.PFN, []catalog.Rename{{Old: "/q1", New: "/r1"}, {Old: "/nope", New: "/x"}})
	must(t, err)
	wantItemErr(t, "bulk rename pfn 0", errs[0], nil)
	wantItemErr(t, "bulk rename pfn 1", errs[1], catalog.ErrNotFound)
	wantQuery(t, s, catalog.PFN, "/r1", "b", "other")
	wantCounts(t, s, 2, 2, 3)
}

func testBulkWrite(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	ms := []mapping{
		{LFN: "1", PFN: "/a"}, {LFN: "2", PFN: "/b"}, {LFN: "1", PFN: "/c"}, {LFN: "", PFN: "/x"}, {LFN: "3", PFN: "/c"}, {LFN: "2", PFN: "/b2"},
	}
	errs, seq, err := s.BulkWrite(ctx, catalog.OpCreate, ms)
	must(t, err)
	want := []error{nil, nil, catalog.ErrExists, catalog.ErrInvalid, nil, catalog.ErrExists}
	for i := range ms {
		wantItemErr(t, fmt.Sprintf("item %d %v", i, ms[i]), errs[i], want[i])
	}
	chs := allChanges(t, s, 1)
	if len(chs) != 3 || chs[2].Seq != seq {
		t.Fatalf("three creates made %d records, the last at %v; the call returned position %d", len(chs), chs, seq)
	}
	// Adds and deletes that depend on earlier items of the same call.
	errs, _, err = s.BulkWrite(ctx, catalog.OpAdd, []mapping{{LFN: "1", PFN: "/d"}, {LFN: "1", PFN: "/d"}, {LFN: "9", PFN: "/d"}})
	must(t, err)
	wantItemErr(t, "add 0", errs[0], nil)
	wantItemErr(t, "add 1", errs[1], catalog.ErrExists)
	wantItemErr(t, "add 2", errs[2], catalog.ErrNotFound)
	errs, _, err = s.BulkWrite(ctx, catalog.OpDelete, []mapping{{LFN: "1", PFN: "/a"}, {LFN: "1", PFN: "/d"}, {LFN: "1", PFN: "/d"}})
	must(t, err)
	wantItemErr(t, "delete 0", errs[0], nil)
	wantItemErr(t, "delete 1", errs[1], nil)
	wantItemErr(t, "delete 2", errs[2], catalog.ErrNotFound)
	if exists(t, s, "1", "") {
		t.Fatal("LFN 1 survived the delete of both its PFNs")
	}
	// Create, delete and create again in one call each.
	errs, _, err = s.BulkWrite(ctx, catalog.OpCreate, []mapping{{LFN: "1", PFN: "/z"}, {LFN: "4", PFN: "/y"}, {LFN: "4", PFN: "/y"}})
	must(t, err)
	wantItemErr(t, "create again", errs[0], nil)
	wantItemErr(t, "create twice 1", errs[1], nil)
	wantItemErr(t, "create twice 2", errs[2], catalog.ErrExists)
	wantCounts(t, s, 4, 4, 4)

	// A call whose every item fails writes nothing and returns the current
	// position.
	before := lastSeq(t, s)
	errs, seq, err = s.BulkWrite(ctx, catalog.OpCreate, []mapping{{LFN: "1", PFN: "/q"}})
	must(t, err)
	wantItemErr(t, "failed create", errs[0], catalog.ErrExists)
	if seq != before || lastSeq(t, s) != before {
		t.Fatalf("a call that wrote nothing returned position %d, LastSeq %d; want %d", seq, lastSeq(t, s), before)
	}
	// An empty call is fine.
	errs, _, err = s.BulkWrite(ctx, catalog.OpDelete, nil)
	if err != nil || len(errs) != 0 {
		t.Fatalf("empty bulk write: %v, %v", errs, err)
	}
}

func testBulkQuery(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	create(t, s, "1", "/z")
	add(t, s, "1", "/a")
	create(t, s, "2", "/b")
	names := []string{"1", "nope", "2", "", "1"}
	res := make([][]string, len(names))
	errs, err := s.BulkQueryEach(ctx, catalog.LFN, names, func(i int, other string) error {
		res[i] = append(res[i], other)
		return nil
	})
	must(t, err)
	wantRes := [][]string{{"/a", "/z"}, nil, {"/b"}, nil, {"/a", "/z"}}
	wantErrs := []error{nil, catalog.ErrNotFound, nil, catalog.ErrInvalid, nil}
	if !reflect.DeepEqual(res, wantRes) {
		t.Errorf("bulk query = %q, want %q", res, wantRes)
	}
	for i := range names {
		wantItemErr(t, fmt.Sprintf("bulk query %q", names[i]), errs[i], wantErrs[i])
	}
	errs, err = s.BulkQueryEach(ctx, catalog.PFN, []string{"/a", "/nope"}, func(i int, other string) error {
		if i != 0 || other != "1" {
			t.Errorf("bulk query pfn: %d %q", i, other)
		}
		return nil
	})
	must(t, err)
	wantItemErr(t, "bulk query pfn /a", errs[0], nil)
	wantItemErr(t, "bulk query pfn /nope", errs[1], catalog.ErrNotFound)

	// fn's error ends the call and is returned as is.
	stop := errors.New("enough")
	calls := 0
	_, err = s.BulkQueryEach(ctx, catalog.LFN, []string{"1", "2"}, func(int, string) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("bulk query whose fn fails: %v after %d calls, want its error after 1", err, calls)
	}
	calls = 0
	err = s.QueryEach(ctx, catalog.LFN, "1", func(string) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("query whose fn fails: %v after %d calls, want its error after 1", err, calls)
	}
}

func testRegisterUnits(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "size", Object: catalog.LFN, Type: catalog.TypeString}))
	create(t, s, "4", "/elsewhere/D4")
	before := lastSeq(t, s)
	units := []catalog.Unit{
		{LFN: "1", PFN: "/s/D1", Attrs: []catalog.Attr{{Name: "files", Value: catalog.IntValue(2)}, {Name: "series", Value: catalog.StringValue("hmi.x")}}},
		{LFN: "2", PFN: "/s/D2", Attrs: []catalog.Attr{{Name: "size", Value: catalog.IntValue(5)}}}, // size is a string attribute
		{LFN: "3", PFN: ""},
		{LFN: "4", PFN: "/s/D4", Attrs: []catalog.Attr{{Name: "files", Value: catalog.IntValue(1)}}}, // mapped elsewhere: gets this PFN too
		{LFN: "5", PFN: "/s/D5", Attrs: []catalog.Attr{{Name: "bad", Value: catalog.Value{}}}},
	}
	errs, seq, err := s.RegisterUnits(ctx, units)
	must(t, err)
	for i, want := range []error{nil, catalog.ErrInvalid, catalog.ErrInvalid, nil, catalog.ErrInvalid} {
		wantItemErr(t, fmt.Sprintf("unit %d", i), errs[i], want)
	}
	if seq <= before || lastSeq(t, s) != seq {
		t.Fatalf("register returned position %d (LastSeq %d), want one after %d", seq, lastSeq(t, s), before)
	}
	for _, lfn := range []string{"2", "3", "5"} {
		if exists(t, s, lfn, "") {
			t.Fatalf("failed unit %s was written", lfn)
		}
	}
	wantQuery(t, s, catalog.LFN, "4", "/elsewhere/D4", "/s/D4")
	as, err := attrs(t, s, catalog.LFN, "1")
	if err != nil || len(as) != 2 || as[0].Value.Int != 2 || as[1].Value.Str != "hmi.x" {
		t.Fatalf("attrs %v, %v", as, err)
	}
	// The undefined attributes were defined with their values' types.
	defs, err := s.AttrDefs(ctx, catalog.LFN)
	must(t, err)
	wantDefs := []catalog.AttrDef{{Name: "files", Object: catalog.LFN, Type: catalog.TypeInt},
		{Name: "series", Object: catalog.LFN, Type: catalog.TypeString}, {Name: "size", Object: catalog.LFN, Type: catalog.TypeString}}
	if !reflect.DeepEqual(defs, wantDefs) {
		t.Fatalf("definitions %+v, want %+v", defs, wantDefs)
	}
	// Again, with a new value: idempotent, the value is overwritten, and
	// nothing is added to the feed.
	units[0].Attrs[0].Value = catalog.IntValue(3)
	errs, seq2, err := s.RegisterUnits(ctx, units[:1])
	if err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	if seq2 != seq {
		t.Errorf("registering a unit again moved the feed from %d to %d", seq, seq2)
	}
	wantQuery(t, s, catalog.LFN, "1", "/s/D1")
	if as, err := attrs(t, s, catalog.LFN, "1", "files"); err != nil || as[0].Value.Int != 3 {
		t.Fatalf("files %v, %v", as, err)
	}
	wantCounts(t, s, 2, 3, 3)
}
