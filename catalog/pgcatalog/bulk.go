package pgcatalog

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/catalog"
)

// Mapping writes (single or bulk) run in three steps, under the writers'
// lock, so that what they read stays true until they commit:
//
//  1. Read, with two set-based index lookups (= ANY of the call's names),
//     the existing mappings of the call's LFNs and the mapping counts of
//     its PFNs.
//  2. Apply the items in order to that state in memory, with the Pebble
//     catalog's rules (first occurrence wins, later items see earlier
//     ones), which gives each item's result and feed record.
//  3. Write the difference: new mappings and feed records through COPY
//     (binary, batched heap inserts; small calls use one INSERT from
//     arrays), deleted mappings and the attribute values of names left
//     without mappings with one DELETE each.
//
// Step 1 costs one index probe per distinct name, the price of the checks
// that a plain COPY skips; steps 2 and 3 cost what a plain COPY of the same
// rows costs.

// copyThreshold is the number of rows from which a write uses COPY rather
// than one INSERT from array parameters.
const copyThreshold = 64

// mapState is the part of the catalog a mapping write reads and changes.
type mapState struct {
	lfnRefs, pfnRefs map[string]int           // current mapping counts
	lfn0, pfn0       map[string]int           // as read
	mapped           map[catalog.Mapping]bool // current existence
	mapped0          map[catalog.Mapping]bool // as read
	touched          map[catalog.Mapping]bool // set by this call
	order            []catalog.Mapping        // the touched mappings, in the order first touched
}

// readState reads the mappings of lfns and the mapping counts of pfns.
func (w *wtx) readState(ctx context.Context, lfns, pfns []string) (*mapState, error) {
	st := &mapState{
		lfnRefs: make(map[string]int, len(lfns)), pfnRefs: make(map[string]int, len(pfns)),
		mapped: make(map[catalog.Mapping]bool, len(lfns)),
	}
	lfns, pfns = sortedUnique(lfns), sortedUnique(pfns)
	b := &pgx.Batch{}
	b.Queue(`SELECT lfn, pfn FROM rls_map WHERE lfn = ANY($1::text[])`, lfns)
	b.Queue(`SELECT pfn, count(*) FROM rls_map WHERE pfn = ANY($1::text[]) GROUP BY pfn`, pfns)
	br := w.tx.SendBatch(ctx, b)
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	var m catalog.Mapping
	_, err = pgx.ForEachRow(rows, []any{&m.LFN, &m.PFN}, func() error {
		st.lfnRefs[m.LFN]++
		st.mapped[m] = true
		return nil
	})
	if err != nil {
		br.Close()
		return nil, err
	}
	rows, err = br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	var pfn string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&pfn, &n}, func() error { st.pfnRefs[pfn] = n; return nil }); err != nil {
		br.Close()
		return nil, err
	}
	if err := br.Close(); err != nil {
		return nil, err
	}
	st.lfn0, st.pfn0, st.mapped0 = clone(st.lfnRefs), clone(st.pfnRefs), clone(st.mapped)
	st.touched = make(map[catalog.Mapping]bool)
	return st, nil
}

func clone[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func (st *mapState) set(m catalog.Mapping, ok bool) {
	if ok == st.mapped[m] {
		return
	}
	if !st.touched[m] {
		st.touched[m] = true
		st.order = append(st.order, m)
	}
	st.mapped[m] = ok
	d := 1
	if !ok {
		d = -1
	}
	st.lfnRefs[m.LFN] += d
	st.pfnRefs[m.PFN] += d
}

// apply applies one item of op to the state and returns its error (an
// *catalog.Error) or its feed record.
func (st *mapState) apply(op catalog.Op, m catalog.Mapping) (catalog.Change, error) {
	switch op {
	case catalog.OpCreate:
		if st.lfnRefs[m.LFN] > 0 {
			return catalog.Change{}, errorf("create", m.LFN, catalog.ErrExists, "lfn exists")
		}
		st.set(m, true)
		return catalog.Change{Kind: catalog.ChangeCreate, LFN: m.LFN, PFN: m.PFN, LFNAdded: true}, nil
	case catalog.OpAdd:
		if st.lfnRefs[m.LFN] == 0 {
			return catalog.Change{}, errorf("add", m.LFN, catalog.ErrNotFound, "lfn does not exist")
		}
		if st.mapped[m] {
			return catalog.Change{}, errorf("add", mappingItem(m.LFN, m.PFN), catalog.ErrExists, "mapping exists")
		}
		st.set(m, true)
		return catalog.Change{Kind: catalog.ChangeAdd, LFN: m.LFN, PFN: m.PFN}, nil
	default:
		if !st.mapped[m] {
			return catalog.Change{}, errorf("delete", mappingItem(m.LFN, m.PFN), catalog.ErrNotFound, "no such mapping")
		}
		st.set(m, false)
		return catalog.Change{Kind: catalog.ChangeDelete, LFN: m.LFN, PFN: m.PFN, LFNRemoved: st.lfnRefs[m.LFN] == 0}, nil
	}
}

// mappingWrite applies ops[k] to ms[idx[k]], in order, and records each
// item's error in errs[idx[k]] and its feed position in seqs[k] (when seqs
// is not nil).
func (w *wtx) mappingWrite(ctx context.Context, ops []catalog.Op, ms []catalog.Mapping, idx []int, errs []error, seqs []uint64) error {
	lfns := make([]string, len(idx))
	pfns := make([]string, len(idx))
	for k, i := range idx {
		lfns[k], pfns[k] = ms[i].LFN, ms[i].PFN
	}
	st, err := w.readState(ctx, lfns, pfns)
	if err != nil {
		return err
	}
	for k, i := range idx {
		ch, err := st.apply(ops[k], ms[i])
		if err != nil {
			errs[i] = err
			continue
		}
		ch.Time = w.now
		w.addChange(ch)
		if seqs != nil {
			seqs[k] = w.seq
		}
	}
	return w.writeState(ctx, st)
}

// writeState writes what changed in st, and counts it.
func (w *wtx) writeState(ctx context.Context, st *mapState) error {
	var add, del []catalog.Mapping
	for _, m := range st.order {
		switch now, was := st.mapped[m], st.mapped0[m]; {
		case now && !was:
			add = append(add, m)
		case !now && was:
			del = append(del, m)
		}
	}
	w.mappings += int64(len(add) - len(del))
	var goneL, goneP []string
	for l, n := range st.lfnRefs {
		switch was := st.lfn0[l]; {
		case was == 0 && n > 0:
			w.lfns++
		case was > 0 && n == 0:
			w.lfns--
			goneL = append(goneL, l)
		}
	}
	for p, n := range st.pfnRefs {
		switch was := st.pfn0[p]; {
		case was == 0 && n > 0:
			w.pfns++
		case was > 0 && n == 0:
			w.pfns--
			goneP = append(goneP, p)
		}
	}
	if len(del) > 0 {
		l, p := columns(del)
		if _, err := w.tx.Exec(ctx, `DELETE FROM rls_map m USING unnest($1::text[], $2::text[]) AS u(l, p) WHERE m.lfn = u.l AND m.pfn = u.p`, l, p); err != nil {
			return err
		}
	}
	for _, g := range []struct {
		obj   catalog.ObjectType
		names []string
	}{{catalog.LFN, goneL}, {catalog.PFN, goneP}} {
		if len(g.names) == 0 {
			continue
		}
		if _, err := w.tx.Exec(ctx, `DELETE FROM rls_attr WHERE obj = $1 AND object = ANY($2::text[])`, int16(g.obj), g.names); err != nil {
			return err
		}
	}
	if len(add) == 0 {
		return nil
	}
	slices.SortFunc(add, func(a, b catalog.Mapping) int {
		if a.LFN != b.LFN {
			return compare(a.LFN, b.LFN)
		}
		return compare(a.PFN, b.PFN)
	})
	if len(add) >= copyThreshold {
		_, err := w.tx.CopyFrom(ctx, pgx.Identifier{"rls_map"}, []string{"lfn", "pfn"},
			pgx.CopyFromSlice(len(add), func(i int) ([]any, error) { return []any{add[i].LFN, add[i].PFN}, nil }))
		return err
	}
	l, p := columns(add)
	_, err := w.tx.Exec(ctx, `INSERT INTO rls_map (lfn, pfn) SELECT * FROM unnest($1::text[], $2::text[])`, l, p)
	return err
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func columns(ms []catalog.Mapping) (lfns, pfns []string) {
	lfns, pfns = make([]string, len(ms)), make([]string, len(ms))
	for i, m := range ms {
		lfns[i], pfns[i] = m.LFN, m.PFN
	}
	return lfns, pfns
}
