package index

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
)

// The snapshot on disk, per site (names end in 0x00, which no site name
// holds, so one site's keys never run into another's):
//
//	m <site> 00               the site's header: an rlsv1.SiteInfo
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

func (s *site) meta() []byte {
	info := &rlsv1.SiteInfo{
		Site: s.name, Endpoint: s.endpoint, Mode: ModeProto(s.mode), Generation: s.gen, FullGeneration: s.base,
		Entries: s.entries, Deltas: s.deltas, Via: s.via, Incarnation: s.incarnation,
		Updated:  timestamppb.New(s.updated),
		Received: timestamppb.New(s.received),
		Expires:  timestamppb.New(s.expires),
	}
	if s.mode == ModeBloom {
		info.Bloom = &rlsv1.BloomHeader{Version: s.bloom.Version, M: s.bloom.M, K: s.bloom.K, Entries: s.bloom.Entries}
	}
	b, err := proto.Marshal(info)
	if err != nil {
		panic(err) // a SiteInfo always marshals
	}
	return b
}

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
// others.
func (x *Index) load() error {
	now := x.now()
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagMeta}, UpperBound: []byte{tagMeta + 1}})
	if err != nil {
		return err
	}
	var infos []*rlsv1.SiteInfo
	for ok := it.First(); ok; ok = it.Next() {
		info := new(rlsv1.SiteInfo)
		if err := proto.Unmarshal(it.Value(), info); err != nil {
			it.Close()
			return fmt.Errorf("site record %q: %w", it.Key(), err)
		}
		infos = append(infos, info)
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, info := range infos {
		if !now.Before(info.GetExpires().AsTime()) {
			if err := x.deleteSite(info.GetSite()); err != nil {
				return err
			}
			continue
		}
		if err := x.loadSite(info); err != nil {
			return fmt.Errorf("site %q: %w", info.GetSite(), err)
		}
	}
	if n := len(x.sites); n > 0 {
		x.log.Info("index: loaded snapshot", "sites", n)
	}
	return nil
}

func (x *Index) loadSite(info *rlsv1.SiteInfo) error {
	mode, ok := modeFromProto(info.GetMode())
	if !ok || mode == ModeDelta {
		return fmt.Errorf("bad mode %v", info.GetMode())
	}
	s := &site{
		name: info.GetSite(), endpoint: info.GetEndpoint(), mode: mode, gen: info.GetGeneration(), base: info.GetFullGeneration(),
		updated: info.GetUpdated().AsTime(), received: info.GetReceived().AsTime(),
		expires: info.GetExpires().AsTime(), via: info.GetVia(),
		entries: info.GetEntries(), deltas: info.GetDeltas(),
		incarnation: info.GetIncarnation(), // none in snapshots that predate it
	}
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
		b := info.GetBloom()
		s.bloom = BloomParams{Version: b.GetVersion(), M: b.GetM(), K: b.GetK(), Entries: b.GetEntries()}
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
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}
