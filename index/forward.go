package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/backoff"
)

// Parent is an index that a Forwarder forwards to. The zero value of each
// field but Addr is its default. Each site's state travels in the mode it
// came in (a filter whole: it cannot be filtered), valid for what is left
// of its validity here.
type Parent struct {
	// Addr is the parent's gRPC address, host:port.
	Addr string
	// Interval is the time between full refreshes of every site
	// (DefaultInterval).
	Interval time.Duration
	// DeltaDelay is how long after a change of the index its forwarding
	// waits (DefaultDeltaDelay); changes within it travel together.
	DeltaDelay time.Duration
	// Patterns, when set, restrict the LFNs of lists and deltas forwarded
	// to those that match one of them; nil forwards every LFN.
	Patterns []*catalog.Pattern
}

func (p Parent) withDefaults() Parent {
	if p.Interval == 0 {
		p.Interval = DefaultInterval
	}
	if p.DeltaDelay == 0 {
		p.DeltaDelay = DefaultDeltaDelay
	}
	return p
}

// Check reports what is wrong with p, naming the field, or nil.
func (p Parent) Check() error {
	switch {
	case p.Addr == "":
		return errors.New("forwarding target: empty address (want host:port)")
	case p.Interval < 0 || p.DeltaDelay < 0:
		return fmt.Errorf("forwarding target %s: negative interval or delta delay", p.Addr)
	}
	return nil
}

func (p Parent) match(lfn string) bool { return matchAny(p.Patterns, lfn) }

func sameParent(a, b Parent) bool {
	return a.Addr == b.Addr && a.Interval == b.Interval && a.DeltaDelay == b.DeltaDelay && samePatterns(a.Patterns, b.Patterns)
}

// ForwarderOptions tune a Forwarder. Dialer is required.
type ForwarderOptions struct {
	// Logger receives the forwarder's messages. Default slog.Default().
	Logger *slog.Logger
	// Dialer connects to the parents. A Sink that is an io.Closer is
	// closed when its parent's loop ends.
	Dialer Dialer
	// RetryMin and RetryMax bound the wait after a round that failed: it
	// starts at RetryMin (1 s) and doubles up to RetryMax (1 min), with
	// jitter; a full refresh that is due comes first.
	RetryMin, RetryMax time.Duration
}

// Forwarder sends what an index holds on to parent indexes, site by site:
// each leaf site's state keeps its site name, endpoint, generation, update
// time and expiry, and gains this index in its Via, so that lookups at any
// level return the leaf sites. Filters travel intact (never OR-ed across
// sites). A site's changes are forwarded as deltas on top of what the
// parent holds, and every Interval every site is sent in full. Its parents
// can be replaced while it runs (SetTargets). It is safe for concurrent use.
type Forwarder struct {
	x                  *Index
	self               string
	log                *slog.Logger
	dialer             Dialer
	retryMin, retryMax time.Duration

	set loopSet[*parent, Parent]
}

// parent is one parent index and its loop.
type parent struct {
	cfg  Parent
	kick chan chan Result // UpdateNow's requests
	ctl  loopCtl
}

// NewForwarder returns a forwarder of x's state to parents, naming this
// index self in Via. It fails if a parent is invalid or listed twice, or
// opts has no Dialer.
func NewForwarder(x *Index, self string, parents []Parent, opts ForwarderOptions) (*Forwarder, error) {
	if opts.Dialer == nil {
		return nil, errors.New("forwarder: no Dialer")
	}
	f := &Forwarder{x: x, self: self, log: opts.Logger, dialer: opts.Dialer, retryMin: opts.RetryMin, retryMax: opts.RetryMax}
	if f.log == nil {
		f.log = slog.Default()
	}
	if f.retryMin <= 0 {
		f.retryMin = time.Second
	}
	if f.retryMax < f.retryMin {
		f.retryMax = max(time.Minute, f.retryMin)
	}
	f.set = loopSet[*parent, Parent]{
		what: "forwarding targets", log: f.log,
		cfg:  func(p *parent) Parent { return p.cfg },
		addr: func(c Parent) string { return c.Addr },
		same: sameParent,
		ctl:  func(p *parent) *loopCtl { return &p.ctl },
		loop: func(ctx, wctx context.Context, p *parent) error { return f.runParent(ctx, wctx, p.cfg, p.kick) },
	}
	if err := f.SetTargets(parents); err != nil {
		return nil, err
	}
	return f, nil
}

// Run forwards until ctx is done, one goroutine per parent (those of
// SetTargets included). It runs once, and returns the parents' failures
// to connect, if any.
func (f *Forwarder) Run(ctx context.Context) error { return f.set.run(ctx) }

// SetTargets replaces the parents, or changes nothing and returns an error
// if one of parents is invalid or listed twice. A parent whose
// configuration is unchanged keeps its loop, connection and what it knows
// the parent holds. A removed or changed parent's loop stops after the
// round it has in flight (a site's update is never cut short) and closes
// its connection; a changed parent's new loop starts after that. It logs
// what changed.
func (f *Forwarder) SetTargets(parents []Parent) error {
	cfgs := make([]Parent, 0, len(parents))
	for _, p := range parents {
		if err := p.Check(); err != nil {
			return fmt.Errorf("forwarder: %w", err)
		}
		if slices.ContainsFunc(cfgs, func(o Parent) bool { return o.Addr == p.Addr }) {
			return fmt.Errorf("forwarder: forwarding target %s is listed twice", p.Addr)
		}
		cfgs = append(cfgs, p.withDefaults())
	}
	return f.set.replace(cfgs,
		func(c Parent) (*parent, error) { return &parent{cfg: c, kick: make(chan chan Result)}, nil },
		func(*parent) {}, func(*parent, bool) {})
}

// held is what a parent holds of one site, as far as the forwarder knows.
type held struct {
	full    *site  // the full state it was sent (identity: replaced on each full update)
	gen     uint64 // the generation it holds
	entries uint64 // LFNs sent the last time (lists and deltas)
}

// runParent forwards to p until wctx is done (Run stops, or p is removed).
// It sends on ctx, Run's, so that a removal does not cut an update short.
func (f *Forwarder) runParent(ctx, wctx context.Context, p Parent, kick chan chan Result) error {
	sink, err := f.dialer.Index(p.Addr)
	if err != nil {
		return fmt.Errorf("forward to %s: %w", p.Addr, err)
	}
	defer func() { _ = closeSink(sink) }()
	log := f.log.With("parent", p.Addr)
	sent := map[string]held{}
	nextFull := time.Now() // a full refresh at once: the parent may have restarted
	failures := 0
	var reply chan Result // an UpdateNow waiting for this round
	for {
		notify := f.x.Notify()
		full := reply != nil || !time.Now().Before(nextFull)
		start := time.Now()
		res := f.forwardAll(ctx, sink, p, sent, full, log)
		if reply != nil {
			res.Target, res.Took = p.Addr, time.Since(start)
			reply <- res // buffered
			reply = nil
		}
		if wctx.Err() != nil {
			return nil
		}
		if full && res.Err == nil {
			nextFull = time.Now().Add(p.Interval)
		}
		wait := time.Until(nextFull)
		if res.Err != nil {
			failures++
			wait = min(wait, backoff.Delay(f.retryMin, f.retryMax, failures))
		} else {
			failures = 0
		}
		select {
		case <-wctx.Done():
			return nil
		case reply = <-kick:
		case <-time.After(max(wait, 0)):
		case <-notify:
			select { // let a burst of changes gather
			case <-wctx.Done():
				return nil
			case reply = <-kick:
			case <-time.After(p.DeltaDelay):
			}
		}
	}
}

// UpdateNow sends every site in full to the parent at addr, or to all
// parents if addr is "", and waits for the results. It needs Run to be
// running. An unknown parent is an error wrapping ErrUnknownTarget, and
// so is a parent that SetTargets removes meanwhile.
func (f *Forwarder) UpdateNow(ctx context.Context, addr string) ([]Result, error) {
	f.set.mu.Lock()
	parents := f.set.items
	var picked []*parent
	var done []<-chan struct{}
	for _, p := range parents {
		if addr == "" || p.cfg.Addr == addr {
			picked = append(picked, p)
			done = append(done, p.ctl.done)
		}
	}
	f.set.mu.Unlock()
	if len(parents) == 0 {
		return nil, ErrNoTargets
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("%w: %s (this index forwards to %d parents)", ErrUnknownTarget, addr, len(parents))
	}
	out := make([]Result, len(picked))
	for j, p := range picked {
		reply := make(chan Result, 1)
		gone := fmt.Errorf("%w: %s: removed by a reload", ErrUnknownTarget, p.cfg.Addr)
		select {
		case p.kick <- reply:
		case <-done[j]:
			return nil, gone
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case out[j] = <-reply:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// view is a copy of a site's state, taken under Index.mu; its overlay is
// copied only when the site is to be sent (see withOverlay).
type view struct {
	s              *site
	gen, base      uint64
	endpoint       string
	updated        time.Time
	expires        time.Time
	via            []string
	added, removed []string
}

func (s *site) view() view {
	return view{
		s: s, gen: s.gen, base: s.base, endpoint: s.endpoint, updated: s.updated,
		expires: s.expires, via: s.via,
	}
}

// views returns the views of every site, by name: a round sends them in
// the same order every time.
func (f *Forwarder) views() []view {
	f.x.mu.RLock()
	out := make([]view, 0, len(f.x.sites))
	for _, s := range f.x.sites {
		out = append(out, s.view())
	}
	f.x.mu.RUnlock()
	slices.SortFunc(out, func(a, b view) int { return cmp.Compare(a.s.name, b.s.name) })
	return out
}

// withOverlay takes the site's view again, overlay included (its generation
// may have moved on since v was taken).
func (f *Forwarder) withOverlay(v view) view {
	f.x.mu.RLock()
	defer f.x.mu.RUnlock()
	v = v.s.view()
	v.added, v.removed = slices.Collect(maps.Keys(v.s.added)), slices.Collect(maps.Keys(v.s.removed))
	return v
}

// forwardAll sends every site whose state the parent lacks (or all of them,
// in full, when full is set). Its result counts the sites sent and the LFNs
// of lists and deltas; Err joins the failures.
func (f *Forwarder) forwardAll(ctx context.Context, sink Sink, p Parent, sent map[string]held, full bool, log *slog.Logger) Result {
	now := f.x.now() // the index's clock, which its expiry times are of
	res := Result{Mode: ModeDelta}
	if full {
		res.Mode = ModeList
	}
	var errs []error
	live := map[string]bool{}
	for _, v := range f.views() {
		live[v.s.name] = true
		if !now.Before(v.expires) || slices.Contains(v.via, f.self) {
			continue
		}
		h, ok := sent[v.s.name]
		if !full && ok && h.full == v.s && h.gen == v.gen {
			continue // the parent has it
		}
		var err error
		v = f.withOverlay(v)
		if full || !ok || h.full != v.s || len(v.added)+len(v.removed) > 100_000 {
			h, err = f.sendFull(ctx, sink, p, v, now)
		} else {
			h, err = f.sendOverlay(ctx, sink, p, v, h.gen, now)
			if errors.Is(err, ErrOutOfSequence) {
				h, err = f.sendFull(ctx, sink, p, v, now)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return res
			}
			errs = append(errs, fmt.Errorf("site %s: %w", v.s.name, err))
			delete(sent, v.s.name)
			log.Warn("index: forwarding a site failed", "site", v.s.name, "error", err)
			continue
		}
		sent[v.s.name] = h
		res.Sites++
		res.Entries += h.entries
	}
	for name := range sent {
		if !live[name] {
			delete(sent, name) // expired here; it expires there too
		}
	}
	res.Err = errors.Join(errs...)
	return res
}

func (f *Forwarder) header(v view, now time.Time) Header {
	return Header{
		Site: v.s.name, Endpoint: v.endpoint, Generation: v.base,
		Validity: v.expires.Sub(now), Via: append(slices.Clip(v.via), f.self), Updated: v.updated,
		Incarnation: v.s.incarnation,
	}
}

// filter keeps the LFNs that p indexes.
func filter(p Parent, lfns []string) []string {
	if len(p.Patterns) == 0 {
		return lfns
	}
	return slices.DeleteFunc(lfns, func(l string) bool { return !p.match(l) })
}

// sendFull sends a site's last full state, then its overlay as one delta.
func (f *Forwarder) sendFull(ctx context.Context, sink Sink, p Parent, v view, now time.Time) (held, error) {
	h := f.header(v, now)
	s := v.s
	var entries uint64
	switch s.mode {
	case ModeList:
		var n uint64
		for i := range s.list.len() {
			if p.match(string(s.list.bytes(i))) {
				n++
			}
		}
		h.Entries, entries = n, n
		names := func(yield func(string) bool) {
			for i := range s.list.len() {
				if name := s.list.name(i); p.match(name) && !yield(name) {
					return
				}
			}
		}
		if _, err := sink.Send(ctx, ListUpdate(h, iter.Seq[string](names))); err != nil {
			return held{}, err
		}
	case ModeBloom:
		words, ok := f.x.column(s)
		if !ok {
			return held{}, fmt.Errorf("site %q changed while it was read", s.name)
		}
		h.Bloom, entries = s.bloom, s.bloom.Entries
		if _, err := sink.Send(ctx, BloomUpdate(h, words)); err != nil {
			return held{}, err
		}
	}
	if v.gen == v.base && len(v.added)+len(v.removed) == 0 {
		return held{full: s, gen: v.base, entries: entries}, nil
	}
	h2, err := f.sendOverlay(ctx, sink, p, v, v.base, now)
	h2.entries += entries
	return h2, err
}

// sendOverlay sends the site's changes since its last full update as one
// delta on top of generation base, which the parent holds. Sending the
// whole overlay again is harmless: applying a change twice changes nothing.
func (f *Forwarder) sendOverlay(ctx context.Context, sink Sink, p Parent, v view, base uint64, now time.Time) (held, error) {
	h := f.header(v, now)
	h.BaseGeneration, h.Generation = base, v.gen
	added, removed := filter(p, slices.Clone(v.added)), filter(p, slices.Clone(v.removed))
	if _, err := sink.Send(ctx, DeltaUpdate(h, added, removed)); err != nil {
		return held{}, err
	}
	return held{full: v.s, gen: v.gen, entries: uint64(len(added) + len(removed))}, nil
}

// column reads a Bloom site's filter back from its group, if s is still the
// site's state.
func (x *Index) column(s *site) ([]uint64, bool) {
	g := s.group
	g.wmu.Lock()
	defer g.wmu.Unlock()
	x.mu.RLock()
	owned := !g.dead && g.slots[s.slot] == s
	x.mu.RUnlock()
	if !owned {
		return nil, false
	}
	return g.column(s.slot), true
}
