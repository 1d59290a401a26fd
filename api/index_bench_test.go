package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
)

// The soft-state figures that go over gRPC: a new mapping's way to a
// remote index, and a full list update of 1M LFNs end to end (Globus RLS:
// 831 s).

// updateOnlyServer serves an Index's Update and nothing else: the bare
// receive path, without the idle timeout or authorization of
// NewIndexServer.
type updateOnlyServer struct {
	rlsv1.UnimplementedIndexServer
	x *index.Index
}

func (s updateOnlyServer) Update(st rlsv1.Index_UpdateServer) error {
	ack, err := ReceiveUpdate(s.x, st.Recv, nil)
	if err != nil {
		return toStatusErr(err)
	}
	return st.SendAndClose(&rlsv1.UpdateResponse{Generation: ack.Generation, Entries: ack.Entries})
}

// serveIndexService serves srv on a loopback port until the test ends and
// returns its address.
func serveIndexService(tb testing.TB, srv rlsv1.IndexServer) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	gs := grpc.NewServer()
	rlsv1.RegisterIndexServer(gs, srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	tb.Cleanup(func() { gs.Stop(); <-done })
	return lis.Addr().String()
}

// BenchmarkDeltaVisible measures how long a new mapping takes to become
// locatable at an index, end to end: a durable catalog write, the sender's
// delta (with its default coalescing delay, DefaultDeltaDelay) over gRPC on
// loopback, the index's synced apply. It reports the median and the worst
// latency over b.N writes, one at a time.
func BenchmarkDeltaVisible(b *testing.B) {
	x, err := index.Open(b.TempDir(), &index.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	addr := serveIndexService(b, updateOnlyServer{x: x})
	cat, err := catalog.Open(b.TempDir(), &catalog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	s, err := index.NewSender(cat, "a", "a:7600", []index.Target{{Addr: addr, Mode: index.ModeDelta}},
		index.SenderOptions{Logger: slog.New(slog.DiscardHandler), Dialer: NewIndexDialer(nil)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			b.Errorf("sender: %v", err)
		}
	}()
	// waitLocatable waits, on the index's change notifications, until lfn
	// (or, for "", any site) is there.
	waitLocatable := func(lfn string) {
		deadline := time.After(10 * time.Second)
		for {
			ch := x.Notify()
			if lfn == "" && len(x.Sites()) > 0 {
				return
			}
			if lfn != "" {
				res, err := x.Locate([]string{lfn})
				if err != nil {
					b.Fatal(err)
				}
				if len(res[0]) > 0 {
					return
				}
			}
			select {
			case <-ch:
			case <-deadline:
				b.Fatalf("%q not locatable after 10 s", lfn)
			}
		}
	}
	waitLocatable("") // the first full update
	var lat []time.Duration
	i := 0
	for b.Loop() {
		lfn := fmt.Sprint("delta-", i)
		i++
		start := time.Now()
		if _, err := cat.Create(b.Context(), lfn, "/p/"+lfn); err != nil {
			b.Fatal(err)
		}
		waitLocatable(lfn)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// drainServer is an Index that takes every update's names into memory, as
// a set, and acknowledges it: the far end of BenchmarkListUpdate1M (the
// work of the recorder this benchmark used to send to).
type drainServer struct {
	rlsv1.UnimplementedIndexServer
	mu    sync.Mutex
	state map[string]bool // of the last update
}

func (s *drainServer) Update(st rlsv1.Index_UpdateServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	h, err := HeaderFromProto(first.GetHeader())
	if err != nil {
		return toStatusErr(err)
	}
	var names []string
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		names = append(names, req.GetLfns().GetLfns()...)
	}
	state := make(map[string]bool, len(names))
	for _, l := range names {
		state[l] = true
	}
	s.mu.Lock()
	s.state = state // one update's names in memory, not b.N
	s.mu.Unlock()
	return st.SendAndClose(&rlsv1.UpdateResponse{Generation: h.Generation, Entries: uint64(len(names))})
}

// BenchmarkListUpdate1M sends a full list update of a catalog of 1M sunums
// to an index on loopback: snapshot, stream, commit.
func BenchmarkListUpdate1M(b *testing.B) {
	cat, err := catalog.Open(b.TempDir(), &catalog.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	const n, chunk = 1_000_000, 50_000
	for i := 0; i < n; i += chunk {
		ms := make([]catalog.Mapping, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			s := 100_000_000 + j
			ms = append(ms, catalog.Mapping{LFN: fmt.Sprint(s), PFN: fmt.Sprintf("/SUM%d/D%d", s%64, s)})
		}
		if _, _, err := cat.BulkWrite(b.Context(), catalog.OpCreate, ms); err != nil {
			b.Fatal(err)
		}
	}
	// Let the catalog's compactions settle: they would compete for the CPUs.
	for idle, deadline := 0, time.Now().Add(2*time.Minute); idle < 5 && time.Now().Before(deadline); {
		if st, err := cat.StorageStats(b.Context()); err == nil && st.CompactionsRunning == 0 {
			idle++
		} else {
			idle = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	addr := serveIndexService(b, &drainServer{})
	s, err := index.NewSender(cat, "jsoc", "jsoc:7600", []index.Target{{Addr: addr, Mode: index.ModeList}},
		index.SenderOptions{Logger: slog.New(slog.DiscardHandler), Dialer: NewIndexDialer(nil)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		rs, err := s.UpdateNow(b.Context(), "")
		if err != nil || rs[0].Err != nil || rs[0].Entries != n {
			b.Fatal(rs, err)
		}
	}
}
