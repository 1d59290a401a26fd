package pgcatalog

import (
	"context"
	"slices"

	"github.com/solar-archive/rls/catalog"
)

func mappingItem(lfn, pfn string) string { return lfn + " -> " + pfn }

func errorf(op, item string, err error, reason string) error {
	return &catalog.Error{Op: op, Item: item, Err: err, Reason: reason}
}

// checkName validates an LFN, PFN or attribute name for operation op, with
// the Pebble catalog's wording.
func checkName(op, kind, name string) error {
	if err := catalog.ValidateName(kind, name); err != nil {
		reason := err.Error()
		if e, ok := err.(*catalog.Error); ok {
			reason = e.Reason
		}
		return errorf(op, name, catalog.ErrInvalid, kind+": "+reason)
	}
	return nil
}

func checkPair(op, lfn, pfn string) error {
	if err := checkName(op, "lfn", lfn); err != nil {
		return err
	}
	return checkName(op, "pfn", pfn)
}

// Create makes a new LFN with its first PFN. It fails with ErrExists if the
// LFN exists. It returns the feed position of the write, which is durable
// when Create returns.
func (c *Catalog) Create(ctx context.Context, lfn, pfn string) (uint64, error) {
	return c.one(ctx, catalog.OpCreate, lfn, pfn)
}

// Add maps an existing LFN to another PFN (ErrNotFound if the LFN does not
// exist, ErrExists if the mapping does).
func (c *Catalog) Add(ctx context.Context, lfn, pfn string) (uint64, error) {
	return c.one(ctx, catalog.OpAdd, lfn, pfn)
}

// Delete removes one mapping (ErrNotFound if there is none); an LFN or PFN
// left without mappings disappears with its attribute values, and the feed
// keeps a tombstone.
func (c *Catalog) Delete(ctx context.Context, lfn, pfn string) (uint64, error) {
	return c.one(ctx, catalog.OpDelete, lfn, pfn)
}

func (c *Catalog) one(ctx context.Context, op catalog.Op, lfn, pfn string) (uint64, error) {
	if err := checkPair(op.String(), lfn, pfn); err != nil {
		return 0, err
	}
	return c.group(ctx, op, catalog.Mapping{LFN: lfn, PFN: pfn})
}

// BulkWrite applies op to every mapping, in order, as one atomic and durable
// transaction: later items see the effects of earlier ones. errs has one
// entry per item (nil for success); items that fail change nothing. err is
// non-nil only if the whole call failed, in which case nothing was written.
// seq is the feed position after the call. See bulk.go for how.
func (c *Catalog) BulkWrite(ctx context.Context, op catalog.Op, ms []catalog.Mapping) (errs []error, seq uint64, err error) {
	switch op {
	case catalog.OpCreate, catalog.OpAdd, catalog.OpDelete:
	default:
		return nil, 0, errorf("bulk write", "", catalog.ErrInvalid, "unknown operation "+op.String())
	}
	var valid []int
	checked := make([]error, len(ms))
	for i, m := range ms {
		if checked[i] = checkPair(op.String(), m.LFN, m.PFN); checked[i] == nil {
			valid = append(valid, i)
		}
	}
	errs = slices.Clone(checked)
	if len(valid) == 0 {
		seq, err = c.write(ctx, "bulk "+op.String(), func(context.Context, *wtx) error { return nil })
	} else {
		ops := make([]catalog.Op, len(valid))
		for k := range ops {
			ops[k] = op
		}
		mw := (&mappingWrite{ops: ops, ms: ms, idx: valid, errs: errs}).prepare()
		seq, err = c.writeReading(ctx, "bulk "+op.String(), mw.queueReads, mw.apply)
	}
	if err != nil {
		return nil, 0, err
	}
	return errs, seq, nil
}

// RenameLFN gives LFN old the name new, keeping its mappings and attribute
// values (ErrNotFound if old does not exist, ErrExists if new does).
func (c *Catalog) RenameLFN(ctx context.Context, old, new string) (uint64, error) {
	return c.write(ctx, "rename lfn", func(ctx context.Context, w *wtx) error { return w.rename(ctx, catalog.LFN, old, new) })
}

// RenamePFN gives PFN old the name new, keeping its mappings and attribute
// values (ErrNotFound if old does not exist, ErrExists if new does).
func (c *Catalog) RenamePFN(ctx context.Context, old, new string) (uint64, error) {
	return c.write(ctx, "rename pfn", func(ctx context.Context, w *wtx) error { return w.rename(ctx, catalog.PFN, old, new) })
}

// BulkRename renames many LFNs or PFNs (obj) in order, in one transaction,
// with per-item errors as BulkWrite.
func (c *Catalog) BulkRename(ctx context.Context, obj catalog.ObjectType, rs []catalog.Rename) (errs []error, seq uint64, err error) {
	if obj != catalog.LFN && obj != catalog.PFN {
		return nil, 0, errorf("bulk rename", "", catalog.ErrInvalid, "unknown object type "+obj.String())
	}
	seq, err = c.write(ctx, "bulk rename "+obj.String(), func(ctx context.Context, w *wtx) error {
		errs = make([]error, len(rs))
		for i, r := range rs {
			if err := w.rename(ctx, obj, r.Old, r.New); err != nil {
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

// itemError reports whether err concerns one item (a *catalog.Error) rather
// than the database.
func itemError(err error) bool {
	_, ok := err.(*catalog.Error)
	return ok
}

func (w *wtx) rename(ctx context.Context, obj catalog.ObjectType, old, new string) error {
	op := "rename " + obj.String()
	if err := checkName(op, obj.String(), old); err != nil {
		return err
	}
	if err := checkName(op, obj.String(), new); err != nil {
		return err
	}
	col := "lfn"
	if obj == catalog.PFN {
		col = "pfn"
	}
	var hasOld, hasNew bool
	err := w.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rls_map WHERE `+col+` = $1), EXISTS (SELECT 1 FROM rls_map WHERE `+col+` = $2)`,
		old, new).Scan(&hasOld, &hasNew)
	if err != nil {
		return err
	}
	if !hasOld {
		return errorf(op, old, catalog.ErrNotFound, obj.String()+" does not exist")
	}
	if hasNew || old == new {
		return errorf(op, new, catalog.ErrExists, "new name exists")
	}
	if _, err := w.tx.Exec(ctx, `UPDATE rls_map SET `+col+` = $2 WHERE `+col+` = $1`, old, new); err != nil {
		return err
	}
	if _, err := w.tx.Exec(ctx, `UPDATE rls_attr SET object = $2 WHERE obj = $3 AND object = $1`, old, new, int16(obj)); err != nil {
		return err
	}
	if obj == catalog.LFN {
		w.addChange(catalog.Change{Kind: catalog.ChangeRenameLFN, LFN: new, Old: old, LFNAdded: true, LFNRemoved: true, Time: w.now})
	} else {
		w.addChange(catalog.Change{Kind: catalog.ChangeRenamePFN, PFN: new, Old: old, Time: w.now})
	}
	return nil
}
