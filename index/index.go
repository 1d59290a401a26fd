package index

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/failstop"
	"github.com/solar-archive/rls/internal/pebblelog"
)

// Errors that Index methods wrap; test with errors.Is.
var (
	// ErrInvalid: a malformed update or request. The error names the field.
	ErrInvalid = errors.New("invalid")
	// ErrOutOfSequence: a delta that does not apply on top of the state the
	// index holds for its site; the sender must send a full update.
	ErrOutOfSequence = errors.New("delta out of sequence")
	// ErrReplay: an update older than what the index holds for the same
	// site and catalog incarnation (see Header.Incarnation).
	ErrReplay = errors.New("replay")
	// ErrClosed: the index is closed.
	ErrClosed = errors.New("index closed")
	// ErrFull: the index already holds Options.MaxSites sites and refuses
	// state for a new one (updates of the sites it holds still apply).
	ErrFull = errors.New("index full")
)

// Defaults of the limits in Options.
const (
	// DefaultMaxBloomBits bounds one site's filter at 2^31 bits (256 MiB).
	// The largest real catalogs hold about 11M LFNs (LIGO; NSO about 8M
	// storage units); at 1% false positives a filter needs about 10 bits
	// per LFN, so 10× the largest site is 1.1e9 bits, about 2^30, and
	// BloomGeometry rounds m up to a power of two: 2^31 leaves that
	// headroom, while a peer's header cannot make the index allocate more
	// than 256 MiB for one site.
	DefaultMaxBloomBits = 1 << 31
	// DefaultMaxSites bounds the sites one index holds: a hundred times
	// the sites of the largest federation rls serves, while a peer that
	// invents site names cannot grow the index without bound.
	DefaultMaxSites = 10_000
	// MaxBloomFalsePositive is the highest false-positive rate, implied by
	// a received filter's fill (the fraction of its bits set, to the power
	// k), that the index accepts. A filter built by BloomGeometry for the
	// names it holds is at most half full (fill^k ≤ 0.5^k, 1% at k = 7); a
	// fuller one holds far more names than it was built for (fill 0.9375,
	// four times as many, implies 64% at k = 7), and an all-ones filter
	// matches every name: the index would name the site as a candidate for
	// LFNs it never held. Even at k = 1 (the geometry for rates of 0.5 and
	// above) a filter at its capacity implies 0.5, which passes.
	MaxBloomFalsePositive = 0.5
)

// Options configure Open.
type Options struct {
	// Site is this index's own site name. Updates that already passed
	// through it (their Via names it) are refused, which stops loops in a
	// misconfigured hierarchy.
	Site string
	// ExpireInterval is how often sites whose state expired are dropped from
	// memory and disk (lookups never return them, whatever this is).
	// Default 1 minute.
	ExpireInterval time.Duration
	// NoSync acknowledges updates before they reach the disk. A crash may
	// then lose the last updates, which their senders send again in time:
	// soft state tolerates it, but a restarted index answers from older
	// state until they do.
	NoSync bool
	// MaxBloomBits bounds the m of a received Bloom filter; a header
	// asking for more is refused (ErrInvalid) before anything is
	// allocated. Default DefaultMaxBloomBits; never above MaxBloomBits.
	MaxBloomBits uint64
	// MaxSites bounds the sites the index holds. Full state for a new site
	// beyond it fails with ErrFull. Default DefaultMaxSites.
	MaxSites int
	Logger   *slog.Logger
	// Now is the clock; default time.Now. Tests set it.
	Now func() time.Time
}

// Index is a replica location index: per site, the last soft state that
// site sent (directly or through lower indexes), with its expiry. It is safe
// for concurrent use.
type Index struct {
	opts Options
	log  *slog.Logger
	db   *pebble.DB
	// guard stops the index at its first storage error (see Err).
	guard *failstop.Guard

	// siteMu serializes updates of one site (by hash of its name), so that
	// each site's updates reach the disk and memory in the same order.
	siteMu [64]sync.Mutex

	mu     sync.RWMutex
	sites  map[string]*site
	groups map[geometry]*bloomGroup
	// addedBy finds the sites whose deltas added an LFN (their overlays).
	addedBy map[string][]*site
	maxK    uint32 // the largest k of any group
	closed  bool
	// newSites counts updates of sites not in sites yet that are being
	// applied; with len(sites) it is what MaxSites bounds.
	newSites int

	notifyMu sync.Mutex
	notifyCh chan struct{}

	stop chan struct{}
	done chan struct{}
}

// site is the state one site last sent. A full update replaces it; deltas
// change only its overlay (added, removed), its generation and its times,
// under Index.mu.
type site struct {
	name, endpoint string
	mode           Mode // of the last full update: list or bloom
	gen            uint64
	base           uint64    // the generation of the last full update
	updated        time.Time // when the site produced the state
	received       time.Time // when this index last heard from it
	expires        time.Time
	via            []string
	entries        uint64 // in the last full update
	deltas         uint64 // applied since
	incarnation    []byte // of the site's catalog; nil if not sent

	list *nameSet // list mode

	bloom BloomParams // bloom mode
	// The site's column in a bit-sliced group: its filter (bloom mode), or
	// a filter of its list, which spares lookups a probe of every list
	// (list mode).
	group *bloomGroup
	slot  int

	// Changes since the full update: LFNs added and removed. An added LFN is
	// known exactly (by delta); a removed one is hidden from list and
	// filter alike.
	added, removed map[string]struct{}
}

func (s *site) expired(now time.Time) bool { return !now.Before(s.expires) }

// Candidate is one site that holds an LFN, as far as the index knows.
type Candidate struct {
	Site     string
	Endpoint string
	// KnownBy is how: ModeList (the site's last full list), ModeBloom (its
	// filter: possibly a false positive) or ModeDelta (a change it sent
	// since).
	KnownBy Mode
	Updated time.Time
	Expires time.Time
	Via     []string
}

// SiteInfo describes the state the index holds for one site.
type SiteInfo struct {
	Site       string
	Endpoint   string
	Mode       Mode // of the last full update
	Generation uint64
	// FullGeneration is the generation of the last full update; deltas
	// brought the state to Generation.
	FullGeneration uint64
	// Entries counts the LFNs of the last full update (for a filter, as its
	// header says), plus those added and less those removed since.
	Entries  uint64
	Deltas   uint64
	Updated  time.Time
	Received time.Time
	Expires  time.Time
	Via      []string
	Bloom    BloomParams
	// Incarnation is the site's catalog incarnation (nil if its sender did
	// not send one).
	Incarnation []byte
}

// Open opens (creating if needed) the index kept in dir, loads the sites
// whose state has not expired, and starts dropping sites as they expire.
func Open(dir string, opts *Options) (*Index, error) {
	x := &Index{
		sites:    make(map[string]*site),
		groups:   make(map[geometry]*bloomGroup),
		addedBy:  make(map[string][]*site),
		notifyCh: make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if opts != nil {
		x.opts = *opts
	}
	if x.opts.ExpireInterval <= 0 {
		x.opts.ExpireInterval = time.Minute
	}
	if x.opts.Now == nil {
		x.opts.Now = time.Now
	}
	if x.opts.MaxBloomBits == 0 {
		x.opts.MaxBloomBits = DefaultMaxBloomBits
	}
	x.opts.MaxBloomBits = min(x.opts.MaxBloomBits, MaxBloomBits)
	if x.opts.MaxSites <= 0 {
		x.opts.MaxSites = DefaultMaxSites
	}
	x.log = x.opts.Logger
	if x.log == nil {
		x.log = slog.Default()
	}
	po := &pebble.Options{Logger: pebblelog.New(x.log)}
	x.guard = failstop.New("index", dir, x.log)
	x.guard.Configure(po)
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	x.db = db
	if err := x.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("index: load %s: %w", dir, err)
	}
	go x.expireLoop()
	return x, nil
}

// Close stops the expiry loop and closes the store. Calls after Close fail
// with ErrClosed.
//
// Close of a failed index (see Err) stops the expiry loop and returns the
// failure without touching the store, which is left as it was fenced.
func (x *Index) Close() error {
	if err := x.guard.Err(); err != nil {
		x.mu.Lock()
		if !x.closed {
			x.closed = true
			close(x.stop)
		}
		x.mu.Unlock()
		return err
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return ErrClosed
	}
	x.closed = true
	x.mu.Unlock()
	close(x.stop)
	<-x.done
	// Updates in progress hold their site's lock until they are done
	// writing.
	for i := range x.siteMu {
		x.siteMu[i].Lock()
	}
	defer func() {
		for i := range x.siteMu {
			x.siteMu[i].Unlock()
		}
	}()
	return x.db.Close()
}

var siteSeed = maphash.MakeSeed()

func (x *Index) lockSite(name string) func() {
	m := &x.siteMu[maphash.String(siteSeed, name)%uint64(len(x.siteMu))]
	m.Lock()
	return m.Unlock
}

func (x *Index) now() time.Time { return x.opts.Now() }

// Notify returns a channel that is closed at the next change of any site's
// state (an update applied, or a site expired). Forwarders wait on it.
// Err returns nil while the index is healthy. After a storage error in its
// snapshot store (a write or sync that failed, a full disk) it returns that
// failure, wrapping failstop.ErrFailed and the cause; updates and lookups
// fail with it from then on, and no update whose snapshot was not durable
// is acknowledged or served. The process should exit; a restart loads
// exactly the acknowledged updates.
func (x *Index) Err() error { return x.guard.Err() }

// Failed is closed when the index fails (see Err).
func (x *Index) Failed() <-chan struct{} { return x.guard.Done() }

func (x *Index) Notify() <-chan struct{} {
	x.notifyMu.Lock()
	defer x.notifyMu.Unlock()
	return x.notifyCh
}

func (x *Index) wake() {
	x.notifyMu.Lock()
	close(x.notifyCh)
	x.notifyCh = make(chan struct{})
	x.notifyMu.Unlock()
}

// Locate returns, for each LFN in order, the sites that hold it as far as
// the index knows, sorted by site name. Sites whose state expired are never
// returned. An invalid name fails the whole call with ErrInvalid, naming it.
//
// Its cost per LFN is one hash, k rows of each bit-sliced group (a row is
// one bit per site: 16 words for 1,000 sites), a table lookup for each list
// site whose filter matches (list sites have a filter of their list in the
// groups too) and one map lookup for delta additions; never a probe per
// site.
func (x *Index) Locate(lfns []string) ([][]Candidate, error) {
	out := make([][]Candidate, len(lfns))
	err := x.LocateEach(lfns, func(i int, cands []Candidate) error {
		if len(cands) > 0 {
			out[i] = slices.Clone(cands)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LocateEach is Locate without building the answer: it calls fn(i, cands)
// for each LFN in order, with its sites sorted by name, so that a caller
// can bound what it keeps (a request may repeat an LFN that many sites
// hold). cands is only valid during the call. It holds the index's read
// lock throughout: fn must not call the index. If fn returns an error,
// LocateEach stops and returns it.
func (x *Index) LocateEach(lfns []string, fn func(i int, cands []Candidate) error) error {
	if err := x.guard.Err(); err != nil {
		return err
	}
	for i, lfn := range lfns {
		if err := catalog.ValidateName("lfn", lfn); err != nil {
			return fmt.Errorf("%w: lfns[%d]: %v", ErrInvalid, i, err)
		}
	}
	now := x.now()
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.closed {
		return ErrClosed
	}
	var (
		acc   []uint64
		lfn   string
		cands []Candidate
	)
	// One visitor for every LFN and group: it reads lfn and appends to
	// cands as they are for the LFN at hand.
	visit := func(s *site) {
		if s.expired(now) {
			return
		}
		if _, ok := s.added[lfn]; ok {
			return // reported by delta
		}
		if _, gone := s.removed[lfn]; gone {
			return
		}
		switch {
		case s.mode == ModeBloom:
			cands = append(cands, s.candidate(ModeBloom))
		case s.list.has(lfn): // the list's filter said maybe; the list says yes
			cands = append(cands, s.candidate(ModeList))
		}
	}
	for i := range lfns {
		lfn, cands = lfns[i], cands[:0]
		for _, s := range x.addedBy[lfn] {
			if !s.expired(now) {
				cands = append(cands, s.candidate(ModeDelta))
			}
		}
		if len(x.groups) > 0 {
			locs := locations(lfn, x.maxK)
			for _, g := range x.groups {
				acc = ones(acc, g.words())
				g.probe(locs, acc, visit)
			}
		}
		if len(cands) > 1 {
			slices.SortFunc(cands, func(a, b Candidate) int { return cmp.Compare(a.Site, b.Site) })
		}
		if err := fn(i, cands); err != nil {
			return err
		}
	}
	return nil
}

func ones(acc []uint64, w int) []uint64 {
	if cap(acc) < w {
		acc = make([]uint64, w)
	}
	acc = acc[:w]
	for i := range acc {
		acc[i] = ^uint64(0)
	}
	return acc
}

func (s *site) candidate(by Mode) Candidate {
	return Candidate{Site: s.name, Endpoint: s.endpoint, KnownBy: by, Updated: s.updated, Expires: s.expires, Via: s.via}
}

func (s *site) info() SiteInfo {
	n := s.entries + uint64(len(s.added))
	n -= min(n, uint64(len(s.removed)))
	return SiteInfo{
		Site: s.name, Endpoint: s.endpoint, Mode: s.mode, Generation: s.gen, FullGeneration: s.base,
		Entries: n, Deltas: s.deltas, Updated: s.updated, Received: s.received,
		Expires: s.expires, Via: s.via, Bloom: s.bloom, Incarnation: s.incarnation,
	}
}

// Sites returns the sites whose state has not expired, sorted by name.
func (x *Index) Sites() []SiteInfo {
	now := x.now()
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]SiteInfo, 0, len(x.sites))
	for _, s := range x.sites {
		if !s.expired(now) {
			out = append(out, s.info())
		}
	}
	slices.SortFunc(out, func(a, b SiteInfo) int { return cmp.Compare(a.Site, b.Site) })
	return out
}

// Match is one (LFN, site) pair a wildcard query found.
type Match struct {
	LFN      string
	Site     string
	Endpoint string
	KnownBy  Mode
}

// MaxWildcardLimit bounds the matches of one Wildcard call.
const MaxWildcardLimit = 100_000

// Wildcard returns the (LFN, site) pairs whose LFN matches pattern, sorted
// by LFN then site, skipping offset of them and returning at most limit
// (default 1,000), with more set when more follow. Only exact state (lists
// and deltas) can be searched; unsearched names the sites known only by
// filter.
func (x *Index) Wildcard(pattern string, offset, limit int) (matches []Match, more bool, unsearched []string, err error) {
	if err := x.guard.Err(); err != nil {
		return nil, false, nil, err
	}
	p, err := catalog.CompilePattern(pattern)
	if err != nil {
		return nil, false, nil, fmt.Errorf("%w: pattern: %v", ErrInvalid, err)
	}
	switch {
	case offset < 0:
		return nil, false, nil, fmt.Errorf("%w: offset %d is negative", ErrInvalid, offset)
	case limit < 0 || limit > MaxWildcardLimit:
		return nil, false, nil, fmt.Errorf("%w: limit %d is out of range [0, %d]", ErrInvalid, limit, MaxWildcardLimit)
	case limit == 0:
		limit = 1000
	}
	want := offset + limit + 1
	now := x.now()
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, s := range x.sites {
		if s.expired(now) {
			continue
		}
		if s.mode == ModeBloom {
			unsearched = append(unsearched, s.name)
		}
		found := 0
		add := func(lfn string, by Mode) {
			matches = append(matches, Match{LFN: lfn, Site: s.name, Endpoint: s.endpoint, KnownBy: by})
			found++
		}
		// Each site contributes at most want matches: its first want in
		// LFN order are all that can make the page.
		s.list.rangePrefix(p.Prefix(), func(name string) bool {
			if _, gone := s.removed[name]; !gone && p.Match(name) {
				add(name, ModeList)
			}
			return found < want
		})
		for name := range s.added {
			if p.Match(name) {
				add(name, ModeDelta)
			}
		}
	}
	slices.Sort(unsearched)
	slices.SortFunc(matches, func(a, b Match) int {
		return cmp.Or(cmp.Compare(a.LFN, b.LFN), cmp.Compare(a.Site, b.Site))
	})
	if offset >= len(matches) {
		return nil, false, unsearched, nil
	}
	matches = matches[offset:]
	if len(matches) > limit {
		return matches[:limit:limit], true, unsearched, nil
	}
	return matches, false, unsearched, nil
}

// Stats are the index's counts.
type Stats struct {
	Sites, ListSites, BloomSites uint64
	ExactEntries                 uint64 // (site, LFN) pairs in lists and deltas
	BloomBits                    uint64 // bits of the sites' filters, in all
	BloomGroups                  uint64
	MemoryBytes                  uint64 // held by lists, filters and overlays (approximate)
}

// Stats returns the index's counts, expired sites excluded.
func (x *Index) Stats() Stats {
	now := x.now()
	x.mu.RLock()
	defer x.mu.RUnlock()
	var st Stats
	for _, s := range x.sites {
		if s.expired(now) {
			continue
		}
		st.Sites++
		if s.mode == ModeList {
			st.ListSites++
			st.ExactEntries += uint64(s.list.len())
			st.MemoryBytes += uint64(s.list.size())
		} else {
			st.BloomSites++
			st.BloomBits += s.bloom.M
		}
		st.ExactEntries += uint64(len(s.added))
	}
	for _, g := range x.groups {
		st.MemoryBytes += 8 * uint64(len(g.rows))
	}
	st.BloomGroups = uint64(len(x.groups))
	return st
}
