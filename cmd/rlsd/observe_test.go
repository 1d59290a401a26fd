package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	rlsv1 "github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
	"github.com/solar-archive/rls/internal/statuspage"
)

// httpGet returns the status code and body of GET url.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// scrape parses a daemon's /metrics with the Prometheus text parser.
func scrape(t *testing.T, httpAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, "http://"+httpAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return mfs
}

// series returns the metric of family name whose labels include want.
func series(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s%v in /metrics", name, want)
	return nil
}

// TestMetricsAndPProf scrapes a real rlsd's /metrics: the standard gRPC
// server metrics count the calls by service, method and code, the catalog's
// collector still reports, and the old hand-made metrics are gone. pprof
// answers only with --pprof.
func TestMetricsAndPProf(t *testing.T) {
	if testing.Short() {
		t.Skip("starts rlsd processes")
	}
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	args := []string{"--site", "metrics", "--data", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0",
		"--http-listen", "127.0.0.1:0", "--roles", "lrc", "--no-sync", "--pprof"}
	p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", args...)
	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cat := rlsv1.NewCatalogClient(cc)
	ctx := t.Context()
	if _, err := cat.Create(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Create(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/a"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second Create: %v, want ALREADY_EXISTS", err)
	}

	mfs := scrape(t, p.HTTPAddr)
	create := map[string]string{"grpc_service": "rls.v1.Catalog", "grpc_method": "Create", "grpc_type": "unary"}
	for code, want := range map[string]float64{"OK": 1, "AlreadyExists": 1} {
		labels := map[string]string{"grpc_code": code}
		for k, v := range create {
			labels[k] = v
		}
		if got := series(t, mfs, "grpc_server_handled_total", labels).GetCounter().GetValue(); got != want {
			t.Errorf("grpc_server_handled_total%v = %v, want %v", labels, got, want)
		}
	}
	if got := series(t, mfs, "grpc_server_started_total", create).GetCounter().GetValue(); got != 2 {
		t.Errorf("grpc_server_started_total = %v, want 2", got)
	}
	if got := series(t, mfs, "grpc_server_handling_seconds", create).GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("grpc_server_handling_seconds count = %v, want 2", got)
	}
	if got := series(t, mfs, "rls_catalog_mappings", nil).GetGauge().GetValue(); got != 1 {
		t.Errorf("rls_catalog_mappings = %v, want 1", got)
	}
	for _, gone := range []string{"rls_grpc_requests_total", "rls_grpc_request_duration_seconds"} {
		if _, ok := mfs[gone]; ok {
			t.Errorf("%s still exported", gone)
		}
	}

	if code, body := httpGet(t, "http://"+p.HTTPAddr+"/debug/pprof/cmdline"); code != http.StatusOK || !bytes.Contains(body, []byte("--pprof")) {
		t.Errorf("with --pprof, /debug/pprof/cmdline: %d %q", code, body)
	}
	off := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", "--site", "nopprof", "--data", filepath.Join(t.TempDir(), "data"),
		"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--roles", "lrc", "--no-sync")
	if code, _ := httpGet(t, "http://"+off.HTTPAddr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("without --pprof, /debug/pprof/: %d, want 404", code)
	}
}

// lineBuffer collects log output and signals each write.
type lineBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() { b.wrote <- struct{}{} }()
	return b.buf.Write(p)
}

func (b *lineBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

type fakeCatalog struct{ st statuspage.CatalogStatus }

func (f *fakeCatalog) CatalogStatus() (statuspage.CatalogStatus, error) { return f.st, nil }

type fakeTransfer struct{ st statuspage.TransferStatus }

func (f *fakeTransfer) TransferStatus() statuspage.TransferStatus { return f.st }

// TestStatsLine drives the stats logger with a tick channel: one line per
// tick, with the RPCs and bytes since the line before.
func TestStatsLine(t *testing.T) {
	out := &lineBuffer{wrote: make(chan struct{}, 1)}
	var rpcs uint64 = 10
	cat := &fakeCatalog{statuspage.CatalogStatus{Mappings: 5, LFNs: 4}}
	tr := &fakeTransfer{statuspage.TransferStatus{BytesSent: 100}}
	src := &statuspage.Sources{
		Info:     statuspage.Info{Started: time.Now()},
		Catalog:  cat,
		Transfer: tr,
	}
	var mu sync.Mutex
	src.RPCs = func() (uint64, error) { mu.Lock(); defer mu.Unlock(); return rpcs, nil }
	sl := newStatsLogger(src, slog.New(slog.NewTextHandler(out, nil)))
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sl.run(ctx, tick); close(done) }()
	defer func() { cancel(); <-done }()

	for _, step := range []struct {
		rpcs, sent, mappings uint64
		want                 []string
	}{
		{13, 150, 7, []string{`msg="rlsd stats"`, "rpcs=3 ", "catalog_mappings=7 ", "catalog_lfns=4 ", "transfer_bytes_sent=50 ", "transfer_bytes_sent_total=150"}},
		{13, 150, 7, []string{"rpcs=0 ", "transfer_bytes_sent=0 "}},
	} {
		mu.Lock()
		rpcs = step.rpcs
		mu.Unlock()
		tr.st.BytesSent, cat.st.Mappings = step.sent, step.mappings
		tick <- time.Now() // the logger reads the sources after this
		<-out.wrote
		line := out.take()
		for _, w := range step.want {
			if !strings.Contains(line, w) {
				t.Errorf("stats line lacks %q: %s", w, line)
			}
		}
		if strings.Contains(line, "index_sites") {
			t.Errorf("stats line reports a role that does not run: %s", line)
		}
	}
}
