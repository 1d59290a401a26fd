package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
)

// update is one update a recorder received in full.
type update struct {
	h              Header
	lfns           []string
	chunks         int
	words          []uint64
	added, removed []string
}

// recorder is an rls.v1.Index server that records the updates it receives
// and keeps, like an index, the state of each site: the LFNs of the last
// list plus the deltas since, and the generation. It refuses a delta whose
// base is not the generation it holds (FAILED_PRECONDITION).
type recorder struct {
	rlsv1.UnimplementedIndexServer

	// block, when set, holds every update until closed.
	block chan struct{}
	// arrived, when set, receives (if it has room) as each update starts.
	arrived chan struct{}

	mu          sync.Mutex
	updates     []update
	started     int
	inFlight    int
	maxInFlight int
	gen         map[string]uint64
	state       map[string]map[string]bool
	changed     chan struct{} // closed and replaced after every update
}

func newRecorder() *recorder {
	return &recorder{gen: map[string]uint64{}, state: map[string]map[string]bool{}, changed: make(chan struct{})}
}

func (r *recorder) Update(st grpc.ClientStreamingServer[rlsv1.UpdateRequest, rlsv1.UpdateResponse]) error {
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
		<-r.block
	}
	first, err := st.Recv()
	if err != nil {
		return err
	}
	h, err := HeaderFromProto(first.GetHeader(), time.Now())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	u := update{h: h}
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		u.chunks++
		switch b := req.GetBody().(type) {
		case *rlsv1.UpdateRequest_Lfns:
			u.lfns = append(u.lfns, b.Lfns.GetLfns()...)
		case *rlsv1.UpdateRequest_Bloom:
			w := b.Bloom.GetWords()
			if len(w)%8 != 0 || len(w) > sendChunkBytes {
				return status.Errorf(codes.InvalidArgument, "bloom chunk of %d bytes", len(w))
			}
			for i := 0; i < len(w); i += 8 {
				u.words = append(u.words, binary.LittleEndian.Uint64(w[i:]))
			}
		case *rlsv1.UpdateRequest_Delta:
			u.added = append(u.added, b.Delta.GetAdded()...)
			u.removed = append(u.removed, b.Delta.GetRemoved()...)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch h.Mode {
	case ModeList:
		if uint64(len(u.lfns)) != h.Entries {
			return status.Errorf(codes.InvalidArgument, "%d names, header says %d", len(u.lfns), h.Entries)
		}
		r.state[h.Site] = map[string]bool{}
		for _, l := range u.lfns {
			r.state[h.Site][l] = true
		}
	case ModeBloom:
		if uint64(len(u.words)) != h.Bloom.Words() {
			return status.Errorf(codes.InvalidArgument, "%d words, header says %d", len(u.words), h.Bloom.Words())
		}
		r.state[h.Site] = nil
	case ModeDelta:
		if g, ok := r.gen[h.Site]; !ok || g != h.BaseGeneration {
			return status.Errorf(codes.FailedPrecondition, "holds generation %d of %s, not %d", g, h.Site, h.BaseGeneration)
		}
		if uint64(len(u.added)+len(u.removed)) != h.Entries {
			return status.Errorf(codes.InvalidArgument, "%d changes, header says %d", len(u.added)+len(u.removed), h.Entries)
		}
		if s := r.state[h.Site]; s != nil {
			for _, l := range u.added {
				s[l] = true
			}
			for _, l := range u.removed {
				delete(s, l)
			}
		}
	}
	r.gen[h.Site] = h.Generation
	r.updates = append(r.updates, u)
	close(r.changed)
	r.changed = make(chan struct{})
	return st.SendAndClose(&rlsv1.UpdateResponse{Generation: h.Generation, Entries: h.Entries})
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
	return slices.Sorted(maps.Keys(r.state[site]))
}

func (r *recorder) all() []update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updates)
}

// waitFor waits until cond (called with r.mu held) holds, failing the test
// after 10 s.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; updates: %d", what, len(r.all()))
		}
	}
}

// serveOn serves r on lis until the test ends.
func serveOn(t testing.TB, r *recorder, lis net.Listener) {
	t.Helper()
	srv := grpc.NewServer()
	rlsv1.RegisterIndexServer(srv, r)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
}

func startRecorder(t *testing.T) (*recorder, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	serveOn(t, r, lis)
	return r, lis.Addr().String()
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

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

func create(t *testing.T, cat *catalog.Catalog, lfns ...string) {
	t.Helper()
	for _, l := range lfns {
		if _, err := cat.Create(t.Context(), l, "/SUM/D"+l); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestSender(t *testing.T, cat *catalog.Catalog, targets ...Target) *Sender {
	t.Helper()
	s, err := NewSender(cat, "jsoc", "jsoc.example:7600", targets, SenderOptions{
		Logger: quietLogger(), RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
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
	cat := openCatalog(t)
	create(t, cat, "3", "1", "2")
	if _, err := cat.Add(t.Context(), "1", "/other/D1"); err != nil {
		t.Fatal(err)
	}
	rec, addr := startRecorder(t)
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeList, Validity: 2 * time.Hour, Interval: time.Hour})
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

func TestSendListChunks(t *testing.T) {
	rec, addr := startRecorder(t)
	cl := dialT(t, addr)
	names := make([]string, 40000)
	for i := range names {
		names[i] = fmt.Sprint(100000 + i)
	}
	h := Header{Site: "nso", Endpoint: "nso:1", Validity: time.Hour, Generation: 9, Entries: uint64(len(names))}
	resp, err := SendList(t.Context(), cl, h, slices.Values(names))
	if err != nil || resp.GetGeneration() != 9 {
		t.Fatalf("SendList = %v, %v", resp, err)
	}
	us := rec.all()
	if len(us) != 1 || !slices.Equal(us[0].lfns, names) || us[0].chunks != 3 {
		t.Fatalf("got %d updates; want one of 40,000 names in 3 chunks of at most 16,384", len(us))
	}

	// A header that miscounts the names: the stream is aborted, the index
	// commits nothing.
	h.Entries = 10
	if _, err := SendList(t.Context(), cl, h, slices.Values(names)); err == nil {
		t.Error("SendList with 40,000 names and entries 10 succeeded")
	}
	h.Entries = 50000
	if _, err := SendList(t.Context(), cl, h, slices.Values(names)); err == nil {
		t.Error("SendList with 40,000 names and entries 50,000 succeeded")
	}
	if n := len(rec.all()); n != 1 {
		t.Errorf("%d updates committed, want 1", n)
	}
}

func dialT(t *testing.T, addr string) rlsv1.IndexClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return rlsv1.NewIndexClient(conn)
}

func TestSendBloomChecksWords(t *testing.T) {
	_, addr := startRecorder(t)
	cl := dialT(t, addr)
	h := Header{Site: "nso", Endpoint: "nso:1", Validity: time.Hour, Bloom: BloomParams{Version: BloomVersion, M: 1024, K: 7, Entries: 3}}
	if _, err := SendBloom(t.Context(), cl, h, make([]uint64, 15)); err == nil {
		t.Error("SendBloom with 15 words for 1,024 bits succeeded")
	}
	h.Bloom.K = 0
	if _, err := SendBloom(t.Context(), cl, h, make([]uint64, 16)); err == nil {
		t.Error("SendBloom with k = 0 succeeded")
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
	cat := openCatalog(t)
	var names []string
	for i := range 3000 {
		names = append(names, fmt.Sprint(1_000_000+i))
	}
	create(t, cat, names...)
	rec, addr := startRecorder(t)
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeBloom, FalsePositiveRate: 0.001})
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
	cat := openCatalog(t)
	create(t, cat, "10", "11", "20", "21", "a*b")
	recA, addrA := startRecorder(t)
	recB, addrB := startRecorder(t)
	s := newTestSender(t, cat,
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
	for _, tg := range s.targets {
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
	cat := openCatalog(t)
	create(t, cat, "a", "b", "c", "d")
	rec, addr := startRecorder(t)
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeList, Deltas: true})
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
	res := s.delta(t.Context(), s.targets[0])
	if res.Err != nil || res.Mode != ModeDelta || res.Generation != lastSeq(t, cat) || res.Entries != 4 {
		t.Fatalf("delta Result = %+v, want generation %d, 4 entries", res, lastSeq(t, cat))
	}
	us := rec.all()
	d := us[len(us)-1]
	if d.h.Mode != ModeDelta || d.h.BaseGeneration != full.Generation || d.h.Generation != lastSeq(t, cat) || d.h.Entries != 4 {
		t.Errorf("delta header = %+v, want base %d generation %d entries 4", d.h, full.Generation, lastSeq(t, cat))
	}
	if !slices.Equal(d.added, []string{"b2", "x"}) || !slices.Equal(d.removed, []string{"a", "b"}) {
		t.Errorf("delta added %q removed %q, want added b2 x, removed a b", d.added, d.removed)
	}
	if got := rec.list("jsoc"); !slices.Equal(got, []string{"b2", "c", "d", "x"}) {
		t.Errorf("index holds %q", got)
	}

	// Nothing changed since: nothing is sent.
	if res := s.delta(t.Context(), s.targets[0]); res.Err != nil || len(rec.all()) != len(us) {
		t.Errorf("delta without changes = %+v, sent %d updates", res, len(rec.all())-len(us))
	}

	// Pruned changes: a delta cannot be built, a full update is due.
	create(t, cat, "y")
	if err := cat.PruneChanges(t.Context(), lastSeq(t, cat)+1); err != nil {
		t.Fatal(err)
	}
	if res := s.delta(t.Context(), s.targets[0]); !errors.Is(res.Err, errNeedFull) {
		t.Errorf("delta after pruning: %v, want errNeedFull", res.Err)
	}
	if !s.targets[0].st.forceFull {
		t.Error("no full update due after the changes were pruned")
	}
}

// TestSenderRunDelta runs the sender and checks that writes reach the index
// as deltas, each on top of the generation before, until the index holds
// what the catalog holds.
func TestSenderRunDelta(t *testing.T) {
	cat := openCatalog(t)
	create(t, cat, "1", "2")
	rec, addr := startRecorder(t)
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeDelta, DeltaDelay: 5 * time.Millisecond})
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
	cat := openCatalog(t)
	create(t, cat, "1")
	rec, addr := startRecorder(t)
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeList, Deltas: true, DeltaDelay: time.Millisecond})
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

// TestSenderRetry starts the sender while its index is down, then starts
// the index: the sender retries until the update gets through.
func TestSenderRetry(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	cat := openCatalog(t)
	create(t, cat, "1")
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeBloom})
	run(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for s.Targets()[0].Failures < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed attempts while the index is down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Targets()[0]; st.LastErr == nil || st.Generation != 0 {
		t.Errorf("status while down: %+v", st)
	}
	if lis, err = net.Listen("tcp", addr); err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	rec := newRecorder()
	serveOn(t, rec, lis)
	rec.waitFor(t, "the update after the index came up", func() bool { return len(rec.updates) == 1 })
	for s.Targets()[0].Failures != 0 {
		if time.Now().After(deadline) {
			t.Fatal("status still failing after a successful update")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Targets()[0]; st.LastErr != nil || st.Generation != 1 {
		t.Errorf("status after recovery: %+v", st)
	}
}

func TestSenderUpdateNowUnknownTarget(t *testing.T) {
	cat := openCatalog(t)
	_, addr := startRecorder(t)
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeList})
	if _, err := s.UpdateNow(t.Context(), "elsewhere:1"); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("UpdateNow(elsewhere:1) = %v, want ErrUnknownTarget", err)
	}
}

func TestSenderUpdateNowFailure(t *testing.T) {
	cat := openCatalog(t)
	create(t, cat, "1")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeList})
	rs, err := s.UpdateNow(t.Context(), "")
	if err != nil || len(rs) != 1 || status.Code(rs[0].Err) != codes.Unavailable {
		t.Errorf("UpdateNow to a closed port = %+v, %v; want a result with UNAVAILABLE", rs, err)
	}
}

// TestSenderNoPileUp holds the index's answer and checks that neither
// scheduled updates nor UpdateNow calls start a second update to it
// meanwhile, and that UpdateNow calls waiting together share one update.
func TestSenderNoPileUp(t *testing.T) {
	cat := openCatalog(t)
	create(t, cat, "1")
	rec, addr := startRecorder(t)
	rec.block = make(chan struct{})
	s := newTestSender(t, cat, Target{Addr: addr, Mode: ModeList, Interval: time.Millisecond, Validity: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()

	var wg sync.WaitGroup
	results := make([][]Result, 5)
	for i := range results {
		wg.Go(func() { results[i], _ = s.UpdateNow(context.Background(), addr) })
	}
	time.Sleep(100 * time.Millisecond) // many intervals pass
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
	// The held update, then one for the five waiting calls (give or take
	// a call that arrived after that one started).
	if rec.started > 3 {
		t.Errorf("%d updates for one scheduled update and five UpdateNow calls, want at most 3", rec.started)
	}
}

func TestNewSenderChecks(t *testing.T) {
	cat := openCatalog(t)
	for _, tc := range []struct {
		name     string
		site, ep string
		targets  []Target
	}{
		{"no site", "", "h:1", nil},
		{"no endpoint", "jsoc", "", nil},
		{"no addr", "jsoc", "h:1", []Target{{Mode: ModeList}}},
		{"no mode", "jsoc", "h:1", []Target{{Addr: "i:1"}}},
		{"twice", "jsoc", "h:1", []Target{{Addr: "i:1", Mode: ModeList}, {Addr: "i:1", Mode: ModeBloom}}},
		{"validity below interval", "jsoc", "h:1", []Target{{Addr: "i:1", Mode: ModeList, Interval: time.Hour, Validity: time.Minute}}},
		{"fp rate", "jsoc", "h:1", []Target{{Addr: "i:1", Mode: ModeBloom, FalsePositiveRate: 1.5}}},
	} {
		if _, err := NewSender(cat, tc.site, tc.ep, tc.targets, SenderOptions{}); err == nil {
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
	cat := openCatalog(t)
	create(t, cat, "1", "2")
	recA, addrA := startRecorder(t)
	recC, addrC := startRecorder(t)
	lisB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addrB := lisB.Addr().String()
	recB := newRecorder()
	recB.block, recB.arrived = make(chan struct{}), make(chan struct{}, 1)
	serveOn(t, recB, lisB)

	a := Target{Addr: addrA, Mode: ModeDelta, DeltaDelay: time.Millisecond}
	// B sends a full update every millisecond for as long as it is a target.
	b := Target{Addr: addrB, Mode: ModeList, Interval: time.Millisecond, Validity: time.Hour}
	c := Target{Addr: addrC, Mode: ModeBloom}
	s := newTestSender(t, cat, a, b)
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
