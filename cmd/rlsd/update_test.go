package main

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
)

// withUpdateDefaults fills c's update settings with their defaults.
func withUpdateDefaults(c config) config {
	d := defaultConfig()
	c.UpdateMode, c.UpdateInterval, c.UpdateValidity = d.UpdateMode, d.UpdateInterval, d.UpdateValidity
	c.UpdateDeltaDelay, c.UpdateBloomFP = d.UpdateDeltaDelay, d.UpdateBloomFP
	return c
}

func TestConfigUpdateTargets(t *testing.T) {
	file := writeFile(t, `
site: jsoc
data: /d
advertise: jsoc.example:7600
update-to: rli1:7600
update-mode: bloom
update-interval: 1h
update-targets:
  - addr: rli2:7600
    mode: delta
    validity: 2h
    delta-delay: 50ms
    patterns: ["1*", "2?"]
  - addr: rli3:7600
    deltas: true
    bloom-fp: 0.001
`)
	c, err := resolveArgs([]string{"--config", file, "--update-validity", "4h"}, map[string]string{"RLSD_UPDATE_DELTAS": "false"})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.updateTargets()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 {
		t.Fatalf("%d targets, want 3", len(ts))
	}
	rli2, rli3, rli1 := ts[0], ts[1], ts[2]
	if rli1.Addr != "rli1:7600" || rli1.Mode != index.ModeBloom || rli1.Interval != time.Hour || rli1.Validity != 4*time.Hour ||
		rli1.Deltas || rli1.DeltaDelay != index.DefaultDeltaDelay || rli1.FalsePositiveRate != index.DefaultFalsePositiveRate || rli1.Patterns != nil {
		t.Errorf("update-to target = %+v", rli1)
	}
	if rli2.Addr != "rli2:7600" || rli2.Mode != index.ModeDelta || rli2.Validity != 2*time.Hour || rli2.Interval != time.Hour ||
		rli2.DeltaDelay != 50*time.Millisecond || len(rli2.Patterns) != 2 || !rli2.Patterns[1].Match("23") || rli2.Patterns[1].Match("3") {
		t.Errorf("rli2 = %+v", rli2)
	}
	if rli3.Mode != index.ModeBloom || !rli3.Deltas || rli3.FalsePositiveRate != 0.001 {
		t.Errorf("rli3 = %+v", rli3)
	}

	// From flags and the environment alone.
	c, err = resolveArgs([]string{"--site", "s", "--data", "/d", "--update-to", "a:1,b:2", "--update-mode", "delta"},
		map[string]string{"RLSD_UPDATE_DELTA_DELAY": "1s", "RLSD_UPDATE_BLOOM_FP": "0.05", "RLSD_ADVERTISE": "s:7600"})
	if err != nil {
		t.Fatal(err)
	}
	if ts, err = c.updateTargets(); err != nil || len(ts) != 2 || ts[1].Addr != "b:2" || ts[1].Mode != index.ModeDelta ||
		ts[1].DeltaDelay != time.Second || ts[1].FalsePositiveRate != 0.05 || c.Advertise != "s:7600" {
		t.Errorf("targets %+v, %v", ts, err)
	}
}

func TestConfigUpdateErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		file string
		want string
	}{
		{name: "bad mode", args: []string{"--update-to", "a:1", "--update-mode", "gossip"}, want: "update-mode"},
		{name: "bad target mode", file: "update-targets: [{addr: a:1, mode: gossip}]", want: "update-targets[0] (a:1): mode"},
		{name: "unknown target key", file: "update-targets: [{addr: a:1, interval-s: 3}]", want: "interval-s"},
		{name: "target without addr", file: "update-targets: [{mode: list}]", want: "missing addr"},
		{name: "bad pattern", file: "update-targets: [{addr: a:1, patterns: ['x\\']}]", want: "pattern"},
		{name: "twice", args: []string{"--update-to", "a:1,a:1"}, want: "twice"},
		{name: "validity below interval", args: []string{"--update-to", "a:1", "--update-validity", "1m"}, want: "validity"},
		{name: "bad fp", args: []string{"--update-to", "a:1", "--update-bloom-fp", "2"}, want: "false-positive"},
		{name: "no lrc", args: []string{"--update-to", "a:1", "--roles", "transfer", "--export-root", "/"}, want: "role lrc"},
		{name: "wildcard listen", args: []string{"--update-to", "a:1", "--listen", ":7600"}, want: "advertise"},
		{name: "bad site", args: []string{"--update-to", "a:1", "--site", "bad\x00site"}, want: "site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--site", "s", "--data", "/d"}, tc.args...)
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			_, err := resolveArgs(args, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, ok := err.(usageError); !ok {
				t.Errorf("error %T is not a usageError (exit 2)", err)
			}
		})
	}
	var stderr strings.Builder
	if got := run(t.Context(), []string{"--site", "s", "--data", "/d", "--update-to", "a:1", "--update-mode", "x"}, envFrom(nil), io.Discard, &stderr); got != 2 {
		t.Errorf("rlsd with a bad update mode: exit %d, want 2 (stderr %q)", got, stderr.String())
	}
}

// headerSink is an rls.v1.Index server that passes on the header of every
// update it receives.
type headerSink struct {
	rlsv1.UnimplementedIndexServer
	headers chan *rlsv1.UpdateHeader
}

func (s *headerSink) Update(st grpc.ClientStreamingServer[rlsv1.UpdateRequest, rlsv1.UpdateResponse]) error {
	var h *rlsv1.UpdateHeader
	for {
		req, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if req.GetHeader() != nil {
			h = req.GetHeader()
		}
	}
	s.headers <- h
	return st.SendAndClose(&rlsv1.UpdateResponse{Generation: h.GetGeneration()})
}

// TestServeSendsUpdates runs the daemon with an index target and checks
// that it sends its catalog's state there, advertising its bound address,
// that Admin.Update sends on demand, and that shutdown is clean.
func TestServeSendsUpdates(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &headerSink{headers: make(chan *rlsv1.UpdateHeader, 10)}
	srv := grpc.NewServer()
	rlsv1.RegisterIndexServer(srv, sink)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, exited := serveInProcess(t, ctx, "--site", "jsoc", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--no-sync", "--log-format", "json",
		"--update-to", lis.Addr().String(), "--update-mode", "delta", "--update-delta-delay", "10ms")

	next := func(what string) *rlsv1.UpdateHeader {
		t.Helper()
		select {
		case h := <-sink.headers:
			return h
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s", what)
			return nil
		}
	}
	if h := next("first update"); h.GetSite() != "jsoc" || h.GetEndpoint() != addr || h.GetMode() != rlsv1.UpdateMode_UPDATE_MODE_LIST {
		t.Errorf("first update header %v, want a list from jsoc at %s", h, addr)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := rlsv1.NewCatalogClient(conn).Create(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/a"}); err != nil {
		t.Fatal(err)
	}
	if h := next("delta after a write"); h.GetMode() != rlsv1.UpdateMode_UPDATE_MODE_DELTA || h.GetGeneration() != 1 || h.GetEntries() != 1 {
		t.Errorf("delta header %v, want generation 1 with one entry", h)
	}

	admin := rlsv1.NewAdminClient(conn)
	resp, err := admin.Update(ctx, &rlsv1.UpdateNowRequest{})
	if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetError() != "" || resp.GetResults()[0].GetGeneration() != 1 {
		t.Fatalf("Admin.Update = %v, %v", resp, err)
	}
	if _, err := admin.Update(ctx, &rlsv1.UpdateNowRequest{Target: "nowhere:1"}); status.Code(err) != codes.NotFound {
		t.Errorf("Admin.Update of an unknown target: %v, want NOT_FOUND", err)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("exit %d after shutdown, want 0", code)
	}
}
