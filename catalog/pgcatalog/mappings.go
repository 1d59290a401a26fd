package pgcatalog

import (
	"context"

	"github.com/solar-archive/rls/catalog"
)

// The set-based statements of BulkWrite. Each reads its items from the
// source %s (the staging table, or arrays $3, $4, $5 of ords, LFNs and
// PFNs), checks them against the mappings as they were before the
// statement (all parts of one statement see one snapshot), applies the
// first occurrence of each that passes, writes its feed records from
// position $1+1 in item order with time $2, and returns one row per failed
// item (ord, reason, 0, 0, 0) and a summary row (-1, records, Δmappings,
// ΔLFNs, ΔPFNs).
const (
	stageSource = `SELECT ord, lfn, pfn FROM rls_stage`
	arraySource = `SELECT o AS ord, l AS lfn, p AS pfn FROM unnest($3::integer[], $4::text[], $5::text[]) AS u(o, l, p)`

	createSQL = `WITH s AS (%s),
ok AS (
	SELECT DISTINCT ON (s.lfn) s.ord, s.lfn, s.pfn FROM s
	WHERE NOT EXISTS (SELECT 1 FROM rls_map m WHERE m.lfn = s.lfn)
	ORDER BY s.lfn, s.ord),
ins AS (INSERT INTO rls_map (lfn, pfn) SELECT lfn, pfn FROM ok ORDER BY lfn, pfn),
fd AS (INSERT INTO rls_feed (seq, kind, lfn, pfn, lfn_added, at)
	SELECT $1 + row_number() OVER (ORDER BY ord), 1, lfn, pfn, true, $2 FROM ok)
SELECT -1, n, n, n, (SELECT count(DISTINCT ok.pfn) FROM ok WHERE NOT EXISTS (SELECT 1 FROM rls_map m WHERE m.pfn = ok.pfn))
FROM (SELECT count(*) AS n FROM ok) AS c
UNION ALL
SELECT s.ord, 0, 0, 0, 0 FROM s WHERE NOT EXISTS (SELECT 1 FROM ok WHERE ok.ord = s.ord)`

	addSQL = `WITH s AS (%s),
c AS (SELECT DISTINCT ON (lfn, pfn) ord, lfn, pfn FROM s ORDER BY lfn, pfn, ord),
ok AS (SELECT c.ord, c.lfn, c.pfn FROM c
	WHERE EXISTS (SELECT 1 FROM rls_map m WHERE m.lfn = c.lfn)
	AND NOT EXISTS (SELECT 1 FROM rls_map m WHERE m.lfn = c.lfn AND m.pfn = c.pfn)),
ins AS (INSERT INTO rls_map (lfn, pfn) SELECT lfn, pfn FROM ok ORDER BY lfn, pfn),
fd AS (INSERT INTO rls_feed (seq, kind, lfn, pfn, at)
	SELECT $1 + row_number() OVER (ORDER BY ord), 2, lfn, pfn, $2 FROM ok)
SELECT -1, n, n, 0, (SELECT count(DISTINCT ok.pfn) FROM ok WHERE NOT EXISTS (SELECT 1 FROM rls_map m WHERE m.pfn = ok.pfn))
FROM (SELECT count(*) AS n FROM ok) AS c
UNION ALL
SELECT s.ord, CASE WHEN EXISTS (SELECT 1 FROM rls_map m WHERE m.lfn = s.lfn) THEN 1 ELSE 0 END, 0, 0, 0
FROM s WHERE NOT EXISTS (SELECT 1 FROM ok WHERE ok.ord = s.ord)`

	// deleteSQL also drops the attribute values of the LFNs and PFNs that
	// lose their last mapping; the last item (by ord) that removes an
	// LFN's last mapping carries lfn_removed.
	deleteSQL = `WITH s AS (%s),
c AS (SELECT DISTINCT ON (lfn, pfn) ord, lfn, pfn FROM s ORDER BY lfn, pfn, ord),
ok AS (SELECT c.ord, c.lfn, c.pfn FROM c WHERE EXISTS (SELECT 1 FROM rls_map m WHERE m.lfn = c.lfn AND m.pfn = c.pfn)),
del AS (DELETE FROM rls_map m USING ok WHERE m.lfn = ok.lfn AND m.pfn = ok.pfn),
gl AS (SELECT lfn, count(*) AS n, max(ord) AS last FROM ok GROUP BY lfn),
rl AS (SELECT gl.lfn, gl.last FROM gl WHERE (SELECT count(*) FROM rls_map m WHERE m.lfn = gl.lfn) = gl.n),
gp AS (SELECT pfn, count(*) AS n FROM ok GROUP BY pfn),
rp AS (SELECT gp.pfn FROM gp WHERE (SELECT count(*) FROM rls_map m WHERE m.pfn = gp.pfn) = gp.n),
dal AS (DELETE FROM rls_attr a USING rl WHERE a.obj = 1 AND a.object = rl.lfn),
dap AS (DELETE FROM rls_attr a USING rp WHERE a.obj = 2 AND a.object = rp.pfn),
fd AS (INSERT INTO rls_feed (seq, kind, lfn, pfn, lfn_removed, at)
	SELECT $1 + row_number() OVER (ORDER BY ok.ord), 3, ok.lfn, ok.pfn, rl.last IS NOT NULL, $2
	FROM ok LEFT JOIN rl ON rl.last = ok.ord)
SELECT -1, n, -n, -(SELECT count(*) FROM rl), -(SELECT count(*) FROM rp) FROM (SELECT count(*) AS n FROM ok) AS c
UNION ALL
SELECT s.ord, 0, 0, 0, 0 FROM s WHERE NOT EXISTS (SELECT 1 FROM ok WHERE ok.ord = s.ord)`
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
	errs, seq, err := c.BulkWrite(ctx, op, []catalog.Mapping{{LFN: lfn, PFN: pfn}})
	if err != nil {
		return 0, err
	}
	if errs[0] != nil {
		return 0, errs[0]
	}
	return seq, nil
}

// BulkWrite applies op to every mapping, in order, as one atomic and durable
// transaction: later items see the effects of earlier ones. errs has one
// entry per item (nil for success); items that fail change nothing. err is
// non-nil only if the whole call failed, in which case nothing was written.
// seq is the feed position after the call. Many items go through COPY into a
// staging table and one set-based statement.
func (c *Catalog) BulkWrite(ctx context.Context, op catalog.Op, ms []catalog.Mapping) (errs []error, seq uint64, err error) {
	var stmt string
	switch op {
	case catalog.OpCreate:
		stmt = createSQL
	case catalog.OpAdd:
		stmt = addSQL
	case catalog.OpDelete:
		stmt = deleteSQL
	default:
		return nil, 0, errorf("bulk write", "", catalog.ErrInvalid, "unknown operation "+op.String())
	}
	errs = make([]error, len(ms))
	ords := make([]int32, 0, len(ms))
	lfns := make([]string, 0, len(ms))
	pfns := make([]string, 0, len(ms))
	for i, m := range ms {
		if err := checkPair(op.String(), m.LFN, m.PFN); err != nil {
			errs[i] = err
			continue
		}
		ords = append(ords, int32(i))
		lfns = append(lfns, m.LFN)
		pfns = append(pfns, m.PFN)
	}
	var failed map[int32]int64
	seq, err = c.write(ctx, "bulk "+op.String(), func(ctx context.Context, w *wtx) error {
		if len(ords) == 0 {
			return nil
		}
		var err error
		failed, err = w.setBased(ctx, stmt, ords, lfns, pfns)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	for ord, reason := range failed {
		m := ms[ord]
		switch {
		case op == catalog.OpCreate:
			errs[ord] = errorf("create", m.LFN, catalog.ErrExists, "lfn exists")
		case op == catalog.OpAdd && reason == 0:
			errs[ord] = errorf("add", m.LFN, catalog.ErrNotFound, "lfn does not exist")
		case op == catalog.OpAdd:
			errs[ord] = errorf("add", mappingItem(m.LFN, m.PFN), catalog.ErrExists, "mapping exists")
		default:
			errs[ord] = errorf("delete", mappingItem(m.LFN, m.PFN), catalog.ErrNotFound, "no such mapping")
		}
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
