package pgcatalog

import (
	"context"
	"errors"
	"slices"

	"github.com/solar-archive/rls/catalog"
)

// RegisterUnits records, for each unit, the mapping LFN → PFN and the
// unit's LFN attribute values (set whether or not a value exists), all
// units in one transaction. An attribute not yet defined for LFNs is
// defined in the same transaction with its value's type. Registering a
// unit again is not an error: an existing mapping is kept, an LFN mapped
// only elsewhere gets this PFN added, and the values are overwritten.
//
// Each unit is checked before anything of it is written, so errs[i] != nil
// means unit i changed nothing; err is non-nil only if the whole call
// failed, in which case nothing was written. seq is the feed position
// after the call.
func (c *Catalog) RegisterUnits(ctx context.Context, units []catalog.Unit) (errs []error, seq uint64, err error) {
	const op = "register"
	seq, err = c.write(ctx, op, func(ctx context.Context, w *wtx) error {
		errs = make([]error, len(units))
		for i, u := range units {
			if err := w.register(ctx, op, u); err != nil {
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

func (w *wtx) register(ctx context.Context, op string, u catalog.Unit) error {
	if err := checkPair(op, u.LFN, u.PFN); err != nil {
		return err
	}
	var undefined []catalog.AttrDef
	for _, a := range u.Attrs {
		if err := checkAttrName(op, catalog.LFN, a.Name); err != nil {
			return err
		}
		if err := a.Value.Check(); err != nil {
			return err
		}
		t, err := attrType(ctx, w.tx, op, catalog.LFN, a.Name)
		if i := slices.IndexFunc(undefined, func(d catalog.AttrDef) bool { return d.Name == a.Name }); i >= 0 {
			// Defined by an earlier value of this unit.
			t, err = undefined[i].Type, nil
		}
		switch {
		case errors.Is(err, catalog.ErrNotFound):
			undefined = append(undefined, catalog.AttrDef{Name: a.Name, Object: catalog.LFN, Type: a.Value.Type})
		case err != nil:
			return err
		case t != a.Value.Type:
			return errorf(op, a.Name, catalog.ErrInvalid, "attribute is "+t.String()+", value is "+a.Value.Type.String())
		}
	}
	for _, d := range undefined {
		if _, err := w.tx.Exec(ctx, `INSERT INTO rls_attr_def (obj, name, type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			int16(d.Object), d.Name, int16(d.Type)); err != nil {
			return err
		}
	}
	var lfnExists, mapped, pfnExists bool
	err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rls_map WHERE lfn = $1),
		EXISTS (SELECT 1 FROM rls_map WHERE lfn = $1 AND pfn = $2), EXISTS (SELECT 1 FROM rls_map WHERE pfn = $2)`,
		u.LFN, u.PFN).Scan(&lfnExists, &mapped, &pfnExists)
	if err != nil {
		return err
	}
	if !mapped {
		if _, err := w.tx.Exec(ctx, `INSERT INTO rls_map (lfn, pfn) VALUES ($1, $2)`, u.LFN, u.PFN); err != nil {
			return err
		}
		w.mappings++
		if !pfnExists {
			w.pfns++
		}
		kind := catalog.ChangeAdd
		if !lfnExists {
			kind = catalog.ChangeCreate
			w.lfns++
		}
		w.addChange(catalog.Change{Kind: kind, LFN: u.LFN, PFN: u.PFN, LFNAdded: !lfnExists, Time: w.now})
	}
	for _, a := range u.Attrs {
		if err := w.putAttr(ctx, catalog.LFN, u.LFN, a.Name, a.Value); err != nil {
			return err
		}
	}
	return nil
}
