package catalog

import (
	"context"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// Attributes follow the Globus RLS model: an attribute name is defined, with
// a value type, for LFNs or for PFNs; existing LFNs or PFNs then carry at most
// one value of each defined attribute. Values are indexed by (attribute,
// value), so searches with =, <, <=, >, >= and between read only the
// matching range. Attribute writes are durable like mapping writes, but they
// are not recorded in the change feed.

// AttrDef defines an attribute.
type AttrDef struct {
	Name   string
	Object ObjectType
	Type   ValueType
}

// SetMode says what SetAttr requires of an existing value.
type SetMode uint8

const (
	Upsert     SetMode = iota // set the value whether or not one exists
	AddOnly                   // ErrExists if the object already has a value
	ModifyOnly                // ErrNotFound if the object has no value
)

// Attr is one attribute value of an object.
type Attr struct {
	Name  string
	Value Value
}

// AttrWrite is one item of BulkSetAttrs.
type AttrWrite struct {
	Object string // the LFN or PFN
	Attr   string
	Value  *Value // nil removes the value
}

// SearchOp is the comparison of an attribute search.
type SearchOp uint8

const (
	OpEQ      SearchOp = iota + 1 // value = Value
	OpNE                          // value != Value
	OpLT                          // value < Value
	OpLE                          // value <= Value
	OpGT                          // value > Value
	OpGE                          // value >= Value
	OpBetween                     // Value <= value <= Value2
	OpLike                        // string value matches the glob in Value ('*', '?', '\')
)

var searchOpNames = [...]string{OpEQ: "=", OpNE: "!=", OpLT: "<", OpLE: "<=", OpGT: ">", OpGE: ">=", OpBetween: "between", OpLike: "like"}

func (o SearchOp) String() string {
	if int(o) < len(searchOpNames) && searchOpNames[o] != "" {
		return searchOpNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Search is an attribute search. Results are ordered by (value, object name);
// Offset skips that many and Limit caps the answer (0: no cap). MaxBytes,
// when not 0, also ends the page before its size would pass MaxBytes,
// counting each hit as the bytes of its object name and string value plus
// 48, but never before its first hit: a short page then says there are
// more, as one cut by Limit does.
type Search struct {
	Object        ObjectType
	Attr          string
	Op            SearchOp
	Value, Value2 Value
	Offset, Limit int
	MaxBytes      int
}

// Hit is one result of an attribute search.
type Hit struct {
	Name  string // the LFN or PFN
	Value Value
}

func defKey(obj ObjectType, attr string) []byte {
	return appendName([]byte{tagAttrDef, byte(obj)}, attr)
}

func valueKey(obj ObjectType, object, attr string) []byte {
	k := appendName([]byte{tagAttrValue, byte(obj)}, object)
	return appendName(k, attr)
}

func indexBase(obj ObjectType, attr string) []byte {
	return appendName([]byte{tagAttrIndex, byte(obj)}, attr)
}

func indexKey(obj ObjectType, attr string, v Value, object string) []byte {
	return appendName(v.appendOrdered(indexBase(obj, attr)), object)
}

func checkAttrName(op string, obj ObjectType, attr string) error {
	if !obj.valid() {
		return errorf(op, attr, ErrInvalid, "unknown object type "+obj.String())
	}
	return checkName(op, "attribute name", attr)
}

// attrType returns the type of a defined attribute, or ErrNotFound.
func attrType(r pebble.Reader, op string, obj ObjectType, attr string) (ValueType, error) {
	v, closer, err := r.Get(defKey(obj, attr))
	if err == pebble.ErrNotFound {
		return 0, errorf(op, attr, ErrNotFound, "attribute not defined for "+obj.String()+"s")
	}
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 1 || !ValueType(v[0]).valid() {
		return 0, errBadKey
	}
	return ValueType(v[0]), nil
}

// DefineAttr defines an attribute. ErrExists if it is already defined for
// that object type.
func (c *Catalog) DefineAttr(ctx context.Context, d AttrDef) error {
	const op = "define attribute"
	if err := checkAttrName(op, d.Object, d.Name); err != nil {
		return err
	}
	if !d.Type.valid() {
		return errorf(op, d.Name, ErrInvalid, "unknown value type "+d.Type.String())
	}
	_, err := c.write(ctx, op, false, nil, func(w *writer) error {
		_, ok, err := w.get(defKey(d.Object, d.Name))
		if err != nil {
			return err
		}
		if ok {
			return errorf(op, d.Name, ErrExists, "attribute already defined for "+d.Object.String()+"s")
		}
		return w.b.Set(defKey(d.Object, d.Name), []byte{byte(d.Type)}, nil)
	})
	return err
}

// UndefineAttr removes an attribute definition. If objects still carry
// values of it, it fails with ErrPrecondition unless clearValues is set, in
// which case the values go too, in the same atomic write.
func (c *Catalog) UndefineAttr(ctx context.Context, attr string, obj ObjectType, clearValues bool) error {
	const op = "undefine attribute"
	if err := checkAttrName(op, obj, attr); err != nil {
		return err
	}
	_, err := c.write(ctx, op, false, nil, func(w *writer) error {
		t, err := attrType(w.r, op, obj, attr)
		if err != nil {
			return err
		}
		base := indexBase(obj, attr)
		n := 0
		err = scanPrefix(w.r, base, func(k, _ []byte) error {
			if n++; n%checkEvery == 0 {
				if err := canceled(ctx, op); err != nil {
					return err
				}
			}
			if !clearValues {
				return errorf(op, attr, ErrPrecondition, "objects still have values; clear them first")
			}
			_, rest, err := decodeOrdered(t, k[len(base):])
			if err != nil {
				return err
			}
			object, _, err := decodeName(rest)
			if err != nil {
				return err
			}
			if err := w.b.Delete(valueKey(obj, object, attr), nil); err != nil {
				return err
			}
			return w.b.Delete(append([]byte(nil), k...), nil)
		})
		if err != nil {
			return err
		}
		return w.b.Delete(defKey(obj, attr), nil)
	})
	return err
}

// AttrDefs lists the attribute definitions for obj (0: for both), ordered by
// object type and name.
func (c *Catalog) AttrDefs(ctx context.Context, obj ObjectType) ([]AttrDef, error) {
	if obj != 0 && !obj.valid() {
		return nil, errorf("list attributes", "", ErrInvalid, "unknown object type "+obj.String())
	}
	view, err := c.enterRead(ctx, "list attributes")
	if err != nil {
		return nil, err
	}
	defer c.leaveRead(view)
	return attrDefs(view.r, obj)
}

func attrDefs(r pebble.Reader, obj ObjectType) ([]AttrDef, error) {
	prefix := []byte{tagAttrDef}
	if obj != 0 {
		prefix = append(prefix, byte(obj))
	}
	var defs []AttrDef
	err := scanPrefix(r, prefix, func(k, v []byte) error {
		name, _, err := decodeName(k[2:])
		if err != nil || len(v) != 1 {
			return errBadKey
		}
		defs = append(defs, AttrDef{Name: name, Object: ObjectType(k[1]), Type: ValueType(v[0])})
		return nil
	})
	return defs, err
}

func (w *writer) setAttr(obj ObjectType, object, attr string, v *Value, mode SetMode) error {
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
	t, err := attrType(w.r, op, obj, attr)
	if err != nil {
		return err
	}
	if v != nil {
		if v.Type != t {
			return errorf(op, attr, ErrInvalid, "attribute is "+t.String()+", value is "+v.Type.String())
		}
		if err := v.Check(); err != nil {
			return err
		}
	}
	tag := byte(tagLFN)
	if obj == PFN {
		tag = tagPFN
	}
	if n, err := w.refs(tag, object); err != nil {
		return err
	} else if n == 0 {
		return errorf(op, object, ErrNotFound, obj.String()+" does not exist")
	}
	vk := valueKey(obj, object, attr)
	old, had, err := w.get(vk)
	if err != nil {
		return err
	}
	switch {
	case v == nil && !had:
		return errorf(op, object, ErrNotFound, "no value of attribute "+quote(attr))
	case v != nil && mode == AddOnly && had:
		return errorf(op, object, ErrExists, "attribute "+quote(attr)+" already has a value")
	case v != nil && mode == ModifyOnly && !had:
		return errorf(op, object, ErrNotFound, "no value of attribute "+quote(attr)+" to modify")
	}
	if had {
		if len(old) == 0 {
			return errBadKey
		}
		ov, _, err := decodeOrdered(ValueType(old[0]), old[1:])
		if err != nil {
			return err
		}
		if err := w.b.Delete(indexKey(obj, attr, ov, object), nil); err != nil {
			return err
		}
	}
	if v == nil {
		return w.b.Delete(vk, nil)
	}
	if err := w.b.Set(vk, v.appendOrdered([]byte{byte(t)}), nil); err != nil {
		return err
	}
	return w.b.Set(indexKey(obj, attr, *v, object), nil, nil)
}

// objectAttrs calls fn for each attribute value of an object, in attribute
// name order.
func objectAttrs(r pebble.Reader, obj ObjectType, object string, fn func(attr string, v Value) error) error {
	prefix := appendName([]byte{tagAttrValue, byte(obj)}, object)
	return scanPrefix(r, prefix, func(k, val []byte) error {
		attr, _, err := decodeName(k[len(prefix):])
		if err != nil || len(val) == 0 {
			return errBadKey
		}
		v, _, err := decodeOrdered(ValueType(val[0]), val[1:])
		if err != nil {
			return err
		}
		return fn(attr, v)
	})
}

// dropAttrs deletes every attribute value of an object that is going away.
func (w *writer) dropAttrs(obj ObjectType, object string) error {
	return objectAttrs(w.r, obj, object, func(attr string, v Value) error {
		if err := w.b.Delete(valueKey(obj, object, attr), nil); err != nil {
			return err
		}
		return w.b.Delete(indexKey(obj, attr, v, object), nil)
	})
}

// moveAttrs moves every attribute value of a renamed object to its new name.
func (w *writer) moveAttrs(obj ObjectType, old, new string) error {
	type av struct {
		attr string
		v    Value
	}
	var vals []av
	err := objectAttrs(w.r, obj, old, func(attr string, v Value) error {
		vals = append(vals, av{attr, v})
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range vals {
		for _, k := range [][]byte{valueKey(obj, old, a.attr), indexKey(obj, a.attr, a.v, old)} {
			if err := w.b.Delete(k, nil); err != nil {
				return err
			}
		}
		if err := w.b.Set(valueKey(obj, new, a.attr), a.v.appendOrdered([]byte{byte(a.v.Type)}), nil); err != nil {
			return err
		}
		if err := w.b.Set(indexKey(obj, a.attr, a.v, new), nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// SetAttr sets the value of attribute attr on an existing LFN or PFN
// (ErrNotFound if the object or the definition does not exist; ErrInvalid if
// the value's type is not the attribute's). mode says what it requires of an
// existing value.
func (c *Catalog) SetAttr(ctx context.Context, obj ObjectType, object, attr string, v Value, mode SetMode) error {
	_, err := c.write(ctx, "set attribute", false, nil, func(w *writer) error {
		return w.setAttr(obj, object, attr, &v, mode)
	})
	return err
}

// RemoveAttr removes the value of attribute attr from an object
// (ErrNotFound if it has none).
func (c *Catalog) RemoveAttr(ctx context.Context, obj ObjectType, object, attr string) error {
	_, err := c.write(ctx, "remove attribute", false, nil, func(w *writer) error {
		return w.setAttr(obj, object, attr, nil, Upsert)
	})
	return err
}

// BulkSetAttrs sets (or, for items with a nil Value, removes) many attribute
// values in order, as one atomic and durable batch. errs has one entry per
// item; err is non-nil only if the whole call failed and nothing was written.
func (c *Catalog) BulkSetAttrs(ctx context.Context, obj ObjectType, mode SetMode, ws []AttrWrite) (errs []error, err error) {
	const op = "bulk set attributes"
	errs = make([]error, len(ws))
	_, err = c.write(ctx, op, true, nil, func(w *writer) error {
		for i, a := range ws {
			if i%checkEvery == checkEvery-1 {
				if err := canceled(ctx, op); err != nil {
					return err
				}
			}
			if err := w.setAttr(obj, a.Object, a.Attr, a.Value, mode); err != nil {
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

// Attrs returns the attribute values of an LFN or PFN in name order: all of
// them, or those named in attrs (ErrNotFound naming the first that has no
// value). ErrNotFound if the object does not exist.
func (c *Catalog) Attrs(ctx context.Context, obj ObjectType, object string, attrs ...string) ([]Attr, error) {
	res, errs, err := c.BulkAttrs(ctx, obj, []string{object}, attrs)
	if err != nil {
		return nil, err
	}
	return res[0], errs[0]
}

// BulkAttrs answers Attrs for many objects, with one result and one error
// per object. err is the failure of the whole call (see Store).
func (c *Catalog) BulkAttrs(ctx context.Context, obj ObjectType, objects []string, attrs []string) (res [][]Attr, errs []error, err error) {
	res = make([][]Attr, len(objects))
	errs, err = c.BulkAttrsEach(ctx, obj, objects, attrs, func(i int, a Attr) error {
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
// those named in attrs) in name order, so that a caller can bound what it
// keeps. It returns one error per object (ErrNotFound naming the first of
// attrs that has no value, after fn saw those that have). If fn returns an
// error, BulkAttrsEach stops and returns it as err. A failure of the whole
// call (an unknown obj, the catalog closed, ctx ended) is err, with errs
// nil.
func (c *Catalog) BulkAttrsEach(ctx context.Context, obj ObjectType, objects []string, attrs []string, fn func(i int, a Attr) error) (errs []error, err error) {
	const op = "get attributes"
	if !obj.valid() {
		return nil, errorf(op, "", ErrInvalid, "unknown object type "+obj.String())
	}
	view, err := c.enterRead(ctx, op)
	if err != nil {
		return nil, err
	}
	defer c.leaveRead(view)
	errs = make([]error, len(objects))
	want := make(map[string]bool, len(attrs))
	for _, a := range attrs {
		want[a] = true
	}
	tag := byte(tagLFN)
	if obj == PFN {
		tag = tagPFN
	}
	found := make(map[string]bool, len(attrs))
	var stop error // from fn
	for i, object := range objects {
		if i%checkEvery == checkEvery-1 {
			if err := canceled(ctx, op); err != nil {
				return nil, err
			}
		}
		if err := checkName(op, obj.String(), object); err != nil {
			errs[i] = err
			continue
		}
		_, closer, err := view.r.Get(nameKey(tag, object))
		if err == pebble.ErrNotFound {
			errs[i] = errorf(op, object, ErrNotFound, obj.String()+" does not exist")
			continue
		} else if err != nil {
			return nil, err
		}
		closer.Close()
		clear(found)
		err = objectAttrs(view.r, obj, object, func(attr string, v Value) error {
			if len(want) == 0 || want[attr] {
				found[attr] = true
				if stop = fn(i, Attr{Name: attr, Value: v}); stop != nil {
					return stop
				}
			}
			return nil
		})
		if stop != nil {
			return errs, stop
		}
		if err != nil {
			return nil, err
		}
		if len(want) > 0 && len(found) < len(want) {
			for _, a := range attrs {
				if !found[a] {
					errs[i] = errorf(op, object, ErrNotFound, "no value of attribute "+quote(a))
					break
				}
			}
		}
	}
	return errs, nil
}

// SearchAttr returns the objects whose value of s.Attr satisfies the
// condition, ordered by (value, object name), and whether more lie past the
// returned page.
func (c *Catalog) SearchAttr(ctx context.Context, s Search) ([]Hit, bool, error) {
	const op = "search attribute"
	if err := checkAttrName(op, s.Object, s.Attr); err != nil {
		return nil, false, err
	}
	if s.Offset < 0 || s.Limit < 0 {
		return nil, false, errorf(op, s.Attr, ErrInvalid, "negative offset or limit")
	}
	view, err := c.enterRead(ctx, op)
	if err != nil {
		return nil, false, err
	}
	defer c.leaveRead(view)
	t, err := attrType(view.r, op, s.Object, s.Attr)
	if err != nil {
		return nil, false, err
	}
	base := indexBase(s.Object, s.Attr)
	end := prefixEnd(base)
	checkValue := func(v Value) error {
		if v.Type != t {
			return errorf(op, s.Attr, ErrInvalid, "attribute is "+t.String()+", operand is "+v.Type.String())
		}
		return v.Check()
	}
	var (
		lower, upper = base, end
		keep         func(Value) bool
		skip         []byte
	)
	switch s.Op {
	case OpEQ, OpNE, OpLT, OpLE, OpGT, OpGE:
		if err := checkValue(s.Value); err != nil {
			return nil, false, err
		}
		ov := s.Value.appendOrdered(append([]byte(nil), base...))
		switch s.Op {
		case OpEQ:
			lower, upper = ov, prefixEnd(ov)
		case OpNE:
			skip = ov[len(base):] // the encoded operand: rows whose value is exactly it
		case OpLT:
			upper = ov
		case OpLE:
			upper = prefixEnd(ov)
		case OpGT:
			lower = prefixEnd(ov)
		case OpGE:
			lower = ov
		}
	case OpBetween:
		if err := checkValue(s.Value); err != nil {
			return nil, false, err
		}
		if err := checkValue(s.Value2); err != nil {
			return nil, false, err
		}
		lower = s.Value.appendOrdered(append([]byte(nil), base...))
		upper = prefixEnd(s.Value2.appendOrdered(append([]byte(nil), base...)))
		if string(lower) >= string(upper) {
			return nil, false, nil
		}
	case OpLike:
		if t != TypeString {
			return nil, false, errorf(op, s.Attr, ErrInvalid, "like needs a string attribute; this one is "+t.String())
		}
		g, err := compileGlob(s.Value.Str)
		if err != nil {
			return nil, false, err
		}
		lower = appendNamePrefix(append([]byte(nil), base...), g.prefix)
		upper = prefixEnd(lower)
		keep = func(v Value) bool { return g.match(v.Str) }
	default:
		return nil, false, errorf(op, s.Attr, ErrInvalid, "unknown operator "+s.Op.String())
	}
	it, err := view.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	var hits []Hit
	offset, size, n := s.Offset, 0, 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%checkEvery == 0 {
			if err := canceled(ctx, op); err != nil {
				return nil, false, err
			}
		}
		enc := it.Key()[len(base):]
		v, rest, err := decodeOrdered(t, enc)
		if err != nil {
			return nil, false, err
		}
		if skip != nil && string(enc[:len(enc)-len(rest)]) == string(skip) {
			continue
		}
		if keep != nil && !keep(v) {
			continue
		}
		if offset > 0 {
			offset--
			continue
		}
		if s.Limit > 0 && len(hits) == s.Limit {
			return hits, true, nil
		}
		name, _, err := decodeName(rest)
		if err != nil {
			return nil, false, err
		}
		if size += len(name) + len(v.Str) + 48; s.MaxBytes > 0 && size > s.MaxBytes && len(hits) > 0 {
			return hits, true, nil
		}
		hits = append(hits, Hit{Name: name, Value: v})
	}
	return hits, false, it.Error()
}
