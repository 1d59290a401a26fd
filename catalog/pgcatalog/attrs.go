package pgcatalog

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/solar-archive/rls/catalog"
)

// Attribute values live in rls_attr, typed: vi bigint, vf double precision,
// vs text, or vt timestamptz with vn, the nanoseconds below vt's
// microsecond (PostgreSQL keeps microseconds; the catalog keeps
// nanoseconds). Attribute writes are durable like mapping writes and are
// not in the change feed.

// querier is what reads need of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func checkAttrName(op string, obj catalog.ObjectType, attr string) error {
	if obj != catalog.LFN && obj != catalog.PFN {
		return errorf(op, attr, catalog.ErrInvalid, "unknown object type "+obj.String())
	}
	return checkName(op, "attribute name", attr)
}

func validType(t catalog.ValueType) bool { return t >= catalog.TypeInt && t <= catalog.TypeTime }

// sqlValue is a value as rls_attr's columns hold it; exactly the field of
// its type is non-nil (vn with vt).
type sqlValue struct {
	vi *int64
	vf *float64
	vs *string
	vt *time.Time
	vn *int32
}

func toSQL(v catalog.Value) sqlValue {
	var s sqlValue
	switch v.Type {
	case catalog.TypeInt:
		s.vi = &v.Int
	case catalog.TypeFloat:
		f := v.Float
		if f == 0 {
			f = 0 // -0 and +0 are one value
		}
		s.vf = &f
	case catalog.TypeString:
		s.vs = &v.Str
	case catalog.TypeTime:
		ns := v.Time.UnixNano()
		n := int32(((ns % 1000) + 1000) % 1000)
		t := time.Unix(0, ns-int64(n)).UTC()
		s.vt, s.vn = &t, &n
	}
	return s
}

func (s sqlValue) value() (catalog.Value, error) {
	switch {
	case s.vi != nil:
		return catalog.IntValue(*s.vi), nil
	case s.vf != nil:
		return catalog.FloatValue(*s.vf), nil
	case s.vs != nil:
		return catalog.StringValue(*s.vs), nil
	case s.vt != nil && s.vn != nil:
		return catalog.TimeValue(time.Unix(0, s.vt.UnixNano()+int64(*s.vn)).UTC()), nil
	}
	return catalog.Value{}, errors.New("pgcatalog: attribute value without a typed column")
}

// attrType returns the type of a defined attribute, or ErrNotFound.
func attrType(ctx context.Context, q querier, op string, obj catalog.ObjectType, attr string) (catalog.ValueType, error) {
	var t int16
	err := q.QueryRow(ctx, `SELECT type FROM rls_attr_def WHERE obj = $1 AND name = $2`, int16(obj), attr).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errorf(op, attr, catalog.ErrNotFound, "attribute not defined for "+obj.String()+"s")
	}
	return catalog.ValueType(t), err
}

// DefineAttr defines an attribute (ErrExists if it is already defined for
// that object type).
func (c *Catalog) DefineAttr(ctx context.Context, d catalog.AttrDef) error {
	const op = "define attribute"
	if err := checkAttrName(op, d.Object, d.Name); err != nil {
		return err
	}
	if !validType(d.Type) {
		return errorf(op, d.Name, catalog.ErrInvalid, "unknown value type "+d.Type.String())
	}
	_, err := c.write(ctx, op, func(ctx context.Context, w *wtx) error {
		tag, err := w.tx.Exec(ctx, `INSERT INTO rls_attr_def (obj, name, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			int16(d.Object), d.Name, int16(d.Type))
		if err == nil && tag.RowsAffected() == 0 {
			return errorf(op, d.Name, catalog.ErrExists, "attribute already defined for "+d.Object.String()+"s")
		}
		return err
	})
	return err
}

// UndefineAttr removes an attribute definition. If objects still carry
// values of it, it fails with ErrPrecondition unless clearValues is set, in
// which case the values go too, in the same transaction.
func (c *Catalog) UndefineAttr(ctx context.Context, attr string, obj catalog.ObjectType, clearValues bool) error {
	const op = "undefine attribute"
	if err := checkAttrName(op, obj, attr); err != nil {
		return err
	}
	_, err := c.write(ctx, op, func(ctx context.Context, w *wtx) error {
		if _, err := attrType(ctx, w.tx, op, obj, attr); err != nil {
			return err
		}
		if !clearValues {
			var any bool
			if err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rls_attr WHERE obj = $1 AND attr = $2)`, int16(obj), attr).Scan(&any); err != nil {
				return err
			}
			if any {
				return errorf(op, attr, catalog.ErrPrecondition, "objects still have values; clear them first")
			}
		}
		if _, err := w.tx.Exec(ctx, `DELETE FROM rls_attr WHERE obj = $1 AND attr = $2`, int16(obj), attr); err != nil {
			return err
		}
		_, err := w.tx.Exec(ctx, `DELETE FROM rls_attr_def WHERE obj = $1 AND name = $2`, int16(obj), attr)
		return err
	})
	return err
}

// AttrDefs lists the attribute definitions for obj (0: for both), ordered by
// object type and name.
func (c *Catalog) AttrDefs(ctx context.Context, obj catalog.ObjectType) ([]catalog.AttrDef, error) {
	if obj != 0 && obj != catalog.LFN && obj != catalog.PFN {
		return nil, errorf("list attributes", "", catalog.ErrInvalid, "unknown object type "+obj.String())
	}
	if err := c.enter(ctx, "list attributes"); err != nil {
		return nil, err
	}
	rows, err := c.pool.Query(ctx, `SELECT obj, name, type FROM rls_attr_def WHERE $1 = 0 OR obj = $1 ORDER BY obj, name`, int16(obj))
	if err != nil {
		return nil, unavailable("list attributes", err)
	}
	defs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (catalog.AttrDef, error) {
		var o, t int16
		var d catalog.AttrDef
		err := r.Scan(&o, &d.Name, &t)
		d.Object, d.Type = catalog.ObjectType(o), catalog.ValueType(t)
		return d, err
	})
	return defs, unavailable("list attributes", err)
}

func (w *wtx) objectExists(ctx context.Context, obj catalog.ObjectType, object string) (bool, error) {
	col := "lfn"
	if obj == catalog.PFN {
		col = "pfn"
	}
	var ok bool
	err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rls_map WHERE `+col+` = $1)`, object).Scan(&ok)
	return ok, err
}

func (w *wtx) setAttr(ctx context.Context, obj catalog.ObjectType, object, attr string, v *catalog.Value, mode catalog.SetMode) error {
	op := "set attribute"
	if v == nil {
		op = "remove attribute"
	}
	if err := checkAttrName(op, obj, attr); err != nil {
		return err
	}
	if err := checkName(op, obj.String(), object); err != nil {
		return err
	}
	t, err := attrType(ctx, w.tx, op, obj, attr)
	if err != nil {
		return err
	}
	if v != nil {
		if v.Type != t {
			return errorf(op, attr, catalog.ErrInvalid, "attribute is "+t.String()+", value is "+v.Type.String())
		}
		if err := v.Check(); err != nil {
			return err
		}
	}
	if ok, err := w.objectExists(ctx, obj, object); err != nil {
		return err
	} else if !ok {
		return errorf(op, object, catalog.ErrNotFound, obj.String()+" does not exist")
	}
	var had bool
	err = w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rls_attr WHERE obj = $1 AND object = $2 AND attr = $3)`,
		int16(obj), object, attr).Scan(&had)
	if err != nil {
		return err
	}
	switch {
	case v == nil && !had:
		return errorf(op, object, catalog.ErrNotFound, "no value of attribute "+strconv.Quote(attr))
	case v != nil && mode == catalog.AddOnly && had:
		return errorf(op, object, catalog.ErrExists, "attribute "+strconv.Quote(attr)+" already has a value")
	case v != nil && mode == catalog.ModifyOnly && !had:
		return errorf(op, object, catalog.ErrNotFound, "no value of attribute "+strconv.Quote(attr)+" to modify")
	}
	if v == nil {
		_, err := w.tx.Exec(ctx, `DELETE FROM rls_attr WHERE obj = $1 AND object = $2 AND attr = $3`, int16(obj), object, attr)
		return err
	}
	return w.putAttr(ctx, obj, object, attr, *v)
}

// putAttr sets a value, replacing any.
func (w *wtx) putAttr(ctx context.Context, obj catalog.ObjectType, object, attr string, v catalog.Value) error {
	s := toSQL(v)
	_, err := w.tx.Exec(ctx, `INSERT INTO rls_attr (obj, object, attr, vi, vf, vs, vt, vn) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (obj, object, attr) DO UPDATE SET vi = EXCLUDED.vi, vf = EXCLUDED.vf, vs = EXCLUDED.vs, vt = EXCLUDED.vt, vn = EXCLUDED.vn`,
		int16(obj), object, attr, s.vi, s.vf, s.vs, s.vt, s.vn)
	return err
}

// SetAttr sets the value of attribute attr on an existing LFN or PFN
// (ErrNotFound if the object or the definition does not exist; ErrInvalid if
// the value's type is not the attribute's). mode says what it requires of an
// existing value.
func (c *Catalog) SetAttr(ctx context.Context, obj catalog.ObjectType, object, attr string, v catalog.Value, mode catalog.SetMode) error {
	_, err := c.write(ctx, "set attribute", func(ctx context.Context, w *wtx) error {
		return w.setAttr(ctx, obj, object, attr, &v, mode)
	})
	return err
}

// RemoveAttr removes the value of attribute attr from an object
// (ErrNotFound if it has none).
func (c *Catalog) RemoveAttr(ctx context.Context, obj catalog.ObjectType, object, attr string) error {
	_, err := c.write(ctx, "remove attribute", func(ctx context.Context, w *wtx) error {
		return w.setAttr(ctx, obj, object, attr, nil, catalog.Upsert)
	})
	return err
}

// BulkSetAttrs sets (or, for items with a nil Value, removes) many attribute
// values in order, in one transaction. errs has one entry per item; err is
// non-nil only if the whole call failed and nothing was written.
func (c *Catalog) BulkSetAttrs(ctx context.Context, obj catalog.ObjectType, mode catalog.SetMode, ws []catalog.AttrWrite) (errs []error, err error) {
	_, err = c.write(ctx, "bulk set attributes", func(ctx context.Context, w *wtx) error {
		errs = make([]error, len(ws))
		for i, a := range ws {
			if err := w.setAttr(ctx, obj, a.Object, a.Attr, a.Value, mode); err != nil {
				if !itemError(err) {
					return err
				}
				errs[i] = err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}
