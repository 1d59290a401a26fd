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
// parent holds, and every Interval every site is sent in full.
type Forwarder struct {
	x       *Index
	self    string
	parents []Target
	log     *slog.Logger
	dial    func(addr string) (grpc.ClientConnInterface, error)
	kicks   []chan chan Result // per parent: UpdateNow's requests
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
	ps := slices.Clone(parents)
	for i := range ps {
		ps[i] = ps[i].withDefaults()
	}
	kicks := make([]chan chan Result, len(ps))
	for i := range kicks {
		kicks[i] = make(chan chan Result)
	}
	return &Forwarder{x: x, self: self, parents: ps, log: log, dial: dial, kicks: kicks}
}

// Run forwards until ctx is done, one goroutine per parent.
func (f *Forwarder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(f.parents))
	for i, p := range f.parents {
		wg.Go(func() { errs[i] = f.runParent(ctx, p, f.kicks[i]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// held is what a parent holds of one site, as far as the forwarder knows.
type held struct {
	full    *site  // the full state it was sent (identity: replaced on each full update)
	gen     uint64 // the generation it holds
	entries uint64 // LFNs sent the last time (lists and deltas)
}

func (f *Forwarder) runParent(ctx context.Context, p Target, kick chan chan Result) error {
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
		if ctx.Err() != nil {
			return nil
		}
		if reply != nil {
			res.Target, res.Took = p.Addr, time.Since(start)
			reply <- res
			reply = nil
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
		case <-ctx.Done():
			return nil
		case reply = <-kick:
		case <-time.After(max(wait, 0)):
		case <-notify:
			select { // let a burst of changes gather
			case <-ctx.Done():
				return nil
			case reply = <-kick:
			case <-time.After(p.DeltaDelay):
			}
		}
	}
}

// UpdateNow sends every site in full to the parent at addr, or to all
// parents if addr is "", and waits for the results. It needs Run to be
// running. An unknown parent is an error wrapping ErrUnknownTarget.
func (f *Forwarder) UpdateNow(ctx context.Context, addr string) ([]Result, error) {
	var picked []int
	for i, p := range f.parents {
		if addr == "" || p.Addr == addr {
			picked = append(picked, i)
		}
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("%w: %s (this index forwards to %d parents)", ErrUnknownTarget, addr, len(f.parents))
	}
	out := make([]Result, len(picked))
	for j, i := range picked {
		reply := make(chan Result, 1)
		select {
		case f.kicks[i] <- reply:
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
