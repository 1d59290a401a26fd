package catalog

import (
	"context"
	"errors"
	"slices"
)

// Unit is one item of RegisterUnits: a mapping and attribute values of its
// LFN.
type Unit struct {
	LFN, PFN string
	Attrs    []Attr
}

// RegisterUnits records, for each unit, the mapping LFN → PFN and the
// unit's LFN attribute values (set whether or not a value exists), all
// units in one atomic and durable batch. An attribute not yet defined for
// LFNs is defined in the same batch with its value's type. Registering a
// unit again is not an error: an existing mapping is kept, an LFN mapped
// only elsewhere gets this PFN added, and the values are overwritten.
//
// Each unit is checked (names, values, attribute types) before anything of
// it is written, so errs[i] != nil means unit i changed nothing; err is
// non-nil only if the whole call failed, in which case nothing was written.
// seq is the change-feed sequence number after the call: the next
// soft-state delta carries the new LFNs.
func (c *Catalog) RegisterUnits(ctx context.Context, units []Unit) (errs []error, seq uint64, err error) {
	const op = "register"
	errs = make([]error, len(units))
	seq, err = c.write(ctx, op, true, nil, func(w *writer) error {
		for i, u := range units {
			if i%checkEvery == checkEvery-1 {
				if err := canceled(ctx, op); err != nil {
					return err
				}
			}
			if err := w.register(op, u); err != nil {
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

// register writes one unit of RegisterUnits; it writes nothing unless
// every check passed.
func (w *writer) register(op string, u Unit) error {
	if err := w.checkPair(op, u.LFN, u.PFN); err != nil {
		return err
	}
	var undefined []AttrDef
	for _, a := range u.Attrs {
		if err := checkAttrName(op, LFN, a.Name); err != nil {
			return err
		}
		if err := a.Value.Check(); err != nil {
			return err
		}
		t, err := attrType(w.r, op, LFN, a.Name)
		if i := slices.IndexFunc(undefined, func(d AttrDef) bool { return d.Name == a.Name }); i >= 0 {
			// Defined by an earlier value of this unit.
			t, err = undefined[i].Type, nil
		}
		switch {
		case errors.Is(err, ErrNotFound):
			if !a.Value.Type.valid() {
				return errorf(op, a.Name, ErrInvalid, "unknown value type "+a.Value.Type.String())
			}
			undefined = append(undefined, AttrDef{Name: a.Name, Object: LFN, Type: a.Value.Type})
		case err != nil:
			return err
		case t != a.Value.Type:
			return errorf(op, a.Name, ErrInvalid, "attribute is "+t.String()+", value is "+a.Value.Type.String())
		}
	}
	for _, d := range undefined {
		if err := w.b.Set(defKey(d.Object, d.Name), []byte{byte(d.Type)}, nil); err != nil {
			return err
		}
	}
	n, err := w.refs(tagLFN, u.LFN)
	if err != nil {
		return err
	}
	mapped := false
	if n > 0 {
		if mapped, err = w.mapped(u.LFN, u.PFN); err != nil {
			return err
		}
	}
	if !mapped {
		kind := ChangeCreate
		if n > 0 {
			kind = ChangeAdd
		}
		if err := w.link(kind, u.LFN, u.PFN, n); err != nil {
			return err
		}
	}
	for _, a := range u.Attrs {
		v := a.Value
		if err := w.setAttr(LFN, u.LFN, a.Name, &v, Upsert); err != nil {
			return err
		}
	}
	return nil
}
