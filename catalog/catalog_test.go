package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t testing.TB) (*Catalog, string) {
	t.Helper()
	dir := t.TempDir()
	c, err := Open(dir, &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustSeq(t testing.TB) func(uint64, error) {
	return func(_ uint64, err error) {
		t.Helper()
		must(t, err)
	}
}

func wantErr(t testing.TB, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error = %v, want %v", err, sentinel)
	}
}

func TestMappingOperations(t *testing.T) {
	c, _ := openTest(t)
	type step struct {
		op       string // create, add, delete
		lfn, pfn string
		want     error
	}
	steps := []step{
		{"create", "100", "/SUM1/D100", nil},
		{"create", "100", "/SUM2/D100", ErrExists},
		{"add", "100", "/SUM2/D100", nil},
		{"add", "100", "/SUM2/D100", ErrExists},
		{"add", "101", "/SUM1/D101", ErrNotFound},
		{"create", "101", "/SUM1/D100", nil}, // a PFN may hold several LFNs
		{"delete", "100", "/nope", ErrNotFound},
		{"delete", "100", "/SUM1/D100", nil},
		{"delete", "100", "/SUM1/D100", ErrNotFound},
		{"create", "", "/x", ErrInvalid},
		{"create", "x", "", ErrInvalid},
		{"create", "a\x00b", "/x", ErrInvalid},
		{"create", "\xff\xfe", "/x", ErrInvalid},
		{"create", strings.Repeat("x", MaxNameLen+1), "/x", ErrInvalid},
		{"add", "100", strings.Repeat("p", MaxNameLen+1), ErrInvalid},
		{"delete", "100", "", ErrInvalid},
		{"create", strings.Repeat("x", MaxNameLen), "/x", nil},
	}
	for i, s := range steps {
		var err error
		switch s.op {
		case "create":
			_, err = c.Create(s.lfn, s.pfn)
		case "add":
			_, err = c.Add(s.lfn, s.pfn)
		case "delete":
			_, err = c.Delete(s.lfn, s.pfn)
		}
		if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Fatalf("step %d %s(%.20q, %q) = %v, want %v", i, s.op, s.lfn, s.pfn, err, s.want)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Op == "" || !strings.Contains(err.Error(), s.op) {
				t.Fatalf("step %d: error %q does not name the operation", i, err)
			}
		}
	}
	got, err := c.QueryLFN("100")
	must(t, err)
	if want := []string{"/SUM2/D100"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("QueryLFN(100) = %q, want %q", got, want)
	}
	got, err = c.QueryPFN("/SUM1/D100")
	must(t, err)
	if want := []string{"101"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("QueryPFN = %q, want %q", got, want)
	}
	st := c.Stats()
	if st.LFNs != 3 || st.PFNs != 3 || st.Mappings != 3 {
		t.Fatalf("stats = %+v, want 3 LFNs, 3 PFNs, 3 mappings", st)
	}
	// The LFN disappears with its last PFN.
	mustSeq(t)(c.Delete("100", "/SUM2/D100"))
	_, err = c.QueryLFN("100")
	wantErr(t, err, ErrNotFound)
	if ok, _ := c.LFNExists("100"); ok {
		t.Fatal("LFN 100 exists after its last PFN was deleted")
	}
	if ok, _ := c.PFNExists("/SUM2/D100"); ok {
		t.Fatal("PFN exists after its last LFN was deleted")
	}
	// And it can be created again.
	mustSeq(t)(c.Create("100", "/SUM3/D100"))
}

func TestErrorNamesItemAndReason(t *testing.T) {
	c, _ := openTest(t)
	_, err := c.Create("12\x0034", "/p")
	if err == nil || !strings.Contains(err.Error(), `"12\x0034"`) || !strings.Contains(err.Error(), "NUL byte at offset 2") {
		t.Fatalf("error %q should name the item and the NUL offset", err)
	}
	_, err = c.Create(strings.Repeat("9", 5000), "/p")
	if err == nil || !strings.Contains(err.Error(), "5000 bytes") || len(err.Error()) > 400 {
		t.Fatalf("error for an oversized name should give its size and stay short: %q", err)
	}
	if st := c.Stats(); st.Mappings != 0 || st.Seq != 0 {
		t.Fatalf("bad input changed the catalog: %+v", st)
	}
}

func TestExists(t *testing.T) {
	c, _ := openTest(t)
	mustSeq(t)(c.Create("lfn1", "pfn1"))
	cases := []struct {
		item Mapping
		want bool
		err  error
	}{
		{Mapping{"lfn1", ""}, true, nil},
		{Mapping{"", "pfn1"}, true, nil},
		{Mapping{"lfn1", "pfn1"}, true, nil},
		{Mapping{"lfn1", "pfn2"}, false, nil},
		{Mapping{"lfn2", ""}, false, nil},
		{Mapping{"", "pfn2"}, false, nil},
		{Mapping{"", ""}, false, ErrInvalid},
		{Mapping{"a\x00", ""}, false, ErrInvalid},
	}
	items := make([]Mapping, len(cases))
	for i, tc := range cases {
		items[i] = tc.item
	}
	got, errs := c.BulkExists(items)
	for i, tc := range cases {
		if got[i] != tc.want || !errors.Is(errs[i], tc.err) {
			t.Errorf("exists %q = %v, %v; want %v, %v", tc.item, got[i], errs[i], tc.want, tc.err)
		}
	}
}

func TestSharedPrefixesStayApart(t *testing.T) {
	c, _ := openTest(t)
	// Names that are prefixes of each other, and names that differ only
	// after what would be a separator in a naive encoding.
	pairs := []Mapping{
		{"1", "/a"}, {"12", "/a"}, {"123", "/b"}, {"1\x01", "/c"}, {"1\xc3\xa9", "/d"},
		{"ab", "c"}, {"a", "bc"},
	}
	for _, m := range pairs {
		if _, err := c.Create(m.LFN, m.PFN); err != nil && !errors.Is(err, ErrExists) {
			t.Fatal(err)
		}
	}
	for _, m := range pairs {
		got, err := c.QueryLFN(m.LFN)
		must(t, err)
		if !reflect.DeepEqual(got, []string{m.PFN}) {
			t.Errorf("QueryLFN(%q) = %q, want [%q]", m.LFN, got, m.PFN)
		}
	}
	got, err := c.QueryPFN("/a")
	must(t, err)
	if !reflect.DeepEqual(got, []string{"1", "12"}) {
		t.Errorf("QueryPFN(/a) = %q", got)
	}
	if ok, _ := c.MappingExists("a", "bc"); !ok {
		t.Error("mapping a -> bc missing")
	}
	if ok, _ := c.MappingExists("ab", "bc"); ok {
		t.Error("mapping ab -> bc should not exist")
	}
}

func TestRename(t *testing.T) {
	c, _ := openTest(t)
	must(t, c.DefineAttr(AttrDef{Name: "size", Object: LFN, Type: TypeInt}))
	must(t, c.DefineAttr(AttrDef{Name: "tier", Object: PFN, Type: TypeString}))
	mustSeq(t)(c.Create("old", "/p1"))
	mustSeq(t)(c.Add("old", "/p2"))
	mustSeq(t)(c.Create("other", "/p1"))
	must(t, c.SetAttr(LFN, "old", "size", IntValue(42), Upsert))
	must(t, c.SetAttr(PFN, "/p1", "tier", StringValue("disk"), Upsert))

	_, err := c.RenameLFN("missing", "x")
	wantErr(t, err, ErrNotFound)
	_, err = c.RenameLFN("old", "other")
	wantErr(t, err, ErrExists)
	_, err = c.RenameLFN("old", "")
	wantErr(t, err, ErrInvalid)

	mustSeq(t)(c.RenameLFN("old", "new"))
	if ok, _ := c.LFNExists("old"); ok {
		t.Fatal("old LFN still exists")
	}
	got, err := c.QueryLFN("new")
	must(t, err)
	if !reflect.DeepEqual(got, []string{"/p1", "/p2"}) {
		t.Fatalf("QueryLFN(new) = %q", got)
	}
	got, _ = c.QueryPFN("/p1")
	if !reflect.DeepEqual(got, []string{"new", "other"}) {
		t.Fatalf("QueryPFN(/p1) = %q", got)
	}
	attrs, err := c.Attrs(LFN, "new")
	must(t, err)
	if len(attrs) != 1 || attrs[0].Value.Int != 42 {
		t.Fatalf("attributes did not follow the rename: %+v", attrs)
	}
	hits, _, err := c.SearchAttr(Search{Object: LFN, Attr: "size", Op: OpEQ, Value: IntValue(42)})
	must(t, err)
	if len(hits) != 1 || hits[0].Name != "new" {
		t.Fatalf("attribute index did not follow the rename: %+v", hits)
	}

	mustSeq(t)(c.RenamePFN("/p1", "/q1"))
	got, _ = c.QueryLFN("other")
	if !reflect.DeepEqual(got, []string{"/q1"}) {
		t.Fatalf("QueryLFN(other) after PFN rename = %q", got)
	}
	if ok, _ := c.PFNExists("/p1"); ok {
		t.Fatal("old PFN still exists")
	}
	a, err := c.Attrs(PFN, "/q1", "tier")
	must(t, err)
	if len(a) != 1 || a[0].Value.Str != "disk" {
		t.Fatalf("PFN attributes did not follow the rename: %+v", a)
	}
	st := c.Stats()
	if st.LFNs != 2 || st.PFNs != 2 || st.Mappings != 3 {
		t.Fatalf("stats after renames = %+v", st)
	}

	// Chained renames in one bulk call see each other.
	errs, _, err := c.BulkRename(LFN, []Rename{{"new", "a"}, {"a", "b"}, {"zzz", "y"}})
	must(t, err)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrNotFound) {
		t.Fatalf("bulk rename errs = %v", errs)
	}
	if got, _ := c.QueryLFN("b"); !reflect.DeepEqual(got, []string{"/p2", "/q1"}) {
		t.Fatalf("QueryLFN(b) = %q", got)
	}
}

func TestBulkWrite(t *testing.T) {
	c, _ := openTest(t)
	ms := []Mapping{
		{"1", "/a"}, {"2", "/b"}, {"1", "/c"}, {"", "/x"}, {"3", "/c"}, {"2", "/b2"},
	}
	errs, seq, err := c.BulkWrite(OpCreate, ms)
	must(t, err)
	want := []error{nil, nil, ErrExists, ErrInvalid, nil, ErrExists}
	for i := range ms {
		if !errors.Is(errs[i], want[i]) || (want[i] == nil) != (errs[i] == nil) {
			t.Errorf("item %d %v: %v, want %v", i, ms[i], errs[i], want[i])
		}
	}
	if seq != 3 {
		t.Errorf("seq = %d, want 3 (three successful creates)", seq)
	}
	// Adds and deletes that depend on earlier items of the same call.
	errs, _, err = c.BulkWrite(OpAdd, []Mapping{{"1", "/d"}, {"1", "/d"}, {"9", "/d"}})
	must(t, err)
	if errs[0] != nil || !errors.Is(errs[1], ErrExists) || !errors.Is(errs[2], ErrNotFound) {
		t.Fatalf("bulk add errs = %v", errs)
	}
	errs, _, err = c.BulkWrite(OpDelete, []Mapping{{"1", "/a"}, {"1", "/d"}, {"1", "/d"}})
	must(t, err)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrNotFound) {
		t.Fatalf("bulk delete errs = %v", errs)
	}
	if ok, _ := c.LFNExists("1"); ok {
		t.Fatal("LFN 1 survived the delete of both its PFNs")
	}
	// Delete then re-create in one call.
	errs, _, err = c.BulkWrite(OpCreate, []Mapping{{"1", "/z"}})
	must(t, err)
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	st := c.Stats()
	if st.LFNs != 3 || st.Mappings != 3 {
		t.Fatalf("stats = %+v", st)
	}
	_, _, err = c.BulkWrite(Op(9), ms)
	wantErr(t, err, ErrInvalid)

	res, qerrs := c.BulkQuery(LFN, []string{"1", "nope", "2", ""})
	if !reflect.DeepEqual(res[0], []string{"/z"}) || qerrs[0] != nil ||
		!errors.Is(qerrs[1], ErrNotFound) || !reflect.DeepEqual(res[2], []string{"/b"}) ||
		!errors.Is(qerrs[3], ErrInvalid) {
		t.Fatalf("bulk query = %q %v", res, qerrs)
	}
}

func TestWildcardPagingAndOrder(t *testing.T) {
	c, _ := openTest(t)
	var all []Mapping
	for i := 0; i < 50; i++ {
		lfn := fmt.Sprintf("%d", 1000+i)
		all = append(all, Mapping{lfn, "/SUM1/D" + lfn}, Mapping{lfn, "/SUM2/D" + lfn})
	}
	_, _, err := c.BulkWrite(OpCreate, all[0:1])
	must(t, err)
	for _, m := range all[1:] {
		if _, err := c.Add(m.LFN, m.PFN); err != nil {
			if _, err := c.Create(m.LFN, m.PFN); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustSeq(t)(c.Create("x*y", "/lit"))
	mustSeq(t)(c.Create("xzy", "/lit2"))

	cases := []struct {
		q     WildcardQuery
		want  int
		first Mapping
		more  bool
	}{
		{WildcardQuery{Pattern: "10*"}, 100, Mapping{"1000", "/SUM1/D1000"}, false},
		{WildcardQuery{Pattern: "101?"}, 20, Mapping{"1010", "/SUM1/D1010"}, false},
		{WildcardQuery{Pattern: "*9"}, 10, Mapping{"1009", "/SUM1/D1009"}, false},
		{WildcardQuery{Pattern: "1001"}, 2, Mapping{"1001", "/SUM1/D1001"}, false},
		{WildcardQuery{Pattern: "10*", Offset: 10, Limit: 5}, 5, Mapping{"1005", "/SUM1/D1005"}, true},
		{WildcardQuery{Pattern: "10*", Offset: 95, Limit: 5}, 5, Mapping{"1047", "/SUM2/D1047"}, false},
		{WildcardQuery{Pattern: "/SUM2/*", PFN: true, Limit: 3}, 3, Mapping{"1000", "/SUM2/D1000"}, true},
		{WildcardQuery{Pattern: `x\*y`}, 1, Mapping{"x*y", "/lit"}, false},
		{WildcardQuery{Pattern: `x*y`}, 2, Mapping{"x*y", "/lit"}, false},
		{WildcardQuery{Pattern: "nomatch*"}, 0, Mapping{}, false},
	}
	for _, tc := range cases {
		got, more, err := c.Wildcard(tc.q)
		must(t, err)
		if len(got) != tc.want || more != tc.more || (tc.want > 0 && got[0] != tc.first) {
			t.Errorf("%+v: %d results (first %v), more=%v; want %d (first %v), more=%v",
				tc.q, len(got), first(got), more, tc.want, tc.first, tc.more)
		}
	}
	// Paging through everything gives every match once, in a stable order.
	var paged []Mapping
	for off := 0; ; off += 7 {
		page, more, err := c.Wildcard(WildcardQuery{Pattern: "1*", Offset: off, Limit: 7})
		must(t, err)
		paged = append(paged, page...)
		if !more {
			break
		}
	}
	if !reflect.DeepEqual(paged, all) {
		t.Fatalf("paging gave %d mappings, want the %d in order", len(paged), len(all))
	}
	for _, bad := range []WildcardQuery{{Pattern: ""}, {Pattern: "a\\"}, {Pattern: "a\x00*"}, {Pattern: "a*", Offset: -1}} {
		_, _, err := c.Wildcard(bad)
		wantErr(t, err, ErrInvalid)
	}
}

func first(ms []Mapping) Mapping {
	if len(ms) == 0 {
		return Mapping{}
	}
	return ms[0]
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "abc", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"a?c", "abc", true},
		{"a?c", "aéc", true},
		{"a?c", "ac", false},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b", "xxaxxbxxb", true},
		{"*a*b", "xxaxxbxxc", false},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"a**b", "ab", true},
		{"12345", "12345", true},
		{"12345", "123456", false},
	}
	for _, tc := range cases {
		g, err := compileGlob(tc.pattern)
		must(t, err)
		if got := g.match(tc.s); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestAttributes(t *testing.T) {
	c, _ := openTest(t)
	for _, d := range []AttrDef{
		{"size", LFN, TypeInt}, {"ratio", LFN, TypeFloat}, {"series", LFN, TypeString},
		{"mtime", LFN, TypeTime}, {"checksum", PFN, TypeString},
	} {
		must(t, c.DefineAttr(d))
	}
	wantErr(t, c.DefineAttr(AttrDef{"size", LFN, TypeString}), ErrExists)
	wantErr(t, c.DefineAttr(AttrDef{"x", 7, TypeString}), ErrInvalid)
	wantErr(t, c.DefineAttr(AttrDef{"x", LFN, 0}), ErrInvalid)
	wantErr(t, c.DefineAttr(AttrDef{"", LFN, TypeInt}), ErrInvalid)
	defs, err := c.AttrDefs(LFN)
	must(t, err)
	if len(defs) != 4 || defs[0].Name != "mtime" {
		t.Fatalf("defs = %+v", defs)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		lfn := fmt.Sprint(500 + i)
		mustSeq(t)(c.Create(lfn, "/SUM/D"+lfn))
		must(t, c.SetAttr(LFN, lfn, "size", IntValue(int64(i*100-300)), Upsert))
		must(t, c.SetAttr(LFN, lfn, "ratio", FloatValue(float64(i)-4.5), Upsert))
		must(t, c.SetAttr(LFN, lfn, "series", StringValue([]string{"hmi.M_45s", "aia.lev1", "hmi.V_45s"}[i%3]), Upsert))
		must(t, c.SetAttr(LFN, lfn, "mtime", TimeValue(base.Add(time.Duration(i)*time.Hour)), Upsert))
	}
	// Types and modes.
	wantErr(t, c.SetAttr(LFN, "500", "size", StringValue("big"), Upsert), ErrInvalid)
	wantErr(t, c.SetAttr(LFN, "500", "size", IntValue(1), AddOnly), ErrExists)
	wantErr(t, c.SetAttr(LFN, "nope", "size", IntValue(1), Upsert), ErrNotFound)
	wantErr(t, c.SetAttr(LFN, "500", "undefined", IntValue(1), Upsert), ErrNotFound)
	wantErr(t, c.SetAttr(PFN, "/SUM/D500", "checksum", StringValue("a\x00"), Upsert), ErrInvalid)
	wantErr(t, c.SetAttr(LFN, "500", "ratio", FloatValue(math.NaN()), Upsert), ErrInvalid)
	must(t, c.SetAttr(PFN, "/SUM/D500", "checksum", StringValue("sha256:ab"), AddOnly))
	wantErr(t, c.SetAttr(PFN, "/SUM/D501", "checksum", StringValue("x"), ModifyOnly), ErrNotFound)
	must(t, c.SetAttr(LFN, "509", "size", IntValue(600), ModifyOnly))

	attrs, err := c.Attrs(LFN, "503")
	must(t, err)
	if len(attrs) != 4 || attrs[0].Name != "mtime" || !attrs[0].Value.Time.Equal(base.Add(3*time.Hour)) ||
		attrs[3].Name != "size" || attrs[3].Value.Int != 0 {
		t.Fatalf("attrs(503) = %+v", attrs)
	}
	_, err = c.Attrs(LFN, "503", "size", "nothere")
	wantErr(t, err, ErrNotFound)

	names := func(hs []Hit) string {
		var s []string
		for _, h := range hs {
			s = append(s, h.Name)
		}
		return strings.Join(s, ",")
	}
	cases := []struct {
		s    Search
		want string
	}{
		{Search{Attr: "size", Op: OpEQ, Value: IntValue(0)}, "503"},
		{Search{Attr: "size", Op: OpNE, Value: IntValue(0)}, "500,501,502,504,505,506,507,508,509"},
		{Search{Attr: "size", Op: OpLT, Value: IntValue(-100)}, "500,501"},
		{Search{Attr: "size", Op: OpLE, Value: IntValue(-100)}, "500,501,502"},
		{Search{Attr: "size", Op: OpGT, Value: IntValue(400)}, "508,509"},
		{Search{Attr: "size", Op: OpGE, Value: IntValue(400)}, "507,508,509"},
		{Search{Attr: "size", Op: OpBetween, Value: IntValue(-100), Value2: IntValue(100)}, "502,503,504"},
		{Search{Attr: "size", Op: OpBetween, Value: IntValue(100), Value2: IntValue(-100)}, ""},
		{Search{Attr: "ratio", Op: OpLT, Value: FloatValue(-2)}, "500,501,502"},
		{Search{Attr: "ratio", Op: OpGE, Value: FloatValue(3.5)}, "508,509"},
		{Search{Attr: "series", Op: OpEQ, Value: StringValue("aia.lev1")}, "501,504,507"},
		{Search{Attr: "series", Op: OpLike, Value: StringValue("hmi.*")}, "500,503,506,509,502,505,508"},
		{Search{Attr: "series", Op: OpLike, Value: StringValue("*_45s")}, "500,503,506,509,502,505,508"},
		{Search{Attr: "series", Op: OpGT, Value: StringValue("hmi.M_45s")}, "502,505,508"},
		{Search{Attr: "mtime", Op: OpLT, Value: TimeValue(base.Add(2 * time.Hour))}, "500,501"},
		{Search{Attr: "mtime", Op: OpBetween, Value: TimeValue(base.Add(8 * time.Hour)), Value2: TimeValue(base.Add(100 * time.Hour))}, "508,509"},
		{Search{Attr: "size", Op: OpGE, Value: IntValue(-1000), Offset: 2, Limit: 3}, "502,503,504"},
	}
	for _, tc := range cases {
		tc.s.Object = LFN
		hits, _, err := c.SearchAttr(tc.s)
		must(t, err)
		if got := names(hits); got != tc.want {
			t.Errorf("search %s %s %v: %s, want %s", tc.s.Attr, tc.s.Op, tc.s.Value, got, tc.want)
		}
	}
	_, more, _ := c.SearchAttr(Search{Object: LFN, Attr: "size", Op: OpGE, Value: IntValue(-1000), Limit: 3})
	if !more {
		t.Error("search with a limit below the match count should say more")
	}
	for _, bad := range []Search{
		{Object: LFN, Attr: "size", Op: OpEQ, Value: StringValue("x")},
		{Object: LFN, Attr: "size", Op: OpLike, Value: StringValue("x")},
		{Object: LFN, Attr: "size", Op: 0, Value: IntValue(1)},
		{Object: 0, Attr: "size", Op: OpEQ, Value: IntValue(1)},
	} {
		_, _, err := c.SearchAttr(bad)
		wantErr(t, err, ErrInvalid)
	}
	_, _, err = c.SearchAttr(Search{Object: LFN, Attr: "nope", Op: OpEQ, Value: IntValue(1)})
	wantErr(t, err, ErrNotFound)

	// Remove, undefine.
	must(t, c.RemoveAttr(LFN, "500", "size"))
	wantErr(t, c.RemoveAttr(LFN, "500", "size"), ErrNotFound)
	wantErr(t, c.UndefineAttr("size", LFN, false), ErrPrecondition)
	must(t, c.UndefineAttr("size", LFN, true))
	hits, _, err := c.SearchAttr(Search{Object: LFN, Attr: "size", Op: OpNE, Value: IntValue(0)})
	wantErr(t, err, ErrNotFound)
	if len(hits) != 0 {
		t.Fatal("hits after undefine")
	}
	if a, _ := c.Attrs(LFN, "501"); len(a) != 3 {
		t.Fatalf("values of the undefined attribute remain: %+v", a)
	}
	must(t, c.UndefineAttr("checksum", PFN, true))
	wantErr(t, c.UndefineAttr("checksum", PFN, false), ErrNotFound)

	// Values go with their object.
	mustSeq(t)(c.Delete("502", "/SUM/D502"))
	hits, _, _ = c.SearchAttr(Search{Object: LFN, Attr: "series", Op: OpLike, Value: StringValue("*")})
	if strings.Contains(names(hits), "502") {
		t.Fatal("deleted LFN still found by attribute search")
	}
	mustSeq(t)(c.Create("502", "/SUM/D502"))
	if a, err := c.Attrs(LFN, "502"); err != nil || len(a) != 0 {
		t.Fatalf("a re-created LFN inherited old attributes: %+v %v", a, err)
	}

	// Bulk.
	v := IntValue(5)
	must(t, c.DefineAttr(AttrDef{"n", LFN, TypeInt}))
	errs, err := c.BulkSetAttrs(LFN, Upsert, []AttrWrite{
		{Object: "501", Attr: "n", Value: &v}, {Object: "501", Attr: "n", Value: &v},
		{Object: "nope", Attr: "n", Value: &v}, {Object: "501", Attr: "n"}, {Object: "503", Attr: "n"},
	})
	must(t, err)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrNotFound) || errs[3] != nil || !errors.Is(errs[4], ErrNotFound) {
		t.Fatalf("bulk set errs = %v", errs)
	}
	hits, _, _ = c.SearchAttr(Search{Object: LFN, Attr: "n", Op: OpGE, Value: IntValue(0)})
	if len(hits) != 0 {
		t.Fatalf("a value set then removed in one call left index entries: %+v", hits)
	}
	res, gerrs := c.BulkAttrs(LFN, []string{"501", "nope"}, []string{"series"})
	if gerrs[0] != nil || len(res[0]) != 1 || !errors.Is(gerrs[1], ErrNotFound) {
		t.Fatalf("bulk get = %+v %v", res, gerrs)
	}
}

func TestValueParseAndOrder(t *testing.T) {
	for _, tc := range []struct {
		t  ValueType
		in string
		ok bool
	}{
		{TypeInt, "-42", true}, {TypeInt, "4.2", false}, {TypeFloat, "1e-3", true}, {TypeFloat, "NaN", false},
		{TypeFloat, "x", false}, {TypeString, "hmi.M_45s", true}, {TypeTime, "2026-11-23T10:00:00Z", true},
		{TypeTime, "1700000000", true}, {TypeTime, "yesterday", false}, {TypeTime, "3000-01-01T00:00:00Z", false},
	} {
		v, err := ParseValue(tc.t, tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseValue(%v, %q) = %v, %v", tc.t, tc.in, v, err)
			continue
		}
		if tc.ok {
			back, err := ParseValue(tc.t, v.String())
			if err != nil || back.compare(v) != 0 {
				t.Errorf("round trip of %q: %v, %v", tc.in, back, err)
			}
		}
	}
	floats := []float64{math.Inf(-1), -1e300, -2.5, -1e-300, 0, 1e-300, 2.5, 1e300, math.Inf(1)}
	for i := 1; i < len(floats); i++ {
		if FloatValue(floats[i-1]).compare(FloatValue(floats[i])) >= 0 {
			t.Errorf("%v should sort before %v", floats[i-1], floats[i])
		}
	}
	if FloatValue(math.Copysign(0, -1)).compare(FloatValue(0)) != 0 {
		t.Error("-0 and +0 should be one value")
	}
	ints := []int64{math.MinInt64, -1, 0, 1, math.MaxInt64}
	for i := 1; i < len(ints); i++ {
		if IntValue(ints[i-1]).compare(IntValue(ints[i])) >= 0 {
			t.Errorf("%v should sort before %v", ints[i-1], ints[i])
		}
	}
}

func TestChangeFeed(t *testing.T) {
	c, dir := openTest(t)
	notify := c.Notify()
	mustSeq(t)(c.Create("a", "/1"))
	select {
	case <-notify:
	default:
		t.Fatal("Notify channel not closed by a write")
	}
	mustSeq(t)(c.Add("a", "/2"))
	mustSeq(t)(c.Delete("a", "/1"))
	mustSeq(t)(c.Delete("a", "/2"))
	mustSeq(t)(c.Create("b", "/3"))
	mustSeq(t)(c.RenameLFN("b", "c"))
	mustSeq(t)(c.RenamePFN("/3", "/4"))
	_, err := c.Create("c", "/9") // fails: not in the feed
	wantErr(t, err, ErrExists)

	chs, err := c.Changes(1, 0)
	must(t, err)
	type rec struct {
		seq           uint64
		kind          ChangeKind
		lfn, pfn, old string
		added, remove bool
	}
	var got []rec
	for _, ch := range chs {
		got = append(got, rec{ch.Seq, ch.Kind, ch.LFN, ch.PFN, ch.Old, ch.LFNAdded, ch.LFNRemoved})
		if ch.Time.IsZero() {
			t.Error("change without a time")
		}
	}
	want := []rec{
		{1, ChangeCreate, "a", "/1", "", true, false},
		{2, ChangeAdd, "a", "/2", "", false, false},
		{3, ChangeDelete, "a", "/1", "", false, false},
		{4, ChangeDelete, "a", "/2", "", false, true}, // the tombstone of LFN a
		{5, ChangeCreate, "b", "/3", "", true, false},
		{6, ChangeRenameLFN, "c", "", "b", true, true},
		{7, ChangeRenamePFN, "", "/4", "/3", false, false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("feed:\n got %+v\nwant %+v", got, want)
	}
	chs, _ = c.Changes(5, 1)
	if len(chs) != 1 || chs[0].Seq != 5 {
		t.Fatalf("Changes(5, 1) = %+v", chs)
	}
	must(t, c.PruneChanges(4))
	_, err = c.Changes(2, 0)
	wantErr(t, err, ErrNotFound)
	chs, err = c.Changes(4, 0)
	must(t, err)
	if len(chs) != 4 || chs[0].Seq != 4 {
		t.Fatalf("after prune: %+v", chs)
	}
	// The horizon and sequence survive a reopen.
	must(t, c.Close())
	c2, err := Open(dir, nil)
	must(t, err)
	defer c2.Close()
	if c2.FirstSeq() != 4 || c2.LastSeq() != 7 {
		t.Fatalf("after reopen first=%d last=%d, want 4, 7", c2.FirstSeq(), c2.LastSeq())
	}
	seq, err := c2.Create("d", "/5")
	must(t, err)
	if seq != 8 {
		t.Fatalf("seq after reopen = %d, want 8", seq)
	}
}

func TestForEachLFNSnapshot(t *testing.T) {
	c, _ := openTest(t)
	for i := 0; i < 100; i++ {
		mustSeq(t)(c.Create(fmt.Sprint(i), "/p"))
	}
	var n int
	seq, err := c.ForEachLFN(func(lfn string) error {
		if n == 0 {
			// Writers are not blocked, and the scan does not see them.
			mustSeq(t)(c.Create("zzz-late", "/p"))
		}
		n++
		return nil
	})
	must(t, err)
	if n != 100 || seq != 100 {
		t.Fatalf("ForEachLFN saw %d LFNs at seq %d, want 100 at 100", n, seq)
	}
	chs, _ := c.Changes(seq+1, 0)
	if len(chs) != 1 || chs[0].LFN != "zzz-late" {
		t.Fatalf("changes after the snapshot = %+v", chs)
	}
}

func TestPersistenceAndCounts(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir, nil)
	must(t, err)
	ms := make([]Mapping, 1000)
	for i := range ms {
		ms[i] = Mapping{fmt.Sprint(i), fmt.Sprintf("/SUM%d/D%d", i%7, i)}
	}
	_, _, err = c.BulkWrite(OpCreate, ms)
	must(t, err)
	must(t, c.DefineAttr(AttrDef{"size", LFN, TypeInt}))
	must(t, c.SetAttr(LFN, "5", "size", IntValue(5), Upsert))
	must(t, c.Close())
	_, err = c.QueryLFN("1")
	wantErr(t, err, ErrClosed)

	c, err = Open(dir, nil)
	must(t, err)
	defer c.Close()
	st := c.Stats()
	if st.LFNs != 1000 || st.PFNs != 1000 || st.Mappings != 1000 || st.Seq != 1000 || st.AttrDefs != 1 {
		t.Fatalf("stats after reopen = %+v", st)
	}
	if a, err := c.Attrs(LFN, "5"); err != nil || len(a) != 1 {
		t.Fatalf("attributes after reopen: %+v %v", a, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	c, _ := openTest(t)
	const writers, each = 16, 100
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				seq, err := c.Create(fmt.Sprintf("w%d-%d", w, i), "/p")
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
	for s := range seqs {
		if seen[s] {
			t.Fatalf("sequence %d given twice", s)
		}
		seen[s] = true
	}
	if st := c.Stats(); st.LFNs != writers*each || st.Seq != writers*each || st.PFNs != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestConcurrentConflicts races writers on the same names: the optimistic
// reads outside the writers' lock must never let two creates of one LFN both
// succeed, nor let counts drift.
func TestConcurrentConflicts(t *testing.T) {
	c, _ := openTest(t)
	const rounds, writers = 50, 8
	var wins, adds sync.WaitGroup
	for r := 0; r < rounds; r++ {
		lfn := fmt.Sprint("race-", r)
		var ok atomicCounter
		for w := 0; w < writers; w++ {
			wins.Add(1)
			go func() {
				defer wins.Done()
				if _, err := c.Create(lfn, fmt.Sprint("/p", w)); err == nil {
					ok.inc()
				} else if !errors.Is(err, ErrExists) {
					t.Error(err)
				}
			}()
		}
		wins.Wait()
		if ok.n != 1 {
			t.Fatalf("round %d: %d creates of %s succeeded, want 1", r, ok.n, lfn)
		}
		// Adds and deletes of one mapping, racing: the mapping ends up in a
		// state consistent with the counts.
		for w := 0; w < writers; w++ {
			adds.Add(1)
			go func() {
				defer adds.Done()
				var err error
				if w%2 == 0 {
					_, err = c.Add(lfn, "/shared")
				} else {
					_, err = c.Delete(lfn, "/shared")
				}
				if err != nil && !errors.Is(err, ErrExists) && !errors.Is(err, ErrNotFound) {
					t.Error(err)
				}
			}()
		}
		adds.Wait()
	}
	st := c.Stats()
	var mappings uint64
	for r := 0; r < rounds; r++ {
		pfns, err := c.QueryLFN(fmt.Sprint("race-", r))
		must(t, err)
		mappings += uint64(len(pfns))
	}
	if st.LFNs != rounds || st.Mappings != mappings {
		t.Fatalf("stats %+v, but %d LFNs with %d mappings are stored", st, rounds, mappings)
	}
	if shared, _ := c.QueryPFN("/shared"); uint64(len(shared)) != mappings-rounds {
		t.Fatalf("PFN /shared has %d LFNs, want %d", len(shared), mappings-rounds)
	}
	all, _, err := c.Wildcard(WildcardQuery{Pattern: "*", PFN: true})
	must(t, err)
	pfns := map[string]bool{}
	for _, m := range all {
		pfns[m.PFN] = true
	}
	if uint64(len(pfns)) != st.PFNs {
		t.Fatalf("stats count %d PFNs, %d are stored", st.PFNs, len(pfns))
	}
}

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (a *atomicCounter) inc() { a.mu.Lock(); a.n++; a.mu.Unlock() }

// TestOptimisticReadSeesRename commits a rename between a write's optimistic
// reads and its validation: the moved mapping must be read again, so that
// the add finds it and does not store it twice.
func TestOptimisticReadSeesRename(t *testing.T) {
	c, _ := openTest(t)
	mustSeq(t)(c.Create("a", "/p"))
	_, err := c.write("add", false, func(w *writer) error {
		if err := w.prefetch(OpAdd, []Mapping{{"b", "/p"}}); err != nil {
			return err
		}
		_, err := c.RenameLFN("a", "b")
		return err
	}, func(w *writer) error { return w.add("b", "/p") })
	wantErr(t, err, ErrExists)
	if st := c.Stats(); st.LFNs != 1 || st.PFNs != 1 || st.Mappings != 1 {
		t.Fatalf("stats after the raced add = %+v, want 1 LFN, 1 PFN, 1 mapping", st)
	}
}

// compare orders two values of one type by their key encoding, which is
// what searches rely on.
func (v Value) compare(w Value) int {
	return strings.Compare(string(v.appendOrdered(nil)), string(w.appendOrdered(nil)))
}

func TestWaitChanges(t *testing.T) {
	c, _ := openTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.WaitChanges(ctx, 1) }()
	mustSeq(t)(c.Create("a", "/p"))
	if err := <-done; err != nil {
		t.Fatalf("WaitChanges after a write: %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	if err := c.WaitChanges(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitChanges with no new record = %v, want the context's deadline", err)
	}
	go func() { done <- c.WaitChanges(ctx, 2) }()
	must(t, c.Close())
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitChanges across Close = %v, want ErrClosed", err)
	}
}
