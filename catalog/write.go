package catalog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// writer builds one write call's batch. It lives while c.mu is held: it reads
// the committed state (or, for an indexed batch, the state plus its own
// writes) to check each item, and keeps small overlays of what earlier items
// of the same call changed so that a bulk call sees its own writes without
// the cost of an indexed batch.
type writer struct {
	c    *Catalog
	b    *pebble.Batch
	r    pebble.Reader // the indexed batch, or the DB
	next counts
	now  int64

	// readSeq is the published sequence number before the records in the
	// overlays were read without the lock; touched lists the stripes of the
	// keys this call writes (see Catalog.stripes).
	readSeq uint64
	touched []uint32

	lfns, pfns map[string]uint64 // name → reference count after this call's items so far
	maps       map[Mapping]bool  // mapping → exists after this call's items so far

	// deferred (for plain batches) keeps name records and mappings out of
	// the batch until flush, which writes each once, in key order: the
	// memtable inserts sorted keys much faster than interleaved ones.
	deferred       bool
	dirtyL, dirtyP map[string]struct{}
	dirtyM         map[Mapping]struct{}
	// sortedL and sortedP, when prefetch made them, hold every name the
	// call's items name, sorted and unique: a superset of dirtyL and dirtyP
	// in key order, which spares flush two sorts.
	sortedL, sortedP []string
}

func (c *Catalog) newWriter(indexed bool) *writer {
	w := &writer{c: c, now: time.Now().UnixNano()}
	if indexed {
		w.b = c.db.NewIndexedBatch()
		w.r = w.b
	} else {
		w.b = c.db.NewBatch()
		w.r = c.db
		w.deferred = true
	}
	return w
}

// flush writes the deferred name records and mappings to the batch, sorted.
func (w *writer) flush() error {
	if !w.deferred {
		return nil
	}
	for _, t := range []struct {
		tag     byte
		dirty   map[string]struct{}
		sorted  []string
		overlay map[string]uint64
	}{{tagLFN, w.dirtyL, w.sortedL, w.lfns}, {tagPFN, w.dirtyP, w.sortedP, w.pfns}} {
		if len(t.dirty) == 0 {
			continue
		}
		if t.sorted == nil {
			t.sorted = slices.Sorted(maps.Keys(t.dirty))
		}
		for _, name := range t.sorted {
			if _, ok := t.dirty[name]; !ok {
				continue
			}
			if err := w.putRefs(t.tag, name, t.overlay[name]); err != nil {
				return err
			}
		}
	}
	ms := slices.Collect(maps.Keys(w.dirtyM))
	slices.SortFunc(ms, func(a, b Mapping) int {
		return cmp.Or(strings.Compare(a.LFN, b.LFN), strings.Compare(a.PFN, b.PFN))
	})
	for _, m := range ms {
		if err := w.putMapping(pairKey(tagLFNMapping, m.LFN, m.PFN), w.maps[m]); err != nil {
			return err
		}
	}
	slices.SortFunc(ms, func(a, b Mapping) int {
		return cmp.Or(strings.Compare(a.PFN, b.PFN), strings.Compare(a.LFN, b.LFN))
	})
	for _, m := range ms {
		if err := w.putMapping(pairKey(tagPFNMapping, m.PFN, m.LFN), w.maps[m]); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) putRefs(tag byte, name string, n uint64) error {
	k := nameKey(tag, name)
	if n == 0 {
		return w.b.Delete(k, nil)
	}
	return w.b.Set(k, binary.AppendUvarint(nil, n), nil)
}

func (w *writer) putMapping(k []byte, ok bool) error {
	if ok {
		return w.b.Set(k, nil, nil)
	}
	return w.b.Delete(k, nil)
}

// write runs pre (if not nil) with a fresh writer and without the writers'
// lock, then fn under the lock, commits the batch, and waits for it to be
// durable. Errors returned by pre or fn abort the whole call and nothing is
// written. ctx is checked before pre and before the lock; once the batch is
// applied the call waits for it to be durable whatever ctx says.
//
// pre reads, outside the lock, the records that fn will check, into the
// writer's overlays (optimistic reads). Under the lock, validate drops every
// record whose key a write committed since then may have changed, and fn
// reads those again. This keeps the point lookups out of the critical
// section, which is what bounds the rate of small concurrent writes.
func (c *Catalog) write(ctx context.Context, op string, indexed bool, pre, fn func(w *writer) error) (uint64, error) {
	if err := c.enter(ctx, op); err != nil {
		return 0, err
	}
	defer c.leave()
	w := c.newWriter(indexed)
	if pre != nil {
		w.readSeq = c.stats.seq.Load()
		err := pre(w)
		if err == nil {
			err = canceled(ctx, op)
		}
		if err != nil {
			_ = w.b.Close()
			return 0, err
		}
	}
	c.mu.Lock()
	w.next = c.state
	if pre != nil {
		w.validate()
	}
	err := fn(w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		c.mu.Unlock()
		_ = w.b.Close()
		return 0, err
	}
	if w.b.Empty() {
		seq := c.state.seq // read under c.mu
		c.mu.Unlock()
		_ = w.b.Close()
		return seq, nil
	}
	wait, err := c.commit(w.b, w.next)
	seq := w.next.seq
	if err == nil {
		for _, i := range w.touched {
			c.stripes[i] = seq
		}
	}
	c.mu.Unlock()
	if err != nil {
		_ = w.b.Close()
		return 0, err
	}
	if err := wait(); err != nil {
		return 0, err
	}
	return seq, nil
}

// itemError reports whether err concerns one item (an *Error) rather than
// the store; bulk calls record the former per item and abort on the latter.
func itemError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func (w *writer) get(key []byte) ([]byte, bool, error) {
	v, closer, err := w.r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

// refs returns the number of mappings of an LFN (tag 'L') or PFN (tag 'P').
func (w *writer) refs(tag byte, name string) (uint64, error) {
	overlay := w.lfns
	if tag == tagPFN {
		overlay = w.pfns
	}
	if n, ok := overlay[name]; ok {
		return n, nil
	}
	v, ok, err := w.get(nameKey(tag, name))
	if err != nil {
		return 0, err
	}
	var n uint64
	if ok {
		var size int
		if n, size = binary.Uvarint(v); size <= 0 {
			return 0, errors.New("catalog: corrupt name record")
		}
	}
	w.cacheRefs(tag, name, n)
	return n, nil
}

// cacheRefs remembers a reference count read from the store, so that later
// items of the call (or fn, after pre) need not read it again.
func (w *writer) cacheRefs(tag byte, name string, n uint64) {
	overlay := &w.lfns
	if tag == tagPFN {
		overlay = &w.pfns
	}
	if *overlay == nil {
		*overlay = make(map[string]uint64)
	}
	(*overlay)[name] = n
}

func (w *writer) setRefs(tag byte, name string, n uint64) error {
	overlay := &w.lfns
	if tag == tagPFN {
		overlay = &w.pfns
	}
	if *overlay == nil {
		*overlay = make(map[string]uint64)
	}
	(*overlay)[name] = n
	w.touched = append(w.touched, nameStripe(tag, name))
	if w.deferred {
		dirty := &w.dirtyL
		if tag == tagPFN {
			dirty = &w.dirtyP
		}
		if *dirty == nil {
			*dirty = make(map[string]struct{})
		}
		(*dirty)[name] = struct{}{}
		return nil
	}
	return w.putRefs(tag, name, n)
}

func (w *writer) mapped(lfn, pfn string) (bool, error) {
	if ok, found := w.maps[Mapping{lfn, pfn}]; found {
		return ok, nil
	}
	_, ok, err := w.get(pairKey(tagLFNMapping, lfn, pfn))
	if err != nil {
		return false, err
	}
	if w.maps == nil {
		w.maps = make(map[Mapping]bool)
	}
	w.maps[Mapping{lfn, pfn}] = ok
	return ok, nil
}

func (w *writer) setMapped(lfn, pfn string, ok bool) error {
	if w.maps == nil {
		w.maps = make(map[Mapping]bool)
	}
	w.maps[Mapping{lfn, pfn}] = ok
	w.touched = append(w.touched, mappingStripe(lfn, pfn))
	if w.deferred {
		if w.dirtyM == nil {
			w.dirtyM = make(map[Mapping]struct{})
		}
		w.dirtyM[Mapping{lfn, pfn}] = struct{}{}
		return nil
	}
	if err := w.putMapping(pairKey(tagLFNMapping, lfn, pfn), ok); err != nil {
		return err
	}
	return w.putMapping(pairKey(tagPFNMapping, pfn, lfn), ok)
}

func mappingItem(lfn, pfn string) string { return lfn + " -> " + pfn }

func (w *writer) checkPair(op, lfn, pfn string) error {
	if err := checkName(op, "lfn", lfn); err != nil {
		return err
	}
	return checkName(op, "pfn", pfn)
}

func (w *writer) create(lfn, pfn string) error {
	if err := w.checkPair("create", lfn, pfn); err != nil {
		return err
	}
	n, err := w.refs(tagLFN, lfn)
	if err != nil {
		return err
	}
	if n > 0 {
		return errorf("create", lfn, ErrExists, "lfn exists")
	}
	return w.link(ChangeCreate, lfn, pfn, 0)
}

func (w *writer) add(lfn, pfn string) error {
	if err := w.checkPair("add", lfn, pfn); err != nil {
		return err
	}
	n, err := w.refs(tagLFN, lfn)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf("add", lfn, ErrNotFound, "lfn does not exist")
	}
	ok, err := w.mapped(lfn, pfn)
	if err != nil {
		return err
	}
	if ok {
		return errorf("add", mappingItem(lfn, pfn), ErrExists, "mapping exists")
	}
	return w.link(ChangeAdd, lfn, pfn, n)
}

// link writes a new mapping; lfnRefs is the LFN's current number of PFNs.
func (w *writer) link(kind ChangeKind, lfn, pfn string, lfnRefs uint64) error {
	pfnRefs, err := w.refs(tagPFN, pfn)
	if err != nil {
		return err
	}
	if err := w.setMapped(lfn, pfn, true); err != nil {
		return err
	}
	if err := w.setRefs(tagLFN, lfn, lfnRefs+1); err != nil {
		return err
	}
	if err := w.setRefs(tagPFN, pfn, pfnRefs+1); err != nil {
		return err
	}
	if lfnRefs == 0 {
		w.next.lfns++
	}
	if pfnRefs == 0 {
		w.next.pfns++
	}
	w.next.mappings++
	return w.feed(Change{Kind: kind, LFN: lfn, PFN: pfn, LFNAdded: lfnRefs == 0})
}

func (w *writer) delete(lfn, pfn string) error {
	if err := w.checkPair("delete", lfn, pfn); err != nil {
		return err
	}
	ok, err := w.mapped(lfn, pfn)
	if err != nil {
		return err
	}
	if !ok {
		return errorf("delete", mappingItem(lfn, pfn), ErrNotFound, "no such mapping")
	}
	lfnRefs, err := w.refs(tagLFN, lfn)
	if err != nil {
		return err
	}
	pfnRefs, err := w.refs(tagPFN, pfn)
	if err != nil {
		return err
	}
	if lfnRefs == 0 || pfnRefs == 0 {
		return errors.New("catalog: mapping without name record")
	}
	if err := w.setMapped(lfn, pfn, false); err != nil {
		return err
	}
	if err := w.setRefs(tagLFN, lfn, lfnRefs-1); err != nil {
		return err
	}
	if err := w.setRefs(tagPFN, pfn, pfnRefs-1); err != nil {
		return err
	}
	if lfnRefs == 1 {
		w.next.lfns--
		if err := w.dropAttrs(LFN, lfn); err != nil {
			return err
		}
	}
	if pfnRefs == 1 {
		w.next.pfns--
		if err := w.dropAttrs(PFN, pfn); err != nil {
			return err
		}
	}
	w.next.mappings--
	return w.feed(Change{Kind: ChangeDelete, LFN: lfn, PFN: pfn, LFNRemoved: lfnRefs == 1})
}

// prefetch reads, in key order, the records that a bulk call's items will
// check, and puts them in the overlays. One iterator seeking forward through
// sorted keys costs far less than a point lookup per item (each lookup would
// probe every level and memtable anew), which is what makes bulk loads fast.
func (w *writer) prefetch(op Op, ms []Mapping) error {
	if len(ms) < 16 {
		// A handful: point lookups, which refs and mapped keep in the
		// overlays.
		for _, m := range ms {
			if nameProblem(m.LFN) != "" || nameProblem(m.PFN) != "" {
				continue
			}
			if _, err := w.refs(tagLFN, m.LFN); err != nil {
				return err
			}
			if _, err := w.refs(tagPFN, m.PFN); err != nil {
				return err
			}
			if op != OpCreate {
				if _, err := w.mapped(m.LFN, m.PFN); err != nil {
					return err
				}
			}
		}
		return nil
	}
	lfns := make([]string, 0, len(ms))
	pfns := make([]string, 0, len(ms))
	var pairs []Mapping
	for _, m := range ms {
		if nameProblem(m.LFN) != "" || nameProblem(m.PFN) != "" {
			continue
		}
		lfns = append(lfns, m.LFN)
		pfns = append(pfns, m.PFN)
		if op != OpCreate {
			pairs = append(pairs, m)
		}
	}
	it, err := w.c.db.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	slices.Sort(lfns)
	slices.Sort(pfns)
	w.sortedL, w.sortedP = slices.Compact(lfns), slices.Compact(pfns)
	for _, t := range []struct {
		tag     byte
		names   []string
		overlay *map[string]uint64
	}{{tagLFN, w.sortedL, &w.lfns}, {tagPFN, w.sortedP, &w.pfns}} {
		if *t.overlay == nil {
			*t.overlay = make(map[string]uint64, len(t.names))
		}
		it.SetBounds([]byte{t.tag}, []byte{t.tag + 1})
		var key []byte
		for _, name := range t.names {
			key = appendName(append(key[:0], t.tag), name)
			var n uint64
			if it.SeekGE(key) && bytes.Equal(it.Key(), key) {
				v, size := binary.Uvarint(it.Value())
				if size <= 0 {
					return errors.New("catalog: corrupt name record")
				}
				n = v
			}
			(*t.overlay)[name] = n
		}
		if err := it.Error(); err != nil {
			return err
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	slices.SortFunc(pairs, func(a, b Mapping) int {
		return cmp.Or(strings.Compare(a.LFN, b.LFN), strings.Compare(a.PFN, b.PFN))
	})
	w.maps = make(map[Mapping]bool, len(pairs))
	it.SetBounds([]byte{tagLFNMapping}, []byte{tagLFNMapping + 1})
	for _, m := range pairs {
		key := pairKey(tagLFNMapping, m.LFN, m.PFN)
		w.maps[m] = it.SeekGE(key) && bytes.Equal(it.Key(), key)
	}
	return it.Error()
}

// rename renames an LFN (obj LFN) or PFN. It needs an indexed batch, since
// it scans the renamed name's mappings and attributes, which earlier items of
// the same call may have written.
func (w *writer) rename(obj ObjectType, old, new string) error {
	op := "rename " + obj.String()
	if err := checkName(op, obj.String(), old); err != nil {
		return err
	}
	if err := checkName(op, obj.String(), new); err != nil {
		return err
	}
	tag, mapTag, revTag := byte(tagLFN), byte(tagLFNMapping), byte(tagPFNMapping)
	if obj == PFN {
		tag, mapTag, revTag = tagPFN, tagPFNMapping, tagLFNMapping
	}
	n, err := w.refs(tag, old)
	if err != nil {
		return err
	}
	if n == 0 {
		return errorf(op, old, ErrNotFound, obj.String()+" does not exist")
	}
	if m, err := w.refs(tag, new); err != nil {
		return err
	} else if m > 0 || old == new {
		return errorf(op, new, ErrExists, "new name exists")
	}
	var others []string
	err = scanPrefix(w.r, appendName([]byte{mapTag}, old), func(k, _ []byte) error {
		_, other, err := decodePair(k)
		others = append(others, other)
		return err
	})
	if err != nil {
		return err
	}
	for _, o := range others {
		for _, k := range [][]byte{pairKey(mapTag, old, o), pairKey(revTag, o, old)} {
			if err := w.b.Delete(k, nil); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{pairKey(mapTag, new, o), pairKey(revTag, o, new)} {
			if err := w.b.Set(k, nil, nil); err != nil {
				return err
			}
		}
		lfnOld, lfnNew, pfnOld, pfnNew := old, new, o, o
		if obj == PFN {
			lfnOld, lfnNew, pfnOld, pfnNew = o, o, old, new
		}
		// Writers that read these mappings before taking the lock must
		// read them again.
		w.touched = append(w.touched, mappingStripe(lfnOld, pfnOld), mappingStripe(lfnNew, pfnNew))
		if w.maps != nil {
			w.maps[Mapping{lfnOld, pfnOld}] = false
			w.maps[Mapping{lfnNew, pfnNew}] = true
		}
	}
	if err := w.setRefs(tag, old, 0); err != nil {
		return err
	}
	if err := w.setRefs(tag, new, n); err != nil {
		return err
	}
	if err := w.moveAttrs(obj, old, new); err != nil {
		return err
	}
	if obj == LFN {
		return w.feed(Change{Kind: ChangeRenameLFN, LFN: new, Old: old, LFNAdded: true, LFNRemoved: true})
	}
	return w.feed(Change{Kind: ChangeRenamePFN, PFN: new, Old: old})
}

// scanPrefix calls fn for every key with the prefix, in order. The key and
// value are valid only during the call.
func scanPrefix(r pebble.Reader, prefix []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// Create makes a new LFN with its first PFN. It fails with ErrExists if the
// LFN exists. It returns the change-feed sequence number of the write, which
// is durable when Create returns.
func (c *Catalog) Create(ctx context.Context, lfn, pfn string) (uint64, error) {
	return c.writeOne(ctx, "create", prefetchOne(OpCreate, lfn, pfn),
		func(w *writer) error { return w.create(lfn, pfn) })
}

// Add maps an existing LFN to another PFN. It fails with ErrNotFound if the
// LFN does not exist and with ErrExists if the mapping does.
func (c *Catalog) Add(ctx context.Context, lfn, pfn string) (uint64, error) {
	return c.writeOne(ctx, "add", prefetchOne(OpAdd, lfn, pfn),
		func(w *writer) error { return w.add(lfn, pfn) })
}

// Delete removes one mapping (ErrNotFound if there is none). An LFN or PFN
// left without mappings disappears, with its attribute values. The change
// feed keeps a tombstone record of the delete.
func (c *Catalog) Delete(ctx context.Context, lfn, pfn string) (uint64, error) {
	return c.writeOne(ctx, "delete", prefetchOne(OpDelete, lfn, pfn),
		func(w *writer) error { return w.delete(lfn, pfn) })
}

// RenameLFN gives LFN old the name new, keeping its mappings and attribute
// values. ErrNotFound if old does not exist, ErrExists if new does.
func (c *Catalog) RenameLFN(ctx context.Context, old, new string) (uint64, error) {
	return c.write(ctx, "rename lfn", true, nil, func(w *writer) error { return w.rename(LFN, old, new) })
}

// RenamePFN gives PFN old the name new, keeping its mappings and attribute
// values. ErrNotFound if old does not exist, ErrExists if new does.
func (c *Catalog) RenamePFN(ctx context.Context, old, new string) (uint64, error) {
	return c.write(ctx, "rename pfn", true, nil, func(w *writer) error { return w.rename(PFN, old, new) })
}

// Op is a bulk mapping operation.
type Op uint8

const (
	OpCreate Op = iota + 1
	OpAdd
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpAdd:
		return "add"
	case OpDelete:
		return "delete"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Mapping is one (LFN, PFN) pair.
type Mapping struct{ LFN, PFN string }

// BulkWrite applies op to every mapping, in order, as one atomic and durable
// batch: later items see the effects of earlier ones. errs has one entry per
// item (nil for success); items that fail change nothing. err is non-nil only
// if the whole call failed, in which case nothing was written. seq is the
// change-feed sequence number after the call.
func (c *Catalog) BulkWrite(ctx context.Context, op Op, ms []Mapping) (errs []error, seq uint64, err error) {
	var apply func(w *writer, m Mapping) error
	switch op {
	case OpCreate:
		apply = func(w *writer, m Mapping) error { return w.create(m.LFN, m.PFN) }
	case OpAdd:
		apply = func(w *writer, m Mapping) error { return w.add(m.LFN, m.PFN) }
	case OpDelete:
		apply = func(w *writer, m Mapping) error { return w.delete(m.LFN, m.PFN) }
	default:
		return nil, 0, errorf("bulk write", "", ErrInvalid, "unknown operation "+op.String())
	}
	name := "bulk " + op.String()
	errs = make([]error, len(ms))
	seq, err = c.write(ctx, name, false, func(w *writer) error {
		return w.prefetch(op, ms)
	}, func(w *writer) error {
		for i, m := range ms {
			if i%checkEvery == checkEvery-1 {
				if err := canceled(ctx, name); err != nil {
					return err
				}
			}
			if err := apply(w, m); err != nil {
				if !itemError(err) {
					return err
				}
				errs[i] = err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return errs, seq, nil
}

// Rename is one item of BulkRename.
type Rename struct{ Old, New string }

// BulkRename renames many LFNs or PFNs (obj) in order, as one atomic and
// durable batch, with per-item errors as BulkWrite.
func (c *Catalog) BulkRename(ctx context.Context, obj ObjectType, rs []Rename) (errs []error, seq uint64, err error) {
	if !obj.valid() {
		return nil, 0, errorf("bulk rename", "", ErrInvalid, "unknown object type "+obj.String())
	}
	name := "bulk rename " + obj.String()
	errs = make([]error, len(rs))
	seq, err = c.write(ctx, name, true, nil, func(w *writer) error {
		for i, r := range rs {
			if i%checkEvery == checkEvery-1 {
				if err := canceled(ctx, name); err != nil {
					return err
				}
			}
			if err := w.rename(obj, r.Old, r.New); err != nil {
				if !itemError(err) {
					return err
				}
				errs[i] = err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return errs, seq, nil
}

func prefetchOne(op Op, lfn, pfn string) func(w *writer) error {
	return func(w *writer) error { return w.prefetch(op, []Mapping{{lfn, pfn}}) }
}

// validate drops from the overlays every record read before the lock whose
// stripe a write committed after w.readSeq; the checks read those again.
// It runs with c.mu held.
func (w *writer) validate() {
	st := &w.c.stripes
	for name := range w.lfns {
		if st[nameStripe(tagLFN, name)] > w.readSeq {
			delete(w.lfns, name)
		}
	}
	for name := range w.pfns {
		if st[nameStripe(tagPFN, name)] > w.readSeq {
			delete(w.pfns, name)
		}
	}
	for m := range w.maps {
		if st[mappingStripe(m.LFN, m.PFN)] > w.readSeq {
			delete(w.maps, m)
		}
	}
}

// stripes is the size of Catalog.stripes: enough that a bulk call's keys
// rarely share a stripe with a concurrent writer's.
const stripes = 1 << 16

func nameStripe(tag byte, name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte{tag})
	h.Write([]byte(name))
	return h.Sum32() % stripes
}

func mappingStripe(lfn, pfn string) uint32 {
	h := fnv.New32a()
	h.Write([]byte{tagLFNMapping})
	h.Write([]byte(lfn))
	h.Write([]byte{0})
	h.Write([]byte(pfn))
	return h.Sum32() % stripes
}
