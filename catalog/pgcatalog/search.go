package pgcatalog

import (
	"context"
	"strconv"
	"strings"

	"github.com/solar-archive/rls/catalog"
)

// Attrs returns the attribute values of an LFN or PFN in name order: all of
// them, or those named in attrs (ErrNotFound naming the first that has no
// value). ErrNotFound if the object does not exist.
func (c *Catalog) Attrs(ctx context.Context, obj catalog.ObjectType, object string, attrs ...string) ([]catalog.Attr, error) {
	res, errs, err := c.BulkAttrs(ctx, obj, []string{object}, attrs)
	if err != nil {
		return nil, err
	}
	return res[0], errs[0]
}

// BulkAttrs answers Attrs for many objects, with one result and one error
// per object.
func (c *Catalog) BulkAttrs(ctx context.Context, obj catalog.ObjectType, objects []string, attrs []string) (res [][]catalog.Attr, errs []error, err error) {
	res = make([][]catalog.Attr, len(objects))
	errs, err = c.BulkAttrsEach(ctx, obj, objects, attrs, func(i int, a catalog.Attr) error {
		res[i] = append(res[i], a)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return res, errs, nil
}

// BulkAttrsEach is BulkAttrs without building the answer: for each object
// in turn it calls fn(i, a) with each of its attribute values (all, or
// those named in attrs) in name order. It returns one error per object. If
// fn returns an error, BulkAttrsEach stops and returns it as err. The
// answers come from one statement, so from one consistent view.
func (c *Catalog) BulkAttrsEach(ctx context.Context, obj catalog.ObjectType, objects []string, attrs []string, fn func(i int, a catalog.Attr) error) (errs []error, err error) {
	const op = "get attributes"
	fail := func(err error) ([]error, error) { return nil, err }
	if obj != catalog.LFN && obj != catalog.PFN {
		return fail(errorf(op, "", catalog.ErrInvalid, "unknown object type "+obj.String()))
	}
	if err := c.enter(ctx, op); err != nil {
		return fail(err)
	}
	errs = make([]error, len(objects))
	var idx []int32
	var names []string
	for i, object := range objects {
		if err := checkName(op, obj.String(), object); err != nil {
			errs[i] = err
			continue
		}
		idx = append(idx, int32(i))
		names = append(names, object)
	}
	if len(idx) == 0 {
		return errs, nil
	}
	col := "lfn"
	if obj == catalog.PFN {
		col = "pfn"
	}
	// One row per object: whether it exists, then one row per value (attr
	// not null), in (object index, attribute name) order.
	rows, err := c.pool.Query(ctx, `SELECT u.i, EXISTS (SELECT 1 FROM rls_map m WHERE m.`+col+` = u.name), NULL::text, NULL::bigint, NULL::double precision, NULL::text, NULL::timestamptz, NULL::integer
		FROM unnest($1::integer[], $2::text[]) AS u(i, name)
		UNION ALL
		SELECT u.i, true, a.attr, a.vi, a.vf, a.vs, a.vt, a.vn
		FROM unnest($1::integer[], $2::text[]) AS u(i, name) JOIN rls_attr a ON a.obj = $3 AND a.object = u.name
		WHERE cardinality($4::text[]) = 0 OR a.attr = ANY($4::text[])
		ORDER BY 1, 3 NULLS FIRST`, idx, names, int16(obj), append([]string{}, attrs...))
	if err != nil {
		return fail(unavailable(op, err))
	}
	defer rows.Close()
	found := make(map[string]bool)
	cur, exists := int32(-1), false
	end := func() {
		if cur < 0 || errs[cur] != nil {
			return
		}
		if !exists {
			errs[cur] = errorf(op, objects[cur], catalog.ErrNotFound, obj.String()+" does not exist")
			return
		}
		for _, a := range attrs {
			if !found[a] {
				errs[cur] = errorf(op, objects[cur], catalog.ErrNotFound, "no value of attribute "+strconv.Quote(a))
				return
			}
		}
	}
	for n := 0; rows.Next(); n++ {
		if err := canceled(ctx, op, n); err != nil {
			return fail(err)
		}
		var i int32
		var ex bool
		var attr *string
		var s sqlValue
		if err := rows.Scan(&i, &ex, &attr, &s.vi, &s.vf, &s.vs, &s.vt, &s.vn); err != nil {
			return fail(err)
		}
		if attr == nil { // the object's first row
			end()
			cur, exists = i, ex
			clear(found)
			continue
		}
		if !exists {
			continue
		}
		v, err := s.value()
		if err != nil {
			return fail(err)
		}
		found[*attr] = true
		if err := fn(int(i), catalog.Attr{Name: *attr, Value: v}); err != nil {
			return errs, err
		}
	}
	if err := rows.Err(); err != nil {
		return fail(unavailable(op, err))
	}
	end()
	return errs, nil
}

// stringKey is what the string values' index holds of a value: its first
// 128 characters (at most 512 bytes), so that an index entry with a
// 1024-byte attribute name and object name stays within PostgreSQL's
// limit (2704 bytes) for values of up to catalog.MaxStringValueLen bytes.
// Ordering by (stringKey, vs) is ordering by vs: two values whose keys
// differ differ within them, or the shorter key is a whole value that is a
// prefix of the other.
const stringKey = "left(vs, 128)"

// stringBound is the condition on stringKey implied by "vs op v", which
// lets the index bound a string search ("" for !=).
func stringBound(op catalog.SearchOp, v string) string {
	key := "left(" + v + "::text, 128)"
	switch op {
	case catalog.OpEQ:
		return " AND " + stringKey + " = " + key
	case catalog.OpLT, catalog.OpLE:
		return " AND " + stringKey + " <= " + key
	case catalog.OpGT, catalog.OpGE:
		return " AND " + stringKey + " >= " + key
	}
	return ""
}

// valueColumns returns the ordered columns of a type's values.
func valueColumns(t catalog.ValueType) string {
	switch t {
	case catalog.TypeInt:
		return "vi"
	case catalog.TypeFloat:
		return "vf"
	case catalog.TypeString:
		return "vs"
	}
	return "(vt, vn)"
}

// operand returns a search operand as SQL parameters and the placeholder
// that compares with valueColumns (a row for times).
func operand(v catalog.Value, args *[]any) string {
	s := toSQL(v)
	n := len(*args)
	switch v.Type {
	case catalog.TypeInt:
		*args = append(*args, *s.vi)
	case catalog.TypeFloat:
		*args = append(*args, *s.vf)
	case catalog.TypeString:
		*args = append(*args, *s.vs)
	case catalog.TypeTime:
		*args = append(*args, *s.vt, *s.vn)
		return "($" + strconv.Itoa(n+1) + "::timestamptz, $" + strconv.Itoa(n+2) + "::integer)"
	}
	return "$" + strconv.Itoa(n+1)
}

// SearchAttr returns the objects whose value of s.Attr satisfies the
// condition, ordered by (value, object name), and whether more lie past the
// returned page. The condition is one indexed range scan.
func (c *Catalog) SearchAttr(ctx context.Context, s catalog.Search) ([]catalog.Hit, bool, error) {
	const op = "search attribute"
	if err := checkAttrName(op, s.Object, s.Attr); err != nil {
		return nil, false, err
	}
	if s.Offset < 0 || s.Limit < 0 {
		return nil, false, errorf(op, s.Attr, catalog.ErrInvalid, "negative offset or limit")
	}
	if err := c.enter(ctx, op); err != nil {
		return nil, false, err
	}
	t, err := attrType(ctx, c.pool, op, s.Object, s.Attr)
	if err != nil {
		return nil, false, unavailable(op, err)
	}
	col := valueColumns(t)
	cond, args, err := searchCond(s, t, col)
	if err != nil {
		return nil, false, err
	}
	notNull := strings.TrimPrefix(strings.SplitN(col, ",", 2)[0], "(")
	order := strings.Trim(col, "()")
	if t == catalog.TypeString {
		order = stringKey + ", vs"
	}
	sql := `SELECT object, vi, vf, vs, vt, vn FROM rls_attr WHERE obj = $1 AND attr = $2 AND ` + notNull + ` IS NOT NULL AND ` + cond +
		` ORDER BY ` + order + `, object`
	if s.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(s.Limit+1)
	}
	if s.Offset > 0 {
		sql += " OFFSET " + strconv.Itoa(s.Offset)
	}
	rows, err := c.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, unavailable(op, err)
	}
	defer rows.Close()
	var hits []catalog.Hit
	size := 0
	for rows.Next() {
		var h catalog.Hit
		var sv sqlValue
		if err := rows.Scan(&h.Name, &sv.vi, &sv.vf, &sv.vs, &sv.vt, &sv.vn); err != nil {
			return nil, false, err
		}
		if h.Value, err = sv.value(); err != nil {
			return nil, false, err
		}
		if s.Limit > 0 && len(hits) == s.Limit {
			return hits, true, nil
		}
		if size += len(h.Name) + len(h.Value.Str) + 48; s.MaxBytes > 0 && size > s.MaxBytes && len(hits) > 0 {
			return hits, true, nil
		}
		hits = append(hits, h)
	}
	return hits, false, unavailable(op, rows.Err())
}

// likePattern translates a catalog wildcard ('*', '?', '\' escapes) into a
// LIKE pattern with the default escape '\'.
func likePattern(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch ch := glob[i]; ch {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '\\':
			i++
			if i < len(glob) {
				writeLiteral(&b, glob[i])
			}
		default:
			writeLiteral(&b, ch)
		}
	}
	return b.String()
}

func writeLiteral(b *strings.Builder, ch byte) {
	if ch == '%' || ch == '_' || ch == '\\' {
		b.WriteByte('\\')
	}
	b.WriteByte(ch)
}

// searchCond returns the SQL condition of a search on an attribute of type
// t (ordered by col) and its arguments, from $3 on.
func searchCond(s catalog.Search, t catalog.ValueType, col string) (cond string, args []any, err error) {
	const op = "search attribute"
	check := func(v catalog.Value) error {
		if v.Type != t {
			return errorf(op, s.Attr, catalog.ErrInvalid, "attribute is "+t.String()+", operand is "+v.Type.String())
		}
		return v.Check()
	}
	args = []any{int16(s.Object), s.Attr}
	switch s.Op {
	case catalog.OpEQ, catalog.OpNE, catalog.OpLT, catalog.OpLE, catalog.OpGT, catalog.OpGE:
		if err := check(s.Value); err != nil {
			return "", nil, err
		}
		sqlOp := map[catalog.SearchOp]string{catalog.OpEQ: "=", catalog.OpNE: "<>", catalog.OpLT: "<", catalog.OpLE: "<=", catalog.OpGT: ">", catalog.OpGE: ">="}[s.Op]
		v := operand(s.Value, &args)
		cond = col + " " + sqlOp + " " + v
		if t == catalog.TypeString {
			cond += stringBound(s.Op, v)
		}
	case catalog.OpBetween:
		if err := check(s.Value); err != nil {
			return "", nil, err
		}
		if err := check(s.Value2); err != nil {
			return "", nil, err
		}
		lo := operand(s.Value, &args)
		hi := operand(s.Value2, &args)
		cond = col + " >= " + lo + " AND " + col + " <= " + hi
		if t == catalog.TypeString {
			cond += stringBound(catalog.OpGE, lo) + stringBound(catalog.OpLE, hi)
		}
	case catalog.OpLike:
		if t != catalog.TypeString {
			return "", nil, errorf(op, s.Attr, catalog.ErrInvalid, "like needs a string attribute; this one is "+t.String())
		}
		p, err := catalog.CompilePattern(s.Value.Str)
		if err != nil {
			return "", nil, err
		}
		args = append(args, likePattern(s.Value.Str))
		cond = "vs LIKE $" + strconv.Itoa(len(args))
		if pre := p.Prefix(); pre != "" {
			// The literal prefix as a range, so that the index bounds the scan.
			args = append(args, pre)
			cond += stringBound(catalog.OpGE, "$"+strconv.Itoa(len(args)))
		}
	default:
		return "", nil, errorf(op, s.Attr, catalog.ErrInvalid, "unknown operator "+s.Op.String())
	}
	return cond, args, nil
}
