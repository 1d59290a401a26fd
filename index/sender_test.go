package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/solar-archive/rls/catalog"
)

// startRecorder returns a recorder standing for the index at a new address.
func startRecorder(t *testing.T, d *dialer) (*recorder, string) {
	t.Helper()
	r := newRecorder()
	d.mu.Lock()
	addr := fmt.Sprintf("index%d:7600", len(d.sinks)+1)
	d.sinks[addr] = r
	d.mu.Unlock()
	return r, addr
}

func newSender(t *testing.T, feed Feed, d Dialer, targets ...Target) *Sender {
	t.Helper()
	s, err := NewSender(feed, "jsoc", "jsoc.example:7600", targets, SenderOptions{
		Logger: quietLogger(), Dialer: d, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func create(t *testing.T, cat *catalog.Catalog, lfns ...string) {
	t.Helper()
	for _, l := range lfns {
		if _, err := cat.Create(t.Context(), l, "/SUM/D"+l); err != nil {
			t.Fatal(err)
		}
	}
}

// memFeed is a Feed of a fixed list of LFNs at generation 1 that never
// changes: the sender's own goroutines, and nothing of a catalog's, for
// tests in a synctest bubble.
type memFeed []string

func (f memFeed) Incarnation() [catalog.IncarnationLen]byte { return [catalog.IncarnationLen]byte{1} }
func (f memFeed) Stats(context.Context) (catalog.Stats, error) {
	return catalog.Stats{LFNs: uint64(len(f)), Seq: 1}, nil
}
func (f memFeed) LastSeq(context.Context) (uint64, error) { return 1, nil }
func (f memFeed) Changes(context.Context, uint64, int) ([]catalog.Change, error) {
	return nil, nil
}
func (f memFeed) WaitChanges(ctx context.Context, _ uint64) error {
	<-ctx.Done()
	return ctx.Err()
}
func (f memFeed) ForEachLFN(_ context.Context, fn func(string) error) (uint64, error) {
	for _, l := range f {
		if err := fn(l); err != nil {
			return 0, err
		}
	}
	return 1, nil
}

// advance moves the clock of the test's synctest bubble on by d, and
// returns once every goroutine in the bubble waits: a step of the fake
// clock, which passes only when nothing else can happen, never a wait of
// real time.
func advance(d time.Duration) {
	time.Sleep(d) // in the bubble: returns when the fake clock reaches d
	synctest.Wait()
}

// run runs s until the test ends.
func run(t *testing.T, s *Sender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

func patterns(t *testing.T, ps ...string) []*catalog.Pattern {
	t.Helper()
	var out []*catalog.Pattern
	for _, p := range ps {
		c, err := catalog.CompilePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func updateNow(t *testing.T, s *Sender, addr string) Result {
	t.Helper()
	rs, err := s.UpdateNow(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("UpdateNow = %+v, want one success", rs)
	}
	return rs[0]
}

func TestSenderList(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	create(t, cat, "3", "1", "2")
	if _, err := cat.Add(t.Context(), "1", "/other/D1"); err != nil {
		t.Fatal(err)
	}
	rec, addr := startRecorder(t, d)
	s := newSender(t, cat, d, Target{Addr: addr, Mode: ModeList, Validity: 2 * time.Hour, Interval: time.Hour})
	before := time.Now()
	res := updateNow(t, s, addr)
	if res.Mode != ModeList || res.Generation != lastSeq(t, cat) || res.Entries != 3 || res.Target != addr {
		t.Errorf("Result = %+v, want list, generation %d, 3 entries", res, lastSeq(t, cat))
	}
	us := rec.all()
	if len(us) != 1 {
		t.Fatalf("%d updates, want 1", len(us))
	}
	h := us[0].h
	if h.Site != "jsoc" || h.Endpoint != "jsoc.example:7600" || h.Mode != ModeList || h.Generation != 4 ||
		h.Entries != 3 || h.Validity != 2*time.Hour || h.Updated.Before(before.Add(-time.Second)) || len(h.Via) != 0 {
		t.Errorf("header = %+v", h)
	}
	if !slices.Equal(us[0].lfns, []string{"1", "2", "3"}) {
		t.Errorf("lfns = %q, want 1 2 3 in byte order", us[0].lfns)
	}
	st := s.Targets()
	if len(st) != 1 || st[0].Generation != 4 || st[0].LastErr != nil || st[0].LastFull.IsZero() {
		t.Errorf("Targets = %+v", st)
	}
}

// checkBloom rebuilds the filter of u and checks its geometry for want
// names, that every name of want tests positive, and that it is not full.
func checkBloom(t *testing.T, u update, want []string, fp float64) {
	t.Helper()
	m, k := BloomGeometry(uint64(len(want)), fp)
	b := u.h.Bloom
	if u.h.Mode != ModeBloom || b.Version != BloomVersion || b.M != m || b.K != k || b.Entries != uint64(len(want)) {
		t.Fatalf("bloom header %+v, want m %d k %d entries %d", b, m, k, len(want))
	}
	if uint64(len(u.words)) != b.Words() {
		t.Fatalf("%d words, want %d", len(u.words), b.Words())
	}
	f := bloom.FromWithM(u.words, uint(b.M), uint(b.K))
	for _, l := range want {
		if !f.TestString(l) {
			t.Fatalf("%q tests negative in the filter sent", l)
		}
	}
	fps := 0
	for i := range 10000 {
		if f.TestString(fmt.Sprintf("absent-%d", i)) {
			fps++
		}
	}
	if float64(fps) > 10000*fp*3 {
		t.Errorf("%d of 10,000 absent names test positive, want about %v", fps, 10000*fp)
	}
}

func TestSenderBloom(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	var names []string
	for i := range 3000 {
		names = append(names, fmt.Sprint(1_000_000+i))
	}
	create(t, cat, names...)
	rec, addr := startRecorder(t, d)
	s := newSender(t, cat, d, Target{Addr: addr, Mode: ModeBloom, FalsePositiveRate: 0.001})
	res := updateNow(t, s, "")
	if res.Mode != ModeBloom || res.Entries != 3000 || res.Generation != 3000 {
		t.Errorf("Result = %+v", res)
	}
	us := rec.all()
	if len(us) != 1 {
		t.Fatalf("%d updates, want 1", len(us))
	}
	if us[0].h.Generation != 3000 || us[0].h.Entries != 0 || us[0].h.Validity != DefaultValidity {
		t.Errorf("header = %+v", us[0].h)
	}
	checkBloom(t, us[0], names, 0.001)
}

// TestSenderPatterns checks that two targets that share the namespace by
// patterns get only their part, in list, bloom and delta updates.
func TestSenderPatterns(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	create(t, cat, "10", "11", "20", "21", "a*b")
	recA, addrA := startRecorder(t, d)
	recB, addrB := startRecorder(t, d)
	s := newSender(t, cat, d,
		Target{Addr: addrA, Mode: ModeDelta, Patterns: patterns(t, "1*", `a\*b`)},
		Target{Addr: addrB, Mode: ModeBloom, Deltas: true, Patterns: patterns(t, "2?")},
	)
	rs, err := s.UpdateNow(t.Context(), "")
	if err != nil || len(rs) != 2 || rs[0].Err != nil || rs[1].Err != nil {
		t.Fatalf("UpdateNow = %+v, %v", rs, err)
	}
	if got := recA.list("jsoc"); !slices.Equal(got, []string{"10", "11", "a*b"}) {
		t.Errorf("list target holds %q, want 10 11 a*b", got)
	}
	checkBloom(t, recB.all()[0], []string{"20", "21"}, DefaultFalsePositiveRate)

	create(t, cat, "12", "22", "30")
	if _, err := cat.RenameLFN(t.Context(), "20", "13"); err != nil {
		t.Fatal(err)
	}
	for _, tg := range s.set.current() {
		if res := s.delta(t.Context(), tg); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	dA, dB := recA.all()[1], recB.all()[1]
	if !slices.Equal(dA.added, []string{"12", "13"}) || len(dA.removed) != 0 {
		t.Errorf("delta to A: added %q removed %q, want added 12 13", dA.added, dA.removed)
	}
	if !slices.Equal(dB.added, []string{"22"}) || !slices.Equal(dB.removed, []string{"20"}) {
		t.Errorf("delta to B: added %q removed %q, want added 22, removed 20", dB.added, dB.removed)
	}
}

func TestSenderDelta(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	create(t, cat, "a", "b", "c", "d")
	rec, addr := startRecorder(t, d)
	s := newSender(t, cat, d, Target{Addr: addr, Mode: ModeList, Deltas: true})
	full := updateNow(t, s, addr)

	create(t, cat, "x", "tmp")
	for _, w := range []func() error{
		func() error { _, err := cat.Delete(t.Context(), "a", "/SUM/Da"); return err },
		func() error { _, err := cat.RenameLFN(t.Context(), "b", "b2"); return err },
		func() error { _, err := cat.Add(t.Context(), "c", "/other/Dc"); return err },      // c exists before and after
		func() error { _, err := cat.Delete(t.Context(), "tmp", "/SUM/Dtmp"); return err }, // tmp came and went
		func() error { _, err := cat.Delete(t.Context(), "d", "/SUM/Dd"); return err },
		func() error { _, err := cat.Create(t.Context(), "d", "/new/Dd"); return err }, // d went and came back
	} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	res := s.delta(t.Context(), s.set.current()[0])
	if res.Err != nil || res.Mode != ModeDelta || res.Generation != lastSeq(t, cat) || res.Entries != 4 {
		t.Fatalf("delta Result = %+v, want generation %d, 4 entries", res, lastSeq(t, cat))
	}
	us := rec.all()
	du := us[len(us)-1]
	if du.h.Mode != ModeDelta || du.h.BaseGeneration != full.Generation || du.h.Generation != lastSeq(t, cat) || du.h.Entries != 4 {
		t.Errorf("delta header = %+v, want base %d generation %d entries 4", du.h, full.Generation, lastSeq(t, cat))
	}
	if !slices.Equal(du.added, []string{"b2", "x"}) || !slices.Equal(du.removed, []string{"a", "b"}) {
		t.Errorf("delta added %q removed %q, want added b2 x, removed a b", du.added, du.removed)
	}
	if got := rec.list("jsoc"); !slices.Equal(got, []string{"b2", "c", "d", "x"}) {
		t.Errorf("index holds %q", got)
	}

	// Nothing changed since: nothing is sent.
	if res := s.delta(t.Context(), s.set.current()[0]); res.Err != nil || len(rec.all()) != len(us) {
		t.Errorf("delta without changes = %+v, sent %d updates", res, len(rec.all())-len(us))
	}

	// Pruned changes: a delta cannot be built, a full update is due.
	create(t, cat, "y")
	if err := cat.PruneChanges(t.Context(), lastSeq(t, cat)+1); err != nil {
		t.Fatal(err)
	}
	if res := s.delta(t.Context(), s.set.current()[0]); !errors.Is(res.Err, errNeedFull) {
		t.Errorf("delta after pruning: %v, want errNeedFull", res.Err)
	}
	if !s.set.current()[0].st.forceFull {
		t.Error("no full update due after the changes were pruned")
	}
}

// TestSenderRunDelta runs the sender and checks that writes reach the index
// as deltas, each on top of the generation before, until the index holds
// what the catalog holds.
func TestSenderRunDelta(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	create(t, cat, "1", "2")
	rec, addr := startRecorder(t, d)
	s := newSender(t, cat, d, Target{Addr: addr, Mode: ModeDelta, DeltaDelay: 5 * time.Millisecond})
	run(t, s)
	rec.waitFor(t, "the first full update", func() bool { return len(rec.updates) == 1 })
	for i := range 20 {
		create(t, cat, fmt.Sprint(100+i))
		if i%3 == 1 {
			if _, err := cat.Delete(t.Context(), fmt.Sprint(100+i-1), "/SUM/D"+fmt.Sprint(100+i-1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	last := lastSeq(t, cat)
	rec.waitFor(t, "the deltas", func() bool { return rec.gen["jsoc"] == last })
	var want []string
	if _, err := cat.ForEachLFN(t.Context(), func(l string) error { want = append(want, l); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := rec.list("jsoc"); !slices.Equal(got, want) {
		t.Errorf("index holds %q, catalog %q", got, want)
	}
	us := rec.all()
	for i := 1; i < len(us); i++ {
		if us[i].h.Mode != ModeDelta || us[i].h.BaseGeneration != us[i-1].h.Generation {
			t.Errorf("update %d: %v base %d after generation %d", i, us[i].h.Mode, us[i].h.BaseGeneration, us[i-1].h.Generation)
		}
	}
}

// TestSenderFailedPrecondition checks that when the index lost the site's
// state, the delta it refuses is followed by a full update.
func TestSenderFailedPrecondition(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	create(t, cat, "1")
	rec, addr := startRecorder(t, d)
	s := newSender(t, cat, d, Target{Addr: addr, Mode: ModeList, Deltas: true, DeltaDelay: time.Millisecond})
	run(t, s)
	rec.waitFor(t, "the first full update", func() bool { return len(rec.updates) == 1 })
	rec.forget("jsoc")
	create(t, cat, "2")
	last := lastSeq(t, cat)
	rec.waitFor(t, "a full update after the refused delta", func() bool {
		return rec.gen["jsoc"] == last && len(rec.state["jsoc"]) == 2
	})
	us := rec.all()
	if u := us[len(us)-1]; u.h.Mode != ModeList || !slices.Equal(u.lfns, []string{"1", "2"}) {
		t.Errorf("last update: %v %q, want the full list 1 2", u.h.Mode, u.lfns)
	}
}

// TestSenderRetry starts the sender while its index is down, then brings
// the index up: the sender retries, with backoff, until the update gets
// through, and its status says so. It runs on synctest's clock: the
// waits are of the bubble's goroutines going idle, not of time.
func TestSenderRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		rec.setDown(errors.New("index down"))
		s := newSender(t, memFeed{"1"}, sinks("i:1", rec), Target{Addr: "i:1", Mode: ModeBloom})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()

		advance(time.Second) // backoff of 10 to 50 ms: many attempts
		if st := s.Targets()[0]; st.Failures < 2 || st.LastErr == nil || st.Generation != 0 {
			t.Errorf("status while down: %+v, want failures", st)
		}
		rec.setDown(nil)
		advance(time.Second)
		if n := len(rec.all()); n != 1 {
			t.Errorf("%d updates after the index came up, want 1", n)
		}
		if st := s.Targets()[0]; st.Failures != 0 || st.LastErr != nil || st.Generation != 1 {
			t.Errorf("status after recovery: %+v", st)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestSenderUpdateNowUnknownTarget(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	_, addr := startRecorder(t, d)
	s := newSender(t, cat, d, Target{Addr: addr, Mode: ModeList})
	if _, err := s.UpdateNow(t.Context(), "elsewhere:1"); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("UpdateNow(elsewhere:1) = %v, want ErrUnknownTarget", err)
	}
}

// TestSenderNoPileUp holds the index's answer and checks that neither
// scheduled updates (due every millisecond) nor UpdateNow calls start a
// second update to it meanwhile, and that UpdateNow calls waiting together
// share one update. On synctest's clock, "many intervals pass" is a second
// of the bubble's time, after which every goroutine waits.
func TestSenderNoPileUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		rec.block = make(chan struct{})
		const addr = "i:1"
		s := newSender(t, memFeed{"1"}, sinks(addr, rec), Target{Addr: addr, Mode: ModeList, Interval: time.Millisecond, Validity: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()

		var wg sync.WaitGroup
		results := make([][]Result, 5)
		for i := range results {
			wg.Go(func() { results[i], _ = s.UpdateNow(context.Background(), addr) })
		}
		advance(time.Second) // a thousand intervals; the held update, the schedule and the calls all wait
		rec.mu.Lock()
		started := rec.started
		rec.mu.Unlock()
		if started != 1 {
			t.Errorf("%d updates started while the first was held, want 1", started)
		}
		cancel() // Run stops scheduling; only the UpdateNow calls remain
		close(rec.block)
		wg.Wait()
		<-done
		for i, rs := range results {
			if len(rs) != 1 || rs[0].Err != nil {
				t.Errorf("UpdateNow %d = %+v", i, rs)
			}
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.maxInFlight != 1 {
			t.Errorf("%d updates in flight at once, want 1", rec.maxInFlight)
		}
		// The held update, then one for the five waiting calls (give or
		// take a call that arrived after that one started).
		if rec.started > 3 {
			t.Errorf("%d updates for one scheduled update and five UpdateNow calls, want at most 3", rec.started)
		}
	})
}

func TestNewSenderChecks(t *testing.T) {
	feed := memFeed{"1"}
	for _, tc := range []struct {
		name     string
		site, ep string
		targets  []Target
		dialer   Dialer
	}{
		{"no dialer", "jsoc", "h:1", nil, nil},
		{"target not dialable", "jsoc", "h:1", []Target{{Addr: "nowhere:1", Mode: ModeList}}, sinks()},
		{"no site", "", "h:1", nil, nil},
		{"no endpoint", "jsoc", "", nil, nil},
		{"no addr", "jsoc", "h:1", []Target{{Mode: ModeList}}, nil},
		{"no mode", "jsoc", "h:1", []Target{{Addr: "i:1"}}, nil},
		{"twice", "jsoc", "h:1", []Target{{Addr: "i:1", Mode: ModeList}, {Addr: "i:1", Mode: ModeBloom}}, nil},
		{"validity below interval", "jsoc", "h:1", []Target{{Addr: "i:1", Mode: ModeList, Interval: time.Hour, Validity: time.Minute}}, nil},
		{"fp rate", "jsoc", "h:1", []Target{{Addr: "i:1", Mode: ModeBloom, FalsePositiveRate: 1.5}}, nil},
	} {
		d := tc.dialer
		if tc.name != "no dialer" && d == nil {
			d = sinks("i:1", newRecorder())
		}
		if _, err := NewSender(feed, tc.site, tc.ep, tc.targets, SenderOptions{Dialer: d}); err == nil {
			t.Errorf("%s: NewSender succeeded", tc.name)
		}
	}
}

func TestFoldWords(t *testing.T) {
	// A filter built at 4,096 bits and folded to 1,024 equals the filter
	// built at 1,024 bits.
	big, small := bloom.New(4096, 5), bloom.New(1024, 5)
	for i := range 200 {
		big.AddString(fmt.Sprint(i))
		small.AddString(fmt.Sprint(i))
	}
	if got := foldWords(slices.Clone(big.BitSet().Words()), 16); !slices.Equal(got, small.BitSet().Words()) {
		t.Error("folded filter differs from the filter built at the smaller size")
	}
}

// TestSenderSetTargets replaces a running sender's targets: the unchanged
// target keeps its loop and the generation its deltas build on, the added
// one starts sending, the removed one finishes the update it has in flight
// and sends no more, a changed one starts over with a full update, and an
// invalid set changes nothing.
func TestSenderSetTargets(t *testing.T) {
	d := sinks()
	cat := openCatalog(t)
	create(t, cat, "1", "2")
	recA, addrA := startRecorder(t, d)
	recC, addrC := startRecorder(t, d)
	recB, addrB := startRecorder(t, d)
	recB.block, recB.arrived = make(chan struct{}), make(chan struct{}, 1)

	a := Target{Addr: addrA, Mode: ModeDelta, DeltaDelay: time.Millisecond}
	// B sends a full update every millisecond for as long as it is a target.
	b := Target{Addr: addrB, Mode: ModeList, Interval: time.Millisecond, Validity: time.Hour}
	c := Target{Addr: addrC, Mode: ModeBloom}
	s := newSender(t, cat, d, a, b)
	run(t, s)
	recA.waitFor(t, "A's first full update", func() bool { return len(recA.updates) == 1 })
	select { // B's first update is in flight, held by the index
	case <-recB.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no update to B")
	}

	if err := s.SetTargets([]Target{a, {Addr: addrC, Mode: ModeList, Interval: time.Hour, Validity: time.Minute}}); err == nil {
		t.Fatal("SetTargets with validity below interval succeeded")
	}
	if got := s.Targets(); len(got) != 2 || got[1].Addr != addrB {
		t.Fatalf("targets after a refused SetTargets: %+v", got)
	}

	if err := s.SetTargets([]Target{a, c}); err != nil {
		t.Fatal(err)
	}
	recC.waitFor(t, "the added target's first update", func() bool { return len(recC.updates) == 1 })
	if _, err := s.UpdateNow(t.Context(), addrB); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("UpdateNow(removed target) = %v, want ErrUnknownTarget", err)
	}

	// The unchanged target goes on with deltas on the generation it holds.
	create(t, cat, "3")
	last := lastSeq(t, cat)
	recA.waitFor(t, "A's delta", func() bool { return recA.gen["jsoc"] == last })
	for i, u := range recA.all()[1:] {
		if u.h.Mode != ModeDelta {
			t.Errorf("A's update %d after SetTargets: %v, want a delta on the kept state", i+1, u.h.Mode)
		}
	}

	// The removed target's update in flight completes; then its loop ends.
	close(recB.block)
	recB.waitFor(t, "B's held update", func() bool { return len(recB.updates) == 1 })
	s.retiring.Wait()
	recB.mu.Lock()
	if recB.started != 1 || len(recB.updates[0].lfns) != 2 {
		t.Errorf("removed target: %d updates started, first with %q; want 1, with 1 2", recB.started, recB.updates[0].lfns)
	}
	recB.mu.Unlock()

	// A changed target starts over with a full update.
	a2 := a
	a2.Mode = ModeList
	if err := s.SetTargets([]Target{a2, c}); err != nil {
		t.Fatal(err)
	}
	recA.waitFor(t, "A's full update after its change", func() bool {
		return recA.updates[len(recA.updates)-1].h.Mode == ModeList && len(recA.updates[len(recA.updates)-1].lfns) == 3
	})
	if got := s.Targets(); len(got) != 2 || got[0].Mode != ModeList || got[1].Addr != addrC {
		t.Errorf("targets: %+v", got)
	}
}
