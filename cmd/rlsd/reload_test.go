package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
	"github.com/solar-archive/rls/internal/secure"
)

// TestSIGHUPReloadsUpdateTargets starts an LRC without update targets and
// gives it RLI A with a SIGHUP, then moves it to RLI B with another, and
// checks that B receives the site's state while A receives nothing more,
// that a bad update configuration is refused, and that sending to B goes
// on after it.
func TestSIGHUPReloadsUpdateTargets(t *testing.T) {
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	startRLI := func(site string) (*rlsdtest.Proc, rlsv1.IndexClient) {
		p := rlsdtest.Start(t, rlsd, "rls.v1.Index", "--site", site, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--no-sync", "--roles", "rli")
		cc, err := (*secure.Dialer)(nil).Dial(p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return p, rlsv1.NewIndexClient(cc)
	}
	a, rliA := startRLI("rli-a")
	b, rliB := startRLI("rli-b")
	// entries is what an RLI holds of the LRC's site: its LFN count.
	entries := func(cl rlsv1.IndexClient) (uint64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := cl.Sites(ctx, &rlsv1.SitesRequest{})
		if err != nil {
			return 0, err
		}
		for _, s := range r.GetSites() {
			if s.GetSite() == "jsoc" {
				return s.GetEntries(), nil
			}
		}
		return 0, fmt.Errorf("site jsoc not held")
	}
	holds := func(cl rlsv1.IndexClient, want uint64) func() error {
		return func() error {
			n, err := entries(cl)
			if err == nil && n != want {
				err = fmt.Errorf("holds %d LFNs of jsoc, want %d", n, want)
			}
			return err
		}
	}
	sendTo := func(addr string) string {
		return fmt.Sprintf("update-targets:\n  - addr: %s\n    mode: delta\n    delta-delay: 10ms\n", addr)
	}

	cfg := filepath.Join(t.TempDir(), "rlsd.yaml")
	if err := os.WriteFile(cfg, []byte("update-mode: delta\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lrc := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", "--site", "jsoc", "--data", t.TempDir(), "--listen", "127.0.0.1:0",
		"--no-sync", "--roles", "lrc", "--config", cfg)
	cc, err := (*secure.Dialer)(nil).Dial(lrc.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cat, admin := rlsv1.NewCatalogClient(cc), rlsv1.NewAdminClient(cc)
	if err := create(cat, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Update(t.Context(), &rlsv1.UpdateNowRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Admin.Update without targets: %v, want FAILED_PRECONDITION", err)
	}

	reload := func(yaml string, want *regexp.Regexp) string {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		from := lrc.LogLen()
		if err := lrc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		lrc.WaitLog(t, from, want, 20*time.Second)
		return lrc.Log()[from:]
	}
	reload(sendTo(a.Addr), regexp.MustCompile(`config reloaded`))
	rlsdtest.Eventually(t, 20*time.Second, holds(rliA, 1))

	log := reload(sendTo(b.Addr), regexp.MustCompile(`config reloaded`))
	if !regexp.MustCompile(`update targets reloaded.*added=\[?` + regexp.QuoteMeta(b.Addr) + `.*removed=\[?` + regexp.QuoteMeta(a.Addr)).MatchString(log) {
		t.Errorf("the reload does not log the targets added and removed:\n%s", log)
	}
	if strings.Contains(log, "needs_restart") {
		t.Errorf("the update targets' change is logged as needing a restart:\n%s", log)
	}
	if err := create(cat, "2"); err != nil {
		t.Fatal(err)
	}
	rlsdtest.Eventually(t, 20*time.Second, holds(rliB, 2))

	// A bad update configuration is refused as a whole: B stays the target.
	reload(fmt.Sprintf("update-targets:\n  - addr: %s\n    interval: 1h\n    validity: 1m\n", b.Addr),
		regexp.MustCompile(`config reload refused.*validity`))
	reload("update-mode: gossip\nupdate-to: "+a.Addr+"\n", regexp.MustCompile(`config reload refused.*update-mode`))
	if err := create(cat, "3"); err != nil {
		t.Fatal(err)
	}
	rlsdtest.Eventually(t, 20*time.Second, holds(rliB, 3))
	// A received nothing after the first reload.
	if err := holds(rliA, 1)(); err != nil {
		t.Errorf("RLI A after it was removed: %v", err)
	}
	if code := lrc.Stop(20 * time.Second); code != 0 {
		t.Fatalf("rlsd exit %d:\n%s", code, lrc.Log())
	}
}
