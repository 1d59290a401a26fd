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

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/backoff"
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
func (t Target) match(lfn string) bool { return matchAny(t.Patterns, lfn) }

// matchAny reports whether lfn matches one of ps, or ps is nil.
func matchAny(ps []*catalog.Pattern, lfn string) bool {
	if ps == nil {
		return true
	}
	for _, p := range ps {
		if p.Match(lfn) {
			return true
		}
	}
	return false
}

// samePatterns reports whether a and b are the same patterns.
func samePatterns(a, b []*catalog.Pattern) bool {
	return (a == nil) == (b == nil) &&
		slices.EqualFunc(a, b, func(x, y *catalog.Pattern) bool { return x.String() == y.String() })
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
	// Dialer connects to the targets (required). A Sink that is an
	// io.Closer is closed when its target is removed, and by Close.
	Dialer Dialer
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
	cat            Feed
	site, endpoint string
	log            *slog.Logger
	dialer         Dialer
	callTimeout    time.Duration
	retryMin       time.Duration
	retryMax       time.Duration
	metrics        *senderMetrics // nil without a Registerer

	set loopSet[*target, Target]
	// retiring are the goroutines closing removed targets; Close waits
	// for them.
	retiring sync.WaitGroup
}

type target struct {
	cfg  Target
	sink Sink
	// sem holds the one update in flight.
	sem chan struct{}
	ctl loopCtl

	mu      sync.Mutex
	st      targetState // guarded by mu
	retired bool        // guarded by mu: removed by SetTargets, its sink closed
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

// incarnation is the catalog's, sent in every header. It is read at each
// update, not once at NewSender: a shared catalog that connects in the
// background learns it only once connected.
func (s *Sender) incarnation() []byte {
	inc := s.cat.Incarnation()
	return inc[:]
}

// NewSender returns a sender of cat's state, naming the site and its gRPC
// endpoint (host:port) in every update, to targets. It connects lazily: an
// index that is down fails updates, not NewSender. Call Run to send on
// schedule, and Close when done.
func NewSender(cat Feed, site, endpoint string, targets []Target, opts SenderOptions) (*Sender, error) {
	if err := checkSite("site", site); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if endpoint == "" {
		return nil, errors.New("sender: empty endpoint (the site's gRPC address, host:port)")
	}
	if err := catalog.ValidateName("endpoint", endpoint); err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	if opts.Dialer == nil {
		return nil, errors.New("sender: no Dialer")
	}
	s := &Sender{
		cat: cat, site: site, endpoint: endpoint, log: opts.Logger, dialer: opts.Dialer,
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
	s.set = loopSet[*target, Target]{
		what: "update targets", log: s.log,
		cfg:  func(t *target) Target { return t.cfg },
		addr: func(c Target) string { return c.Addr },
		same: sameTarget,
		ctl:  func(t *target) *loopCtl { return &t.ctl },
		loop: func(ctx, wctx context.Context, t *target) error { s.runTarget(ctx, wctx, t); return nil },
	}
	if err := s.SetTargets(targets); err != nil {
		return nil, err
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
		samePatterns(a.Patterns, b.Patterns)
}

// newTarget connects (lazily) to the index of c, which is checked.
func (s *Sender) newTarget(c Target) (*target, error) {
	sink, err := s.dialer.Index(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("update target %s: %w", c.Addr, err)
	}
	return &target{cfg: c, sink: sink, sem: make(chan struct{}, 1)}, nil
}

// closeSink closes t's sink if it is an io.Closer.
func closeSink(sink Sink) error {
	if c, ok := sink.(io.Closer); ok {
		return c.Close()
	}
	return nil
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
	err = s.set.replace(cfgs, s.newTarget,
		func(t *target) { _ = closeSink(t.sink) },
		func(t *target, changed bool) { s.retire(t, !changed) })
	if err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	return nil
}

// retire closes t's sink once its update in flight (scheduled or
// UpdateNow's) is done; forget drops its metrics. Its loop was stopped.
func (s *Sender) retire(t *target, forget bool) {
	done := t.ctl.done
	s.retiring.Go(func() {
		if done != nil {
			<-done
		}
		t.sem <- struct{}{}
		defer func() { <-t.sem }()
		t.mu.Lock()
		t.retired = true
		t.mu.Unlock()
		if err := closeSink(t.sink); err != nil {
			s.log.Debug("closing a removed update target's connection", "target", t.cfg.Addr, "error", err)
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
	var errs []error
	for _, t := range s.set.current() {
		errs = append(errs, closeSink(t.sink))
	}
	return errors.Join(errs...)
}

// Targets returns the status of every target, in configuration order.
func (s *Sender) Targets() []TargetStatus {
	targets := s.set.current()
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
	_ = s.set.run(ctx) // the loops return no error
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
	ts := s.set.current()
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
