package mirror

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Route sends the units of series matching Series (a path.Match pattern
// such as "hmi.*") to an authority other than the default.
type Route struct {
	Series    string
	Authority Authority
}

// Config configures an Engine. Store, StoreDir, Locator, Puller and
// Registrar are required; Authority too for tier 1.
type Config struct {
	// Site is this site's name: the index's answers naming it are not
	// peers.
	Site string
	// Tier 1 pulls from peers, then from the authority; tier 2 only from
	// peers, waiting (PNDG) while none holds a unit.
	Tier int
	// StoreDir is where units land, as StoreDir/D<sunum>.
	StoreDir  string
	Locator   Locator
	Authority Authority // the default authority
	Routes    []Route   // per-series authorities, first match wins
	Puller    Puller
	Registrar Registrar
	OnDone    OnDone
	// UserWorkers and BulkWorkers are the concurrent pull calls of each
	// lane (defaults 2 and 16): the user lane never waits for bulk workers.
	UserWorkers, BulkWorkers int
	// MinPerSource and MaxPerSource bound each source's concurrent pull
	// calls, which adapt in between (defaults 2 and 16).
	MinPerSource, MaxPerSource int
	Retry                      RetryPolicy   // default DefaultRetry
	PendingInterval            time.Duration // PNDG re-check; default 10 min
	Batch                      BatchPolicy   // default DefaultBatch
	// Window is the most units a lane holds in memory (claimed, queued or
	// being pulled); default 4·workers·Batch.Units. The rest stay in the
	// store.
	Window int
	Logger *slog.Logger
	// Jitter returns uniform numbers in [0, 1) for the backoff; default
	// math/rand/v2.
	Jitter func() float64
}

func (c *Config) defaults() error {
	switch {
	case c.Locator == nil || c.Puller == nil || c.Registrar == nil:
		return fmt.Errorf("%w: config: Locator, Puller and Registrar are required", ErrInvalid)
	case c.StoreDir == "":
		return fmt.Errorf("%w: config: StoreDir is required", ErrInvalid)
	case c.Tier == 0:
		c.Tier = 1
	}
	if c.Tier != 1 && c.Tier != 2 {
		return fmt.Errorf("%w: config: tier %d (want 1 or 2)", ErrInvalid, c.Tier)
	}
	if c.Tier == 1 && c.Authority == nil {
		return fmt.Errorf("%w: config: a tier-1 mirror needs an authority", ErrInvalid)
	}
	for _, r := range c.Routes {
		if _, err := path.Match(r.Series, ""); err != nil || r.Authority == nil {
			return fmt.Errorf("%w: config: route %q: bad pattern or no authority", ErrInvalid, r.Series)
		}
	}
	c.UserWorkers = cmp0(c.UserWorkers, 2)
	c.BulkWorkers = cmp0(c.BulkWorkers, 16)
	c.MinPerSource = cmp0(c.MinPerSource, 2)
	c.MaxPerSource = max(cmp0(c.MaxPerSource, 16), c.MinPerSource)
	if c.Retry == (RetryPolicy{}) {
		c.Retry = DefaultRetry
	}
	if c.PendingInterval <= 0 {
		c.PendingInterval = 10 * time.Minute
	}
	if c.Batch.Units <= 0 {
		c.Batch.Units = DefaultBatch.Units
	}
	if c.Batch.Bytes <= 0 {
		c.Batch.Bytes = DefaultBatch.Bytes
	}
	if c.Batch.Idle <= 0 {
		c.Batch.Idle = DefaultBatch.Idle
	}
	if c.Batch.Large <= 0 {
		c.Batch.Large = DefaultBatch.Large
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	return nil
}

func cmp0(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Engine mirrors the units its Store holds records of. Its methods are safe
// for concurrent use; Run works the queue until its context ends.
type Engine struct {
	cfg   Config
	store *Store
	log   *slog.Logger
	lanes map[Lane]*lane

	claimMu sync.Mutex
	claimed map[uint64]Lane // units some lane holds in memory

	srcMu   sync.Mutex
	sources map[string]*sourceState

	// cancelMu: Cancel holds it to decide and remove; a call holds it
	// shared while it writes its units QUED and registers their flights.
	cancelMu sync.RWMutex
	flightMu sync.Mutex
	flights  map[uint64]*flight // units of pull calls in flight
}

// New returns an engine over store. The caller keeps owning store.
func New(store *Store, cfg Config) (*Engine, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, store: store, log: cfg.Logger, claimed: map[uint64]Lane{}, sources: map[string]*sourceState{},
		flights: map[uint64]*flight{}}
	e.lanes = map[Lane]*lane{
		LaneUser: newLane(e, LaneUser, cfg.UserWorkers),
		LaneBulk: newLane(e, LaneBulk, cfg.BulkWorkers),
	}
	return e, nil
}

// Store returns the engine's store.
func (e *Engine) Store() *Store { return e.store }

// Dest is where a sunum's unit lands.
func (e *Engine) Dest(sunum uint64) string {
	return filepath.Join(e.cfg.StoreDir, "D"+strconv.FormatUint(sunum, 10))
}

// Run works the queue until ctx ends, then waits for its pulls to stop.
// Records a previous engine left in flight (REDY, BQUED, QUED) are queued
// again first. Units whose pull is interrupted stay QUED and are queued
// again by the next Run.
func (e *Engine) Run(ctx context.Context) error {
	n, err := e.store.requeueInFlight(time.Now())
	if err != nil {
		return err
	}
	if n > 0 {
		e.log.Info("mirror: requeued units left in flight", "units", n)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.runPendingHooks(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("mirror: on-done hooks left pending", "error", err)
		}
	})
	for _, l := range e.lanes {
		wg.Go(func() { l.run(ctx) })
	}
	wg.Wait()
	return nil
}

// Accept records requests durably and idempotently (see Store.Accept) and
// wakes the lanes. A new sunum already placed and registered here becomes
// DONE at once, with nothing pulled.
func (e *Engine) Accept(ctx context.Context, reqs []Request) error {
	now := time.Now()
	added, promoted, err := e.store.Accept(reqs, now)
	if err != nil {
		return err
	}
	if len(added) > 0 {
		if err := e.markPresent(ctx, added, now, false); err != nil {
			e.log.Warn("mirror: presence check at intake", "error", err)
		}
	}
	if len(promoted) > 0 {
		// The bulk lane hands the promoted units it holds to the user
		// lane and then wakes it, so that they travel with the other
		// user requests of this call.
		e.lanes[LaneBulk].post(func(l *lane) { l.promote(promoted) })
	}
	for id, l := range e.lanes {
		if id != LaneUser || len(promoted) == 0 {
			l.poke()
		}
	}
	return nil
}

// markPresent makes DONE those of sunums whose unit is in the store and
// registered in the catalog. A unit this engine registered (a run that
// stopped between the registration and DONE) keeps the source, size and
// file count it was registered with; one put there by hand is from
// "local". With hook set (not at intake), the on-done hook of each is
// marked pending and run.
func (e *Engine) markPresent(ctx context.Context, sunums []uint64, now time.Time, hook bool) error {
	var cand []uint64
	for _, n := range sunums {
		if _, err := os.Stat(e.Dest(n)); err == nil {
			cand = append(cand, n)
		}
	}
	if len(cand) == 0 {
		return nil
	}
	lfns, pfns := make([]string, len(cand)), make([]string, len(cand))
	for i, n := range cand {
		lfns[i], pfns[i] = LFN(n), e.Dest(n)
	}
	regs, err := e.cfg.Registrar.Registered(ctx, lfns, pfns)
	if err != nil {
		return err
	}
	if len(regs) != len(cand) {
		return fmt.Errorf("registrar answered %d of %d", len(regs), len(cand))
	}
	var present []uint64
	reg := make(map[uint64]*Placed, len(cand))
	for i, n := range cand {
		if regs[i] != nil {
			present = append(present, n)
			reg[n] = regs[i]
		}
	}
	if len(present) == 0 {
		return nil
	}
	hook = hook && e.cfg.OnDone != nil
	hooked := map[uint64]bool{}
	out, err := e.store.update(present, now, func(n uint64, r *Record) (*Record, mutation) {
		if r == nil || r.State == DONE {
			return r, keep
		}
		p := reg[n]
		r.State, r.Source, r.Bytes, r.Files, r.Done, r.Streak = DONE, p.Source, p.Bytes, p.Files, now, 0
		r.Reason = "registered here before a restart"
		if r.Source != "" {
			r.addAttempt(Attempt{At: now, Source: r.Source})
		} else {
			r.Source, r.Reason = "local", "present in the store and catalog"
		}
		if hook {
			hooked[n] = true
			return r, writeHook
		}
		return r, write
	})
	if err != nil {
		return err
	}
	var done []*Record
	for i, n := range present {
		if hooked[n] && out[i] != nil {
			done = append(done, out[i])
		}
	}
	e.runHooks(ctx, done)
	return nil
}

// authority returns the authority of a series (nil if none).
func (e *Engine) authority(series string) Authority {
	for _, r := range e.cfg.Routes {
		if ok, _ := path.Match(r.Series, series); ok {
			return r.Authority
		}
	}
	return e.cfg.Authority
}

func (e *Engine) claim(n uint64, l Lane) bool {
	e.claimMu.Lock()
	defer e.claimMu.Unlock()
	if _, ok := e.claimed[n]; ok {
		return false
	}
	e.claimed[n] = l
	return true
}

func (e *Engine) isClaimed(n uint64) bool {
	e.claimMu.Lock()
	defer e.claimMu.Unlock()
	_, ok := e.claimed[n]
	return ok
}

func (e *Engine) release(ns ...uint64) {
	e.claimMu.Lock()
	defer e.claimMu.Unlock()
	for _, n := range ns {
		delete(e.claimed, n)
	}
}

// job is a unit a lane holds in memory, from claim to a final write.
type job struct {
	sunum  uint64
	series string
	size   int64
	cands  []Location // ranked; the authority last (tier 1)
	next   int        // the candidate to try
	auth   string     // the authority's site key, if it is a candidate
	errs   []string   // this round's errors, for the FAIL reason
}

func (j *job) source() Location { return j.cands[j.next] }

// failReason summarises a round that failed at every source.
func (j *job) failReason() string {
	if len(j.errs) == 1 {
		return j.errs[0]
	}
	return fmt.Sprintf("%d sources failed; last: %s", len(j.errs), j.errs[len(j.errs)-1])
}

// errNotFound etc. classify pull errors; see classify.
type errClass uint8

const (
	classNotFound  errClass = iota + 1 // the source does not hold it
	classCorrupt                       // bad bytes: rank the source down
	classTransient                     // timeout, unreachable, refused
	classLocal                         // our side: destination, disk
)

func (c errClass) String() string {
	return [...]string{"", "not-found", "corrupt", "transient", "local"}[c]
}
