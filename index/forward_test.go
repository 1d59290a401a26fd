package index

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// What the forwarder sends, round by round, is in testdata/index/forward*
// (TestScenarios); these tests run its loop: changes travel on the index's
// notifications, failed rounds are retried, UpdateNow and SetTargets.

// waitWhere waits, on x's change notifications, until Locate gives want.
func waitWhere(t *testing.T, x *Index, lfns []string, want ...string) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("Locate(%q) = %q", lfns, want), x.Notify, func() error {
		if got := where(t, x, lfns...); !slices.Equal(got, want) {
			return fmt.Errorf("Locate gives %q", got)
		}
		return nil
	})
}

// openMid opens the middle index of the forwarding tests.
func openMid(t *testing.T) *Index {
	t.Helper()
	mid, err := Open(t.TempDir(), &Options{Site: "mid", NoSync: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mid.Close() })
	return mid
}

func newForwarder(t *testing.T, x *Index, d Dialer, parents ...Parent) *Forwarder {
	t.Helper()
	f, err := NewForwarder(x, x.opts.Site, parents, ForwarderOptions{
		Logger: quietLogger(), Dialer: d, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
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

// TestForwarderRun runs a forwarder from mid to root: what mid holds
// arrives, a change at mid follows as a delta, and UpdateNow refreshes
// every site.
func TestForwarderRun(t *testing.T) {
	root := openTest(t, t.TempDir(), nil)
	mid := openMid(t)
	mustReceive(t, mid, listMsgs("a", 5, "1", "2"))
	f, p := newFilter(0.01, "2", "3")
	mustReceive(t, mid, bloomMsgs("b", 7, f, p))
	fw := newForwarder(t, mid, sinks("root:1", localSink{root}), Parent{Addr: "root:1", DeltaDelay: time.Millisecond})
	runForwarder(t, fw)

	waitWhere(t, root, []string{"1", "2", "3"}, "a/list", "a/list,b/bloom", "b/bloom")
	mustReceive(t, mid, deltaMsgs("b", 7, 8, []string{"5"}, []string{"3"}))
	waitWhere(t, root, []string{"3", "5"}, "", "b/delta")

	rs, err := fw.UpdateNow(t.Context(), "")
	if err != nil || len(rs) != 1 || rs[0].Err != nil || rs[0].Sites != 2 || rs[0].Target != "root:1" {
		t.Fatalf("UpdateNow = %+v, %v; want one result of 2 sites", rs, err)
	}
	if _, err := fw.UpdateNow(t.Context(), "elsewhere:1"); !errors.Is(err, ErrUnknownTarget) {
		t.Errorf("UpdateNow(elsewhere:1) = %v, want ErrUnknownTarget", err)
	}
}

// TestForwarderRetries checks that a round that failed (the parent down)
// is tried again, with backoff, until the parent holds the sites.
func TestForwarderRetries(t *testing.T) {
	mid := openMid(t)
	mustReceive(t, mid, listMsgs("a", 5, "1", "2"))
	rec := newRecorder()
	rec.setDown(errors.New("parent down"))
	fw := newForwarder(t, mid, sinks("up:1", rec), Parent{Addr: "up:1"})
	runForwarder(t, fw)
	rec.waitFor(t, "three attempts", func() bool { return rec.started >= 3 })
	rec.setDown(nil)
	rec.waitFor(t, "a at the parent once it is up", func() bool { return rec.gen["a"] == 5 })
	if got := rec.list("a"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("parent holds %q, want 1 2", got)
	}
}

// TestForwarderSetTargets moves a running forwarder from one parent to
// another: the new one receives the sites, the old one's loop ends and it
// receives no more.
func TestForwarderSetTargets(t *testing.T) {
	mid := openMid(t)
	mustReceive(t, mid, listMsgs("a", 5, "1", "2"))
	recA, recB := newRecorder(), newRecorder()
	const addrA, addrB = "a:1", "b:1"
	fw := newForwarder(t, mid, sinks(addrA, recA, addrB, recB), Parent{Addr: addrA, DeltaDelay: time.Millisecond})
	runForwarder(t, fw)
	recA.waitFor(t, "a at the first parent", func() bool { return recA.gen["a"] == 5 })

	if err := fw.SetTargets([]Parent{{Addr: addrA}, {Addr: addrA}}); err == nil {
		t.Fatal("SetTargets with a parent twice succeeded")
	}
	if err := fw.SetTargets([]Parent{{Addr: addrB, Interval: -time.Second}}); err == nil {
		t.Fatal("SetTargets with a negative interval succeeded")
	}
	fw.set.mu.Lock()
	oldDone := fw.set.items[0].ctl.done
	fw.set.mu.Unlock()
	if err := fw.SetTargets([]Parent{{Addr: addrB, DeltaDelay: time.Millisecond}}); err != nil {
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

func TestNewForwarderChecks(t *testing.T) {
	mid := openMid(t)
	if _, err := NewForwarder(mid, "mid", nil, ForwarderOptions{}); err == nil {
		t.Error("NewForwarder without a Dialer succeeded")
	}
	if _, err := NewForwarder(mid, "mid", []Parent{{}}, ForwarderOptions{Dialer: sinks()}); err == nil {
		t.Error("NewForwarder with a parent without address succeeded")
	}
}
