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
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/solar-archive/rls/catalog"
)

// The tests' tools: a settable clock, updates as message streams, an
// in-process Sink into an Index, a recording Sink that stands for an
// index, a Dialer of them, and a catalog as a Feed. Nothing here speaks
// gRPC: package api tests the wire.

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openTest(t testing.TB, dir string, clk *clock) *Index {
	t.Helper()
	opts := &Options{Site: "rli-test", ExpireInterval: time.Hour, NoSync: true, Logger: quietLogger()}
	if clk != nil {
		opts.Now = clk.now
	}
	x, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// recvFrom returns a stream of msgs.
func recvFrom(msgs []Message) func() (Message, error) {
	return func() (Message, error) {
		if len(msgs) == 0 {
			return Message{}, io.EOF
		}
		m := msgs[0]
		msgs = msgs[1:]
		return m, nil
	}
}

func header(site string, mode Mode, gen uint64) Header {
	return Header{Site: site, Endpoint: site + ":7600", Mode: mode, Generation: gen, Validity: time.Hour}
}

// messages returns u as the messages of an update stream, in chunks of
// 1,000 names or 100 words, or fails if its list does not match its count.
func messages(u Update) ([]Message, error) {
	msgs := []Message{{Part: PartHeader, Header: u.Header}}
	switch u.Header.Mode {
	case ModeList:
		var names []string
		if u.LFNs != nil {
			names = slices.Collect(u.LFNs)
		}
		if uint64(len(names)) != u.Header.Entries {
			return nil, fmt.Errorf("list update: %d names, but the header says %d entries", len(names), u.Header.Entries)
		}
		for c := range slices.Chunk(names, 1000) {
			msgs = append(msgs, Message{Part: PartLFNs, LFNs: c})
		}
	case ModeBloom:
		for c := range slices.Chunk(u.Words, 100) {
			msgs = append(msgs, Message{Part: PartBloom, Words: c})
		}
	case ModeDelta:
		if len(u.Added)+len(u.Removed) > 0 {
			msgs = append(msgs, Message{Part: PartDelta, Added: u.Added, Removed: u.Removed})
		}
	}
	return msgs, nil
}

func mustMessages(u Update) []Message {
	msgs, err := messages(u)
	if err != nil {
		panic(err)
	}
	return msgs
}

func listMsgs(site string, gen uint64, lfns ...string) []Message {
	h := header(site, ModeList, gen)
	h.Entries = uint64(len(lfns))
	return mustMessages(ListUpdate(h, slices.Values(lfns)))
}

func newFilter(fp float64, lfns ...string) (*bloom.BloomFilter, BloomParams) {
	m, k := BloomGeometry(uint64(len(lfns)), fp)
	f := bloom.New(uint(m), uint(k))
	for _, l := range lfns {
		f.AddString(l)
	}
	return f, BloomParams{Version: BloomVersion, M: m, K: k, Entries: uint64(len(lfns))}
}

func bloomMsgs(site string, gen uint64, f *bloom.BloomFilter, p BloomParams) []Message {
	h := header(site, ModeBloom, gen)
	h.Bloom = p
	return mustMessages(BloomUpdate(h, f.BitSet().Words()))
}

func deltaMsgs(site string, base, gen uint64, added, removed []string) []Message {
	h := header(site, ModeDelta, gen)
	h.BaseGeneration = base
	return mustMessages(DeltaUpdate(h, added, removed))
}

func mustReceive(t testing.TB, x *Index, msgs []Message) Ack {
	t.Helper()
	ack, err := x.Receive(recvFrom(msgs))
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return ack
}

// where returns "site/how" for each candidate of each LFN.
func where(t testing.TB, x *Index, lfns ...string) []string {
	t.Helper()
	res, err := x.Locate(lfns)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(res))
	for i, cands := range res {
		var s []string
		for _, c := range cands {
			s = append(s, c.Site+"/"+c.KnownBy.String())
		}
		out[i] = strings.Join(s, ",")
	}
	return out
}

func wantWhere(t *testing.T, x *Index, lfns []string, want ...string) {
	t.Helper()
	if got := where(t, x, lfns...); !slices.Equal(got, want) {
		t.Fatalf("Locate(%q) =\n  %q\nwant\n  %q", lfns, got, want)
	}
}

// localSink sends updates into an Index in this process, as the api
// package's IndexSink does over gRPC: a refused delta or a replay is an
// error wrapping ErrOutOfSequence.
type localSink struct{ x *Index }

func (s localSink) Send(ctx context.Context, u Update) (Ack, error) {
	if err := u.Check(); err != nil {
		return Ack{}, err
	}
	msgs, err := messages(u)
	if err != nil {
		return Ack{}, err
	}
	ack, err := s.x.Receive(recvFrom(msgs))
	if errors.Is(err, ErrReplay) {
		err = fmt.Errorf("%w: %w", ErrOutOfSequence, err)
	}
	return ack, err
}

// update is one update a recorder received in full.
type update struct {
	h              Header
	lfns           []string
	words          []uint64
	added, removed []string
}

// recorder is a Sink that stands for an index: it records the updates it
// receives and keeps, like an index, the state of each site (the LFNs of
// the last list plus the deltas since, and the generation). It refuses a
// delta whose base is not the generation it holds (ErrOutOfSequence), and
// every update while down is set.
type recorder struct {
	// block, when set, holds every update until closed.
	block chan struct{}
	// arrived, when set, receives (if it has room) as each update starts.
	arrived chan struct{}

	mu          sync.Mutex
	down        error // set: every update fails with it
	updates     []update
	started     int
	inFlight    int
	maxInFlight int
	gen         map[string]uint64
	state       map[string]map[string]bool
	changed     chan struct{} // closed and replaced after every update and failure
}

func newRecorder() *recorder {
	return &recorder{gen: map[string]uint64{}, state: map[string]map[string]bool{}, changed: make(chan struct{})}
}

// notify wakes waitFor; the caller holds r.mu.
func (r *recorder) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) Send(ctx context.Context, u Update) (Ack, error) {
	r.mu.Lock()
	r.started++
	r.inFlight++
	r.maxInFlight = max(r.maxInFlight, r.inFlight)
	r.mu.Unlock()
	if r.arrived != nil {
		select {
		case r.arrived <- struct{}{}:
		default:
		}
	}
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return Ack{}, ctx.Err()
		}
	}
	if err := u.Check(); err != nil {
		return Ack{}, err
	}
	h := u.Header
	rec := update{h: h, words: u.Words, added: u.Added, removed: u.Removed}
	if u.LFNs != nil {
		rec.lfns = slices.Collect(u.LFNs)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down != nil {
		r.notify()
		return Ack{}, r.down
	}
	switch h.Mode {
	case ModeList:
		if uint64(len(rec.lfns)) != h.Entries {
			return Ack{}, fmt.Errorf("%d names, header says %d", len(rec.lfns), h.Entries)
		}
		r.state[h.Site] = map[string]bool{}
		for _, l := range rec.lfns {
			r.state[h.Site][l] = true
		}
	case ModeBloom:
		r.state[h.Site] = nil
	case ModeDelta:
		if g, ok := r.gen[h.Site]; !ok || g != h.BaseGeneration {
			return Ack{}, fmt.Errorf("%w: holds generation %d of %s, not %d", ErrOutOfSequence, g, h.Site, h.BaseGeneration)
		}
		if s := r.state[h.Site]; s != nil {
			for _, l := range u.Added {
				s[l] = true
			}
			for _, l := range u.Removed {
				delete(s, l)
			}
		}
	}
	r.gen[h.Site] = h.Generation
	r.updates = append(r.updates, rec)
	r.notify()
	return Ack{Generation: h.Generation, Entries: h.Entries}, nil
}

// setDown makes every update fail with err (nil: up again).
func (r *recorder) setDown(err error) {
	r.mu.Lock()
	r.down = err
	r.mu.Unlock()
}

// forget drops a site's state, as an index that restarted without it.
func (r *recorder) forget(site string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.gen, site)
	delete(r.state, site)
}

// list returns the LFNs the recorder holds for site, sorted.
func (r *recorder) list(site string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for l := range r.state[site] {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func (r *recorder) all() []update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updates)
}

// waitFor waits, on r's notifications, until cond (called with r.mu held)
// holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	changed := func() <-chan struct{} {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.changed
	}
	waitUntil(t, what, changed, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !cond() {
			return fmt.Errorf("not yet, after %d updates", len(r.updates))
		}
		return nil
	})
}

// waitUntil is the tests' one way to wait for a state: it checks check
// (nil: the state is reached) at once and again each time the channel
// that changed returned before the check is closed, so that no change is
// missed and no time is slept. It fails the test with check's last error
// if the state is not reached in 10 s, a guard against a hang, not a
// timing.
func waitUntil(t *testing.T, what string, changed func() <-chan struct{}, check func() error) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := changed()
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
	}
}

// dialer is a Dialer of the tests' sinks and catalogs, by address. An
// unknown address fails to dial.
type dialer struct {
	mu       sync.Mutex
	sinks    map[string]Sink
	catalogs map[string]SiteCatalog
}

func (d *dialer) Index(addr string) (Sink, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.sinks[addr]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("no index at %s", addr)
}

func (d *dialer) Catalog(endpoint string) (SiteCatalog, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.catalogs[endpoint]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("no catalog at %s", endpoint)
}

// sinks returns a dialer of the addresses and sinks given in pairs.
func sinks(pairs ...any) *dialer {
	d := &dialer{sinks: map[string]Sink{}}
	for i := 0; i < len(pairs); i += 2 {
		d.sinks[pairs[i].(string)] = pairs[i+1].(Sink)
	}
	return d
}

func openCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Open(t.TempDir(), &catalog.Options{NoSync: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cat.Close() })
	return cat
}

// lastSeq is the catalog's last change-feed position.
func lastSeq(t testing.TB, cat *catalog.Catalog) uint64 {
	t.Helper()
	seq, err := cat.LastSeq(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return seq
}
