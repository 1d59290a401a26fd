package statuspage

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type catalogFunc func() (CatalogStatus, error)

func (f catalogFunc) CatalogStatus() (CatalogStatus, error) { return f() }

type indexFunc func() IndexStatus

func (f indexFunc) IndexStatus() IndexStatus { return f() }

type sendersFunc func() []SendStatus

func (f sendersFunc) SendStatus() []SendStatus { return f() }

type transferFunc func() TransferStatus

func (f transferFunc) TransferStatus() TransferStatus { return f() }

type mirrorFunc func() (MirrorStatus, error)

func (f mirrorFunc) MirrorStatus(context.Context) (MirrorStatus, error) { return f() }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func get(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	return rec.Body.String()
}

func wantIn(t *testing.T, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

func wantNotIn(t *testing.T, page string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(page, w) {
			t.Errorf("page has %q", w)
		}
	}
}

func TestPageEverySection(t *testing.T) {
	now := t0
	src := &Sources{
		Info: Info{Site: "jsoc", Version: "v1.2.3", Roles: []string{"lrc", "rli", "transfer"}, Started: t0.Add(-90 * time.Minute)},
		Now:  func() time.Time { return now },
		RPCs: func() (uint64, error) { return 1234567, nil },
		Catalog: catalogFunc(func() (CatalogStatus, error) {
			return CatalogStatus{LFNs: 200009, PFNs: 3, Mappings: 200012, Seq: 77, DiskBytes: 5 << 20}, nil
		}),
		Index: indexFunc(func() IndexStatus {
			return IndexStatus{Sites: []IndexSite{
				{Site: "nso", Endpoint: "nso:7600", Mode: "bloom", Entries: 1000, Generation: 4, Received: t0.Add(-time.Minute), Expires: t0.Add(time.Hour)},
				{Site: "sao", Endpoint: "sao:7600", Mode: "list", Entries: 5, Received: t0.Add(-59 * time.Minute), Expires: t0.Add(time.Minute), Via: []string{"mid"}},
			}}
		}),
		Senders: []Senders{sendersFunc(func() []SendStatus {
			return []SendStatus{
				{From: "catalog", Target: "rli:7600", Mode: "list", Interval: 10 * time.Minute, Generation: 9, LastSuccess: t0.Add(-30 * time.Second)},
				{From: "catalog", Target: "down:7600", Mode: "bloom", LastError: "UNAVAILABLE: <connection refused>", Failures: 3},
			}
		})},
		Transfer: transferFunc(func() TransferStatus { return TransferStatus{BytesSent: 3 << 30} }),
	}
	h := New(src)
	page := get(t, h)
	wantIn(t, page,
		`<meta http-equiv="refresh" content="5">`,
		`<span id="site">jsoc</span>`, "lrc, rli, transfer", "v1.2.3", `<b id="uptime">1h30m</b>`, "1,234,567",
		`id="catalog-mappings">200,012<`, "5.00 MiB",
		`id="index-sites">2<`, "nso:7600", "bloom", "1,000", "in 1h00m", `<td class="warn">in 1m0s</td>`, "mid", "direct",
		"rli:7600", "30s ago", "never", "UNAVAILABLE: &lt;connection refused&gt;", "3 failures in a row",
		`id="transfer-bytes">3.00 GiB<`,
	)
	wantNotIn(t, page, `id="mirror"`, "<connection refused>")

	// A second view a minute later sees the recent rate.
	now = t0.Add(30 * time.Second)
	src.Transfer = transferFunc(func() TransferStatus { return TransferStatus{BytesSent: 3<<30 + 30<<20} })
	wantIn(t, get(t, h), "1.00 MiB/s", "over the last 30s")
}

func TestPageOnlyRunningRoles(t *testing.T) {
	page := get(t, New(&Sources{Info: Info{Site: "s", Roles: []string{"rli"}, Started: time.Now()},
		Index: indexFunc(func() IndexStatus { return IndexStatus{} })}))
	wantIn(t, page, `id="index"`, "No site has sent soft state yet.")
	wantNotIn(t, page, `id="catalog"`, `id="sends"`, `id="transfer"`, `id="mirror"`, `id="rpcs"`)
}

func TestPageCatalogError(t *testing.T) {
	page := get(t, New(&Sources{Info: Info{Site: "s"}, Catalog: catalogFunc(func() (CatalogStatus, error) {
		return CatalogStatus{}, errors.New("disk full")
	})}))
	wantIn(t, page, "catalog unavailable: disk full")
}

func TestPageMirror(t *testing.T) {
	now := t0
	page := get(t, New(&Sources{Info: Info{Site: "nso"}, Now: func() time.Time { return now },
		Mirror: mirrorFunc(func() (MirrorStatus, error) {
			return MirrorStatus{
				States:   []MirrorState{{"NQUE", 12}, {"DONE", 1500}, {"FAIL", 2}},
				Series:   []SeriesCoverage{{Series: "hmi.M_45s", Done: 750, Total: 1000}},
				Failures: []MirrorFailure{{Sunum: "123456789", Reason: "timeout from sao", At: t0.Add(-time.Minute), Retry: t0.Add(5 * time.Minute)}},
			}, nil
		})}))
	wantIn(t, page, `id="mirror"`, "NQUE 12", "DONE 1,500", "hmi.M_45s", "width: 75.0%", "123456789", "timeout from sao", "1m0s ago", "in 5m0s")
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{formatCount(0), "0"}, {formatCount(999), "999"}, {formatCount(1000), "1,000"}, {formatCount(1234567), "1,234,567"},
		{formatBytes(0), "0 B"}, {formatBytes(1023), "1023 B"}, {formatBytes(1536), "1.50 KiB"},
		{formatBytes(150 << 20), "150 MiB"}, {formatBytes(1023 << 20), "1023 MiB"}, {formatBytes(3 << 40), "3.00 TiB"},
		{formatDuration(500 * time.Millisecond), "0s"}, {formatDuration(42 * time.Second), "42s"},
		{formatDuration(192 * time.Second), "3m12s"}, {formatDuration(7*time.Hour + 59*time.Minute), "7h59m"},
		{formatDuration(76 * time.Hour), "3d4h"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
