package index

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// Ack is what the index holds for a site after an update.
type Ack struct {
	Generation uint64
	Entries    uint64
	Expires    time.Time
}

// incoming is one decoded, checked update, ready to apply.
type incoming struct {
	h              Header
	list           *nameSet // list mode
	words          []uint64 // bloom mode
	added, removed []string // delta mode
}

// Receive reads one update from recv, until recv returns io.EOF, and applies
// it. recv's other errors are returned as they are. A malformed update fails
// with an error wrapping ErrInvalid that names what was wrong, and changes
// nothing; a delta that does not follow the site's state fails with
// ErrOutOfSequence. A header's zero Updated stands for the time of receipt.
func (x *Index) Receive(recv func() (Message, error)) (Ack, error) {
	return x.ReceiveChecked(recv, nil)
}

// ReceiveChecked is Receive with a check of the update's header before
// its body is read: when allow returns an error (a sender that may not
// speak for the header's site), ReceiveChecked returns it and changes
// nothing. A header that is invalid fails as in Receive, before allow is
// called. allow may be nil.
func (x *Index) ReceiveChecked(recv func() (Message, error), allow func(Header) error) (Ack, error) {
	if err := x.guard.Err(); err != nil {
		return Ack{}, err
	}
	u, err := decodeUpdate(recv, x.now(), x.opts.MaxBloomBits, allow)
	if err != nil {
		return Ack{}, err
	}
	return x.apply(u)
}

// checkReplay refuses an update older than the state held of the same
// site and incarnation. A full update is compared with the last full
// update held, not with the deltas since: a forwarding index re-sends a
// site's full state under its overlay of deltas, and the same full
// generation again is an idempotent refresh.
func checkReplay(old *site, h Header) error {
	if old == nil || !bytes.Equal(old.incarnation, h.Incarnation) {
		return nil
	}
	held := old.base
	if h.Mode == ModeDelta {
		held = old.gen
	}
	if h.Generation < held {
		return fmt.Errorf("%w: the index holds generation %d of site %q (catalog incarnation %x); this %v update is of generation %d",
			ErrReplay, held, h.Site, h.Incarnation, h.Mode, h.Generation)
	}
	return nil
}

// decodeUpdate reads and checks one update, calling allow (if not nil)
// with its header once the header is checked. Memory grows with what the
// sender actually sends, never with what its header claims, and a filter
// never grows past maxBloomBits.
func decodeUpdate(recv func() (Message, error), now time.Time, maxBloomBits uint64, allow func(Header) error) (*incoming, error) {
	first, err := recv()
	if err == io.EOF {
		return nil, invalidf("update: empty stream (an update starts with its header)")
	}
	if err != nil {
		return nil, err
	}
	if first.Part != PartHeader {
		return nil, invalidf("update: the first message is not a header")
	}
	h := first.Header
	if h.Updated.IsZero() {
		h.Updated = now
	}
	if err := h.Check(); err != nil {
		return nil, invalidf("%v", err)
	}
	if allow != nil {
		if err := allow(h); err != nil {
			return nil, err
		}
	}
	if h.Mode == ModeBloom && h.Bloom.M > maxBloomBits {
		return nil, invalidf("header.bloom.m %d is more than the %d bits this index accepts for one filter (index-max-bloom-bits)",
			h.Bloom.M, maxBloomBits)
	}
	d := bodyDecoder{u: &incoming{h: h}, nwords: h.Bloom.Words()}
	switch h.Mode {
	case ModeList:
		d.names = newNameSetBuilder()
	case ModeDelta:
		d.seenDel = make(map[string]bool)
	}
	for msg := 1; ; msg++ {
		m, err := recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := d.add(msg, &m); err != nil {
			return nil, err
		}
	}
	return d.finish()
}

// bodyDecoder checks and collects the chunks of one update's body.
type bodyDecoder struct {
	u       *incoming
	names   *nameSetBuilder // list mode
	count   uint64          // names so far (list, delta)
	nwords  uint64          // the filter's words (bloom mode)
	seenDel map[string]bool // delta mode: the LFNs so far
}

// add checks and takes message msg (1 for the first after the header).
func (d *bodyDecoder) add(msg int, m *Message) error {
	h := &d.u.h
	switch m.Part {
	case PartHeader:
		return invalidf("update: message %d is a second header", msg)
	case PartLFNs:
		if h.Mode != ModeList {
			return invalidf("update: message %d is an LFN chunk in a %v update", msg, h.Mode)
		}
		if err := checkChunk("lfns", d.count, len(m.LFNs), h.Entries); err != nil {
			return err
		}
		for i, lfn := range m.LFNs {
			if err := catalog.ValidateName("lfn", lfn); err != nil {
				return invalidf("lfns[%d]: %v", d.count+uint64(i), err)
			}
			if err := d.names.add(lfn); err != nil {
				return invalidf("lfns: %v", err)
			}
		}
		d.count += uint64(len(m.LFNs))
	case PartBloom:
		if h.Mode != ModeBloom {
			return invalidf("update: message %d is a Bloom chunk in a %v update", msg, h.Mode)
		}
		if uint64(len(d.u.words))+uint64(len(m.Words)) > d.nwords {
			return invalidf("bloom.words: more than the %d words that bloom.m = %d needs", d.nwords, h.Bloom.M)
		}
		d.u.words = append(d.u.words, m.Words...)
	case PartDelta:
		if h.Mode != ModeDelta {
			return invalidf("update: message %d is a delta chunk in a %v update", msg, h.Mode)
		}
		n := len(m.Added) + len(m.Removed)
		if err := checkChunk("delta", d.count, n, h.Entries); err != nil {
			return err
		}
		// Added first, then removed: the error names the same field
		// whatever the order of a map.
		for _, f := range []struct {
			name  string
			lfns  []string
			added bool
		}{{"added", m.Added, true}, {"removed", m.Removed, false}} {
			for i, lfn := range f.lfns {
				if err := catalog.ValidateName("lfn", lfn); err != nil {
					return invalidf("delta.%s[%d]: %v", f.name, i, err)
				}
				if _, dup := d.seenDel[lfn]; dup {
					return invalidf("delta.%s[%d]: LFN %q appears twice in one delta", f.name, i, lfn)
				}
				d.seenDel[lfn] = f.added
			}
		}
		d.u.added = append(d.u.added, m.Added...)
		d.u.removed = append(d.u.removed, m.Removed...)
		d.count += uint64(n)
	default:
		return invalidf("update: message %d has no body", msg)
	}
	return nil
}

// finish checks that the body is complete and returns the update.
func (d *bodyDecoder) finish() (*incoming, error) {
	u, h := d.u, &d.u.h
	switch h.Mode {
	case ModeList:
		if d.count != h.Entries {
			return nil, invalidf("lfns: %d names sent, header.entries says %d", d.count, h.Entries)
		}
		u.list = d.names.build()
	case ModeBloom:
		if uint64(len(u.words)) != d.nwords {
			return nil, invalidf("bloom.words: %d words sent, bloom.m = %d needs %d", len(u.words), h.Bloom.M, d.nwords)
		}
		if r := h.Bloom.M % 64; r != 0 {
			u.words[len(u.words)-1] &= 1<<r - 1 // bits past m mean nothing
		}
		if err := checkFill(u.words, h.Bloom); err != nil {
			return nil, err
		}
	case ModeDelta:
		if d.count != h.Entries {
			return nil, invalidf("delta: %d names sent, header.entries says %d", d.count, h.Entries)
		}
	}
	return u, nil
}

// checkFill refuses a filter so full that it matches nearly every name:
// one whose implied false-positive rate, fill^k, is above
// MaxBloomFalsePositive. The cost is one popcount per word.
func checkFill(words []uint64, p BloomParams) error {
	var set uint64
	for _, w := range words {
		set += uint64(bits.OnesCount64(w))
	}
	fill := float64(set) / float64(p.M)
	if fp := math.Pow(fill, float64(p.K)); fp > MaxBloomFalsePositive {
		return invalidf("bloom.words: fill ratio %.3f (%d of %d bits set) implies a false-positive rate of %.2f at k = %d, more than %.2f: the filter matches nearly every name",
			fill, set, p.M, fp, p.K, MaxBloomFalsePositive)
	}
	return nil
}

func checkChunk(field string, sofar uint64, n int, entries uint64) error {
	if n > MaxChunkNames {
		return invalidf("%s: chunk of %d names, more than %d", field, n, MaxChunkNames)
	}
	if sofar+uint64(n) > entries {
		return invalidf("%s: more names than header.entries = %d", field, entries)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// apply makes a decoded update the site's state: on disk first, then in
// memory, all at once for lookups.
func (x *Index) apply(u *incoming) (Ack, error) {
	h := u.h
	if x.opts.Site != "" && slices.Contains(h.Via, x.opts.Site) {
		return Ack{}, invalidf("header.via: the update already passed through this index (%s): a loop in the index hierarchy", x.opts.Site)
	}
	unlock := x.lockSite(h.Site)
	defer unlock()
	now := x.now()
	x.mu.RLock()
	old, closed := x.sites[h.Site], x.closed
	x.mu.RUnlock()
	if closed {
		return Ack{}, ErrClosed
	}
	if err := checkReplay(old, h); err != nil {
		return Ack{}, err
	}
	if h.Mode == ModeDelta {
		return x.applyDelta(old, u, now)
	}
	if old == nil {
		release, err := x.admitSite(h.Site, now)
		if err != nil {
			return Ack{}, err
		}
		defer release()
	}
	s := &site{
		name: h.Site, endpoint: h.Endpoint, mode: h.Mode, gen: h.Generation, base: h.Generation,
		updated: h.Updated, received: now, expires: now.Add(h.Validity), via: h.Via,
		list: u.list, incarnation: h.Incarnation,
	}
	if u.list != nil {
		s.entries = uint64(u.list.len()) // duplicates dropped
	}
	if h.Mode == ModeBloom {
		s.bloom = h.Bloom
		s.entries = h.Bloom.Entries
		s.group, s.slot = x.reserveFill(geometry{m: h.Bloom.M, k: h.Bloom.K}, u.words)
	} else {
		x.prefilter(s)
	}
	if err := x.persistFull(s, u.words); err != nil {
		if s.group != nil {
			x.release(s.group, s.slot, nil)
		}
		return Ack{}, err
	}
	x.publish(s, old)
	x.wake()
	return Ack{Generation: s.gen, Entries: s.entries, Expires: s.expires}, nil
}

// admitSite counts a new site against MaxSites while its first update is
// applied, or fails with ErrFull; the caller holds the site's lock and
// calls release when the site is published (or not). Sites whose state
// expired but which the expiry loop has not dropped yet do not count.
func (x *Index) admitSite(name string, now time.Time) (release func(), err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n := len(x.sites) + x.newSites; n >= x.opts.MaxSites {
		live := x.newSites
		for _, s := range x.sites {
			if !s.expired(now) {
				live++
			}
		}
		if live >= x.opts.MaxSites {
			return nil, fmt.Errorf("%w: it holds %d sites, the most it accepts (index-max-sites); refusing new site %q",
				ErrFull, live, name)
		}
	}
	x.newSites++
	return func() {
		x.mu.Lock()
		x.newSites--
		x.mu.Unlock()
	}, nil
}

func (x *Index) applyDelta(s *site, u *incoming, now time.Time) (Ack, error) {
	h := u.h
	switch {
	case s == nil || s.expired(now):
		return Ack{}, fmt.Errorf("%w: the index holds no state for site %q; send a full update", ErrOutOfSequence, h.Site)
	case !bytes.Equal(s.incarnation, h.Incarnation):
		return Ack{}, fmt.Errorf("%w: the index holds another catalog incarnation of site %q; send a full update", ErrOutOfSequence, h.Site)
	case s.gen != h.BaseGeneration:
		return Ack{}, fmt.Errorf("%w: the index holds generation %d for site %q, the delta applies to %d; send a full update",
			ErrOutOfSequence, s.gen, h.Site, h.BaseGeneration)
	}
	if err := x.persistDelta(s, u, now); err != nil {
		return Ack{}, err
	}
	x.mu.Lock()
	s.applyDelta(u.added, u.removed,
		func(lfn string) { x.addedBy[lfn] = append(x.addedBy[lfn], s) },
		func(lfn string) { x.unadd(lfn, s) })
	s.gen, s.endpoint, s.updated, s.via = h.Generation, h.Endpoint, h.Updated, h.Via
	s.received, s.expires = now, now.Add(h.Validity)
	s.deltas++
	info := s.info()
	x.mu.Unlock()
	x.wake()
	return Ack{Generation: info.Generation, Entries: info.Entries, Expires: info.Expires}, nil
}

// applyDelta changes the overlay. The caller holds Index.mu for writing, or
// owns s alone (a site not yet published). onAdd and onDrop, if not nil,
// hear of each name entering and leaving s.added.
func (s *site) applyDelta(added, removed []string, onAdd, onDrop func(string)) {
	for _, lfn := range added {
		delete(s.removed, lfn)
		if s.list.has(lfn) {
			continue // back in the list it never left
		}
		if _, ok := s.added[lfn]; ok {
			continue
		}
		if s.added == nil {
			s.added = make(map[string]struct{})
		}
		s.added[lfn] = struct{}{}
		if onAdd != nil {
			onAdd(lfn)
		}
	}
	for _, lfn := range removed {
		if _, ok := s.added[lfn]; ok {
			delete(s.added, lfn)
			if onDrop != nil {
				onDrop(lfn)
			}
		}
		if s.mode == ModeList && !s.list.has(lfn) {
			continue // nothing left to hide
		}
		if s.removed == nil {
			s.removed = make(map[string]struct{})
		}
		s.removed[lfn] = struct{}{}
	}
}

// indexAdded makes s's delta additions findable by name (or, with add
// false, forgets them); the caller holds Index.mu for writing.
func (x *Index) indexAdded(s *site, add bool) {
	for lfn := range s.added {
		if add {
			x.addedBy[lfn] = append(x.addedBy[lfn], s)
		} else {
			x.unadd(lfn, s)
		}
	}
}

func (x *Index) unadd(lfn string, s *site) {
	by := slices.DeleteFunc(x.addedBy[lfn], func(o *site) bool { return o == s })
	if len(by) == 0 {
		delete(x.addedBy, lfn)
	} else {
		x.addedBy[lfn] = by
	}
}

// reserveFill writes a filter into a free column of its geometry's group,
// where lookups do not see it until publish.
func (x *Index) reserveFill(geo geometry, words []uint64) (*bloomGroup, int) {
	for {
		x.mu.Lock()
		g := x.groups[geo]
		if g == nil {
			g = newBloomGroup(geo)
			x.groups[geo] = g
			x.maxK = max(x.maxK, geo.k)
		}
		x.mu.Unlock()
		g.wmu.Lock()
		if g.dead {
			g.wmu.Unlock()
			continue // emptied and dropped meanwhile
		}
		c := g.reserve(&x.mu)
		g.live++
		g.fill(c, words)
		g.wmu.Unlock()
		return g, c
	}
}

// publish makes s the state of its site, replacing old (nil if none).
func (x *Index) publish(s, old *site) {
	swap := func() {
		if old != nil {
			x.indexAdded(old, false)
		}
		x.sites[s.name] = s
		x.indexAdded(s, true)
		s.show()
	}
	if old != nil && old.group != nil {
		x.release(old.group, old.slot, swap)
		return
	}
	x.mu.Lock()
	swap()
	x.mu.Unlock()
}

// show points the site's column at it; the caller holds Index.mu for
// writing.
func (s *site) show() {
	if s.group != nil {
		s.group.slots[s.slot] = s
	}
}

// release frees column c of g, running also (if not nil) under Index.mu in
// the same critical section, and drops g when no site is left in it.
func (x *Index) release(g *bloomGroup, c int, also func()) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	g.slots[c] = nil
	g.free = append(g.free, c)
	g.live--
	if also != nil {
		also()
	}
	if g.live == 0 {
		g.dead = true
		delete(x.groups, g.geo)
	}
}

// errNotFound is internal: a site that is not there.
var errNotFound = errors.New("no such site")

// drop removes a site's state from memory and disk if it is still s.
func (x *Index) drop(s *site) error {
	unlock := x.lockSite(s.name)
	defer unlock()
	x.mu.RLock()
	cur := x.sites[s.name]
	x.mu.RUnlock()
	if cur != s {
		return errNotFound
	}
	if err := x.deleteSite(s.name); err != nil {
		return err
	}
	remove := func() {
		x.indexAdded(s, false)
		delete(x.sites, s.name)
	}
	if s.group != nil {
		x.release(s.group, s.slot, remove)
	} else {
		x.mu.Lock()
		remove()
		x.mu.Unlock()
	}
	x.wake()
	return nil
}

func (x *Index) expireLoop() {
	defer close(x.done)
	t := time.NewTicker(x.opts.ExpireInterval)
	defer t.Stop()
	for {
		select {
		case <-x.stop:
			return
		case <-t.C:
			x.ExpireNow()
		}
	}
}

// ExpireNow drops every site whose state has expired, from memory and from
// disk, and returns how many it dropped. The index runs it every
// ExpireInterval; lookups ignore expired sites in between.
func (x *Index) ExpireNow() int {
	now := x.now()
	var expired []*site
	x.mu.RLock()
	for _, s := range x.sites {
		if s.expired(now) {
			expired = append(expired, s)
		}
	}
	x.mu.RUnlock()
	n := 0
	for _, s := range expired {
		if err := x.drop(s); err == nil {
			n++
			x.log.Info("index: site expired", "site", s.name, "expires", s.expires, "via", s.via)
		} else if !errors.Is(err, errNotFound) {
			x.log.Warn("index: dropping an expired site failed", "site", s.name, "error", err)
		}
	}
	return n
}
