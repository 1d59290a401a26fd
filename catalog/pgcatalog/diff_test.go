package pgcatalog

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// TestSameAsPebble drives the Pebble catalog and a PostgreSQL one with the
// same random operations (single and bulk, staged and not, renames,
// attributes of every type, registrations, pruning) and requires the same
// answer from both at every step: errors word for word, positions, query
// results, pages, searches, the feed and the counts.
func TestSameAsPebble(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			peb, err := catalog.Open(t.TempDir(), &catalog.Options{NoSync: true, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer peb.Close()
			pg := openDSN(t, newDB(t))
			d := &differ{t: t, ctx: ctx, peb: peb, pg: pg, rng: rand.New(rand.NewPCG(seed, 7))}
			for step := 0; step < 300; step++ {
				d.step(step)
				if step%25 == 24 {
					d.compareState(step)
				}
			}
			d.compareState(-1)
		})
	}
}

type differ struct {
	t   *testing.T
	ctx context.Context
	peb *catalog.Catalog
	pg  *Catalog
	rng *rand.Rand
}

var (
	lfnPool = []string{"a", "ab", "abc", "b", "a*b", "x%y", "x_y", `c\d`, "é", "100", "1000", "101", "", "bad\x00"}
	pfnPool = []string{"/p1", "/p2", "/p1/x", "/p%", "/p_", "/é", "p", "", "\xff"}
	attrs   = []string{"size", "name", "when", "ratio"}
	types   = []catalog.ValueType{catalog.TypeInt, catalog.TypeString, catalog.TypeTime, catalog.TypeFloat}
)

func (d *differ) lfn() string { return lfnPool[d.rng.IntN(len(lfnPool))] }
func (d *differ) pfn() string { return pfnPool[d.rng.IntN(len(pfnPool))] }

func (d *differ) value(t catalog.ValueType) catalog.Value {
	switch t {
	case catalog.TypeInt:
		return catalog.IntValue(int64(d.rng.IntN(7)) - 3)
	case catalog.TypeFloat:
		return catalog.FloatValue([]float64{-1.5, math.Copysign(0, -1), 0, 2.25, 1e300}[d.rng.IntN(5)])
	case catalog.TypeString:
		return catalog.StringValue([]string{"", "a", "ab", "b%", "é", "x_y"}[d.rng.IntN(6)])
	}
	base := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	return catalog.TimeValue(base.Add(time.Duration(d.rng.IntN(5)-2) * 1234567891))
}

func (d *differ) mappings(n int) []catalog.Mapping {
	ms := make([]catalog.Mapping, n)
	for i := range ms {
		ms[i] = catalog.Mapping{LFN: d.lfn(), PFN: d.pfn()}
	}
	return ms
}

// bulkSize is mostly small, sometimes past copyThreshold.
func (d *differ) bulkSize() int {
	if d.rng.IntN(4) == 0 {
		return copyThreshold + d.rng.IntN(40)
	}
	return d.rng.IntN(8)
}

func (d *differ) same(step int, what string, a, b any) {
	d.t.Helper()
	if !reflect.DeepEqual(a, b) {
		d.t.Fatalf("step %d: %s:\npebble:     %#v\npostgresql: %#v", step, what, a, b)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func errTexts(errs []error) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = errText(e)
	}
	return out
}

func (d *differ) step(step int) {
	d.t.Helper()
	ctx, peb, pg := d.ctx, d.peb, d.pg
	switch k := d.rng.IntN(14); k {
	case 0, 1, 2:
		op := []catalog.Op{catalog.OpCreate, catalog.OpAdd, catalog.OpDelete}[d.rng.IntN(3)]
		l, p := d.lfn(), d.pfn()
		var s1, s2 uint64
		var e1, e2 error
		switch op {
		case catalog.OpCreate:
			s1, e1 = peb.Create(ctx, l, p)
			s2, e2 = pg.Create(ctx, l, p)
		case catalog.OpAdd:
			s1, e1 = peb.Add(ctx, l, p)
			s2, e2 = pg.Add(ctx, l, p)
		default:
			s1, e1 = peb.Delete(ctx, l, p)
			s2, e2 = pg.Delete(ctx, l, p)
		}
		d.same(step, op.String()+" "+l+" "+p, []any{s1, errText(e1)}, []any{s2, errText(e2)})
	case 3, 4, 5:
		op := []catalog.Op{catalog.OpCreate, catalog.OpAdd, catalog.OpDelete}[d.rng.IntN(3)]
		ms := d.mappings(d.bulkSize())
		errs1, s1, e1 := peb.BulkWrite(ctx, op, ms)
		errs2, s2, e2 := pg.BulkWrite(ctx, op, ms)
		d.same(step, "bulk "+op.String(), []any{errTexts(errs1), s1, errText(e1)}, []any{errTexts(errs2), s2, errText(e2)})
	case 6:
		old, nw := d.lfn(), d.lfn()
		obj := catalog.LFN
		if d.rng.IntN(2) == 0 {
			obj, old, nw = catalog.PFN, d.pfn(), d.pfn()
		}
		rs := []catalog.Rename{{Old: old, New: nw}, {Old: nw, New: old + "2"}}
		errs1, s1, e1 := peb.BulkRename(ctx, obj, rs)
		errs2, s2, e2 := pg.BulkRename(ctx, obj, rs)
		d.same(step, "bulk rename", []any{errTexts(errs1), s1, errText(e1)}, []any{errTexts(errs2), s2, errText(e2)})
		if d.rng.IntN(2) == 0 {
			s1, e1 := peb.RenameLFN(ctx, old, nw)
			s2, e2 := pg.RenameLFN(ctx, old, nw)
			d.same(step, "rename lfn", []any{s1, errText(e1)}, []any{s2, errText(e2)})
		} else {
			s1, e1 := peb.RenamePFN(ctx, old, nw)
			s2, e2 := pg.RenamePFN(ctx, old, nw)
			d.same(step, "rename pfn", []any{s1, errText(e1)}, []any{s2, errText(e2)})
		}
	case 7:
		def := catalog.AttrDef{Name: attrs[d.rng.IntN(len(attrs))], Object: catalog.ObjectType(1 + d.rng.IntN(2)), Type: types[d.rng.IntN(len(types))]}
		d.same(step, "define", errText(peb.DefineAttr(ctx, def)), errText(pg.DefineAttr(ctx, def)))
	case 8, 9:
		obj := catalog.ObjectType(1 + d.rng.IntN(2))
		object := d.lfn()
		if obj == catalog.PFN {
			object = d.pfn()
		}
		attr := attrs[d.rng.IntN(len(attrs))]
		v := d.value(types[d.rng.IntN(len(types))])
		mode := catalog.SetMode(d.rng.IntN(3))
		if d.rng.IntN(5) == 0 {
			d.same(step, "remove attr", errText(peb.RemoveAttr(ctx, obj, object, attr)), errText(pg.RemoveAttr(ctx, obj, object, attr)))
			return
		}
		d.same(step, "set attr", errText(peb.SetAttr(ctx, obj, object, attr, v, mode)), errText(pg.SetAttr(ctx, obj, object, attr, v, mode)))
	case 10:
		obj := catalog.ObjectType(1 + d.rng.IntN(2))
		ws := make([]catalog.AttrWrite, d.rng.IntN(5))
		for i := range ws {
			v := d.value(types[d.rng.IntN(len(types))])
			ws[i] = catalog.AttrWrite{Object: d.lfn(), Attr: attrs[d.rng.IntN(len(attrs))], Value: &v}
			if d.rng.IntN(4) == 0 {
				ws[i].Value = nil
			}
		}
		errs1, e1 := peb.BulkSetAttrs(ctx, obj, catalog.Upsert, ws)
		errs2, e2 := pg.BulkSetAttrs(ctx, obj, catalog.Upsert, ws)
		d.same(step, "bulk set attrs", []any{errTexts(errs1), errText(e1)}, []any{errTexts(errs2), errText(e2)})
	case 11:
		attr, obj, clr := attrs[d.rng.IntN(len(attrs))], catalog.ObjectType(1+d.rng.IntN(2)), d.rng.IntN(2) == 0
		d.same(step, "undefine", errText(peb.UndefineAttr(ctx, attr, obj, clr)), errText(pg.UndefineAttr(ctx, attr, obj, clr)))
	case 12:
		us := make([]catalog.Unit, d.rng.IntN(4))
		for i := range us {
			us[i] = catalog.Unit{LFN: d.lfn(), PFN: d.pfn()}
			for range d.rng.IntN(3) {
				a := attrs[d.rng.IntN(len(attrs))]
				us[i].Attrs = append(us[i].Attrs, catalog.Attr{Name: a, Value: d.value(types[d.rng.IntN(len(types))])})
			}
		}
		errs1, s1, e1 := peb.RegisterUnits(ctx, us)
		errs2, s2, e2 := pg.RegisterUnits(ctx, us)
		d.same(step, "register", []any{errTexts(errs1), s1, errText(e1)}, []any{errTexts(errs2), s2, errText(e2)})
	case 13:
		if d.rng.IntN(4) == 0 {
			last, _ := peb.LastSeq(ctx)
			before := uint64(d.rng.IntN(int(last) + 3))
			d.same(step, "prune", errText(peb.PruneChanges(ctx, before)), errText(pg.PruneChanges(ctx, before)))
		}
	}
}

// compareState compares everything a reader can see.
func (d *differ) compareState(step int) {
	d.t.Helper()
	ctx, peb, pg := d.ctx, d.peb, d.pg
	for _, l := range lfnPool {
		r1, e1 := peb.QueryLFN(ctx, l)
		r2, e2 := pg.QueryLFN(ctx, l)
		d.same(step, "query lfn "+l, []any{r1, errText(e1)}, []any{r2, errText(e2)})
		a1, e1 := peb.Attrs(ctx, catalog.LFN, l)
		a2, e2 := pg.Attrs(ctx, catalog.LFN, l)
		d.same(step, "attrs "+l, []any{a1, errText(e1)}, []any{a2, errText(e2)})
		a1, e1 = peb.Attrs(ctx, catalog.LFN, l, "size", "name")
		a2, e2 = pg.Attrs(ctx, catalog.LFN, l, "size", "name")
		d.same(step, "named attrs "+l, []any{a1, errText(e1)}, []any{a2, errText(e2)})
	}
	for _, p := range pfnPool {
		r1, e1 := peb.QueryPFN(ctx, p)
		r2, e2 := pg.QueryPFN(ctx, p)
		d.same(step, "query pfn "+p, []any{r1, errText(e1)}, []any{r2, errText(e2)})
		x1, e1 := peb.PFNExists(ctx, p)
		x2, e2 := pg.PFNExists(ctx, p)
		d.same(step, "pfn exists "+p, []any{x1, errText(e1)}, []any{x2, errText(e2)})
	}
	b1, be1, e1 := peb.BulkQuery(ctx, catalog.LFN, lfnPool)
	b2, be2, e2 := pg.BulkQuery(ctx, catalog.LFN, lfnPool)
	d.same(step, "bulk query", []any{b1, errTexts(be1), errText(e1)}, []any{b2, errTexts(be2), errText(e2)})
	items := []catalog.Mapping{{}}
	for _, l := range lfnPool {
		for _, p := range pfnPool {
			items = append(items, catalog.Mapping{LFN: l}, catalog.Mapping{PFN: p}, catalog.Mapping{LFN: l, PFN: p})
		}
	}
	x1, xe1, e1 := peb.BulkExists(ctx, items)
	x2, xe2, e2 := pg.BulkExists(ctx, items)
	d.same(step, "bulk exists", []any{x1, errTexts(xe1), errText(e1)}, []any{x2, errTexts(xe2), errText(e2)})
	for _, pat := range []string{"*", "a*", "a\\*b", "x%*", "x_?", "?", "1*0", "é", "[", "\\"} {
		for _, q := range []catalog.WildcardQuery{{Pattern: pat}, {Pattern: pat, PFN: true, Limit: 2, Offset: 1}, {Pattern: pat, MaxBytes: 40}} {
			m1, more1, e1 := peb.Wildcard(ctx, q)
			m2, more2, e2 := pg.Wildcard(ctx, q)
			d.same(step, fmt.Sprintf("wildcard %+v", q), []any{m1, more1, errText(e1)}, []any{m2, more2, errText(e2)})
		}
	}
	for _, obj := range []catalog.ObjectType{catalog.LFN, catalog.PFN} {
		for _, attr := range attrs {
			for _, t := range types {
				for op := catalog.OpEQ; op <= catalog.OpLike; op++ {
					s := catalog.Search{Object: obj, Attr: attr, Op: op, Value: d.value(t), Value2: d.value(t), Limit: d.rng.IntN(3), Offset: d.rng.IntN(2)}
					if op == catalog.OpLike {
						s.Value = catalog.StringValue([]string{"*", "a*", "?", "b\\%", "x_*"}[d.rng.IntN(5)])
					}
					h1, more1, e1 := peb.SearchAttr(ctx, s)
					h2, more2, e2 := pg.SearchAttr(ctx, s)
					d.same(step, fmt.Sprintf("search %+v", s), []any{h1, more1, errText(e1)}, []any{h2, more2, errText(e2)})
				}
			}
		}
	}
	defs1, e1 := peb.AttrDefs(ctx, 0)
	defs2, e2 := pg.AttrDefs(ctx, 0)
	d.same(step, "attr defs", []any{defs1, errText(e1)}, []any{defs2, errText(e2)})
	c1, e1 := peb.Changes(ctx, 0, 0)
	c2, e2 := pg.Changes(ctx, 0, 0)
	for _, cs := range [][]catalog.Change{c1, c2} {
		for i := range cs {
			cs[i].Time = time.Time{}
		}
	}
	d.same(step, "changes", []any{c1, errText(e1)}, []any{c2, errText(e2)})
	var l1, l2 []string
	s1, e1 := peb.ForEachLFN(ctx, func(l string) error { l1 = append(l1, l); return nil })
	s2, e2 := pg.ForEachLFN(ctx, func(l string) error { l2 = append(l2, l); return nil })
	d.same(step, "for each lfn", []any{l1, s1, errText(e1)}, []any{l2, s2, errText(e2)})
	st1, e1 := peb.Stats(ctx)
	st2, e2 := pg.Stats(ctx)
	d.same(step, "stats", []any{st1, errText(e1)}, []any{st2, errText(e2)})
	l1s, e1 := peb.LastSeq(ctx)
	l2s, e2 := pg.LastSeq(ctx)
	d.same(step, "last seq", []any{l1s, errText(e1)}, []any{l2s, errText(e2)})
}
