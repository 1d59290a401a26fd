package catalogtest

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

var attrBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// tenLFNs makes LFNs 500..509 with values of size (int), ratio (float),
// series (string) and mtime (time), and a PFN attribute checksum.
func tenLFNs(t *testing.T, s catalog.Store) {
	t.Helper()
	ctx := t.Context()
	for _, d := range []catalog.AttrDef{
		{Name: "size", Object: catalog.LFN, Type: catalog.TypeInt}, {Name: "ratio", Object: catalog.LFN, Type: catalog.TypeFloat},
		{Name: "series", Object: catalog.LFN, Type: catalog.TypeString}, {Name: "mtime", Object: catalog.LFN, Type: catalog.TypeTime},
		{Name: "checksum", Object: catalog.PFN, Type: catalog.TypeString},
	} {
		must(t, s.DefineAttr(ctx, d))
	}
	for i := 0; i < 10; i++ {
		lfn := fmt.Sprint(500 + i)
		create(t, s, lfn, "/SUM/D"+lfn)
		must(t, s.SetAttr(ctx, catalog.LFN, lfn, "size", catalog.IntValue(int64(i*100-300)), catalog.Upsert))
		must(t, s.SetAttr(ctx, catalog.LFN, lfn, "ratio", catalog.FloatValue(float64(i)-4.5), catalog.Upsert))
		must(t, s.SetAttr(ctx, catalog.LFN, lfn, "series", catalog.StringValue([]string{"hmi.M_45s", "aia.lev1", "hmi.V_45s"}[i%3]), catalog.Upsert))
		must(t, s.SetAttr(ctx, catalog.LFN, lfn, "mtime", catalog.TimeValue(attrBase.Add(time.Duration(i)*time.Hour)), catalog.Upsert))
	}
}

func testAttrDefs(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	tenLFNs(t, s)
	err := s.DefineAttr(ctx, catalog.AttrDef{Name: "size", Object: catalog.LFN, Type: catalog.TypeString})
	wantItemErr(t, "define again", err, catalog.ErrExists)
	// The same name for the other object type is another attribute.
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "size", Object: catalog.PFN, Type: catalog.TypeFloat}))
	defs, err := s.AttrDefs(ctx, catalog.LFN)
	must(t, err)
	want := []catalog.AttrDef{
		{Name: "mtime", Object: catalog.LFN, Type: catalog.TypeTime}, {Name: "ratio", Object: catalog.LFN, Type: catalog.TypeFloat},
		{Name: "series", Object: catalog.LFN, Type: catalog.TypeString}, {Name: "size", Object: catalog.LFN, Type: catalog.TypeInt},
	}
	if !reflect.DeepEqual(defs, want) {
		t.Fatalf("LFN definitions %+v, want %+v", defs, want)
	}
	all, err := s.AttrDefs(ctx, 0)
	must(t, err)
	want = append(want, catalog.AttrDef{Name: "checksum", Object: catalog.PFN, Type: catalog.TypeString},
		catalog.AttrDef{Name: "size", Object: catalog.PFN, Type: catalog.TypeFloat})
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("all definitions %+v, want %+v", all, want)
	}
	if st := stats(t, s); st.AttrDefs != 6 {
		t.Fatalf("stats count %d definitions, want 6", st.AttrDefs)
	}

	// Undefine: refused while values remain, unless they go too.
	wantItemErr(t, "undefine with values", s.UndefineAttr(ctx, "size", catalog.LFN, false), catalog.ErrPrecondition)
	must(t, s.UndefineAttr(ctx, "size", catalog.LFN, true))
	_, _, err = s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpNE, Value: catalog.IntValue(0)})
	wantItemErr(t, "search undefined", err, catalog.ErrNotFound)
	if a, err := attrs(t, s, catalog.LFN, "501"); err != nil || len(a) != 3 {
		t.Fatalf("values of the undefined attribute remain: %+v %v", a, err)
	}
	must(t, s.UndefineAttr(ctx, "checksum", catalog.PFN, false)) // no values
	wantItemErr(t, "undefine twice", s.UndefineAttr(ctx, "checksum", catalog.PFN, false), catalog.ErrNotFound)
	// Defined again, it starts empty.
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "size", Object: catalog.LFN, Type: catalog.TypeString}))
	hits, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpLike, Value: catalog.StringValue("*")})
	if err != nil || len(hits) != 0 {
		t.Fatalf("a redefined attribute has values: %+v %v", hits, err)
	}
}

func testAttrValues(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	tenLFNs(t, s)
	wantItemErr(t, "add-only over a value", s.SetAttr(ctx, catalog.LFN, "500", "size", catalog.IntValue(1), catalog.AddOnly), catalog.ErrExists)
	wantItemErr(t, "set on a missing LFN", s.SetAttr(ctx, catalog.LFN, "nope", "size", catalog.IntValue(1), catalog.Upsert), catalog.ErrNotFound)
	wantItemErr(t, "set an undefined attribute", s.SetAttr(ctx, catalog.LFN, "500", "undefined", catalog.IntValue(1), catalog.Upsert), catalog.ErrNotFound)
	wantItemErr(t, "set a PFN attribute on an LFN", s.SetAttr(ctx, catalog.LFN, "500", "checksum", catalog.StringValue("x"), catalog.Upsert), catalog.ErrNotFound)
	must(t, s.SetAttr(ctx, catalog.PFN, "/SUM/D500", "checksum", catalog.StringValue("sha256:ab"), catalog.AddOnly))
	wantItemErr(t, "modify-only without a value", s.SetAttr(ctx, catalog.PFN, "/SUM/D501", "checksum", catalog.StringValue("x"), catalog.ModifyOnly), catalog.ErrNotFound)
	must(t, s.SetAttr(ctx, catalog.LFN, "509", "size", catalog.IntValue(600), catalog.ModifyOnly))

	as, err := attrs(t, s, catalog.LFN, "503")
	must(t, err)
	if len(as) != 4 || as[0].Name != "mtime" || !as[0].Value.Time.Equal(attrBase.Add(3*time.Hour)) ||
		as[1].Name != "ratio" || as[1].Value.Float != -1.5 || as[2].Name != "series" || as[2].Value.Str != "hmi.M_45s" ||
		as[3].Name != "size" || as[3].Value.Int != 0 {
		t.Fatalf("attrs(503) = %+v", as)
	}
	for _, a := range as {
		if a.Value.Type == 0 {
			t.Fatalf("value without a type: %+v", a)
		}
	}
	as, err = attrs(t, s, catalog.LFN, "503", "size")
	if err != nil || len(as) != 1 || as[0].Name != "size" {
		t.Fatalf("attrs(503, size) = %+v, %v", as, err)
	}
	_, err = attrs(t, s, catalog.LFN, "503", "size", "nothere")
	wantItemErr(t, "a named attribute without a value", err, catalog.ErrNotFound)
	if !strings.Contains(fmt.Sprint(err), "nothere") {
		t.Errorf("error %q does not name the attribute without a value", err)
	}
	_, err = attrs(t, s, catalog.LFN, "nope")
	wantItemErr(t, "attrs of a missing LFN", err, catalog.ErrNotFound)
	as, err = attrs(t, s, catalog.PFN, "/SUM/D500")
	if err != nil || len(as) != 1 || as[0].Value.Str != "sha256:ab" {
		t.Fatalf("PFN attrs = %+v, %v", as, err)
	}

	// Extreme values of every type come back as they were.
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "x", Object: catalog.LFN, Type: catalog.TypeFloat}))
	for _, v := range []catalog.Value{
		catalog.IntValue(math.MinInt64), catalog.IntValue(math.MaxInt64), catalog.IntValue(-1),
		catalog.FloatValue(math.Inf(-1)), catalog.FloatValue(math.Inf(1)), catalog.FloatValue(-1e-300), catalog.FloatValue(1e300),
		catalog.StringValue(""), catalog.StringValue("é\x01/ *?"), catalog.StringValue(noise(catalog.MaxStringValueLen)),
		catalog.TimeValue(time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)), catalog.TimeValue(time.Date(2260, 12, 31, 23, 59, 59, 0, time.UTC)),
	} {
		attr := map[catalog.ValueType]string{catalog.TypeInt: "size", catalog.TypeFloat: "x", catalog.TypeString: "series", catalog.TypeTime: "mtime"}[v.Type]
		must(t, s.SetAttr(ctx, catalog.LFN, "500", attr, v, catalog.Upsert))
		as, err := attrs(t, s, catalog.LFN, "500", attr)
		must(t, err)
		if got := as[0].Value; got.Type != v.Type || got.String() != v.String() {
			t.Errorf("%v value %.40q came back as %v %.40q", v.Type, v.String(), got.Type, got.String())
		}
		hits, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: attr, Op: catalog.OpEQ, Value: v})
		if err != nil || hitNames(hits) != "500" {
			t.Errorf("search %s = %.40q: %s, %v; want 500", attr, v.String(), hitNames(hits), err)
		}
	}

	// Remove.
	must(t, s.RemoveAttr(ctx, catalog.LFN, "500", "size"))
	wantItemErr(t, "remove twice", s.RemoveAttr(ctx, catalog.LFN, "500", "size"), catalog.ErrNotFound)
	wantItemErr(t, "remove from a missing LFN", s.RemoveAttr(ctx, catalog.LFN, "nope", "size"), catalog.ErrNotFound)
	hits, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpLE, Value: catalog.IntValue(-300)})
	if err != nil || len(hits) != 0 {
		t.Fatalf("a removed value is still found: %+v %v", hits, err)
	}
}

func testAttrSearch(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	tenLFNs(t, s)
	must(t, s.SetAttr(ctx, catalog.PFN, "/SUM/D505", "checksum", catalog.StringValue("md5:1"), catalog.Upsert))
	cases := []struct {
		s    catalog.Search
		want string
	}{
		{catalog.Search{Attr: "size", Op: catalog.OpEQ, Value: catalog.IntValue(0)}, "503"},
		{catalog.Search{Attr: "size", Op: catalog.OpNE, Value: catalog.IntValue(0)}, "500,501,502,504,505,506,507,508,509"},
		{catalog.Search{Attr: "size", Op: catalog.OpLT, Value: catalog.IntValue(-100)}, "500,501"},
		{catalog.Search{Attr: "size", Op: catalog.OpLE, Value: catalog.IntValue(-100)}, "500,501,502"},
		{catalog.Search{Attr: "size", Op: catalog.OpGT, Value: catalog.IntValue(400)}, "508,509"},
		{catalog.Search{Attr: "size", Op: catalog.OpGE, Value: catalog.IntValue(400)}, "507,508,509"},
		{catalog.Search{Attr: "size", Op: catalog.OpBetween, Value: catalog.IntValue(-100), Value2: catalog.IntValue(100)}, "502,503,504"},
		{catalog.Search{Attr: "size", Op: catalog.OpBetween, Value: catalog.IntValue(100), Value2: catalog.IntValue(-100)}, ""},
		{catalog.Search{Attr: "size", Op: catalog.OpBetween, Value: catalog.IntValue(100), Value2: catalog.IntValue(100)}, "504"},
		{catalog.Search{Attr: "size", Op: catalog.OpGT, Value: catalog.IntValue(math.MaxInt64)}, ""},
		{catalog.Search{Attr: "size", Op: catalog.OpLT, Value: catalog.IntValue(math.MinInt64)}, ""},
		{catalog.Search{Attr: "ratio", Op: catalog.OpLT, Value: catalog.FloatValue(-2)}, "500,501,502"},
		{catalog.Search{Attr: "ratio", Op: catalog.OpGE, Value: catalog.FloatValue(3.5)}, "508,509"},
		{catalog.Search{Attr: "ratio", Op: catalog.OpEQ, Value: catalog.FloatValue(0.5)}, "505"},
		{catalog.Search{Attr: "ratio", Op: catalog.OpNE, Value: catalog.FloatValue(0.5)}, "500,501,502,503,504,506,507,508,509"},
		{catalog.Search{Attr: "ratio", Op: catalog.OpBetween, Value: catalog.FloatValue(math.Inf(-1)), Value2: catalog.FloatValue(-3.5)}, "500,501"},
		{catalog.Search{Attr: "series", Op: catalog.OpEQ, Value: catalog.StringValue("aia.lev1")}, "501,504,507"},
		{catalog.Search{Attr: "series", Op: catalog.OpNE, Value: catalog.StringValue("aia.lev1")}, "500,503,506,509,502,505,508"},
		{catalog.Search{Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("hmi.*")}, "500,503,506,509,502,505,508"},
		{catalog.Search{Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("*_45s")}, "500,503,506,509,502,505,508"},
		{catalog.Search{Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("hmi.?_45s")}, "500,503,506,509,502,505,508"},
		{catalog.Search{Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("hmi.M%")}, ""},
		{catalog.Search{Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("aia.lev1")}, "501,504,507"},
		{catalog.Search{Attr: "series", Op: catalog.OpGT, Value: catalog.StringValue("hmi.M_45s")}, "502,505,508"},
		{catalog.Search{Attr: "series", Op: catalog.OpLT, Value: catalog.StringValue("hmi")}, "501,504,507"},
		{catalog.Search{Attr: "series", Op: catalog.OpBetween, Value: catalog.StringValue("hmi.M_45s"), Value2: catalog.StringValue("hmi.M_45s")}, "500,503,506,509"},
		{catalog.Search{Attr: "mtime", Op: catalog.OpLT, Value: catalog.TimeValue(attrBase.Add(2 * time.Hour))}, "500,501"},
		{catalog.Search{Attr: "mtime", Op: catalog.OpEQ, Value: catalog.TimeValue(attrBase.Add(4 * time.Hour))}, "504"},
		{catalog.Search{Attr: "mtime", Op: catalog.OpGE, Value: catalog.TimeValue(attrBase.Add(8 * time.Hour))}, "508,509"},
		{catalog.Search{Attr: "mtime", Op: catalog.OpBetween, Value: catalog.TimeValue(attrBase.Add(8 * time.Hour)), Value2: catalog.TimeValue(attrBase.Add(100 * time.Hour))}, "508,509"},
		{catalog.Search{Object: catalog.PFN, Attr: "checksum", Op: catalog.OpLike, Value: catalog.StringValue("md5:*")}, "/SUM/D505"},
	}
	for _, tc := range cases {
		if tc.s.Object == 0 {
			tc.s.Object = catalog.LFN
		}
		hits, more, err := s.SearchAttr(ctx, tc.s)
		must(t, err)
		if got := hitNames(hits); got != tc.want || more {
			t.Errorf("search %s %s %v %v: %s (more=%v), want %s", tc.s.Attr, tc.s.Op, tc.s.Value, tc.s.Value2, got, more, tc.want)
		}
		for _, h := range hits {
			if h.Value.Type == 0 {
				t.Errorf("search %s: hit %q without its value", tc.s.Attr, h.Name)
			}
		}
	}
	// Hits carry their values, ordered by value then name: equal values
	// tie-break by name.
	hits, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("*")})
	must(t, err)
	if len(hits) != 10 || hits[0].Name != "501" || hits[0].Value.Str != "aia.lev1" || hits[9].Name != "508" || hits[9].Value.Str != "hmi.V_45s" {
		t.Fatalf("search * = %+v", hits)
	}
	_, _, err = s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "nope", Op: catalog.OpEQ, Value: catalog.IntValue(1)})
	wantItemErr(t, "search an undefined attribute", err, catalog.ErrNotFound)
	_, _, err = s.SearchAttr(ctx, catalog.Search{Object: catalog.PFN, Attr: "size", Op: catalog.OpEQ, Value: catalog.IntValue(1)})
	wantItemErr(t, "search an LFN attribute on PFNs", err, catalog.ErrNotFound)
}

// testAttrSearchPaging checks Offset, Limit and MaxBytes of a search: each
// hit counts its name and string value plus 48 bytes, and a page holds at
// least one hit.
func testAttrSearchPaging(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	tenLFNs(t, s)
	ge := catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpGE, Value: catalog.IntValue(-1000)}
	for _, tc := range []struct {
		offset, limit, maxBytes int
		want                    string
		more                    bool
	}{
		{2, 3, 0, "502,503,504", true},
		{0, 3, 0, "500,501,502", true},
		{7, 3, 0, "507,508,509", false},
		{9, 0, 0, "509", false},
		{10, 0, 0, "", false},
		{0, 0, 102, "500,501", true}, // 3 + 48 = 51 bytes a hit
		{0, 0, 101, "500", true},
		{0, 0, 1, "500", true},
		{8, 0, 102, "508,509", false},
	} {
		q := ge
		q.Offset, q.Limit, q.MaxBytes = tc.offset, tc.limit, tc.maxBytes
		hits, more, err := s.SearchAttr(ctx, q)
		must(t, err)
		if got := hitNames(hits); got != tc.want || more != tc.more {
			t.Errorf("offset %d limit %d max bytes %d: %s (more=%v), want %s (more=%v)",
				tc.offset, tc.limit, tc.maxBytes, got, more, tc.want, tc.more)
		}
	}
	// A string value counts too: "hmi.M_45s" is 9 bytes, so 3+9+48 = 60.
	like := catalog.Search{Object: catalog.LFN, Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("hmi.M*"), MaxBytes: 120}
	if hits, more, err := s.SearchAttr(ctx, like); err != nil || hitNames(hits) != "500,503" || !more {
		t.Errorf("like with MaxBytes 120: %s (more=%v), %v; want 500,503 and more", hitNames(hits), more, err)
	}
	// Paging by offset gives every hit once.
	var got []string
	for off := 0; off < 20; off += 4 {
		q := ge
		q.Offset, q.Limit = off, 4
		hits, more, err := s.SearchAttr(ctx, q)
		must(t, err)
		for _, h := range hits {
			got = append(got, h.Name)
		}
		if !more {
			break
		}
	}
	if strings.Join(got, ",") != "500,501,502,503,504,505,506,507,508,509" {
		t.Fatalf("paged search: %v", got)
	}
}

// testAttrsFollowObjects checks that values go with their object: a
// deleted LFN's values are gone, and a re-created LFN starts without any.
func testAttrsFollowObjects(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	tenLFNs(t, s)
	must(t, s.SetAttr(ctx, catalog.PFN, "/SUM/D502", "checksum", catalog.StringValue("c"), catalog.Upsert))
	del(t, s, "502", "/SUM/D502")
	hits, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "series", Op: catalog.OpLike, Value: catalog.StringValue("*")})
	must(t, err)
	if strings.Contains(hitNames(hits), "502") {
		t.Fatal("deleted LFN still found by attribute search")
	}
	hits, _, err = s.SearchAttr(ctx, catalog.Search{Object: catalog.PFN, Attr: "checksum", Op: catalog.OpEQ, Value: catalog.StringValue("c")})
	if err != nil || len(hits) != 0 {
		t.Fatalf("deleted PFN still found by attribute search: %+v %v", hits, err)
	}
	create(t, s, "502", "/SUM/D502")
	if as, err := attrs(t, s, catalog.LFN, "502"); err != nil || len(as) != 0 {
		t.Fatalf("a re-created LFN inherited old attributes: %+v %v", as, err)
	}
	if as, err := attrs(t, s, catalog.PFN, "/SUM/D502"); err != nil || len(as) != 0 {
		t.Fatalf("a re-created PFN inherited old attributes: %+v %v", as, err)
	}
	// A mapping deleted while the LFN keeps another PFN keeps the LFN's values.
	add(t, s, "503", "/SUM/X503")
	del(t, s, "503", "/SUM/D503")
	if as, err := attrs(t, s, catalog.LFN, "503"); err != nil || len(as) != 4 {
		t.Fatalf("an LFN that kept a PFN lost its values: %+v %v", as, err)
	}
}

func testBulkAttrs(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	tenLFNs(t, s)
	must(t, s.DefineAttr(ctx, catalog.AttrDef{Name: "n", Object: catalog.LFN, Type: catalog.TypeInt}))
	v, w := catalog.IntValue(5), catalog.IntValue(6)
	errs, err := s.BulkSetAttrs(ctx, catalog.LFN, catalog.Upsert, []catalog.AttrWrite{
		{Object: "501", Attr: "n", Value: &v}, {Object: "501", Attr: "n", Value: &w},
		{Object: "nope", Attr: "n", Value: &v}, {Object: "501", Attr: "n"}, {Object: "503", Attr: "n"},
		{Object: "504", Attr: "n", Value: &v}, {Object: "504", Attr: "size", Value: &v},
	})
	must(t, err)
	for i, want := range []error{nil, nil, catalog.ErrNotFound, nil, catalog.ErrNotFound, nil, nil} {
		wantItemErr(t, fmt.Sprintf("bulk set %d", i), errs[i], want)
	}
	hits, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "n", Op: catalog.OpGE, Value: catalog.IntValue(0)})
	must(t, err)
	if hitNames(hits) != "504" {
		t.Fatalf("a value set then removed in one call left index entries: %+v", hits)
	}
	hits, _, err = s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "size", Op: catalog.OpEQ, Value: catalog.IntValue(5)})
	if err != nil || hitNames(hits) != "504" {
		t.Fatalf("bulk-set size: %+v %v", hits, err)
	}
	// Modes apply per item.
	errs, err = s.BulkSetAttrs(ctx, catalog.LFN, catalog.AddOnly, []catalog.AttrWrite{{Object: "504", Attr: "n", Value: &w}, {Object: "505", Attr: "n", Value: &w}})
	must(t, err)
	wantItemErr(t, "add-only over a value", errs[0], catalog.ErrExists)
	wantItemErr(t, "add-only", errs[1], nil)
	errs, err = s.BulkSetAttrs(ctx, catalog.LFN, catalog.ModifyOnly, []catalog.AttrWrite{{Object: "506", Attr: "n", Value: &w}})
	must(t, err)
	wantItemErr(t, "modify-only without a value", errs[0], catalog.ErrNotFound)

	// Reads: per object, one error each; every value, or the ones named.
	objects := []string{"501", "nope", "504", "", "505"}
	got := make([][]string, len(objects))
	errs, err = s.BulkAttrsEach(ctx, catalog.LFN, objects, []string{"series", "n"}, func(i int, a catalog.Attr) error {
		got[i] = append(got[i], a.Name+"="+a.Value.String())
		return nil
	})
	must(t, err)
	want := [][]string{{"series=aia.lev1"}, nil, {"n=5", "series=aia.lev1"}, nil, {"n=6", "series=hmi.V_45s"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bulk get = %q, want %q", got, want)
	}
	for i, want := range []error{catalog.ErrNotFound, catalog.ErrNotFound, nil, catalog.ErrInvalid, nil} {
		wantItemErr(t, fmt.Sprintf("bulk get %q", objects[i]), errs[i], want)
	}
	stop := errors.New("enough")
	calls := 0
	_, err = s.BulkAttrsEach(ctx, catalog.LFN, []string{"504", "505"}, nil, func(int, catalog.Attr) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("bulk get whose fn fails: %v after %d calls, want its error after 1", err, calls)
	}
}

// noise returns n bytes of printable ASCII that do not compress (a value
// at the limit must be storable and indexed whatever its content).
func noise(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = '!' + byte(x%94)
	}
	return string(b)
}
