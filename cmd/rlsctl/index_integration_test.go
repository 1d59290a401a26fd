package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// These tests run real rlsd processes on loopback: LRC sites that send soft
// state, and RLIs that index it.

type node struct {
	*rlsdtest.Proc
	site string
	data string
	args []string // as started, for restarts
	cc   *grpc.ClientConn
}

func (n *node) catalog() rlsv1.CatalogClient { return rlsv1.NewCatalogClient(n.cc) }
func (n *node) index() rlsv1.IndexClient     { return rlsv1.NewIndexClient(n.cc) }
func (n *node) admin() rlsv1.AdminClient     { return rlsv1.NewAdminClient(n.cc) }

func startNode(t *testing.T, service, site, data string, args ...string) *node {
	t.Helper()
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	all := append([]string{"--site", site, "--data", data, "--listen", "127.0.0.1:0", "--no-sync=false"}, args...)
	p := rlsdtest.Start(t, rlsd, service, all...)
	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &node{Proc: p, site: site, data: data, args: args, cc: cc}
}

// restart starts the node again on its data directory (after Kill), on a
// new port.
func (n *node) restart(t *testing.T, service string, args ...string) *node {
	t.Helper()
	return startNode(t, service, n.site, n.data, append(slices.Clone(n.args), args...)...)
}

func startRLI(t *testing.T, site string, args ...string) *node {
	t.Helper()
	return startNode(t, "rls.v1.Index", site, t.TempDir(), append([]string{"--roles", "rli", "--index-expire-interval", "200ms"}, args...)...)
}

// startLRC starts a site's LRC sending to the given RLIs in mode. Full
// updates are sent only on request (admin update) or at start, unless the
// test passes --update-interval.
func startLRC(t *testing.T, site, mode string, rlis []*node, args ...string) *node {
	t.Helper()
	var addrs []string
	for _, r := range rlis {
		addrs = append(addrs, r.Addr)
	}
	base := []string{"--roles", "lrc", "--update-mode", mode, "--update-interval", "1h", "--update-validity", "2h", "--update-delta-delay", "50ms"}
	if len(addrs) > 0 {
		base = append(base, "--update-to", strings.Join(addrs, ","))
	}
	return startNode(t, "rls.v1.Catalog", site, t.TempDir(), append(base, args...)...)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (n *node) create(t *testing.T, lfns ...string) {
	t.Helper()
	for _, l := range lfns {
		if _, err := n.catalog().Create(ctxT(t), &rlsv1.MappingRequest{Lfn: l, Pfn: "/" + n.site + "/D" + l}); err != nil {
			t.Fatalf("%s: create %s: %v", n.site, l, err)
		}
	}
}

func (n *node) delete(t *testing.T, lfn string) {
	t.Helper()
	if _, err := n.catalog().Delete(ctxT(t), &rlsv1.MappingRequest{Lfn: lfn, Pfn: "/" + n.site + "/D" + lfn}); err != nil {
		t.Fatalf("%s: delete %s: %v", n.site, lfn, err)
	}
}

// update makes the LRC send a full update to its targets now.
func (n *node) update(t *testing.T) {
	t.Helper()
	resp, err := n.admin().Update(ctxT(t), &rlsv1.UpdateNowRequest{})
	if err != nil {
		t.Fatalf("%s: admin update: %v", n.site, err)
	}
	for _, r := range resp.GetResults() {
		if r.GetError() != "" {
			t.Fatalf("%s: update to %s: %s", n.site, r.GetTarget(), r.GetError())
		}
	}
}

// where asks the index and returns, per LFN, "site/how" of each candidate.
func (n *node) where(t *testing.T, lfns ...string) []string {
	t.Helper()
	resp, err := n.index().Locate(ctxT(t), &rlsv1.LocateRequest{Lfns: lfns})
	if err != nil {
		t.Fatalf("locate: %v", err)
	}
	out := make([]string, len(lfns))
	for i, r := range resp.GetResults() {
		var s []string
		for _, c := range r.GetSites() {
			s = append(s, c.GetSite()+"/"+knowledgeName(c.GetKnownBy()))
		}
		out[i] = strings.Join(s, ",")
	}
	return out
}

func wantWhere(t *testing.T, rli *node, timeout time.Duration, lfns []string, want ...string) {
	t.Helper()
	rlsdtest.Eventually(t, timeout, func() error {
		if got := rli.where(t, lfns...); !slices.Equal(got, want) {
			return fmt.Errorf("Locate(%q) = %q, want %q", lfns, got, want)
		}
		return nil
	})
}

func TestIndexModes(t *testing.T) {
	for _, mode := range []string{"list", "bloom", "delta"} {
		t.Run(mode, func(t *testing.T) {
			rli := startRLI(t, "rli")
			a := startLRC(t, "a", mode, []*node{rli})
			b := startLRC(t, "b", mode, []*node{rli})
			waitSite(t, rli, "a") // the first full update, sent at start
			waitSite(t, rli, "b")
			a.create(t, "100", "101")
			b.create(t, "101", "102")
			lfns := []string{"100", "101", "102", "103"}
			how := mode
			if mode == "delta" {
				how = "delta" // added after the first (empty) full list
			} else {
				a.update(t)
				b.update(t)
			}
			wantWhere(t, rli, 5*time.Second, lfns, "a/"+how, "a/"+how+",b/"+how, "b/"+how, "")

			// A delete disappears after the next update (delta: at once).
			a.delete(t, "101")
			if mode != "delta" {
				a.update(t)
			}
			wantWhere(t, rli, 5*time.Second, lfns[1:2], "b/"+how)

			// A full update folds the deltas in: delta sites are then known
			// by list.
			if mode == "delta" {
				a.update(t)
				wantWhere(t, rli, 5*time.Second, lfns, "a/list", "b/delta", "b/delta", "")
			}
		})
	}
}

// falsePositive returns a name that a filter of lfns (as an LRC builds it)
// matches but that is not one of them.
func falsePositive(t *testing.T, lfns []string) string {
	m, k := index.BloomGeometry(uint64(len(lfns)), index.DefaultFalsePositiveRate)
	f := bloom.New(uint(m), uint(k))
	for _, l := range lfns {
		f.AddString(l)
	}
	for i := range 10_000_000 {
		name := fmt.Sprint("fp-", i)
		if f.TestString(name) {
			return name
		}
	}
	t.Fatal("no false positive in 10M names")
	return ""
}

func TestIndexVerify(t *testing.T) {
	rli := startRLI(t, "rli")
	a := startLRC(t, "a", "bloom", []*node{rli})
	b := startLRC(t, "b", "list", []*node{rli})
	var lfns []string
	for i := range 200 {
		lfns = append(lfns, fmt.Sprint(1000+i))
	}
	a.create(t, lfns...)
	b.create(t, "1000")
	a.update(t)
	b.update(t)
	fp := falsePositive(t, lfns)
	wantWhere(t, rli, 5*time.Second, []string{"1000", fp}, "a/bloom,b/list", "a/bloom")

	locate := func() *rlsv1.LocateResponse {
		resp, err := rli.index().Locate(ctxT(t), &rlsv1.LocateRequest{
			Lfns: []string{"1000", fp}, Verify: true, VerifyTimeout: durationpb.New(2 * time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := locate()
	got := resp.GetResults()
	if len(got[0].GetSites()) != 2 || len(got[1].GetSites()) != 0 {
		t.Fatalf("verified Locate = %v; want 1000 at a and b, and the false positive %s nowhere", resp, fp)
	}
	for _, c := range got[0].GetSites() {
		want := "/" + c.GetSite() + "/D1000"
		if c.GetVerification() != rlsv1.Verification_VERIFICATION_CONFIRMED || !slices.Equal(c.GetPfns(), []string{want}) {
			t.Fatalf("site %s: %v, want confirmed with PFN %s", c.GetSite(), c, want)
		}
	}

	// A site that does not answer stays, unverified.
	b.Kill()
	got = locate().GetResults()
	var unverified []string
	for _, c := range got[0].GetSites() {
		if c.GetVerification() == rlsv1.Verification_VERIFICATION_UNVERIFIED {
			unverified = append(unverified, c.GetSite())
			if c.GetError() == "" {
				t.Fatalf("unverified site %s without a reason", c.GetSite())
			}
		}
	}
	if !slices.Equal(unverified, []string{"b"}) || len(got[0].GetSites()) != 2 {
		t.Fatalf("after killing b, verified Locate(1000) = %v, want a confirmed and b unverified", got[0])
	}

	// rlsctl: exit 3 for an LFN no site holds, 5 when no candidate answers.
	rlsctl := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsctl")
	for _, c := range []struct {
		args []string
		exit int
	}{
		{[]string{"locate", "1000"}, exitOK},
		{[]string{"locate", "1000", "--verify"}, exitOK},
		{[]string{"rli", "query", "nowhere"}, exitNotFound},
		{[]string{"locate", "nowhere", "--verify"}, exitNotFound},
	} {
		cmd, out, errb := rlsctlCmd(rlsctl, append([]string{"--server", rli.Addr}, c.args...)...)
		err := cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != c.exit {
			t.Fatalf("rlsctl %q: exit %d (%v), want %d\nstdout: %s\nstderr: %s", c.args, code, err, c.exit, out, errb)
		}
	}
	// rli sites and rli query wildcard, as scripts read them.
	r := runRlsctl(t, rlsctl, "--server", rli.Addr, "-o", "json", "rli", "sites")
	var sites []siteInfoView
	if err := json.Unmarshal([]byte(r.stdout), &sites); r.code != 0 || err != nil || len(sites) != 2 ||
		sites[0].Site != "a" || sites[0].Mode != "bloom" || sites[0].Entries != 200 || sites[0].BloomM == 0 ||
		sites[1].Site != "b" || sites[1].Mode != "list" || sites[1].Entries != 1 || sites[1].Expires == "" {
		t.Fatalf("rli sites: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	r = runRlsctl(t, rlsctl, "--server", rli.Addr, "-o", "json", "rli", "query", "wildcard", "10*")
	var wc indexWildcardResult
	if err := json.Unmarshal([]byte(r.stdout), &wc); r.code != 0 || err != nil || len(wc.Matches) != 1 ||
		wc.Matches[0].LFN != "1000" || wc.Matches[0].Site != "b" || !slices.Equal(wc.Unsearched, []string{"a"}) ||
		!strings.Contains(r.stderr, "not searched") {
		t.Fatalf("rli query wildcard: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}

	// b holds 1000 alone now that a deletes it: verifying finds no one to ask.
	a.delete(t, "1000")
	a.update(t)
	cmd, out, errb := rlsctlCmd(rlsctl, "--server", rli.Addr, "locate", "1000", "--verify", "--verify-timeout", "1s")
	_ = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitUnavailable {
		t.Fatalf("locate --verify with the only candidate down: exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUnavailable, out, errb)
	}
}

func TestIndexHierarchy(t *testing.T) {
	root := startRLI(t, "root")
	mid := startRLI(t, "mid", "--update-to", root.Addr, "--update-interval", "1h", "--update-delta-delay", "50ms")
	a := startLRC(t, "a", "list", []*node{mid})
	b := startLRC(t, "b", "bloom", []*node{mid}, "--update-deltas")
	waitSite(t, mid, "b")
	a.create(t, "1")
	b.create(t, "1", "2")
	a.update(t)
	b.update(t)
	wantWhere(t, root, 10*time.Second, []string{"1", "2"}, "a/list,b/bloom", "b/bloom")
	// Deltas travel up too.
	b.create(t, "3")
	wantWhere(t, root, 10*time.Second, []string{"3"}, "b/delta")

	resp, err := root.index().Sites(ctxT(t), &rlsv1.SitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.GetSites() {
		if !slices.Equal(s.GetVia(), []string{"mid"}) || s.GetEndpoint() == mid.Addr {
			t.Fatalf("root holds %v: want the leaf's endpoint, via mid", s)
		}
	}
}

func TestIndexPartitions(t *testing.T) {
	low := startRLI(t, "rli-low")
	high := startRLI(t, "rli-high")
	cfg := filepath.Join(t.TempDir(), "rlsd.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `
update-targets:
  - addr: %s
    mode: list
    interval: 1h
    patterns: ["1*", "2*", "3*", "4*"]
  - addr: %s
    mode: bloom
    interval: 1h
    patterns: ["5*", "6*", "7*", "8*", "9*"]
`, low.Addr, high.Addr), 0o644); err != nil {
		t.Fatal(err)
	}
	site := startLRC(t, "a", "list", nil, "--config", cfg)
	lfns := []string{"100", "400", "500", "900"}
	site.create(t, lfns...)
	site.update(t)
	wantWhere(t, low, 5*time.Second, lfns, "a/list", "a/list", "", "")
	// The Bloom filter holds only its half: its answers for the other half
	// are at most false positives, which these are not (checked with the
	// same filter built locally).
	m, k := index.BloomGeometry(2, index.DefaultFalsePositiveRate)
	f := bloom.New(uint(m), uint(k))
	f.AddString("500")
	f.AddString("900")
	var want []string
	for _, l := range lfns {
		if f.TestString(l) {
			want = append(want, "a/bloom")
		} else {
			want = append(want, "")
		}
	}
	wantWhere(t, high, 5*time.Second, lfns, want...)
}

func TestIndexExpiryAndRestart(t *testing.T) {
	rli := startRLI(t, "rli")
	// Full lists every second, each valid for two.
	a := startLRC(t, "a", "list", []*node{rli}, "--update-validity", "2s", "--update-interval", "1s")
	a.create(t, "1")
	wantWhere(t, rli, 5*time.Second, []string{"1"}, "a/list")

	// kill -9 the RLI: restarted, it answers at once from its snapshot.
	rli.Kill()
	rli = rli.restart(t, "rls.v1.Index")
	if got := rli.where(t, "1"); !slices.Equal(got, []string{"a/list"}) {
		t.Fatalf("restarted RLI answers %q, want a/list at once", got)
	}

	// kill -9 the site: its entries vanish after the validity window (2 s).
	a.Kill()
	wantWhere(t, rli, 10*time.Second, []string{"1"}, "")
	// Restarted (pointed at the restarted RLI), the site sends a full update
	// at once.
	a.args = slices.Clone(a.args)
	for i, arg := range a.args {
		if arg == "--update-to" {
			a.args[i+1] = rli.Addr
		}
	}
	a.restart(t, "rls.v1.Catalog")
	wantWhere(t, rli, 5*time.Second, []string{"1"}, "a/list")
}

// waitSite waits until the index holds state for site (its first full
// update arrived).
func waitSite(t *testing.T, rli *node, site string) {
	t.Helper()
	rlsdtest.Eventually(t, 5*time.Second, func() error {
		resp, err := rli.index().Sites(ctxT(t), &rlsv1.SitesRequest{})
		if err != nil {
			return err
		}
		for _, s := range resp.GetSites() {
			if s.GetSite() == site {
				return nil
			}
		}
		return fmt.Errorf("the index holds no state for site %s", site)
	})
}
