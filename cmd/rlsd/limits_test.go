package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

var httpAddrRE = regexp.MustCompile(`rlsd serving.*http_addr=([0-9.]+:[0-9]+)`)

// TestIdleHTTPCannotStarveGRPC runs a real rlsd with 256 open files and
// opens twice that many HTTP connections, each making one keep-alive
// request and then sitting idle. HTTP serves at most half the descriptors
// at once (the rest wait in the kernel's backlog), so gRPC still accepts
// and answers; idle connections are closed after --http-idle-timeout,
// which lets the waiting ones in, until every one was served and closed.
// Before these limits, 1,005 idle connections under 1,024 descriptors made
// gRPC's accepts fail with "too many open files".
func TestIdleHTTPCannotStarveGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts rlsd and opens 512 connections")
	}
	const nofile, conns = 256, 512
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	// ulimit -n sets the soft and the hard limit, so neither the Go
	// runtime nor rlsd can raise it.
	p := rlsdtest.Start(t, "/bin/sh", "rls.v1.Catalog",
		"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), rlsd,
		"--site", "s", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--no-sync",
		"--http-listen", "127.0.0.1:0", "--http-idle-timeout", "2s")
	if log := p.Log(); !strings.Contains(log, fmt.Sprint("nofile=", nofile)) || !strings.Contains(log, fmt.Sprint("max_conns=", nofile/2)) {
		t.Fatalf("rlsd did not run with %d open files and %d HTTP connections:\n%s", nofile, nofile/2, log)
	}
	m := httpAddrRE.FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("no http_addr in rlsd's log:\n%s", p.Log())
	}

	// Each connection asks for /healthz once, reports the answer, then
	// waits for the server to close it. The read deadline guards the
	// test against a hang; it is not what the test measures.
	served := make(chan error, conns)
	closed := make(chan error, conns)
	for i := range conns {
		c, err := net.Dial("tcp", m[1])
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: rlsd\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		go func() {
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
					err = fmt.Errorf("%s %q", resp.Status, b)
				}
			}
			served <- err
			if err != nil {
				closed <- err
				return
			}
			_, err = br.ReadByte()
			if errors.Is(err, io.EOF) {
				err = nil
			} else if err == nil {
				err = errors.New("bytes after the response")
			}
			closed <- err
		}()
	}
	// HTTP holds all the connections it may (the first half of the
	// descriptors); the rest wait.
	for range nofile / 2 {
		if err := <-served; err != nil {
			t.Fatalf("an HTTP request: %v\n%s", err, p.Log())
		}
	}
	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if h, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "rls.v1.Catalog"}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health with HTTP saturated: %v, %v\n%s", h, err, p.Log())
	}
	cat := rlsv1.NewCatalogClient(cc)
	if _, err := cat.Create(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/SUM1/D1"}); err != nil {
		t.Fatalf("create with HTTP saturated: %v", err)
	}
	if r, err := cat.QueryLFN(ctx, &rlsv1.NameRequest{Name: "1"}); err != nil || len(r.GetNames()) != 1 {
		t.Fatalf("query with HTTP saturated: %v, %v", r, err)
	}
	// Idle connections go, the waiting ones come in: all are served and
	// closed.
	for range conns - nofile/2 {
		if err := <-served; err != nil {
			t.Fatalf("an HTTP request: %v", err)
		}
	}
	for range conns {
		if err := <-closed; err != nil {
			t.Fatalf("an idle connection was not closed by the server: %v", err)
		}
	}
}

// withLimitDefaults sets c's limit settings to their defaults.
func withLimitDefaults(c config) config {
	d := defaultConfig()
	c.IndexMaxBloomBits, c.IndexMaxSites, c.IndexUpdateIdleTimeout = d.IndexMaxBloomBits, d.IndexMaxSites, d.IndexUpdateIdleTimeout
	c.HTTPIdleTimeout, c.HTTPWriteTimeout, c.HTTPMinWriteRate, c.HTTPMaxConns = d.HTTPIdleTimeout, d.HTTPWriteTimeout, d.HTTPMinWriteRate, d.HTTPMaxConns
	return c
}

func TestLimitSettings(t *testing.T) {
	got, err := resolveArgs([]string{"--site", "s", "--data", "/d", "--index-max-sites", "5", "--http-min-write-rate", "1024"},
		map[string]string{"RLSD_INDEX_MAX_BLOOM_BITS": "4096", "RLSD_INDEX_UPDATE_IDLE_TIMEOUT": "5s", "RLSD_HTTP_IDLE_TIMEOUT": "7s",
			"RLSD_HTTP_WRITE_TIMEOUT": "9s", "RLSD_HTTP_MAX_CONNS": "100", "RLSD_INDEX_MAX_SITES": "6"})
	if err != nil {
		t.Fatal(err)
	}
	if got.IndexMaxBloomBits != 4096 || got.IndexMaxSites != 5 || got.IndexUpdateIdleTimeout != 5*time.Second ||
		got.HTTPIdleTimeout != 7*time.Second || got.HTTPWriteTimeout != 9*time.Second || got.HTTPMinWriteRate != 1024 || got.HTTPMaxConns != 100 {
		t.Fatalf("config = %+v", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--index-max-bloom-bits", "32"}, "index-max-bloom-bits 32"},
		{[]string{"--index-max-bloom-bits", "99999999999"}, "index-max-bloom-bits 99999999999"},
		{[]string{"--index-max-sites", "0"}, "index-max-sites 0"},
		{[]string{"--index-update-idle-timeout", "0s"}, "index-update-idle-timeout"},
		{[]string{"--http-idle-timeout", "-1s"}, "http-idle-timeout"},
		{[]string{"--http-min-write-rate", "0"}, "http-min-write-rate 0"},
		{[]string{"--http-max-conns", "-1"}, "http-max-conns -1"},
	} {
		_, err := resolveArgs(append([]string{"--site", "s", "--data", "/d"}, tc.args...), nil)
		if _, ok := err.(usageError); !ok || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a usage error naming %q", tc.args, err, tc.want)
		}
	}
}
