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
// rows costs. Step 1's reads travel with BEGIN and the lock, step 3's
// statements other than COPY with COMMIT (see write.go), so that a write
// is two round trips, plus its COPYs.

// copyThreshold is the number of rows from which a write uses COPY rather
// than one INSERT from array parameters. On CockroachDB writes never use
// COPY: pgx sends it in binary format inside the write's transaction,
// which CockroachDB's COPY is not relied on to accept.
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

// mappingWrite is one write of mappings: ops[k] applied to ms[idx[k]], in
// order, each item's error recorded in errs[idx[k]] and its feed position
// in seqs[k] (when seqs is not nil).
type mappingWrite struct {
	ops  []catalog.Op
	ms   []catalog.Mapping
	idx  []int
	errs []error
	seqs []uint64
	st   *mapState // filled by the reads
	// lfns and pfns are the items' distinct names, sorted (by prepare).
	lfns, pfns []string
}

// prepare computes what the reads need from the items, before the write
// takes the writers' lock.
func (mw *mappingWrite) prepare() *mappingWrite {
	lfns := make([]string, len(mw.idx))
	pfns := make([]string, len(mw.idx))
	for k, i := range mw.idx {
		lfns[k], pfns[k] = mw.ms[i].LFN, mw.ms[i].PFN
	}
	mw.lfns, mw.pfns = sortedUnique(lfns), sortedUnique(pfns)
	return mw
}

// queueReads queues, on the write's first round trip (after the lock), the
// reads of the mappings of the items' LFNs and of the mapping counts of
// their PFNs. prepare must have been called.
func (mw *mappingWrite) queueReads(b *pgx.Batch) {
	lfns, pfns := mw.lfns, mw.pfns
	st := &mapState{
		lfnRefs: make(map[string]int, len(lfns)), pfnRefs: make(map[string]int, len(pfns)),
		mapped: make(map[catalog.Mapping]bool, len(lfns)),
	}
	mw.st = st
	b.Queue(`SELECT lfn, pfn FROM rls_map WHERE lfn = ANY($1::text[])`, lfns).Query(func(rows pgx.Rows) error {
		var m catalog.Mapping
		_, err := pgx.ForEachRow(rows, []any{&m.LFN, &m.PFN}, func() error {
			st.lfnRefs[m.LFN]++
			st.mapped[m] = true
			return nil
		})
		return err
	})
	b.Queue(`SELECT pfn, count(*) FROM rls_map WHERE pfn = ANY($1::text[]) GROUP BY pfn`, pfns).Query(func(rows pgx.Rows) error {
		var pfn string
		var n int
		_, err := pgx.ForEachRow(rows, []any{&pfn, &n}, func() error { st.pfnRefs[pfn] = n; return nil })
		return err
	})
}

// apply applies the items to the state read, in order, and writes the
// difference.
func (mw *mappingWrite) apply(ctx context.Context, w *wtx) error {
	st := mw.st
	st.lfn0, st.pfn0, st.mapped0 = clone(st.lfnRefs), clone(st.pfnRefs), clone(st.mapped)
	st.touched = make(map[catalog.Mapping]bool)
	for k, i := range mw.idx {
		ch, err := st.apply(mw.ops[k], mw.ms[i])
		if err != nil {
			mw.errs[i] = err
			continue
		}
		ch.Time = w.now
		w.addChange(ch)
		if mw.seqs != nil {
			mw.seqs[k] = w.seq
		}
	}
	return w.writeState(ctx, st)
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

// writeState writes what changed in st, and counts it: many new mappings
// at once with COPY, the rest queued on w.final.
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
		w.final.Queue(`DELETE FROM rls_map m USING unnest($1::text[], $2::text[]) AS u(l, p) WHERE m.lfn = u.l AND m.pfn = u.p`, l, p)
	}
	for _, g := range []struct {
		obj   catalog.ObjectType
		names []string
	}{{catalog.LFN, goneL}, {catalog.PFN, goneP}} {
		if len(g.names) == 0 {
			continue
		}
		w.final.Queue(`DELETE FROM rls_attr WHERE obj = $1 AND object = ANY($2::text[])`, int16(g.obj), g.names)
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
	if len(add) >= copyThreshold && !w.c.cockroach {
		_, err := w.tx.CopyFrom(ctx, pgx.Identifier{"rls_map"}, []string{"lfn", "pfn"},
			pgx.CopyFromSlice(len(add), func(i int) ([]any, error) { return []any{add[i].LFN, add[i].PFN}, nil }))
		return err
	}
	l, p := columns(add)
	w.final.Queue(`INSERT INTO rls_map (lfn, pfn) SELECT * FROM unnest($1::text[], $2::text[])`, l, p)
	return nil
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
