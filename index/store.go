package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The snapshot on disk, per site (names end in 0x00, which no site name
// holds, so one site's keys never run into another's):
//
//	v                         the snapshot's format (see snapshot.go)
//	m <site> 00               the site's header (encodeSite)
//	d <site> 00 <be32 chunk>  its last full state, in chunks of about 1 MiB:
//	                          names as uvarint length + bytes (list), or
//	                          filter words, little-endian (bloom)
//	x <site> 00 <be64 gen>    each delta since, by generation: uvarint count
//	                          and names added, then removed
//
// A full update replaces the site's keys in one batch; a delta adds its
// record and rewrites the header in one batch. Either is synced before the
// sender hears of it (unless Options.NoSync).
const (
	tagMeta  = 'm'
	tagData  = 'd'
	tagDelta = 'x'

	chunkBytes = 1 << 20
)

func siteKey(tag byte, name string) []byte {
	k := make([]byte, 0, len(name)+10)
	k = append(k, tag)
	k = append(k, name...)
	return append(k, 0)
}

func siteRange(tag byte, name string) (lo, hi []byte) {
	lo = siteKey(tag, name)
	hi = append(siteKey(tag, name)[:len(lo)-1], 1)
	return lo, hi
}

func (x *Index) syncOpt() *pebble.WriteOptions {
	if x.opts.NoSync {
		return pebble.NoSync
	}
	return pebble.Sync
}

func (s *site) meta() []byte { return encodeSite(s) }

func (x *Index) persistFull(s *site, words []uint64) error {
	b := x.db.NewBatch()
	defer b.Close()
	for _, tag := range []byte{tagData, tagDelta} {
		lo, hi := siteRange(tag, s.name)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	chunk := uint32(0)
	put := func(v []byte) error {
		k := binary.BigEndian.AppendUint32(siteKey(tagData, s.name), chunk)
		chunk++
		return b.Set(k, v, nil)
	}
	var buf []byte
	if s.mode == ModeList {
		for i := range s.list.len() {
			name := s.list.bytes(i)
			buf = binary.AppendUvarint(buf, uint64(len(name)))
			buf = append(buf, name...)
			if len(buf) >= chunkBytes {
				if err := put(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	} else {
		for _, w := range words {
			buf = binary.LittleEndian.AppendUint64(buf, w)
			if len(buf) >= chunkBytes {
				if err := put(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if err := put(buf); err != nil {
			return err
		}
	}
	if err := b.Set(siteKey(tagMeta, s.name), s.meta(), nil); err != nil {
		return err
	}
	if err := x.guard.Apply(func() error { return b.Commit(x.syncOpt()) }); err != nil {
		return fmt.Errorf("index: saving site %q: %w", s.name, err)
	}
	return nil
}

func (x *Index) persistDelta(s *site, u *incoming, now time.Time) error {
	var v []byte
	for _, names := range [][]string{u.added, u.removed} {
		v = binary.AppendUvarint(v, uint64(len(names)))
		for _, n := range names {
			v = binary.AppendUvarint(v, uint64(len(n)))
			v = append(v, n...)
		}
	}
	// The header as it will be once the delta applies.
	next := *s
	next.gen, next.endpoint, next.updated, next.via = u.h.Generation, u.h.Endpoint, u.h.Updated, u.h.Via
	next.received, next.expires = now, now.Add(u.h.Validity)
	next.deltas++
	b := x.db.NewBatch()
	defer b.Close()
	if err := b.Set(binary.BigEndian.AppendUint64(siteKey(tagDelta, s.name), u.h.Generation), v, nil); err != nil {
		return err
	}
	if err := b.Set(siteKey(tagMeta, s.name), next.meta(), nil); err != nil {
		return err
	}
	if err := x.guard.Apply(func() error { return b.Commit(x.syncOpt()) }); err != nil {
		return fmt.Errorf("index: saving a delta of site %q: %w", s.name, err)
	}
	return nil
}

func (x *Index) deleteSite(name string) error {
	b := x.db.NewBatch()
	defer b.Close()
	for _, tag := range []byte{tagData, tagDelta} {
		lo, hi := siteRange(tag, name)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	if err := b.Delete(siteKey(tagMeta, name), nil); err != nil {
		return err
	}
	// A site that comes back expired is dropped again: no sync needed.
	return x.guard.Apply(func() error { return b.Commit(pebble.NoSync) })
}

// load reads every site whose state has not expired, and forgets the
// others. A snapshot of an older format is migrated first; one of a newer
// format than this package reads is refused.
func (x *Index) load() error {
	if err := x.migrate(); err != nil {
		return err
	}
	now := x.now()
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagMeta}, UpperBound: []byte{tagMeta + 1}})
	if err != nil {
		return err
	}
	var sites []*site
	for ok := it.First(); ok; ok = it.Next() {
		s, err := decodeSite(it.Value())
		if err != nil {
			it.Close()
			return fmt.Errorf("site record %q: %w", it.Key(), err)
		}
		sites = append(sites, s)
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, s := range sites {
		if s.expired(now) {
			if err := x.deleteSite(s.name); err != nil {
				return err
			}
			continue
		}
		if err := x.loadSite(s); err != nil {
			return fmt.Errorf("site %q: %w", s.name, err)
		}
	}
	if n := len(x.sites); n > 0 {
		x.log.Info("index: loaded snapshot", "sites", n)
	}
	return nil
}

// migrate brings the snapshot to formatCurrent: it rewrites the site
// records of a format 0 snapshot in this package's encoding, and records
// the format, in one synced batch. A crash before the batch commits leaves
// format 0, which the next Open migrates again.
func (x *Index) migrate() error {
	v, closer, err := x.db.Get(keyFormat)
	switch {
	case err == nil:
		f, n := binary.Uvarint(v)
		closer.Close()
		if n <= 0 {
			return fmt.Errorf("snapshot format record %x is corrupt", v)
		}
		if f > formatCurrent {
			return fmt.Errorf("the snapshot is of format %d; this version of rls reads formats up to %d (was it written by a newer rlsd?)", f, formatCurrent)
		}
		return nil // formatCurrent: the only format that is recorded
	case errors.Is(err, pebble.ErrNotFound):
	default:
		return err
	}
	b := x.db.NewBatch()
	defer b.Close()
	n := 0
	err = x.scanKV([]byte{tagMeta}, []byte{tagMeta + 1}, func(k, v []byte) error {
		s, err := decodeLegacySite(v)
		if err != nil {
			return fmt.Errorf("site record %q (format %d): %w", k, formatLegacy, err)
		}
		n++
		return b.Set(k, encodeSite(s), nil)
	})
	if err != nil {
		return err
	}
	if err := b.Set(keyFormat, binary.AppendUvarint(nil, formatCurrent), nil); err != nil {
		return err
	}
	if err := x.guard.Apply(func() error { return b.Commit(pebble.Sync) }); err != nil {
		return fmt.Errorf("recording the snapshot format: %w", err)
	}
	if n > 0 {
		x.log.Info("index: migrated the snapshot", "from_format", formatLegacy, "to_format", formatCurrent, "sites", n)
	}
	return nil
}

// loadSite loads the names or filter and the overlay of s, whose header
// was decoded, and publishes it.
func (x *Index) loadSite(s *site) error {
	mode := s.mode
	var (
		names = newNameSetBuilder()
		words []uint64
	)
	lo, hi := siteRange(tagData, s.name)
	err := x.scan(lo, hi, func(v []byte) error {
		if mode == ModeBloom {
			if len(v)%8 != 0 {
				return fmt.Errorf("filter chunk of %d bytes", len(v))
			}
			for i := 0; i < len(v); i += 8 {
				words = append(words, binary.LittleEndian.Uint64(v[i:]))
			}
			return nil
		}
		for len(v) > 0 {
			n, w := binary.Uvarint(v)
			if w <= 0 || uint64(len(v)-w) < n {
				return fmt.Errorf("corrupt list chunk")
			}
			if err := names.add(string(v[w : w+int(n)])); err != nil {
				return err
			}
			v = v[w+int(n):]
		}
		return nil
	})
	if err != nil {
		return err
	}
	if mode == ModeList {
		s.list = names.build()
	} else {
		if err := s.bloom.Check(); err != nil {
			return err
		}
		if uint64(len(words)) != s.bloom.Words() {
			return fmt.Errorf("filter of %d words, want %d", len(words), s.bloom.Words())
		}
	}
	lo, hi = siteRange(tagDelta, s.name)
	err = x.scan(lo, hi, func(v []byte) error {
		var lists [2][]string
		for i := range lists {
			n, w := binary.Uvarint(v)
			if w <= 0 || n > uint64(len(v)) {
				return fmt.Errorf("corrupt delta record")
			}
			v = v[w:]
			for range n {
				l, w := binary.Uvarint(v)
				if w <= 0 || uint64(len(v)-w) < l {
					return fmt.Errorf("corrupt delta record")
				}
				lists[i] = append(lists[i], string(v[w:w+int(l)]))
				v = v[w+int(l):]
			}
		}
		s.applyDelta(lists[0], lists[1], nil, nil)
		return nil
	})
	if err != nil {
		return err
	}
	if mode == ModeBloom {
		s.group, s.slot = x.reserveFill(geometry{m: s.bloom.M, k: s.bloom.K}, words)
	} else {
		x.prefilter(s)
	}
	x.publish(s, nil)
	return nil
}

func (x *Index) scan(lo, hi []byte, fn func(v []byte) error) error {
	return x.scanKV(lo, hi, func(_, v []byte) error { return fn(v) })
}

// scanKV calls fn with each key and value in [lo, hi); they are valid only
// during the call.
func (x *Index) scanKV(lo, hi []byte, fn func(k, v []byte) error) error {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}
