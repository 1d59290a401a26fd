package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// TestFaultPartition cuts the network between a site's LRC and its RLI,
// RLS_FAULT_ROUNDS times. Each runs in a network namespace of its own
// (ip netns), joined by a veth pair with addresses of a /30 that exists
// only inside the two namespaces; the test reaches each daemon from inside
// its namespace, so nothing is routed anywhere else. The LRC sends a full
// list every second, valid for three. With the link down, the site's
// entries expire at the RLI (polled until Locate finds none); with the
// link up again, the LRC's next update makes them locatable again.
//
// It needs root and ip netns (it skips, saying so, without them).
func TestFaultPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts rlsd processes in network namespaces")
	}
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	nsR, nsL := rlsdtest.NewNetns(t), rlsdtest.NewNetns(t)
	const devR, devL = "rls-rli", "rls-lrc"
	rlsdtest.Veth(t, nsR, devR, "10.203.0.1/30", nsL, devL, "10.203.0.2/30")

	// The hosts talk over the veth pair, not loopback, and without TLS:
	// an ACL lets the anonymous peers in (the default is loopback only).
	acl := filepath.Join(t.TempDir(), "rlsd.yaml")
	if err := os.WriteFile(acl, []byte("acl:\n  - identity: anonymous\n    permissions: [all]\n    speak_for: \".*\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rli := nsR.Start(t, rlsd, "rls.v1.Index", "--site", "rli", "--data", t.TempDir(), "--config", acl,
		"--listen", "10.203.0.1:0", "--roles", "rli", "--index-expire-interval", "200ms")
	lrc := nsL.Start(t, rlsd, "rls.v1.Catalog", "--site", "a", "--data", t.TempDir(), "--config", acl,
		"--listen", "10.203.0.2:0", "--roles", "lrc", "--update-to", rli.Addr, "--update-mode", "list",
		"--update-interval", "1s", "--update-validity", "3s")
	index := rlsv1.NewIndexClient(nsR.Client(t, rli.Addr))
	cat := rlsv1.NewCatalogClient(nsL.Client(t, lrc.Addr))

	lfns := []string{"100", "200", "300"}
	for _, l := range lfns {
		if _, err := cat.Create(ctxT(t), &rlsv1.MappingRequest{Lfn: l, Pfn: "/a/D" + l}); err != nil {
			t.Fatal(err)
		}
	}
	// located reports how many of lfns the RLI places at site a.
	located := func() int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := index.Locate(ctx, &rlsv1.LocateRequest{Lfns: lfns})
		if err != nil {
			t.Fatalf("locate at the RLI: %v", err)
		}
		n := 0
		for _, r := range resp.GetResults() {
			for _, c := range r.GetSites() {
				if c.GetSite() == "a" {
					n++
				}
			}
		}
		return n
	}
	wantLocated := func(want int, timeout time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		rlsdtest.Eventually(t, timeout, func() error {
			if n := located(); n != want {
				return fmt.Errorf("the RLI locates %d of %d LFNs at site a, want %d", n, len(lfns), want)
			}
			return nil
		})
		return time.Since(start)
	}
	wantLocated(len(lfns), 15*time.Second)

	for round := range rlsdtest.FaultRounds(t) {
		nsL.IP(t, "link", "set", devL, "down")
		// Expiry: the validity (3 s) after the last update that got through,
		// and the RLI never answers with expired state.
		expired := wantLocated(0, 30*time.Second)
		nsL.IP(t, "link", "set", devL, "up")
		// Recovery: the LRC's next update. (The sender has no gRPC
		// keepalive: an update in flight on the cut connection neither
		// fails nor ends until TCP retransmits once the link is up, or the
		// call times out after 5 minutes.)
		up := time.Now()
		back := wantLocated(len(lfns), time.Minute)
		resp, err := index.Sites(ctxT(t), &rlsv1.SitesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if s := resp.GetSites(); len(s) != 1 || s[0].GetReceived().AsTime().Before(up) {
			t.Fatalf("after the partition, the RLI holds %v: want site a, received since the link came up", s)
		}
		t.Logf("round %d: link down: the entries expired after %v; link up: locatable again after %v",
			round, expired.Round(time.Millisecond), back.Round(time.Millisecond))
	}
}
