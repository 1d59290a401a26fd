package catalog

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Reads see every write applied before they start; they never block writers
// (but for a bulk write that ingests tables, which waits for the reads in
// flight when it starts: see readView) and are safe for concurrent use.

func (c *Catalog) has(ctx context.Context, op string, key []byte) (bool, error) {
	view, err := c.enterRead(ctx, op)
	if err != nil {
		return false, err
	}
	defer c.leaveRead(view)
	_, closer, err := view.r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// LFNExists reports whether the LFN has at least one mapping.
func (c *Catalog) LFNExists(ctx context.Context, lfn string) (bool, error) {
	if err := checkName("exists", "lfn", lfn); err != nil {
		return false, err
	}
	return c.has(ctx, "exists", nameKey(tagLFN, lfn))
}

// PFNExists reports whether the PFN has at least one mapping.
func (c *Catalog) PFNExists(ctx context.Context, pfn string) (bool, error) {
	if err := checkName("exists", "pfn", pfn); err != nil {
		return false, err
	}
	return c.has(ctx, "exists", nameKey(tagPFN, pfn))
}

// MappingExists reports whether the mapping LFN → PFN exists.
func (c *Catalog) MappingExists(ctx context.Context, lfn, pfn string) (bool, error) {
	if err := checkName("exists", "lfn", lfn); err != nil {
		return false, err
	}
	if err := checkName("exists", "pfn", pfn); err != nil {
		return false, err
	}
	return c.has(ctx, "exists", pairKey(tagLFNMapping, lfn, pfn))
}

// QueryLFN returns the PFNs of an LFN in byte order, or ErrNotFound.
func (c *Catalog) QueryLFN(ctx context.Context, lfn string) ([]string, error) {
	var out []string
	err := c.QueryEach(ctx, LFN, lfn, func(pfn string) error { out = append(out, pfn); return nil })
	return out, err
}

// QueryPFN returns the LFNs of a PFN in byte order, or ErrNotFound.
func (c *Catalog) QueryPFN(ctx context.Context, pfn string) ([]string, error) {
	var out []string
	err := c.QueryEach(ctx, PFN, pfn, func(lfn string) error { out = append(out, lfn); return nil })
	return out, err
}

// QueryEach is QueryLFN (obj LFN) or QueryPFN (obj PFN) without building
// the answer: it calls fn with each name mapped to name, in byte order, so
// that a caller can bound what it keeps of a name with very many mappings.
// If fn returns an error, QueryEach stops and returns it. ErrNotFound if
// the name has no mapping.
func (c *Catalog) QueryEach(ctx context.Context, obj ObjectType, name string, fn func(other string) error) error {
	op := "query " + obj.String()
	tag := byte(tagLFNMapping)
	switch obj {
	case LFN:
	case PFN:
		tag = tagPFNMapping
	default:
		return errorf(op, "", ErrInvalid, "unknown object type "+obj.String())
	}
	if err := checkName(op, obj.String(), name); err != nil {
		return err
	}
	view, err := c.enterRead(ctx, op)
	if err != nil {
		return err
	}
	defer c.leaveRead(view)
	// An iterator bounded to the name's keys from the start, so that Pebble
	// opens only the tables that can hold them.
	prefix := appendName([]byte{tag}, name)
	it, err := view.r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		var err error
		if n%checkEvery == checkEvery-1 {
			err = canceled(ctx, op)
		}
		var other string
		if err == nil {
			other, _, err = decodeName(it.Key()[len(prefix):])
		}
		if err == nil {
			err = fn(other)
		}
		if err != nil {
			_ = it.Close()
			return err
		}
		n++
	}
	if err := it.Close(); err != nil {
		return err
	}
	if n == 0 {
		return errorf(op, name, ErrNotFound, obj.String()+" does not exist")
	}
	return nil
}

// BulkQuery answers QueryLFN (obj LFN) or QueryPFN (obj PFN) for every name,
// with one result and one error (nil, or an *Error) per name, from one
// consistent view. err is the failure of the whole call (see Store).
func (c *Catalog) BulkQuery(ctx context.Context, obj ObjectType, names []string) (res [][]string, errs []error, err error) {
	res = make([][]string, len(names))
	errs, err = c.BulkQueryEach(ctx, obj, names, func(i int, other string) error {
		res[i] = append(res[i], other)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return res, errs, nil
}

// BulkQueryEach is BulkQuery without building the answer: it calls
// fn(i, other) with each name mapped to names[i], in byte order, from one
// consistent view, so that a caller can bound what it keeps (a request may
// repeat a name that has very many mappings). The names are visited in byte
// order of the names (not in the order given; repeated names one after the
// other), which lets one iterator move forward through the keys instead of
// seeking anew for each name. It returns one error (nil, or an *Error) per
// name. If fn returns an error, BulkQueryEach stops and returns it as err;
// the per-name errors are then those of the names visited before. A failure
// of the whole call (an unknown obj, the catalog closed, ctx ended) is err,
// with errs nil.
func (c *Catalog) BulkQueryEach(ctx context.Context, obj ObjectType, names []string, fn func(i int, other string) error) (errs []error, err error) {
	op := "query " + obj.String()
	tag := byte(tagLFNMapping)
	switch obj {
	case LFN:
	case PFN:
		tag = tagPFNMapping
	default:
		return nil, errorf(op, "", ErrInvalid, "unknown object type "+obj.String())
	}
	view, err := c.enterRead(ctx, op)
	if err != nil {
		return nil, err
	}
	defer c.leaveRead(view)
	errs = make([]error, len(names))
	n := 0 // names and keys read, for the checks of ctx
	tick := func() error {
		if n++; n%checkEvery == 0 {
			return canceled(ctx, op)
		}
		return nil
	}
	order := make([]int, 0, len(names))
	for i, name := range names {
		if err := checkName(op, obj.String(), name); err != nil {
			errs[i] = err
			continue
		}
		order = append(order, i)
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	// One iterator over the whole table, sought forward: Pebble then
	// reuses the files and blocks it is positioned in (seeks "using next")
	// instead of starting each lookup at the top of every level.
	it, err := view.r.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var prefix []byte
	for _, i := range order {
		if err := tick(); err != nil {
			return nil, err
		}
		name := names[i]
		prefix = appendName(append(prefix[:0], tag), name)
		found := false
		for ok := it.SeekGE(prefix); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
			if err := tick(); err != nil {
				return nil, err
			}
			other, _, err := decodeName(it.Key()[len(prefix):])
			if err != nil {
				return nil, err
			}
			found = true
			if err := fn(i, other); err != nil {
				return errs, err
			}
		}
		if err := it.Error(); err != nil {
			return nil, err
		}
		if !found {
			errs[i] = errorf(op, name, ErrNotFound, obj.String()+" does not exist")
		}
	}
	return errs, nil
}

// BulkExists answers, for every item, whether the mapping exists (LFN and PFN
// both set), or the LFN (only LFN set), or the PFN (only PFN set), with one
// error (nil, or an *Error) per item. err is the failure of the whole call
// (see Store).
func (c *Catalog) BulkExists(ctx context.Context, items []Mapping) (exists []bool, errs []error, err error) {
	exists = make([]bool, len(items))
	errs = make([]error, len(items))
	for i, m := range items {
		switch { // each lookup checks ctx
		case m.LFN != "" && m.PFN != "":
			exists[i], errs[i] = c.MappingExists(ctx, m.LFN, m.PFN)
		case m.LFN != "":
			exists[i], errs[i] = c.LFNExists(ctx, m.LFN)
		case m.PFN != "":
			exists[i], errs[i] = c.PFNExists(ctx, m.PFN)
		default:
			errs[i] = errorf("exists", "", ErrInvalid, "neither lfn nor pfn given")
		}
		if errs[i] != nil && !itemError(errs[i]) {
			return nil, nil, errs[i]
		}
	}
	return exists, errs, nil
}

// WildcardQuery selects mappings by a glob pattern on LFNs (or, with PFN
// set, on PFNs): '*' matches any run of characters, '?' one character, and
// '\' makes the next character literal. Results are ordered by (LFN, PFN), or
// (PFN, LFN), in byte order; Offset skips that many matches and Limit caps
// the answer (0: no cap). MaxBytes, when not 0, also ends the page before
// its size would pass MaxBytes, counting each mapping as the bytes of its
// LFN and PFN plus 16, but never before its first mapping: a short page
// then says there are more, and the caller asks for the next from Offset
// plus its length.
type WildcardQuery struct {
	Pattern       string
	PFN           bool
	Offset, Limit int
	MaxBytes      int
}

// Wildcard returns the mappings that match q, and whether more matches lie
// past the returned page. A pattern with a literal prefix scans only the
// names with that prefix.
func (c *Catalog) Wildcard(ctx context.Context, q WildcardQuery) ([]Mapping, bool, error) {
	g, err := compileGlob(q.Pattern)
	if err != nil {
		return nil, false, err
	}
	if q.Offset < 0 || q.Limit < 0 {
		return nil, false, errorf("wildcard", q.Pattern, ErrInvalid, "negative offset or limit")
	}
	view, err := c.enterRead(ctx, "wildcard")
	if err != nil {
		return nil, false, err
	}
	defer c.leaveRead(view)
	tag := byte(tagLFNMapping)
	if q.PFN {
		tag = tagPFNMapping
	}
	lower := appendNamePrefix([]byte{tag}, g.prefix)
	if g.exact {
		lower = appendName([]byte{tag}, g.prefix)
	}
	it, err := view.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	var (
		out              []Mapping
		skip             = q.Offset
		lastName         []byte // the name part of the last key, and whether it matched
		lastMatch, first = false, true
		size             int // bytes of the names in out
		n                int // keys read
	)
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%checkEvery == 0 {
			if err := canceled(ctx, "wildcard"); err != nil {
				return nil, false, err
			}
		}
		k := it.Key()
		name, rest, err := decodeName(k[1:])
		if err != nil {
			return nil, false, err
		}
		nameEnc := k[1 : len(k)-len(rest)]
		if first || string(nameEnc) != string(lastName) {
			lastName = append(lastName[:0], nameEnc...)
			lastMatch = g.match(name)
			first = false
		}
		if !lastMatch {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			return out, true, nil
		}
		other, _, err := decodeName(rest)
		if err != nil {
			return nil, false, err
		}
		if size += len(name) + len(other) + 16; q.MaxBytes > 0 && size > q.MaxBytes && len(out) > 0 {
			return out, true, nil
		}
		if q.PFN {
			out = append(out, Mapping{LFN: other, PFN: name})
		} else {
			out = append(out, Mapping{LFN: name, PFN: other})
		}
	}
	return out, false, it.Error()
}
