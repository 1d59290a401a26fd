package statuspage_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// ScreenshotEnv names a path where TestStatusPageInChromium writes its
// screenshot; by default it goes to the test's temporary directory.
const screenshotEnv = "RLS_STATUSPAGE_SCREENSHOT"

// chromium returns the path of Debian's chromium. It skips the test when
// there is none, unless CI=true, where it fails (CI installs it).
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no chromium (CI=true: .ci/run must install it): %v", err)
		}
		t.Skip("no chromium to drive: apt-get install -y chromium")
	}
	return path
}

// browser starts a headless Chromium for the test (root-safe flags, an
// empty profile, no network of its own) and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelT)
	return ctx
}

// TestStatusPageInChromium loads a real rlsd's status page in headless
// Chromium, reads the catalog count, writes a mapping through gRPC, reloads
// and sees the count change, and writes a screenshot.
//
// Three daemons give the page something to show: jsoc (roles lrc, rli;
// the page's) sends its catalog to nso's index, and sao sends its catalog
// to jsoc's index.
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts rlsd processes and Chromium")
	}
	ctx := browser(t) // skips early without chromium
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	start := func(site, roles string, extra ...string) *rlsdtest.Proc {
		args := append([]string{"--site", site, "--data", filepath.Join(t.TempDir(), site), "--listen", "127.0.0.1:0",
			"--roles", roles, "--no-sync"}, extra...)
		svc := "rls.v1.Catalog"
		if roles == "rli" {
			svc = "rls.v1.Index"
		}
		return rlsdtest.Start(t, rlsd, svc, args...)
	}
	nso := start("nso", "rli")
	jsoc := start("jsoc", "lrc,rli", "--http-listen", "127.0.0.1:0", "--update-to", nso.Addr)
	sao := start("sao", "lrc", "--update-to", jsoc.Addr)
	if jsoc.HTTPAddr == "" {
		t.Fatalf("no HTTP address in jsoc's log:\n%s", jsoc.Log())
	}
	jsocConn := dial(t, jsoc.Addr)
	saoConn := dial(t, sao.Addr)
	for _, lfn := range []string{"100", "101"} {
		if _, err := rlsv1.NewCatalogClient(saoConn).Create(ctx, &rlsv1.MappingRequest{Lfn: lfn, Pfn: "/SUM2/D" + lfn}); err != nil {
			t.Fatal(err)
		}
	}
	// Send now and wait for the results, so that the page shows them.
	for _, cc := range []*grpc.ClientConn{saoConn, jsocConn} {
		resp, err := rlsv1.NewAdminClient(cc).Update(ctx, &rlsv1.UpdateNowRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResults() {
			if r.GetError() != "" {
				t.Fatalf("update to %s: %s", r.GetTarget(), r.GetError())
			}
		}
	}

	url := "http://" + jsoc.HTTPAddr + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	site, sites := text(t, ctx, "site"), text(t, ctx, "index-sites")
	before := text(t, ctx, "catalog-mappings")
	if site != "jsoc" || before != "0" || sites != "1" {
		t.Errorf("page shows site %q, %q mappings, %q index sites; want jsoc, 0, 1", site, before, sites)
	}

	if _, err := rlsv1.NewCatalogClient(jsocConn).Create(ctx, &rlsv1.MappingRequest{Lfn: "123456789", Pfn: "/SUM1/D123456789"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reloading %s: %v", url, err)
	}
	if after := text(t, ctx, "catalog-mappings"); after != "1" {
		t.Errorf("after a write the page shows %q mappings, want 1", after)
	}
	if sends, index := text(t, ctx, "sends"), text(t, ctx, "index"); !strings.Contains(sends, nso.Addr) || !strings.Contains(index, "sao") {
		t.Errorf("page lacks the send to nso (%s) or the index's site sao:\n%s\n%s", nso.Addr, sends, index)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}

	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("screenshot is %v", b)
	}
	path := os.Getenv(screenshotEnv)
	if path == "" {
		path = filepath.Join(t.TempDir(), "statuspage.png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}

// text returns the visible text of the element with id.
func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	if err != nil {
		t.Fatalf("text of #%s: %v", id, err)
	}
	return strings.TrimSpace(s)
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
