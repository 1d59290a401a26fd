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
	"sync/atomic"
	"testing"
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

// compare orders two values of one type by their key encoding, which is
// what searches rely on.
func (v Value) compare(w Value) int {
	return strings.Compare(string(v.appendOrdered(nil)), string(w.appendOrdered(nil)))
}

// stats returns the catalog's counts.
func stats(t testing.TB, c *Catalog) Stats {
	t.Helper()
	st, err := c.Stats(t.Context())
	must(t, err)
	return st
}

// TestOptimisticReadSeesRename commits a rename between a write's optimistic
// reads and its validation: the moved mapping must be read again, so that
// the add finds it and does not store it twice.
func TestOptimisticReadSeesRename(t *testing.T) {
	c, _ := openTest(t)
	ctx := t.Context()
	mustSeq(t)(c.Create(ctx, "a", "/p"))
	_, err := c.write(ctx, "add", false, func(w *writer) error {
		if err := w.prefetch(OpAdd, []Mapping{{"b", "/p"}}); err != nil {
			return err
		}
		_, err := c.RenameLFN(ctx, "a", "b")
		return err
	}, func(w *writer) error { return w.add("b", "/p") })
	wantErr(t, err, ErrExists)
	if st := stats(t, c); st.LFNs != 1 || st.PFNs != 1 || st.Mappings != 1 {
		t.Fatalf("stats after the raced add = %+v, want 1 LFN, 1 PFN, 1 mapping", st)
	}
}

// TestReopen checks what the conformance suite cannot: the mappings,
// values, counts, definitions and the feed's positions and horizon survive
// a close and reopen, and positions are dense (each one more than the one
// before), on Pebble.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	c, err := Open(dir, nil)
	must(t, err)
	ms := make([]Mapping, 1000)
	for i := range ms {
		ms[i] = Mapping{fmt.Sprint(i), fmt.Sprintf("/SUM%d/D%d", i%7, i)}
	}
	_, seq, err := c.BulkWrite(ctx, OpCreate, ms)
	must(t, err)
	if seq != 1000 {
		t.Fatalf("1000 creates ended at position %d, want 1000 (dense from 1)", seq)
	}
	must(t, c.DefineAttr(ctx, AttrDef{"size", LFN, TypeInt}))
	must(t, c.SetAttr(ctx, LFN, "5", "size", IntValue(5), Upsert))
	for i, f := range []func() (uint64, error){
		func() (uint64, error) { return c.Delete(ctx, "1", "/SUM1/D1") },
		func() (uint64, error) { return c.RenameLFN(ctx, "2", "two") },
		func() (uint64, error) { return c.Add(ctx, "3", "/x") },
	} {
		seq, err := f()
		must(t, err)
		if seq != uint64(1001+i) {
			t.Fatalf("write %d at position %d, want %d", i, seq, 1001+i)
		}
	}
	must(t, c.PruneChanges(ctx, 500))
	must(t, c.Close())
	_, err = c.QueryLFN(ctx, "1")
	wantErr(t, err, ErrClosed)

	c, err = Open(dir, nil)
	must(t, err)
	defer c.Close()
	st := stats(t, c)
	if st.LFNs != 999 || st.PFNs != 1000 || st.Mappings != 1000 || st.Seq != 1003 || st.FirstSeq != 500 || st.AttrDefs != 1 {
		t.Fatalf("stats after reopen = %+v", st)
	}
	if a, err := c.Attrs(ctx, LFN, "5"); err != nil || len(a) != 1 || a[0].Value.Int != 5 {
		t.Fatalf("attributes after reopen: %+v %v", a, err)
	}
	chs, err := c.Changes(ctx, 500, 0)
	must(t, err)
	for i, ch := range chs {
		if ch.Seq != uint64(500+i) {
			t.Fatalf("record %d at position %d: the feed is not dense", i, ch.Seq)
		}
	}
	if len(chs) != 504 || chs[503].Kind != ChangeAdd {
		t.Fatalf("feed after reopen: %d records from 500, last %+v", len(chs), chs[len(chs)-1])
	}
	seq, err = c.Create(ctx, "d", "/5")
	must(t, err)
	if seq != 1004 {
		t.Fatalf("position after reopen = %d, want 1004", seq)
	}
}

// TestNotify checks the Pebble catalog's own wake-up channel.
func TestNotify(t *testing.T) {
	c, _ := openTest(t)
	ctx := t.Context()
	notify := c.Notify()
	must(t, c.DefineAttr(ctx, AttrDef{"n", LFN, TypeInt}))
	select {
	case <-notify:
		t.Fatal("Notify channel closed by a write that appended no record")
	default:
	}
	mustSeq(t)(c.Create(ctx, "a", "/1"))
	select {
	case <-notify:
	default:
		t.Fatal("Notify channel not closed by a write")
	}
	notify = c.Notify()
	must(t, c.Close())
	select {
	case <-notify:
	default:
		t.Fatal("Notify channel not closed by Close")
	}
}

// TestConvenienceMethods checks the embedded API's shortcuts against the
// Store methods they wrap.
func TestConvenienceMethods(t *testing.T) {
	c, _ := openTest(t)
	ctx := t.Context()
	mustSeq(t)(c.Create(ctx, "a", "/2"))
	mustSeq(t)(c.Add(ctx, "a", "/1"))
	mustSeq(t)(c.Create(ctx, "b", "/1"))
	if got, err := c.QueryLFN(ctx, "a"); err != nil || !reflect.DeepEqual(got, []string{"/1", "/2"}) {
		t.Errorf("QueryLFN = %q, %v", got, err)
	}
	if got, err := c.QueryPFN(ctx, "/1"); err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("QueryPFN = %q, %v", got, err)
	}
	_, err := c.QueryLFN(ctx, "nope")
	wantErr(t, err, ErrNotFound)
	for _, tc := range []struct {
		f    func(context.Context) (bool, error)
		want bool
		err  error
	}{
		{func(ctx context.Context) (bool, error) { return c.LFNExists(ctx, "a") }, true, nil},
		{func(ctx context.Context) (bool, error) { return c.LFNExists(ctx, "/1") }, false, nil},
		{func(ctx context.Context) (bool, error) { return c.PFNExists(ctx, "/2") }, true, nil},
		{func(ctx context.Context) (bool, error) { return c.PFNExists(ctx, "") }, false, ErrInvalid},
		{func(ctx context.Context) (bool, error) { return c.MappingExists(ctx, "b", "/1") }, true, nil},
		{func(ctx context.Context) (bool, error) { return c.MappingExists(ctx, "b", "/2") }, false, nil},
		{func(ctx context.Context) (bool, error) { return c.MappingExists(ctx, "", "/2") }, false, ErrInvalid},
		{func(ctx context.Context) (bool, error) { return c.MappingExists(ctx, "b", "\x00") }, false, ErrInvalid},
	} {
		got, err := tc.f(ctx)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("exists = %v, %v; want %v, %v", got, err, tc.want, tc.err)
		}
	}
	res, errs, err := c.BulkQuery(ctx, PFN, []string{"/1", "/3"})
	must(t, err)
	if !reflect.DeepEqual(res[0], []string{"a", "b"}) || errs[0] != nil || !errors.Is(errs[1], ErrNotFound) {
		t.Errorf("BulkQuery = %q, %v", res, errs)
	}
	_, _, err = c.BulkQuery(ctx, ObjectType(9), []string{"/1"})
	wantErr(t, err, ErrInvalid)

	must(t, c.DefineAttr(ctx, AttrDef{"n", LFN, TypeInt}))
	must(t, c.SetAttr(ctx, LFN, "a", "n", IntValue(4), Upsert))
	if as, err := c.Attrs(ctx, LFN, "a", "n"); err != nil || len(as) != 1 || as[0].Value.Int != 4 {
		t.Errorf("Attrs = %+v, %v", as, err)
	}
	as, aerrs, err := c.BulkAttrs(ctx, LFN, []string{"a", "b"}, nil)
	must(t, err)
	if len(as[0]) != 1 || aerrs[0] != nil || len(as[1]) != 0 || aerrs[1] != nil {
		t.Errorf("BulkAttrs = %+v, %v", as, aerrs)
	}
	_, _, err = c.BulkAttrs(ctx, ObjectType(9), []string{"a"}, nil)
	wantErr(t, err, ErrInvalid)

	must(t, c.Close())
	if _, err := c.Attrs(ctx, LFN, "a"); !errors.Is(err, ErrClosed) {
		t.Errorf("Attrs after Close = %v", err)
	}
	if _, _, err := c.BulkQuery(ctx, LFN, []string{"a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("BulkQuery after Close = %v", err)
	}
	if _, err := c.LFNExists(ctx, "a"); !errors.Is(err, ErrClosed) {
		t.Errorf("LFNExists after Close = %v", err)
	}
}

// TestStorageStats checks Pebble's own figures, behind StorageReporter.
func TestStorageStats(t *testing.T) {
	c, _ := openTest(t)
	ctx := t.Context()
	var s Store = c
	r, ok := s.(StorageReporter)
	if !ok {
		t.Fatal("the Pebble catalog is not a StorageReporter")
	}
	mustSeq(t)(c.Create(ctx, "a", "/1"))
	st, err := r.StorageStats(ctx)
	must(t, err)
	if st.DiskBytes == 0 {
		t.Errorf("storage stats %+v: no disk use", st)
	}
	must(t, c.Close())
	_, err = r.StorageStats(ctx)
	wantErr(t, err, ErrClosed)
}

// countdownCtx is a context whose Err turns to context.Canceled after n
// calls: a way to end a call's context in the middle of the call, which
// the Pebble catalog checks every checkEvery items.
type countdownCtx struct {
	context.Context
	n atomic.Int64
}

func (c *countdownCtx) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// TestContextEndsBulkWrites ends the context of bulk writes after they
// started: the call fails with the context's error and writes nothing.
func TestContextEndsBulkWrites(t *testing.T) {
	c, _ := openTest(t)
	ctx := t.Context()
	const n = 2000
	ms := make([]Mapping, n)
	for i := range ms {
		ms[i] = Mapping{fmt.Sprint("keep-", i), "/p"}
	}
	_, _, err := c.BulkWrite(ctx, OpCreate, ms)
	must(t, err)
	must(t, c.DefineAttr(ctx, AttrDef{"n", LFN, TypeInt}))
	one := IntValue(1)
	ws := make([]AttrWrite, n)
	for i := range ws {
		ws[i] = AttrWrite{Object: ms[i].LFN, Attr: "n", Value: &one}
	}
	_, err = c.BulkSetAttrs(ctx, LFN, Upsert, ws)
	must(t, err)
	before := stats(t, c)
	fresh := make([]Mapping, n)
	units := make([]Unit, n)
	renames := make([]Rename, n)
	for i := range fresh {
		fresh[i] = Mapping{fmt.Sprint("new-", i), "/q"}
		units[i] = Unit{LFN: fresh[i].LFN, PFN: "/q"}
		renames[i] = Rename{ms[i].LFN, fresh[i].LFN}
	}
	two := IntValue(2)
	for i := range ws {
		ws[i].Value = &two
	}
	for name, call := range map[string]func(ctx context.Context) error{
		"bulk write":     func(ctx context.Context) error { _, _, err := c.BulkWrite(ctx, OpCreate, fresh); return err },
		"bulk rename":    func(ctx context.Context) error { _, _, err := c.BulkRename(ctx, LFN, renames); return err },
		"register":       func(ctx context.Context) error { _, _, err := c.RegisterUnits(ctx, units); return err },
		"bulk set attrs": func(ctx context.Context) error { _, err := c.BulkSetAttrs(ctx, LFN, Upsert, ws); return err },
		"undefine":       func(ctx context.Context) error { return c.UndefineAttr(ctx, "n", LFN, true) },
		"bulk exists": func(ctx context.Context) error {
			_, _, err := c.BulkExists(ctx, ms)
			return err
		},
		"wildcard": func(ctx context.Context) error {
			_, _, err := c.Wildcard(ctx, WildcardQuery{Pattern: "*"})
			return err
		},
		"search": func(ctx context.Context) error {
			_, _, err := c.SearchAttr(ctx, Search{Object: LFN, Attr: "n", Op: OpGE, Value: IntValue(0)})
			return err
		},
		"changes": func(ctx context.Context) error {
			_, err := c.Changes(ctx, 1, 0)
			return err
		},
	} {
		cctx := &countdownCtx{Context: ctx}
		cctx.n.Store(3) // past the checks on entry, before the end
		if err := call(cctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a context ended midway: %v, want context.Canceled", name, err)
		}
	}
	if after := stats(t, c); after != before {
		t.Fatalf("calls whose context ended changed the catalog: %+v, was %+v", after, before)
	}
	hits, _, err := c.SearchAttr(ctx, Search{Object: LFN, Attr: "n", Op: OpEQ, Value: IntValue(1)})
	if err != nil || len(hits) != n {
		t.Fatalf("values after the cancelled calls: %d hits, %v; want %d", len(hits), err, n)
	}
}
