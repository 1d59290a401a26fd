package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/backoff"
	"github.com/solar-archive/rls/internal/secure"
)

// Defaults of a Target's timing.
const (
	// DefaultInterval is how often a full update is sent. Globus RLS sends
	// full updates every few hours; a full update of a million LFNs costs
	// here about a second, and deltas carry the changes in between.
	DefaultInterval = 10 * time.Minute
	// DefaultValidity is how long an index keeps a site's state (the
	// Globus RLS default).
	DefaultValidity = 8 * time.Hour
	// DefaultDeltaDelay is how long a sender waits after a catalog write
	// before it sends the changes, to send writes that come together in
	// one delta.
	DefaultDeltaDelay = 200 * time.Millisecond
	// DefaultCallTimeout bounds one update call, scan included.
	DefaultCallTimeout = 5 * time.Minute
)

// ErrUnknownTarget is the error (wrapped) of Sender.UpdateNow for an address
// that is not one of the sender's targets.
var ErrUnknownTarget = errors.New("unknown update target")

// ErrNoTargets is the error (wrapped) of Sender.UpdateNow and
// Forwarder.UpdateNow when they have no targets at all.
var ErrNoTargets = errors.New("no update targets configured")

// errNeedFull says a delta cannot be sent: the index does not hold the
// generation it builds on, or the catalog pruned the changes.
var errNeedFull = errors.New("a full update is needed")

// Target is an index that a Sender sends soft state to, and how. The zero
// value of each field but Addr and Mode is its default.
type Target struct {
	// Addr is the index's gRPC address, host:port.
	Addr string
	// Mode is list or bloom (full updates of that kind), or delta: a full
	// list every Interval and deltas in between.
	Mode Mode
	// Deltas also sends deltas between full updates in list or bloom
	// mode. ModeDelta implies it.
	Deltas bool
	// Interval is the time between full updates (DefaultInterval).
	Interval time.Duration
	// Validity is how long the index keeps each update (DefaultValidity);
	// it must exceed Interval.
	Validity time.Duration
	// DeltaDelay is how long after a catalog write its delta is sent
	// (DefaultDeltaDelay); writes within it travel together.
	DeltaDelay time.Duration
	// FalsePositiveRate is the Bloom filters' target rate
	// (DefaultFalsePositiveRate).
	FalsePositiveRate float64
	// Patterns, when set, restrict what is sent, in every mode, to the LFNs
	// that match one of them; nil sends every LFN. Several indexes can so
	// share the namespace.
	Patterns []*catalog.Pattern
}

func (t Target) withDefaults() Target {
	if t.Interval == 0 {
		t.Interval = DefaultInterval
	}
	if t.Validity == 0 {
		t.Validity = DefaultValidity
	}
	if t.DeltaDelay == 0 {
		t.DeltaDelay = DefaultDeltaDelay
	}
	if t.FalsePositiveRate == 0 {
		t.FalsePositiveRate = DefaultFalsePositiveRate
	}
	return t
}

// Check reports what is wrong with t (after defaults), naming the field, or
// nil.
func (t Target) Check() error {
	t = t.withDefaults()
	switch {
	case t.Addr == "":
		return errors.New("update target: empty address (want host:port)")
	case t.Mode != ModeList && t.Mode != ModeBloom && t.Mode != ModeDelta:
		return fmt.Errorf("update target %s: mode %v is not list, bloom or delta", t.Addr, t.Mode)
	case t.Interval < 0 || t.DeltaDelay < 0:
		return fmt.Errorf("update target %s: negative interval or delta delay", t.Addr)
	case t.Validity < 0 || t.Validity > MaxValidity:
		return fmt.Errorf("update target %s: validity %v is out of range (0, %v]", t.Addr, t.Validity, MaxValidity)
	case t.Validity <= t.Interval:
		return fmt.Errorf("update target %s: validity %v is not longer than the interval %v: the state would expire between updates", t.Addr, t.Validity, t.Interval)
	case !(t.FalsePositiveRate > 0 && t.FalsePositiveRate < 1):
		return fmt.Errorf("update target %s: bloom false-positive rate %v is not in (0, 1)", t.Addr, t.FalsePositiveRate)
	}
	return nil
}

// fullMode is the mode of the target's full updates.
func (t Target) fullMode() Mode {
	if t.Mode == ModeDelta {
		return ModeList
	}
	return t.Mode
}

func (t Target) deltas() bool { return t.Deltas || t.Mode == ModeDelta }

// match reports whether lfn is sent to the target.
func (t Target) match(lfn string) bool {
	if t.Patterns == nil {
		return true
	}
	for _, p := range t.Patterns {
		if p.Match(lfn) {
			return true
		}
	}
	return false
}

// Result is the outcome of an update of one target.
type Result struct {
	Target string
	// Mode is ModeList or ModeBloom for a full update (possibly followed
	// by the deltas pending after it), ModeDelta for deltas alone.
	Mode Mode
	// Generation is what the target holds after the update (on success).
	Generation uint64
	// Entries counts the LFNs sent (for a Bloom filter, those added to it),
	// plus the added and removed LFNs of deltas.
	Entries uint64
	Took    time.Duration
	Err     error
	// Sites counts the sites whose state was sent: 1 from a Sender, every
	// site sent from a Forwarder.
	Sites int
}

// TargetStatus is what a sender knows of one target.
type TargetStatus struct {
	Target
	// Generation is the generation the target acknowledged last; 0 before
	// the first full update succeeded.
	Generation uint64
	// LastFull is when the last successful full update started; LastSuccess
	// when the last update of any kind succeeded.
	LastFull, LastSuccess time.Time
	// LastErr is the error of the last update, nil if it succeeded;
	// Failures counts the updates that failed since the last success.
	LastErr  error
	Failures int
}

// SenderOptions tune a Sender. The zero value is the default.
type SenderOptions struct {
	// Logger receives the sender's messages. Default slog.Default().
	Logger *slog.Logger
	// Dial connects to a target. Default: a plaintext connection of a nil
	// secure.Dialer (rlsd passes its Dialer's DialConn). A connection that
	// is an io.Closer is closed by Sender.Close.
	Dial func(addr string) (grpc.ClientConnInterface, error)
	// Registerer, when set, receives the sender's metrics.
	Registerer prometheus.Registerer
	// CallTimeout bounds one update, scan included (DefaultCallTimeout).
	CallTimeout time.Duration
	// RetryMin and RetryMax bound the backoff after a failed update: it
	// starts at RetryMin (1 s) and doubles up to RetryMax (1 min), with
	// jitter.
	RetryMin, RetryMax time.Duration
}

// Sender sends a catalog's soft state to indexes: a full update (list or
// Bloom filter) every interval, and deltas in between, each target on its
// own schedule with at most one update in flight per target. Its targets
// can be replaced while it runs (SetTargets). It is safe for concurrent use.
type Sender struct {
	cat            Catalog
	site, endpoint string
	incarnation    []byte // the catalog's, sent in every header
	log            *slog.Logger
	dial           func(addr string) (grpc.ClientConnInterface, error)
	callTimeout    time.Duration
	retryMin       time.Duration
	retryMax       time.Duration
	metrics        *senderMetrics // nil without a Registerer

	mu sync.Mutex
	// targets is replaced by SetTargets, never changed in place.
	targets []*target // guarded by mu
	// runCtx is Run's context while Run runs, else nil.
	runCtx context.Context // guarded by mu
	// loops are the targets' runTarget goroutines; Run waits for them.
	loops sync.WaitGroup
	// retiring are the goroutines closing removed targets; Close waits
	// for them.
	retiring sync.WaitGroup
}

type target struct {
	cfg    Target
	client rlsv1.IndexClient
	conn   io.Closer // nil if the connection is not a Closer
	// sem holds the one update in flight.
	sem chan struct{}
	// stop ends the target's loop after its update in flight; done is
	// closed when the loop returned. Both are nil while no loop runs.
	// Guarded by Sender.mu.
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	st      targetState // guarded by mu
	retired bool        // guarded by mu: removed by SetTargets, its connection closed
}

type targetState struct {
	gen       uint64 // acknowledged generation
	haveState bool   // a full update succeeded: gen is a base for deltas
	forceFull bool   // the index lost the base, or the feed was pruned
	// fullStarted is when the last full update (of any outcome) started,
	// and fullResult its result, for UpdateNow calls that wait for it.
	fullStarted           time.Time
	fullResult            Result
	lastFull, lastSuccess time.Time
	lastErr               error
	failures              int
}

// Catalog is what a Sender reads of a local replica catalog: its change
// feed and its counts. Any catalog.Store backend is one.
type Catalog interface {
	catalog.Feed
	catalog.StatsReporter
}

// NewSender returns a sender of cat's state, naming the site and its gRPC
// endpoint (host:port) in every update, to targets. It connects lazily: an
// index that is down fails updates, not NewSender. Call Run to send on
// schedule, and Close when done.
func NewSender(cat Catalog, site, endpoint string, targets []Target, opts SenderOptions) (*Sender, error) {
	if err := checkSite("site", site); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if endpoint == "" {
		return nil, errors.New("sender: empty endpoint (the site's gRPC address, host:port)")
	}
	if err := catalog.ValidateName("endpoint", endpoint); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	inc := cat.Incarnation()
	s := &Sender{
		cat: cat, site: site, endpoint: endpoint, incarnation: inc[:], log: opts.Logger,
		callTimeout: opts.CallTimeout, retryMin: opts.RetryMin, retryMax: opts.RetryMax,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.callTimeout <= 0 {
		s.callTimeout = DefaultCallTimeout
	}
	if s.retryMin <= 0 {
		s.retryMin = time.Second
	}
	if s.retryMax < s.retryMin {
		s.retryMax = max(time.Minute, s.retryMin)
	}
	s.dial = opts.Dial
	if s.dial == nil {
		s.dial = (*secure.Dialer)(nil).DialConn
	}
	cfgs, err := checkTargets(targets)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	for _, c := range cfgs {
		t, err := s.newTarget(c)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("sender: %w", err)
		}
		s.targets = append(s.targets, t)
	}
	if opts.Registerer != nil {
		m, err := newSenderMetrics(opts.Registerer)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("sender: metrics: %w", err)
		}
		s.metrics = m
	}
	return s, nil
}

// checkTargets checks targets (Check, and no address twice) and returns
// them with their defaults.
func checkTargets(targets []Target) ([]Target, error) {
	out := make([]Target, 0, len(targets))
	for _, tc := range targets {
		if err := tc.Check(); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o Target) bool { return o.Addr == tc.Addr }) {
			return nil, fmt.Errorf("update target %s is listed twice", tc.Addr)
		}
		out = append(out, tc.withDefaults())
	}
	return out, nil
}

// sameTarget reports whether a and b (with defaults) are the same
// configuration: a target whose configuration did not change keeps its
// loop, state and connection across SetTargets.
func sameTarget(a, b Target) bool {
	return a.Addr == b.Addr && a.Mode == b.Mode && a.Deltas == b.Deltas && a.Interval == b.Interval &&
		a.Validity == b.Validity && a.DeltaDelay == b.DeltaDelay && a.FalsePositiveRate == b.FalsePositiveRate &&
		(a.Patterns == nil) == (b.Patterns == nil) &&
		slices.EqualFunc(a.Patterns, b.Patterns, func(x, y *catalog.Pattern) bool { return x.String() == y.String() })
}

// newTarget connects (lazily) to the index of c, which is checked.
func (s *Sender) newTarget(c Target) (*target, error) {
	conn, err := s.dial(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("update target %s: %w", c.Addr, err)
	}
	t := &target{cfg: c, client: rlsv1.NewIndexClient(conn), sem: make(chan struct{}, 1)}
	t.conn, _ = conn.(io.Closer)
	return t, nil
}

// SetTargets replaces the sender's targets, or changes nothing and returns
// an error if one of targets is invalid (as NewSender would refuse it). A
// target whose configuration is unchanged keeps its schedule, its state
// (the generation the index acknowledged, on which deltas build) and its
// connection. A removed or changed target's loop stops once the update it
// has in flight is done (an update is never cut short), and its
// connection is then closed; a changed target's new loop starts after the
// old one stopped, so that one update at most is in flight to an index.
// New targets start sending at once if Run runs, else when it does.
// SetTargets does not wait for the removed targets' updates; Close does.
// It logs what changed.
func (s *Sender) SetTargets(targets []Target) error {
	cfgs, err := checkTargets(targets)
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.targets
	next := make([]*target, 0, len(cfgs))
	var fresh []*target
	for _, c := range cfgs {
		if i := slices.IndexFunc(old, func(t *target) bool { return sameTarget(t.cfg, c) }); i >= 0 {
			next = append(next, old[i])
			continue
		}
		t, err := s.newTarget(c)
		if err != nil {
			for _, f := range fresh {
				if f.conn != nil {
					_ = f.conn.Close()
				}
			}
			return fmt.Errorf("sender: %w", err)
		}
		fresh = append(fresh, t)
		next = append(next, t)
	}
	var added, removed, changed []string
	after := map[string]<-chan struct{}{} // a changed target's old loop
	for _, t := range old {
		if slices.Contains(next, t) {
			continue
		}
		if slices.ContainsFunc(cfgs, func(c Target) bool { return c.Addr == t.cfg.Addr }) {
			changed = append(changed, t.cfg.Addr)
			after[t.cfg.Addr] = t.done
		} else {
			removed = append(removed, t.cfg.Addr)
		}
		s.retire(t, !slices.Contains(changed, t.cfg.Addr))
	}
	for _, t := range fresh {
		if !slices.Contains(changed, t.cfg.Addr) {
			added = append(added, t.cfg.Addr)
		}
		if s.runCtx != nil {
			s.startLoop(t, after[t.cfg.Addr])
		}
	}
	s.targets = next
	if len(added)+len(removed)+len(changed) > 0 {
		s.log.Info("update targets reloaded", "added", added, "removed", removed, "changed", changed, "unchanged", len(next)-len(fresh))
	}
	return nil
}

// startLoop starts t's schedule, after the channel after is closed (if not
// nil). The caller holds s.mu, and Run runs.
func (s *Sender) startLoop(t *target, after <-chan struct{}) {
	ctx := s.runCtx
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	t.stop, t.done = stop, done
	s.loops.Go(func() {
		defer close(done)
		defer stop()
		if after != nil {
			select {
			case <-after:
			case <-wctx.Done():
				return
			}
		}
		s.runTarget(ctx, wctx, t)
	})
}

// retire stops t's loop and, once its update in flight (scheduled or
// UpdateNow's) is done, closes its connection; forget drops its metrics.
// The caller holds s.mu.
func (s *Sender) retire(t *target, forget bool) {
	done := t.done
	if t.stop != nil {
		t.stop()
	}
	s.retiring.Go(func() {
		if done != nil {
			<-done
		}
		t.sem <- struct{}{}
		defer func() { <-t.sem }()
		t.mu.Lock()
		t.retired = true
		t.mu.Unlock()
		if t.conn != nil {
			if err := t.conn.Close(); err != nil {
				s.log.Debug("closing a removed update target's connection", "target", t.cfg.Addr, "error", err)
			}
		}
		if forget && s.metrics != nil {
			s.metrics.lastSuccess.DeleteLabelValues(t.cfg.Addr)
		}
	})
}

// Close closes the connections to the targets, after those of removed
// targets are closed. Call it after Run returned and no UpdateNow is in
// flight.
func (s *Sender) Close() error {
	s.retiring.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, t := range s.targets {
		if t.conn != nil {
			errs = append(errs, t.conn.Close())
		}
	}
	return errors.Join(errs...)
}

// current returns the targets.
func (s *Sender) current() []*target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.targets
}

// Targets returns the status of every target, in configuration order.
func (s *Sender) Targets() []TargetStatus {
	targets := s.current()
	out := make([]TargetStatus, 0, len(targets))
	for _, t := range targets {
		t.mu.Lock()
		out = append(out, TargetStatus{
			Target: t.cfg, Generation: t.st.gen,
			LastFull: t.st.lastFull, LastSuccess: t.st.lastSuccess,
			LastErr: t.st.lastErr, Failures: t.st.failures,
		})
		t.mu.Unlock()
	}
	return out
}

// Run sends updates on schedule, one goroutine per target (those of
// SetTargets included), until ctx is done; it returns ctx's error after
// every update in flight stopped. A failed update is logged and retried
// with backoff; Run does not return for it. Run runs once.
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	for _, t := range s.targets {
		s.startLoop(t, nil)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.runCtx = nil // SetTargets starts no loop from now on
	s.mu.Unlock()
	s.loops.Wait()
	return ctx.Err()
}

// UpdateNow sends a full update to the target at addr, or to every target
// if addr is "", followed by the deltas pending after it (for targets that
// take deltas), and returns when all are done, one Result per target in
// configuration order. A failed target is reported in its Result. If an
// update of a target is in flight, UpdateNow waits for it and then sends
// its own, unless a full update started after UpdateNow was called: then
// that one's result is the answer. An unknown addr fails with an error
// wrapping ErrUnknownTarget.
func (s *Sender) UpdateNow(ctx context.Context, addr string) ([]Result, error) {
	ts := s.current()
	if len(ts) == 0 {
		return nil, ErrNoTargets
	}
	if addr != "" {
		i := slices.IndexFunc(ts, func(t *target) bool { return t.cfg.Addr == addr })
		if i < 0 {
			addrs := make([]string, len(ts))
			for i, t := range ts {
				addrs[i] = t.cfg.Addr
			}
			return nil, fmt.Errorf("%w %q (targets: %s)", ErrUnknownTarget, addr, strings.Join(addrs, ", "))
		}
		ts = ts[i : i+1]
	}
	out := make([]Result, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { out[i] = s.updateNow(ctx, t) })
	}
	wg.Wait()
	return out, nil
}

func (s *Sender) updateNow(ctx context.Context, t *target) Result {
	asked := time.Now()
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return Result{Target: t.cfg.Addr, Mode: t.cfg.fullMode(), Err: ctx.Err()}
	}
	defer func() { <-t.sem }()
	t.mu.Lock()
	started, res, retired := t.st.fullStarted, t.st.fullResult, t.retired
	t.mu.Unlock()
	if retired {
		return Result{Target: t.cfg.Addr, Mode: t.cfg.fullMode(), Err: fmt.Errorf("%w %q: removed by a reload", ErrUnknownTarget, t.cfg.Addr)}
	}
	if started.After(asked) {
		return res
	}
	res = s.full(ctx, t)
	if res.Err != nil || !t.cfg.deltas() {
		return res
	}
	d := s.delta(ctx, t)
	res.Took += d.Took
	res.Entries += d.Entries
	if d.Err != nil && !errors.Is(d.Err, errNeedFull) {
		res.Err = d.Err
	}
	if d.Generation > res.Generation {
		res.Generation = d.Generation
	}
	return res
}

// runTarget is the schedule of one target: a full update when one is due,
// else deltas as the catalog changes (if the target takes them), with
// backoff after failures. It waits on wctx, which ends when Run stops or
// the target is removed, and sends on ctx, Run's, so that a removal does
// not cut an update short.
func (s *Sender) runTarget(ctx, wctx context.Context, t *target) {
	log := s.log.With("target", t.cfg.Addr)
	failures := 0
	for wctx.Err() == nil {
		t.mu.Lock()
		fullAt := t.st.lastFull.Add(t.cfg.Interval)
		due := t.st.forceFull || !t.st.haveState || !time.Now().Before(fullAt)
		gen := t.st.gen
		t.mu.Unlock()

		var res Result
		switch {
		case due:
			res = s.locked(ctx, wctx, t, s.full)
		case t.cfg.deltas():
			dctx, cancel := context.WithDeadline(wctx, fullAt)
			err := s.cat.WaitChanges(dctx, gen+1)
			cancel()
			if err != nil {
				if wctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
					continue // stopping, or a full update is due
				}
				res.Err = fmt.Errorf("waiting for catalog changes: %w", err)
				break
			}
			if !sleep(wctx, t.cfg.DeltaDelay) {
				return
			}
			res = s.locked(ctx, wctx, t, s.delta)
		default:
			if !sleep(wctx, time.Until(fullAt)) {
				return
			}
			continue
		}
		switch {
		case res.Err == nil:
			if failures > 0 {
				log.Info("index update succeeded again", "mode", res.Mode, "generation", res.Generation, "after_failures", failures)
			}
			failures = 0
		case errors.Is(res.Err, errNeedFull):
			log.Info("sending a full update", "reason", res.Err)
		case wctx.Err() != nil:
			return
		default:
			failures++
			wait := backoff.Delay(s.retryMin, s.retryMax, failures)
			log.Warn("index update failed; retrying", "mode", res.Mode, "error", res.Err, "failures", failures, "retry_in", wait.Round(time.Millisecond))
			if !sleep(wctx, wait) {
				return
			}
		}
	}
}

// locked runs update on ctx with the target's one update slot held, which
// it waits for on wctx.
func (s *Sender) locked(ctx, wctx context.Context, t *target, update func(context.Context, *target) Result) Result {
	select {
	case t.sem <- struct{}{}:
	case <-wctx.Done():
		return Result{Target: t.cfg.Addr, Err: wctx.Err()}
	}
	defer func() { <-t.sem }()
	return update(ctx, t)
}

// record notes an update's outcome in the target's status and the metrics.
// The caller holds t.mu.
func (s *Sender) record(t *target, res Result) {
	now := time.Now()
	t.st.lastErr = res.Err
	if res.Err != nil {
		t.st.failures++
	} else {
		t.st.failures = 0
		t.st.lastSuccess = now
	}
	if s.metrics != nil {
		s.metrics.observe(t.cfg.Addr, res, now)
	}
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// senderMetrics are the sender's Prometheus metrics:
//
//	rls_index_updates_sent_total{target,mode,result}       counter (result: ok, error)
//	rls_index_update_entries_sent_total{target,mode}       counter
//	rls_index_update_last_success_timestamp_seconds{target} gauge
type senderMetrics struct {
	updates     *prometheus.CounterVec
	entries     *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
}

func newSenderMetrics(reg prometheus.Registerer) (*senderMetrics, error) {
	m := &senderMetrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_index_updates_sent_total",
			Help: "Soft-state updates sent to indexes, by target, mode and result (ok, error).",
		}, []string{"target", "mode", "result"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rls_index_update_entries_sent_total",
			Help: "LFNs sent to indexes in successful updates (list names, names added to Bloom filters, delta additions and removals), by target and mode.",
		}, []string{"target", "mode"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rls_index_update_last_success_timestamp_seconds",
			Help: "When the last successful update of a target ended, in seconds since the epoch.",
		}, []string{"target"}),
	}
	for _, c := range []prometheus.Collector{m.updates, m.entries, m.lastSuccess} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *senderMetrics) observe(target string, res Result, now time.Time) {
	if res.Err != nil {
		m.updates.WithLabelValues(target, res.Mode.String(), "error").Inc()
		return
	}
	m.updates.WithLabelValues(target, res.Mode.String(), "ok").Inc()
	m.entries.WithLabelValues(target, res.Mode.String()).Add(float64(res.Entries))
	m.lastSuccess.WithLabelValues(target).Set(float64(now.UnixNano()) / 1e9)
}
