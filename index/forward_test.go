package index

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
)

// updateServer serves an Index's Update over gRPC, as the api package does.
type updateServer struct {
	rlsv1.UnimplementedIndexServer
	x *Index
}

func (s updateServer) Update(st rlsv1.Index_UpdateServer) error {
	ack, err := s.x.Receive(st.Recv)
	switch {
	case err == nil:
		return st.SendAndClose(&rlsv1.UpdateResponse{Generation: ack.Generation, Entries: ack.Entries})
	case errors.Is(err, ErrOutOfSequence):
		return status.Error(codes.FailedPrecondition, err.Error())
	default:
		return status.Error(codes.InvalidArgument, err.Error())
	}
}

func serveIndex(t testing.TB, x *Index) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	rlsv1.RegisterIndexServer(gs, updateServer{x: x})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func waitWhere(t *testing.T, x *Index, lfns []string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := where(t, x, lfns...)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Locate(%q) = %q, want %q", lfns, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openMid opens the middle index of the forwarding tests.
func openMid(t *testing.T) *Index {
	t.Helper()
	mid, err := Open(t.TempDir(), &Options{Site: "mid", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mid.Close() })
	return mid
}

// runForwarder runs fw until the test ends.
func runForwarder(t *testing.T, fw *Forwarder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- fw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	})
}

func TestForwarder(t *testing.T) {
	root := openTest(t, t.TempDir(), nil)
	mid := openMid(t)
	addr := serveIndex(t, root)

	mustReceive(t, mid, listMsgs("a", 5, "1", "2", "hmi.1"))
	f, p := newFilter(0.01, "2", "3")
	mustReceive(t, mid, bloomMsgs("b", 7, f, p))
	mustReceive(t, mid, deltaMsgs("b", 7, 8, []string{"4"}, []string{"3"}))

	runForwarder(t, NewForwarder(mid, "mid", []Target{{Addr: addr, DeltaDelay: 10 * time.Millisecond}}, nil, nil))

	lfns := []string{"1", "2", "3", "4"}
	waitWhere(t, root, lfns, "a/list", "a/list,b/bloom", "", "b/delta")
	for _, s := range root.Sites() {
		if !slices.Equal(s.Via, []string{"mid"}) || s.Endpoint != s.Site+":7600" {
			t.Fatalf("root holds %+v: want the leaf's endpoint, via mid", s)
		}
		if s.Site == "b" && (s.Generation != 8 || s.FullGeneration != 7 || s.Bloom != p) {
			t.Fatalf("root holds b as %+v, want generation 8 on the full filter of 7 (%+v)", s, p)
		}
	}
	// The filter arrived intact: the root's answers match the original.
	for i := range 500 {
		lfn := fmt.Sprint("x", i)
		want := ""
		if f.TestString(lfn) {
			want = "b/bloom"
		}
		waitWhere(t, root, []string{lfn}, want)
	}

	// Changes at mid travel as deltas.
	mustReceive(t, mid, deltaMsgs("b", 8, 9, []string{"5"}, nil))
	waitWhere(t, root, []string{"5"}, "b/delta")

	// The root holds something else for a (another path, of a rebuilt
	// catalog: another incarnation): the delta is refused, and the
	// forwarder sends a in full again, which starts over. (A newer
	// generation of the same incarnation would stay: see TestReplayRefused.)
	mustReceive(t, root, withIncarnation(0xcc, listMsgs("a", 99, "other")))
	mustReceive(t, mid, deltaMsgs("a", 5, 6, []string{"6"}, []string{"1"}))
	waitWhere(t, root, []string{"1", "6", "other"}, "", "a/delta", "")
}

func TestForwarderPatternsAndLoops(t *testing.T) {
	root := openTest(t, t.TempDir(), nil)
	mid := openMid(t)
	addr := serveIndex(t, root)
	mustReceive(t, mid, listMsgs("a", 1, "hmi.1", "aia.1"))
	// A site whose state already came through the forwarder's index ("up")
	// is not sent back there.
	loop := listMsgs("c", 1, "hmi.2")
	loop[0].GetHeader().Via = []string{"up"}
	mustReceive(t, mid, loop)

	pat, err := catalog.CompilePattern("hmi.*")
	if err != nil {
		t.Fatal(err)
	}
	runForwarder(t, NewForwarder(mid, "up", []Target{{Addr: addr, Patterns: []*catalog.Pattern{pat}}}, nil, nil))
	waitWhere(t, root, []string{"hmi.1", "aia.1", "hmi.2"}, "a/list", "", "")
}

// TestForwarderSetTargets moves a running forwarder from one parent to
// another: the new one receives the sites, the old one's loop ends and it
// receives no more.
func TestForwarderSetTargets(t *testing.T) {
	mid := openMid(t)
	mustReceive(t, mid, listMsgs("a", 5, "1", "2"))
	recA, addrA := startRecorder(t)
	recB, addrB := startRecorder(t)
	fw := NewForwarder(mid, "mid", []Target{{Addr: addrA, DeltaDelay: time.Millisecond}}, quietLogger(), nil)
	runForwarder(t, fw)
	recA.waitFor(t, "a at the first parent", func() bool { return recA.gen["a"] == 5 })

	if err := fw.SetTargets([]Target{{Addr: addrA}, {Addr: addrA}}); err == nil {
		t.Fatal("SetTargets with a parent twice succeeded")
	}
	fw.mu.Lock()
	oldDone := fw.parents[0].done
	fw.mu.Unlock()
	if err := fw.SetTargets([]Target{{Addr: addrB, DeltaDelay: time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	recB.waitFor(t, "a at the new parent", func() bool { return recB.gen["a"] == 5 })
	select {
	case <-oldDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the removed parent's loop did not stop")
	}
	sentA := len(recA.all())
	mustReceive(t, mid, deltaMsgs("a", 5, 6, []string{"3"}, nil))
	recB.waitFor(t, "the delta at the new parent", func() bool { return recB.gen["a"] == 6 })
	if n := len(recA.all()); n != sentA {
		t.Errorf("the removed parent received %d updates after its removal", n-sentA)
	}
	if _, err := fw.UpdateNow(t.Context(), addrA); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("UpdateNow(removed parent) = %v, want ErrUnknownTarget", err)
	}
	if rs, err := fw.UpdateNow(t.Context(), addrB); err != nil || len(rs) != 1 || rs[0].Err != nil {
		t.Errorf("UpdateNow(new parent) = %+v, %v", rs, err)
	}
}
