package catalog

import (
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ChangeKind is the kind of a change-feed record.
type ChangeKind uint8

const (
	ChangeCreate    ChangeKind = iota + 1 // a new LFN with its first PFN
	ChangeAdd                             // another PFN for an existing LFN
	ChangeDelete                          // a mapping removed (a tombstone)
	ChangeRenameLFN                       // LFN Old renamed to LFN
	ChangeRenamePFN                       // PFN Old renamed to PFN
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeCreate:
		return "create"
	case ChangeAdd:
		return "add"
	case ChangeDelete:
		return "delete"
	case ChangeRenameLFN:
		return "rename-lfn"
	case ChangeRenamePFN:
		return "rename-pfn"
	}
	return "change(" + strconv.Itoa(int(k)) + ")"
}

// Change is one change-feed record.
type Change struct {
	Seq  uint64
	Kind ChangeKind
	// LFN and PFN name the mapping (create, add, delete); for a rename, the
	// new name is in LFN or PFN and the old one in Old.
	LFN, PFN string
	Old      string
	// LFNAdded says the LFN did not exist before this change (a create, or
	// the new name of a rename); LFNRemoved that it does not exist after it
	// (a delete of its last PFN, or the old name of a rename). Soft-state
	// deltas, which deal in LFNs, need only these.
	LFNAdded, LFNRemoved bool
	Time                 time.Time
}

const (
	flagLFNAdded   = 1 << 0
	flagLFNRemoved = 1 << 1
)

func (w *writer) feed(ch Change) error {
	w.next.seq++
	b := make([]byte, 0, 16+len(ch.LFN)+len(ch.PFN)+len(ch.Old))
	var flags byte
	if ch.LFNAdded {
		flags |= flagLFNAdded
	}
	if ch.LFNRemoved {
		flags |= flagLFNRemoved
	}
	b = append(b, byte(ch.Kind), flags)
	b = binary.AppendVarint(b, w.now)
	for _, s := range []string{ch.LFN, ch.PFN, ch.Old} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return w.b.Set(feedKey(w.next.seq), b, nil)
}

var errBadChange = errors.New("catalog: corrupt change record")

func decodeChange(seq uint64, b []byte) (Change, error) {
	if len(b) < 2 {
		return Change{}, errBadChange
	}
	ch := Change{Seq: seq, Kind: ChangeKind(b[0])}
	ch.LFNAdded = b[1]&flagLFNAdded != 0
	ch.LFNRemoved = b[1]&flagLFNRemoved != 0
	b = b[2:]
	ts, n := binary.Varint(b)
	if n <= 0 {
		return Change{}, errBadChange
	}
	ch.Time = time.Unix(0, ts).UTC()
	b = b[n:]
	for _, p := range []*string{&ch.LFN, &ch.PFN, &ch.Old} {
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return Change{}, errBadChange
		}
		*p = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	return ch, nil
}

// Changes returns up to limit change records with sequence numbers from
// `from` on, in order. If from is below FirstSeq (the records were pruned),
// it fails with ErrNotFound: the reader has missed changes and must start
// over from a full state (ForEachLFN). limit <= 0 means 10,000.
func (c *Catalog) Changes(ctx context.Context, from uint64, limit int) ([]Change, error) {
	view, err := c.enterRead(ctx, "changes")
	if err != nil {
		return nil, err
	}
	defer c.leaveRead(view)
	if limit <= 0 {
		limit = 10000
	}
	if from == 0 {
		from = 1
	}
	if first := c.firstSeq.Load(); from < first {
		return nil, errorf("changes", strconv.FormatUint(from, 10), ErrNotFound,
			"the feed was pruned; the oldest record kept is "+strconv.FormatUint(first, 10))
	}
	it, err := view.r.NewIter(&pebble.IterOptions{LowerBound: feedKey(from), UpperBound: []byte{tagFeed + 1}})
	if err != nil {
		return nil, err
	}
	var out []Change
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		var err error
		if len(out)%checkEvery == checkEvery-1 {
			err = canceled(ctx, "changes")
		}
		var ch Change
		if err == nil {
			ch, err = decodeChange(binary.BigEndian.Uint64(it.Key()[1:]), it.Value())
		}
		if err != nil {
			_ = it.Close()
			return nil, err
		}
		out = append(out, ch)
	}
	return out, it.Close()
}

// WaitChanges blocks until the feed holds a record with sequence number
// `from` or later, the context ends, or the catalog closes.
func (c *Catalog) WaitChanges(ctx context.Context, from uint64) error {
	for {
		ch := c.Notify()
		if err := c.enter(ctx, "wait changes"); err != nil {
			return err
		}
		c.leave()
		if c.stats.seq.Load() >= from {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// PruneChanges removes the feed records with sequence numbers below before
// (a horizon past which readers must resynchronize from a full state). It
// never removes records past LastSeq. Pruning is explicit: the catalog
// never prunes by itself.
func (c *Catalog) PruneChanges(ctx context.Context, before uint64) error {
	if err := c.enter(ctx, "prune changes"); err != nil {
		return err
	}
	defer c.leave()
	c.mu.Lock()
	defer c.mu.Unlock()
	if before > c.state.seq+1 {
		before = c.state.seq + 1
	}
	if before <= c.firstSeq.Load() {
		return nil
	}
	if err := c.guard.Apply(func() error { return c.db.DeleteRange(feedKey(0), feedKey(before), pebble.Sync) }); err != nil {
		return err
	}
	c.firstSeq.Store(before)
	return nil
}

// ForEachLFN calls fn for every LFN, in byte order, from one consistent
// snapshot, and returns the change-feed sequence number that snapshot
// reflects: a reader that follows with Changes(seq+1, …) misses nothing and
// sees nothing twice. Writers are not blocked while fn runs. If fn returns an
// error, the scan stops and ForEachLFN returns it.
func (c *Catalog) ForEachLFN(ctx context.Context, fn func(lfn string) error) (uint64, error) {
	if err := c.enter(ctx, "for each lfn"); err != nil {
		return 0, err
	}
	defer c.leave()
	c.mu.Lock()
	snap := c.db.NewSnapshot()
	seq := c.state.seq
	c.mu.Unlock()
	defer snap.Close()
	n := 0
	err := scanPrefix(snap, []byte{tagLFN}, func(k, _ []byte) error {
		if n++; n%checkEvery == 0 {
			if err := canceled(ctx, "for each lfn"); err != nil {
				return err
			}
		}
		lfn, rest, err := decodeName(k[1:])
		if err != nil || len(rest) != 0 {
			return errBadKey
		}
		return fn(lfn)
	})
	return seq, err
}
