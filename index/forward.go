package index

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/secure"
)

// Forwarder sends what an index holds on to parent indexes, site by site:
// each leaf site's state keeps its site name, endpoint, generation, update
// time and expiry, and gains this index in its Via, so that lookups at any
// level return the leaf sites. Filters travel intact (never OR-ed across
// sites). A site's changes are forwarded as deltas on top of what the
// parent holds, and every Interval every site is sent in full. Its parents
// can be replaced while it runs (SetTargets). It is safe for concurrent use.
type Forwarder struct {
	x    *Index
	self string
	log  *slog.Logger
	dial func(addr string) (grpc.ClientConnInterface, error)

	mu sync.Mutex
	// parents is replaced by SetTargets, never changed in place.
	parents []*parent       // guarded by mu
	runCtx  context.Context // guarded by mu: Run's while it runs, else nil
	errs    []error         // guarded by mu: the loops' failures, for Run
	loops   sync.WaitGroup  // the parents' runParent goroutines
}

// parent is one parent index and its loop.
type parent struct {
	cfg  Target
	kick chan chan Result // UpdateNow's requests
	// stop ends the loop after the round in flight; done is closed when
	// it returned. Both are nil while no loop runs. Guarded by
	// Forwarder.mu.
	stop context.CancelFunc
	done chan struct{}
}

// NewForwarder returns a forwarder of x's state to parents, naming this
// index self in Via. Of each Target it uses Addr, Interval (between full
// refreshes), DeltaDelay (after a change, before forwarding it) and
// Patterns (lists and deltas are filtered; a filter cannot be, and travels
// whole). Mode and Validity do not apply: each site's state travels in the
// mode it came in, valid for what is left of its validity here. dial may be
// nil (plaintext connections of a nil secure.Dialer).
func NewForwarder(x *Index, self string, parents []Target, log *slog.Logger, dial func(addr string) (grpc.ClientConnInterface, error)) *Forwarder {
	if log == nil {
		log = slog.Default()
	}
	if dial == nil {
		dial = (*secure.Dialer)(nil).DialConn
	}
	f := &Forwarder{x: x, self: self, log: log, dial: dial}
	for _, p := range parents {
		f.parents = append(f.parents, &parent{cfg: forwardTarget(p).withDefaults(), kick: make(chan chan Result)})
	}
	return f
}

// forwardTarget is p as the forwarder uses it: Mode does not apply, and is
// set to list if unset, so that Check accepts it.
func forwardTarget(p Target) Target {
	if p.Mode == 0 {
		p.Mode = ModeList
	}
	return p
}

// Run forwards until ctx is done, one goroutine per parent (those of
// SetTargets included). It runs once.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	f.runCtx = ctx
	for _, p := range f.parents {
		f.startLoop(p, nil)
	}
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.runCtx = nil // SetTargets starts no loop from now on
	f.mu.Unlock()
	f.loops.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.errs...)
}

// SetTargets replaces the parents, or changes nothing and returns an error
// if one of parents is invalid or listed twice. A parent whose
// configuration is unchanged keeps its loop, connection and what it knows
// the parent holds. A removed or changed parent's loop stops after the
// round it has in flight (a site's update is never cut short) and closes
// its connection; a changed parent's new loop starts after that. It logs
// what changed.
func (f *Forwarder) SetTargets(parents []Target) error {
	norm := make([]Target, len(parents))
	for i, p := range parents {
		norm[i] = forwardTarget(p)
	}
	cfgs, err := checkTargets(norm)
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.parents
	next := make([]*parent, 0, len(cfgs))
	var fresh []*parent
	for _, c := range cfgs {
		if i := slices.IndexFunc(old, func(p *parent) bool { return sameTarget(p.cfg, c) }); i >= 0 {
			next = append(next, old[i])
			continue
		}
		p := &parent{cfg: c, kick: make(chan chan Result)}
		fresh = append(fresh, p)
		next = append(next, p)
	}
	var added, removed, changed []string
	after := map[string]<-chan struct{}{}
	for _, p := range old {
		if slices.Contains(next, p) {
			continue
		}
		if slices.ContainsFunc(cfgs, func(c Target) bool { return c.Addr == p.cfg.Addr }) {
			changed = append(changed, p.cfg.Addr)
			after[p.cfg.Addr] = p.done
		} else {
			removed = append(removed, p.cfg.Addr)
		}
		if p.stop != nil {
			p.stop()
		}
	}
	for _, p := range fresh {
		if !slices.Contains(changed, p.cfg.Addr) {
			added = append(added, p.cfg.Addr)
		}
		if f.runCtx != nil {
			f.startLoop(p, after[p.cfg.Addr])
		}
	}
	f.parents = next
	if len(added)+len(removed)+len(changed) > 0 {
		f.log.Info("forwarding targets reloaded", "added", added, "removed", removed, "changed", changed, "unchanged", len(next)-len(fresh))
	}
	return nil
}

// startLoop starts p's loop once after is closed (if not nil). The caller
// holds f.mu, and Run runs.
func (f *Forwarder) startLoop(p *parent, after <-chan struct{}) {
	ctx := f.runCtx
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	p.stop, p.done = stop, done
	f.loops.Go(func() {
		defer close(done)
		defer stop()
		if after != nil {
			select {
			case <-after:
			case <-wctx.Done():
				return
			}
		}
		if err := f.runParent(ctx, wctx, p.cfg, p.kick); err != nil {
			f.mu.Lock()
			f.errs = append(f.errs, err)
			f.mu.Unlock()
		}
	})
}

// held is what a parent holds of one site, as far as the forwarder knows.
type held struct {
	full    *site  // the full state it was sent (identity: replaced on each full update)
	gen     uint64 // the generation it holds
	entries uint64 // LFNs sent the last time (lists and deltas)
}

// runParent forwards to p until wctx is done (Run stops, or p is removed).
// It sends on ctx, Run's, so that a removal does not cut an update short.
func (f *Forwarder) runParent(ctx, wctx context.Context, p Target, kick chan chan Result) error {
	conn, err := f.dial(p.Addr)
	if err != nil {
		return fmt.Errorf("forward to %s: %w", p.Addr, err)
	}
	if c, ok := conn.(interface{ Close() error }); ok {
		defer c.Close()
	}
	cl := rlsv1.NewIndexClient(conn)
	log := f.log.With("parent", p.Addr)
	sent := map[string]held{}
	nextFull := time.Now() // a full refresh at once: the parent may have restarted
	backoff := time.Second
	var reply chan Result // an UpdateNow waiting for this round
	for {
		notify := f.x.Notify()
		full := reply != nil || !time.Now().Before(nextFull)
		start := time.Now()
		res := f.forwardAll(ctx, cl, p, sent, full, log)
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
			wait = min(wait, backoff/2+rand.N(backoff))
			backoff = min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
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
	f.mu.Lock()
	parents := f.parents
	var picked []*parent
	var done []<-chan struct{}
	for _, p := range parents {
		if addr == "" || p.cfg.Addr == addr {
			picked = append(picked, p)
			done = append(done, p.done)
		}
	}
	f.mu.Unlock()
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

func (f *Forwarder) views() []view {
	f.x.mu.RLock()
	defer f.x.mu.RUnlock()
	out := make([]view, 0, len(f.x.sites))
	for _, s := range f.x.sites {
		out = append(out, s.view())
	}
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
func (f *Forwarder) forwardAll(ctx context.Context, cl rlsv1.IndexClient, p Target, sent map[string]held, full bool, log *slog.Logger) Result {
	now := time.Now()
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
			h, err = f.sendFull(ctx, cl, p, v, now)
		} else {
			h, err = f.sendOverlay(ctx, cl, p, v, h.gen, now)
			if status.Code(err) == codes.FailedPrecondition {
				h, err = f.sendFull(ctx, cl, p, v, now)
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
func filter(p Target, lfns []string) []string {
	if len(p.Patterns) == 0 {
		return lfns
	}
	return slices.DeleteFunc(lfns, func(l string) bool { return !p.match(l) })
}

// sendFull sends a site's last full state, then its overlay as one delta.
func (f *Forwarder) sendFull(ctx context.Context, cl rlsv1.IndexClient, p Target, v view, now time.Time) (held, error) {
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
		if _, err := SendList(ctx, cl, h, iter.Seq[string](names)); err != nil {
			return held{}, err
		}
	case ModeBloom:
		words, ok := f.x.column(s)
		if !ok {
			return held{}, fmt.Errorf("site %q changed while it was read", s.name)
		}
		h.Bloom, entries = s.bloom, s.bloom.Entries
		if _, err := SendBloom(ctx, cl, h, words); err != nil {
			return held{}, err
		}
	}
	if v.gen == v.base && len(v.added)+len(v.removed) == 0 {
		return held{full: s, gen: v.base, entries: entries}, nil
	}
	h2, err := f.sendOverlay(ctx, cl, p, v, v.base, now)
	h2.entries += entries
	return h2, err
}

// sendOverlay sends the site's changes since its last full update as one
// delta on top of generation base, which the parent holds. Sending the
// whole overlay again is harmless: applying a change twice changes nothing.
func (f *Forwarder) sendOverlay(ctx context.Context, cl rlsv1.IndexClient, p Target, v view, base uint64, now time.Time) (held, error) {
	h := f.header(v, now)
	h.BaseGeneration, h.Generation = base, v.gen
	added, removed := filter(p, slices.Clone(v.added)), filter(p, slices.Clone(v.removed))
	if _, err := SendDelta(ctx, cl, h, added, removed); err != nil {
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
