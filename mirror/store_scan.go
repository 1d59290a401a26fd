package mirror

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// scan calls fn for each key with prefix, from start (if not nil) on, in
// order, until fn returns false. Key and value are valid only in fn.
func (s *Store) scan(prefix, start []byte, fn func(k, v []byte) bool) error {
	if err := s.guard.Err(); err != nil {
		return err
	}
	end := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: end})
	if err != nil {
		return err
	}
	ok := it.First()
	if start != nil {
		ok = it.SeekGE(start)
	}
	for ; ok; ok = it.Next() {
		if !fn(it.Key(), it.Value()) {
			break
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// scanJoin walks the index keys with prefix (each ending in a big-endian
// sunum) from start (if not nil) on, in order, and calls fn with each
// key's sunum and the encoded record of that sunum (nil if there is none;
// valid only in fn), until fn returns false. The records are read by one
// iterator that only moves forward, from the same snapshot as the index:
// one pass over each, holding nothing but the current pair, however many
// records there are.
func (s *Store) scanJoin(prefix, start []byte, fn func(sunum uint64, rec []byte) bool) error {
	if err := s.guard.Err(); err != nil {
		return err
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	idx, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	recs, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{tagRecord}, UpperBound: []byte{tagRecord + 1}})
	if err != nil {
		return errors.Join(err, idx.Close())
	}
	ok := idx.First()
	if start != nil {
		ok = idx.SeekGE(start)
	}
	key := recordKey(0)
	for ; ok; ok = idx.Next() {
		k := idx.Key()
		if len(k) < len(prefix)+8 {
			continue
		}
		n := binary.BigEndian.Uint64(k[len(k)-8:])
		binary.BigEndian.PutUint64(key[1:], n)
		var v []byte
		if recs.SeekGE(key) && bytes.Equal(recs.Key(), key) {
			v = recs.Value()
		}
		if !fn(n, v) {
			break
		}
	}
	return errors.Join(idx.Error(), recs.Error(), idx.Close(), recs.Close())
}

// due returns up to limit sunums of lane l due at now, in due order,
// skipping those in skip, and the due time of the first one not yet due
// (zero if none).
func (s *Store) due(l Lane, now time.Time, limit int, skip func(uint64) bool) ([]uint64, time.Time, error) {
	var out []uint64
	var next time.Time
	prefix := []byte{tagDue, byte(l)}
	nowNs := uint64(max(now.UnixNano(), 0))
	err := s.scan(prefix, nil, func(k, _ []byte) bool {
		if len(k) != 18 {
			return true
		}
		d, n := binary.BigEndian.Uint64(k[2:10]), binary.BigEndian.Uint64(k[10:])
		if d > nowNs {
			next = time.Unix(0, int64(d))
			return false
		}
		if skip != nil && skip(n) {
			return true
		}
		out = append(out, n)
		return len(out) < limit
	})
	return out, next, err
}

// oldestDue returns the earliest due time in lane l (zero if none).
func (s *Store) oldestDue(l Lane) (time.Time, error) {
	var t time.Time
	err := s.scan([]byte{tagDue, byte(l)}, nil, func(k, _ []byte) bool {
		if len(k) == 18 {
			if d := binary.BigEndian.Uint64(k[2:10]); d > 0 {
				t = time.Unix(0, int64(d))
			}
		}
		return false
	})
	return t, err
}

// byState calls fn for each sunum in state st greater than after, in
// order, until fn returns false.
func (s *Store) byState(st State, after uint64, fn func(sunum uint64) bool) error {
	var start []byte
	if after > 0 {
		start = stateKey(st, after+1)
		if after == ^uint64(0) {
			return nil
		}
	}
	return s.scan([]byte{tagState, byte(st)}, start, func(k, _ []byte) bool {
		return len(k) != 10 || fn(binary.BigEndian.Uint64(k[2:]))
	})
}

// pendingHooks returns up to limit sunums greater than after whose
// on-done hook has yet to run, in order.
func (s *Store) pendingHooks(after uint64, limit int) ([]uint64, error) {
	var out []uint64
	var start []byte
	if after > 0 {
		if after == ^uint64(0) {
			return nil, nil
		}
		start = hookKey(after + 1)
	}
	err := s.scan([]byte{tagHook}, start, func(k, _ []byte) bool {
		if len(k) == 9 {
			out = append(out, binary.BigEndian.Uint64(k[1:]))
		}
		return len(out) < limit
	})
	return out, err
}

// series returns the distinct series names of the store, sorted.
func (s *Store) series() ([]string, error) {
	var out []string
	var last []byte
	err := s.scan([]byte{tagSeries}, nil, func(k, _ []byte) bool {
		name := k[1 : len(k)-9]
		if !bytes.Equal(name, last) {
			last = bytes.Clone(name)
			out = append(out, string(name))
		}
		return true
	})
	slices.Sort(out)
	return out, err
}
