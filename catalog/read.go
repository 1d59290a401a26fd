package catalog

import (
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// Reads see every write applied before they start; they never block writers
// and are safe for concurrent use.

func (c *Catalog) has(op string, key []byte) (bool, error) {
	if err := c.enter(op); err != nil {
		return false, err
	}
	defer c.leave()
	_, closer, err := c.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// LFNExists reports whether the LFN has at least one mapping.
func (c *Catalog) LFNExists(lfn string) (bool, error) {
	if err := checkName("exists", "lfn", lfn); err != nil {
		return false, err
	}
	return c.has("exists", nameKey(tagLFN, lfn))
}

// PFNExists reports whether the PFN has at least one mapping.
func (c *Catalog) PFNExists(pfn string) (bool, error) {
	if err := checkName("exists", "pfn", pfn); err != nil {
		return false, err
	}
	return c.has("exists", nameKey(tagPFN, pfn))
}

// MappingExists reports whether the mapping LFN → PFN exists.
func (c *Catalog) MappingExists(lfn, pfn string) (bool, error) {
	if err := checkName("exists", "lfn", lfn); err != nil {
		return false, err
	}
	if err := checkName("exists", "pfn", pfn); err != nil {
		return false, err
	}
	return c.has("exists", pairKey(tagLFNMapping, lfn, pfn))
}

// QueryLFN returns the PFNs of an LFN in byte order, or ErrNotFound.
func (c *Catalog) QueryLFN(lfn string) ([]string, error) {
	return c.query(LFN, tagLFNMapping, lfn)
}

// QueryPFN returns the LFNs of a PFN in byte order, or ErrNotFound.
func (c *Catalog) QueryPFN(pfn string) ([]string, error) {
	return c.query(PFN, tagPFNMapping, pfn)
}

// query is the single-name path of BulkQuery: an iterator bounded to the
// name's keys from the start, so that Pebble opens only the tables that can
// hold them.
func (c *Catalog) query(obj ObjectType, tag byte, name string) ([]string, error) {
	op := "query " + obj.String()
	if err := checkName(op, obj.String(), name); err != nil {
		return nil, err
	}
	if err := c.enter(op); err != nil {
		return nil, err
	}
	defer c.leave()
	prefix := appendName([]byte{tag}, name)
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		other, _, err := decodeName(it.Key()[len(prefix):])
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		out = append(out, other)
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errorf(op, name, ErrNotFound, obj.String()+" does not exist")
	}
	return out, nil
}

// BulkQuery answers QueryLFN (obj LFN) or QueryPFN (obj PFN) for every name,
// with one result and one error (nil, or an *Error) per name, from one
// consistent view.
func (c *Catalog) BulkQuery(obj ObjectType, names []string) ([][]string, []error) {
	res := make([][]string, len(names))
	errs := make([]error, len(names))
	op := "query " + obj.String()
	fail := func(err error) ([][]string, []error) {
		for i := range errs {
			errs[i] = err
		}
		return res, errs
	}
	tag := byte(tagLFNMapping)
	switch obj {
	case LFN:
	case PFN:
		tag = tagPFNMapping
	default:
		return fail(errorf(op, "", ErrInvalid, "unknown object type "+obj.String()))
	}
	if err := c.enter(op); err != nil {
		return fail(err)
	}
	defer c.leave()
	it, err := c.db.NewIter(nil)
	if err != nil {
		return fail(err)
	}
	defer it.Close()
	var prefix []byte
	for i, name := range names {
		if err := checkName(op, obj.String(), name); err != nil {
			errs[i] = err
			continue
		}
		prefix = appendName(append(prefix[:0], tag), name)
		it.SetBounds(prefix, prefixEnd(prefix))
		for ok := it.First(); ok; ok = it.Next() {
			other, _, err := decodeName(it.Key()[len(prefix):])
			if err != nil {
				errs[i] = err
				break
			}
			res[i] = append(res[i], other)
		}
		if err := it.Error(); err != nil && errs[i] == nil {
			errs[i] = err
		}
		if res[i] == nil && errs[i] == nil {
			errs[i] = errorf(op, name, ErrNotFound, obj.String()+" does not exist")
		}
	}
	return res, errs
}

// BulkExists answers, for every item, whether the mapping exists (LFN and PFN
// both set), or the LFN (only LFN set), or the PFN (only PFN set).
func (c *Catalog) BulkExists(items []Mapping) ([]bool, []error) {
	res := make([]bool, len(items))
	errs := make([]error, len(items))
	for i, m := range items {
		switch {
		case m.LFN != "" && m.PFN != "":
			res[i], errs[i] = c.MappingExists(m.LFN, m.PFN)
		case m.LFN != "":
			res[i], errs[i] = c.LFNExists(m.LFN)
		case m.PFN != "":
			res[i], errs[i] = c.PFNExists(m.PFN)
		default:
			errs[i] = errorf("exists", "", ErrInvalid, "neither lfn nor pfn given")
		}
	}
	return res, errs
}

// WildcardQuery selects mappings by a glob pattern on LFNs (or, with PFN
// set, on PFNs): '*' matches any run of characters, '?' one character, and
// '\' makes the next character literal. Results are ordered by (LFN, PFN), or
// (PFN, LFN), in byte order; Offset skips that many matches and Limit caps
// the answer (0: no cap).
type WildcardQuery struct {
	Pattern       string
	PFN           bool
	Offset, Limit int
}

// Wildcard returns the mappings that match q, and whether more matches lie
// past the returned page. A pattern with a literal prefix scans only the
// names with that prefix.
func (c *Catalog) Wildcard(q WildcardQuery) ([]Mapping, bool, error) {
	g, err := compileGlob(q.Pattern)
	if err != nil {
		return nil, false, err
	}
	if q.Offset < 0 || q.Limit < 0 {
		return nil, false, errorf("wildcard", q.Pattern, ErrInvalid, "negative offset or limit")
	}
	if err := c.enter("wildcard"); err != nil {
		return nil, false, err
	}
	defer c.leave()
	tag := byte(tagLFNMapping)
	if q.PFN {
		tag = tagPFNMapping
	}
	lower := appendNamePrefix([]byte{tag}, g.prefix)
	if g.exact {
		lower = appendName([]byte{tag}, g.prefix)
	}
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	var (
		out              []Mapping
		skip             = q.Offset
		lastName         []byte // the name part of the last key, and whether it matched
		lastMatch, first = false, true
	)
	for ok := it.First(); ok; ok = it.Next() {
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
		if q.PFN {
			out = append(out, Mapping{LFN: other, PFN: name})
		} else {
			out = append(out, Mapping{LFN: name, PFN: other})
		}
	}
	return out, false, it.Error()
}
