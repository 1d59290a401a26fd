package mirror

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// lane is one priority lane's loop: it claims due units from the store a
// window at a time, locates them, groups them by source into batches and
// hands full (or idle) batches to its workers. The loop goroutine owns
// every field but the mailbox.
type lane struct {
	e       *Engine
	id      Lane
	workers int
	running int
	held    int               // units claimed by this lane
	groups  map[string]*group // BQUED units by source site
	// drained: the last look at the queue found nothing more due, with
	// room in the window to claim it. No unit is about to join a group,
	// so a group that is not full goes at once to a free worker rather
	// than wait out the batch's idle time.
	drained bool

	mu    sync.Mutex
	inbox []func(*lane)
	wake  chan struct{}
}

// group is the units waiting for one source.
type group struct {
	src   Location
	jobs  []*job
	bytes int64
	last  time.Time // when a unit last joined
}

func newLane(e *Engine, id Lane, workers int) *lane {
	return &lane{e: e, id: id, workers: workers, groups: map[string]*group{}, wake: make(chan struct{}, 1)}
}

// post runs fn in the lane's loop.
func (l *lane) post(fn func(*lane)) {
	l.mu.Lock()
	l.inbox = append(l.inbox, fn)
	l.mu.Unlock()
	l.poke()
}

func (l *lane) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *lane) window() int {
	if l.e.cfg.Window > 0 {
		return l.e.cfg.Window
	}
	return 4 * l.workers * l.e.cfg.Batch.Units
}

func (l *lane) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		l.mu.Lock()
		inbox := l.inbox
		l.inbox = nil
		l.mu.Unlock()
		for _, fn := range inbox {
			fn(l)
		}
		now := time.Now()
		var next time.Time
		l.drained = false
		if free := l.window() - l.held; free > 0 {
			ids, due, err := l.e.store.due(l.id, now, min(free, 4096), l.e.isClaimed)
			if err != nil {
				l.e.log.Error("mirror: read queue", "lane", l.id.String(), "error", err)
				due = now.Add(time.Second)
			}
			next = due
			if len(ids) > 0 {
				l.locate(ctx, ids, now)
				// Keep the workers busy while claiming more: on a tier-2
				// site most due units are PNDG ones re-checked, and
				// locating them all first would leave the located ones
				// waiting behind them.
				l.dispatch(ctx, &wg, time.Now())
				continue // claim more while there is room
			}
			l.drained = err == nil
		}
		if d := l.dispatch(ctx, &wg, now); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
		case <-l.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// locate claims ids, locates them with one batched call, and moves each to
// its next state: DONE (present here), REDY then BQUED (sources found),
// PNDG (tier 2, no peer yet), INVD (the authority has no such sunum) or
// FAIL.
func (l *lane) locate(ctx context.Context, ids []uint64, now time.Time) {
	e := l.e
	var mine []uint64
	for _, n := range ids {
		if e.claim(n, l.id) {
			mine = append(mine, n)
		}
	}
	recs, err := e.store.Get(mine)
	if err != nil {
		e.log.Error("mirror: read records", "error", err)
		e.release(mine...)
		return
	}
	var live []*Record
	for _, r := range recs {
		if r != nil && r.State.scheduled() {
			live = append(live, r)
		} else if r != nil {
			e.release(r.Sunum)
		}
	}
	if len(live) == 0 {
		return
	}
	sunums := make([]uint64, len(live))
	var check []uint64
	for i, r := range live {
		sunums[i] = r.Sunum
		if r.State != PNDG {
			check = append(check, r.Sunum)
		}
	}
	// Present already (placed and registered by an engine that stopped
	// before it wrote DONE, or put there by hand)? A PNDG unit was never
	// in flight: it can only have been put there by hand, and is looked
	// for only once the index names this site as its holder (below), so
	// that re-checking thousands of them costs no stat of each.
	if err := e.markPresent(ctx, check, now, true); err != nil {
		e.log.Warn("mirror: presence check", "error", err)
	}
	lfns := make([]string, len(live))
	for i, r := range live {
		lfns[i] = LFN(r.Sunum)
	}
	locs, lerr := e.cfg.Locator.Locate(ctx, lfns)
	if ctx.Err() != nil {
		e.release(sunums...)
		return
	}
	if lerr == nil && len(locs) != len(lfns) {
		lerr = fmt.Errorf("locator answered %d of %d", len(locs), len(lfns))
	}
	if lerr == nil {
		var here []uint64
		for i, r := range live {
			if r.State == PNDG && slices.ContainsFunc(locs[i], func(c Location) bool { return c.Site == e.cfg.Site }) {
				here = append(here, r.Sunum)
			}
		}
		if err := e.markPresent(ctx, here, now, true); err != nil {
			e.log.Warn("mirror: presence check", "error", err)
		}
	}
	jobs := make(map[uint64]*job, len(live))
	outcome := make(map[uint64]func(r *Record) *Record, len(live))
	authPFN := map[uint64]string{}
	var needAuth []*Record
	for i, r := range live {
		if lerr != nil {
			outcome[r.Sunum] = l.failLocate(lerr, now)
			continue
		}
		j := &job{sunum: r.Sunum, series: r.Series, size: r.Bytes}
		auth := e.authority(r.Series)
		atAuth := ""
		for _, c := range locs[i] {
			if auth != nil && c.Endpoint == auth.Source().Endpoint {
				// The authority (asked last, below): the index verified
				// it in the authority's catalog, which is all Lookup
				// would say.
				atAuth = cmpOr(atAuth, c.PFN)
				continue
			}
			if c.Site == e.cfg.Site {
				continue // ourselves
			}
			j.cands = append(j.cands, c)
			j.size = max(j.size, c.Size)
		}
		e.rank(j.cands)
		jobs[r.Sunum] = j
		switch {
		case auth == nil || e.cfg.Tier == 2 && len(j.cands) > 0:
		case atAuth != "":
			authPFN[r.Sunum] = atAuth
		default:
			needAuth = append(needAuth, r)
		}
	}
	authErr := e.askAuthorities(ctx, needAuth, authPFN)
	if ctx.Err() != nil {
		e.release(sunums...)
		return
	}
	for _, r := range live {
		j := jobs[r.Sunum]
		if j == nil {
			continue
		}
		pfn, asked := authPFN[r.Sunum]
		aerr := authErr[r.Sunum]
		switch {
		case asked && pfn == "" && len(j.cands) == 0:
			outcome[r.Sunum] = setState(INVD, "the authority's catalog has no such sunum", time.Time{})
			delete(jobs, r.Sunum)
			continue
		case e.cfg.Tier == 1 && asked && pfn != "":
			a := e.authority(r.Series).Source()
			j.cands = append(j.cands, Location{Source: a, PFN: pfn})
			j.auth = a.Site
		}
		if len(j.cands) > 0 {
			outcome[r.Sunum] = setState(REDY, fmt.Sprintf("%d sources", len(j.cands)), time.Time{})
			continue
		}
		delete(jobs, r.Sunum)
		switch {
		case e.cfg.Tier == 2:
			outcome[r.Sunum] = setState(PNDG, "no peer holds it yet", now.Add(e.cfg.PendingInterval))
		case aerr != nil:
			outcome[r.Sunum] = l.failLocate(aerr, now)
		default:
			outcome[r.Sunum] = l.failLocate(fmt.Errorf("no source"), now)
		}
	}
	written, err := e.store.update(sunums, now, func(n uint64, r *Record) (*Record, mutation) {
		fn := outcome[n]
		if r == nil || fn == nil || !r.State.scheduled() {
			return r, keep
		}
		return fn(r), write
	})
	if err != nil {
		e.log.Error("mirror: write located", "error", err)
		e.release(sunums...)
		return
	}
	var ready []*job
	for i, n := range sunums {
		if j := jobs[n]; j != nil && written[i] != nil && written[i].State == REDY {
			ready = append(ready, j)
			continue
		}
		e.release(n)
	}
	l.held += len(ready)
	l.enqueue(ready, now)
}

// askAuthorities asks each authority about its units of recs, in one
// call each, and adds the PFN of each (or "" if its catalog has no such
// sunum) to pfns. It returns the error of each unit it has no answer for.
func (e *Engine) askAuthorities(ctx context.Context, recs []*Record, pfns map[uint64]string) map[uint64]error {
	byAuth := map[Authority][]*Record{}
	for _, r := range recs {
		a := e.authority(r.Series)
		byAuth[a] = append(byAuth[a], r)
	}
	errs := map[uint64]error{}
	for a, rs := range byAuth {
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = LFN(r.Sunum)
		}
		got, err := a.Lookup(ctx, names)
		if err == nil && len(got) != len(names) {
			err = fmt.Errorf("authority answered %d of %d", len(got), len(names))
		}
		for i, r := range rs {
			if err != nil {
				errs[r.Sunum] = fmt.Errorf("authority %s: %w", a.Source().Site, err)
			} else {
				pfns[r.Sunum] = got[i]
			}
		}
	}
	return errs
}

// failLocate is the outcome of a unit that could not be located: FAIL with
// backoff, or, for a PNDG unit, PNDG again after the interval.
func (l *lane) failLocate(err error, now time.Time) func(*Record) *Record {
	return func(r *Record) *Record {
		if r.State == PNDG {
			r.Due, r.Reason = now.Add(l.e.cfg.PendingInterval), "no answer: "+err.Error()
			return r
		}
		return l.e.failed(r, "locate: "+err.Error(), now)
	}
}

// failed makes r FAIL after a failed round, due after the backoff.
func (e *Engine) failed(r *Record, reason string, now time.Time) *Record {
	r.Streak++
	r.State, r.Reason = FAIL, reason
	r.Due = now.Add(e.cfg.Retry.Backoff(int(r.Streak), e.cfg.Jitter()))
	return r
}

func setState(s State, reason string, due time.Time) func(*Record) *Record {
	return func(r *Record) *Record {
		r.State, r.Reason, r.Due = s, reason, due
		return r
	}
}

// enqueue writes jobs BQUED and adds them to the groups of their sources.
// A job with several peers joins the least loaded of the good ones, so that
// units that several peers hold are pulled from several at once.
func (l *lane) enqueue(jobs []*job, now time.Time) {
	if len(jobs) == 0 {
		return
	}
	byNum := make(map[uint64]*job, len(jobs))
	ns := make([]uint64, len(jobs))
	for i, j := range jobs {
		ns[i], byNum[j.sunum] = j.sunum, j
	}
	written, err := l.e.store.update(ns, now, func(n uint64, r *Record) (*Record, mutation) {
		if r == nil {
			return r, keep
		}
		r.State, r.Reason = BQUED, "waiting for "+byNum[n].source().Site
		return r, write
	})
	if err != nil {
		l.e.log.Error("mirror: write queued", "error", err)
	}
	for i, j := range jobs {
		if err != nil || written[i] == nil {
			l.drop(j)
			continue
		}
		l.spread(j)
		src := j.source()
		g := l.groups[src.Site]
		if g == nil {
			g = &group{src: src}
			l.groups[src.Site] = g
		}
		g.jobs = append(g.jobs, j)
		g.bytes += j.size
		g.last = now
	}
}

// spread moves j's next candidate to the peer (among those ranked within a
// factor of two of it) with the fewest units waiting.
func (l *lane) spread(j *job) {
	best := j.next
	load := func(i int) int {
		if g := l.groups[j.cands[i].Site]; g != nil {
			return len(g.jobs)
		}
		return 0
	}
	for i := j.next + 1; i < len(j.cands) && i < j.next+4; i++ {
		if j.cands[i].Site == j.auth {
			break
		}
		if load(i)+l.e.cfg.Batch.Units <= load(best) {
			best = i
		}
	}
	if best != j.next {
		c := j.cands[best]
		copy(j.cands[j.next+1:best+1], j.cands[j.next:best])
		j.cands[j.next] = c
	}
}

func (l *lane) drop(j *job) {
	l.held--
	l.e.release(j.sunum)
}

// promote hands the jobs of sunums that wait in this lane's groups to the
// user lane (their records are in the user lane already), and wakes it.
func (l *lane) promote(sunums []uint64) {
	set := make(map[uint64]bool, len(sunums))
	for _, n := range sunums {
		set[n] = true
	}
	var moved []*job
	for _, g := range l.groups {
		g.jobs = slices.DeleteFunc(g.jobs, func(j *job) bool {
			if set[j.sunum] {
				moved = append(moved, j)
				g.bytes -= j.size
				return true
			}
			return false
		})
	}
	if len(moved) == 0 {
		l.e.lanes[LaneUser].poke()
		return
	}
	l.held -= len(moved)
	l.e.lanes[LaneUser].post(func(u *lane) {
		u.held += len(moved)
		for _, j := range moved {
			g := u.groups[j.source().Site]
			if g == nil {
				g = &group{src: j.source()}
				u.groups[j.source().Site] = g
			}
			g.jobs = append(g.jobs, j)
			g.bytes += j.size
		}
	})
}

// dispatch starts a worker for each group that is full, holds a large unit
// or waited Idle, or, when the lane is drained (no unit is about to
// join), for any group, while workers and source slots are free: batches
// fill while every worker is busy, and a worker never waits for units
// that are not coming. It returns when the next idle group is due (zero
// if none).
func (l *lane) dispatch(ctx context.Context, wg *sync.WaitGroup, now time.Time) time.Time {
	b := l.e.cfg.Batch
	var next time.Time
	sites := make([]string, 0, len(l.groups))
	for s := range l.groups {
		sites = append(sites, s)
	}
	slices.Sort(sites)
	for _, site := range sites {
		g := l.groups[site]
		for len(g.jobs) > 0 && l.running < l.workers {
			n, bytes, large := 0, int64(0), false
			for _, j := range g.jobs {
				if j.size >= b.Large {
					if n == 0 {
						n, large = 1, true
					}
					break
				}
				if n == b.Units || (n > 0 && bytes+j.size > b.Bytes) {
					break
				}
				n++
				bytes += j.size
			}
			if n == 0 {
				n = 1
			}
			full := large || n == b.Units || n < len(g.jobs) || bytes >= b.Bytes || l.drained
			if idle := g.last.Add(b.Idle); !full && now.Before(idle) {
				if next.IsZero() || idle.Before(next) {
					next = idle
				}
				break
			}
			if !l.e.acquire(site) {
				break // a finishing call pokes the lane
			}
			batch := slices.Clone(g.jobs[:n])
			g.jobs = slices.Delete(g.jobs, 0, n)
			g.bytes -= bytes
			l.running++
			wg.Go(func() {
				retry := l.e.work(ctx, g.src, batch)
				l.post(func(l *lane) {
					l.running--
					l.held -= len(batch) - len(retry)
					l.regroup(retry)
				})
				for _, o := range l.e.lanes {
					o.poke() // a source slot is free
				}
			})
		}
		if len(g.jobs) == 0 {
			delete(l.groups, site)
		}
	}
	return next
}

// regroup adds jobs, already written BQUED for their next source, to the
// groups.
func (l *lane) regroup(jobs []*job) {
	now := time.Now()
	for _, j := range jobs {
		src := j.source()
		g := l.groups[src.Site]
		if g == nil {
			g = &group{src: src}
			l.groups[src.Site] = g
		}
		g.jobs = append(g.jobs, j)
		g.bytes += j.size
		g.last = now.Add(-l.e.cfg.Batch.Idle) // a retry does not wait
	}
}
