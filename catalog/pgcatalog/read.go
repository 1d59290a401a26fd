package pgcatalog

import (
	"context"
	"strconv"

	"github.com/solar-archive/rls/catalog"
)

// Reads are single statements (pgx prepares and caches them per
// connection): each sees every write committed before it starts, never
// blocks writers, and is safe for concurrent use.

func (c *Catalog) exists(ctx context.Context, sql string, args ...any) (bool, error) {
	if err := c.enter(ctx, "exists"); err != nil {
		return false, err
	}
	var ok bool
	err := c.pool.QueryRow(ctx, sql, args...).Scan(&ok)
	return ok, unavailable("exists", err)
}

// LFNExists reports whether the LFN has at least one mapping.
func (c *Catalog) LFNExists(ctx context.Context, lfn string) (bool, error) {
	if err := checkName("exists", "lfn", lfn); err != nil {
		return false, err
	}
	return c.exists(ctx, `SELECT EXISTS (SELECT 1 FROM rls_map WHERE lfn = $1)`, lfn)
}

// PFNExists reports whether the PFN has at least one mapping.
func (c *Catalog) PFNExists(ctx context.Context, pfn string) (bool, error) {
	if err := checkName("exists", "pfn", pfn); err != nil {
		return false, err
	}
	return c.exists(ctx, `SELECT EXISTS (SELECT 1 FROM rls_map WHERE pfn = $1)`, pfn)
}

// MappingExists reports whether the mapping LFN → PFN exists.
func (c *Catalog) MappingExists(ctx context.Context, lfn, pfn string) (bool, error) {
	if err := checkPair("exists", lfn, pfn); err != nil {
		return false, err
	}
	return c.exists(ctx, `SELECT EXISTS (SELECT 1 FROM rls_map WHERE lfn = $1 AND pfn = $2)`, lfn, pfn)
}

// QueryLFN returns the PFNs of an LFN in byte order, or ErrNotFound.
func (c *Catalog) QueryLFN(ctx context.Context, lfn string) ([]string, error) {
	var out []string
	err := c.QueryEach(ctx, catalog.LFN, lfn, func(pfn string) error { out = append(out, pfn); return nil })
	return out, err
}

// QueryPFN returns the LFNs of a PFN in byte order, or ErrNotFound.
func (c *Catalog) QueryPFN(ctx context.Context, pfn string) ([]string, error) {
	var out []string
	err := c.QueryEach(ctx, catalog.PFN, pfn, func(lfn string) error { out = append(out, lfn); return nil })
	return out, err
}

var querySQL = map[catalog.ObjectType]string{
	catalog.LFN: `SELECT pfn FROM rls_map WHERE lfn = $1 ORDER BY pfn`,
	catalog.PFN: `SELECT lfn FROM rls_map WHERE pfn = $1 ORDER BY lfn`,
}

// QueryEach calls fn with each name mapped to name (an LFN for obj LFN, a
// PFN for obj PFN), in byte order. If fn returns an error, QueryEach stops
// and returns it. ErrNotFound if the name has no mapping.
func (c *Catalog) QueryEach(ctx context.Context, obj catalog.ObjectType, name string, fn func(other string) error) error {
	op := "query " + obj.String()
	sql, ok := querySQL[obj]
	if !ok {
		return errorf(op, "", catalog.ErrInvalid, "unknown object type "+obj.String())
	}
	if err := checkName(op, obj.String(), name); err != nil {
		return err
	}
	if err := c.enter(ctx, op); err != nil {
		return err
	}
	rows, err := c.pool.Query(ctx, sql, name)
	if err != nil {
		return unavailable(op, err)
	}
	defer rows.Close()
	n := 0
	var other string
	for rows.Next() {
		if err := rows.Scan(&other); err != nil {
			return err
		}
		if err := fn(other); err != nil {
			return err
		}
		if err := canceled(ctx, op, n); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return unavailable(op, err)
	}
	if n == 0 {
		return errorf(op, name, catalog.ErrNotFound, obj.String()+" does not exist")
	}
	return nil
}

// BulkQuery answers QueryLFN (obj LFN) or QueryPFN (obj PFN) for every name,
// with one result and one error per name, from one consistent view.
func (c *Catalog) BulkQuery(ctx context.Context, obj catalog.ObjectType, names []string) (res [][]string, errs []error, err error) {
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

var bulkQuerySQL = map[catalog.ObjectType]string{
	catalog.LFN: `SELECT u.i, m.pfn FROM unnest($1::integer[], $2::text[]) AS u(i, name) JOIN rls_map m ON m.lfn = u.name ORDER BY u.i, m.pfn`,
	catalog.PFN: `SELECT u.i, m.lfn FROM unnest($1::integer[], $2::text[]) AS u(i, name) JOIN rls_map m ON m.pfn = u.name ORDER BY u.i, m.lfn`,
}

// BulkQueryEach is BulkQuery without building the answer: for each name in
// turn it calls fn(i, other) with each name mapped to names[i], in byte
// order, from one statement (one consistent view). It returns one error per
// name. If fn returns an error, BulkQueryEach stops and returns it as err.
func (c *Catalog) BulkQueryEach(ctx context.Context, obj catalog.ObjectType, names []string, fn func(i int, other string) error) (errs []error, err error) {
	op := "query " + obj.String()
	fail := func(err error) ([]error, error) { return nil, err }
	sql, ok := bulkQuerySQL[obj]
	if !ok {
		return fail(errorf(op, "", catalog.ErrInvalid, "unknown object type "+obj.String()))
	}
	if err := c.enter(ctx, op); err != nil {
		return fail(err)
	}
	errs = make([]error, len(names))
	var idx []int32
	var valid []string
	for i, name := range names {
		if err := checkName(op, obj.String(), name); err != nil {
			errs[i] = err
			continue
		}
		idx = append(idx, int32(i))
		valid = append(valid, name)
	}
	found := make([]bool, len(names))
	if len(idx) > 0 {
		rows, err := c.pool.Query(ctx, sql, idx, valid)
		if err != nil {
			return fail(unavailable(op, err))
		}
		defer rows.Close()
		var i int32
		var other string
		for n := 0; rows.Next(); n++ {
			if err := rows.Scan(&i, &other); err != nil {
				return fail(err)
			}
			found[i] = true
			if err := fn(int(i), other); err != nil {
				return errs, err
			}
			if err := canceled(ctx, op, n); err != nil {
				return fail(err)
			}
		}
		if err := rows.Err(); err != nil {
			return fail(unavailable(op, err))
		}
	}
	for _, i := range idx {
		if !found[i] {
			errs[i] = errorf(op, names[i], catalog.ErrNotFound, obj.String()+" does not exist")
		}
	}
	return errs, nil
}

// BulkExists answers, for every item, whether the mapping exists (LFN and PFN
// both set), or the LFN (only LFN set), or the PFN (only PFN set).
// It is one statement, so one consistent view.
func (c *Catalog) BulkExists(ctx context.Context, items []catalog.Mapping) (exists []bool, errs []error, err error) {
	const op = "exists"
	if err := c.enter(ctx, op); err != nil {
		return nil, nil, err
	}
	exists = make([]bool, len(items))
	errs = make([]error, len(items))
	var idx []int32
	var lfns, pfns []string
	for i, m := range items {
		if m.LFN == "" && m.PFN == "" {
			errs[i] = errorf(op, "", catalog.ErrInvalid, "neither lfn nor pfn given")
			continue
		}
		if m.LFN != "" {
			if errs[i] = checkName(op, "lfn", m.LFN); errs[i] != nil {
				continue
			}
		}
		if m.PFN != "" {
			if errs[i] = checkName(op, "pfn", m.PFN); errs[i] != nil {
				continue
			}
		}
		idx = append(idx, int32(i))
		lfns = append(lfns, m.LFN)
		pfns = append(pfns, m.PFN)
	}
	if len(idx) == 0 {
		return exists, errs, nil
	}
	rows, err := c.pool.Query(ctx, `SELECT u.i, CASE
		WHEN u.l <> '' AND u.p <> '' THEN EXISTS (SELECT 1 FROM rls_map m WHERE m.lfn = u.l AND m.pfn = u.p)
		WHEN u.l <> '' THEN EXISTS (SELECT 1 FROM rls_map m WHERE m.lfn = u.l)
		ELSE EXISTS (SELECT 1 FROM rls_map m WHERE m.pfn = u.p) END
		FROM unnest($1::integer[], $2::text[], $3::text[]) AS u(i, l, p)`, idx, lfns, pfns)
	if err != nil {
		return nil, nil, unavailable(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int32
		var ok bool
		if err := rows.Scan(&i, &ok); err != nil {
			return nil, nil, err
		}
		exists[i] = ok
	}
	if err := rows.Err(); err != nil {
		return nil, nil, unavailable(op, err)
	}
	return exists, errs, nil
}

// Wildcard returns the mappings that match q (see catalog.WildcardQuery),
// and whether more matches lie past the returned page. A pattern with a
// literal prefix scans only the index range of that prefix.
func (c *Catalog) Wildcard(ctx context.Context, q catalog.WildcardQuery) ([]catalog.Mapping, bool, error) {
	p, err := catalog.CompilePattern(q.Pattern)
	if err != nil {
		return nil, false, err
	}
	if q.Offset < 0 || q.Limit < 0 {
		return nil, false, errorf("wildcard", q.Pattern, catalog.ErrInvalid, "negative offset or limit")
	}
	if err := c.enter(ctx, "wildcard"); err != nil {
		return nil, false, err
	}
	col, other := "lfn", "pfn"
	if q.PFN {
		col, other = "pfn", "lfn"
	}
	args := []any{likePattern(q.Pattern)}
	sql := `SELECT ` + col + `, ` + other + ` FROM rls_map WHERE ` + col + ` LIKE $1`
	if pre := p.Prefix(); pre != "" {
		sql += ` AND ` + col + ` >= $2`
		args = append(args, pre)
	}
	sql += ` ORDER BY ` + col + `, ` + other
	if q.Limit > 0 {
		sql += ` LIMIT ` + strconv.Itoa(q.Limit+1)
	}
	if q.Offset > 0 {
		sql += ` OFFSET ` + strconv.Itoa(q.Offset)
	}
	rows, err := c.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, unavailable("wildcard", err)
	}
	defer rows.Close()
	var out []catalog.Mapping
	size := 0
	for rows.Next() {
		var name, o string
		if err := rows.Scan(&name, &o); err != nil {
			return nil, false, err
		}
		if q.Limit > 0 && len(out) == q.Limit {
			return out, true, nil
		}
		if size += len(name) + len(o) + 16; q.MaxBytes > 0 && size > q.MaxBytes && len(out) > 0 {
			return out, true, nil
		}
		if q.PFN {
			out = append(out, catalog.Mapping{LFN: o, PFN: name})
		} else {
			out = append(out, catalog.Mapping{LFN: name, PFN: o})
		}
	}
	return out, false, unavailable("wildcard", rows.Err())
}
