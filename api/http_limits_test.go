package api

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solar-archive/rls/transfer"
)

// httpFileEnv serves a unit with one file of size bytes (sparse) over the
// HTTP transfer routes, wrapped as wrap returns, with hook hearing of
// connection states, and returns the server and the file's URL.
func httpFileEnv(t *testing.T, size int64, wrap func(http.Handler) http.Handler, hook func(net.Conn, http.ConnState)) (*httptest.Server, string) {
	t.Helper()
	root := t.TempDir()
	unit := filepath.Join(root, "D1")
	if err := os.MkdirAll(unit, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(unit, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	src, err := transfer.NewSource([]string{root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	mux := http.NewServeMux()
	NewTransferHTTPHandler(mux, src, slog.New(slog.DiscardHandler))
	srv := httptest.NewUnstartedServer(wrap(mux))
	srv.Config.ConnState = hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, srv.URL + "/v1/transfer/file?pfn=" + url.QueryEscape(unit) + "&path=big"
}

func TestRangeLimits(t *testing.T) {
	_, u := httpFileEnv(t, 1<<20, func(h http.Handler) http.Handler { return h }, nil)
	parts := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, fmt.Sprintf("%d-%d", i*10, i*10+4))
		}
		return "bytes=" + strings.Join(s, ", ")
	}
	for _, tc := range []struct {
		rng  string
		code int
		body string
	}{
		{"bytes=0-9", http.StatusPartialContent, ""},
		{parts(MaxRangeParts), http.StatusPartialContent, ""},
		{parts(MaxRangeParts + 1), http.StatusRequestedRangeNotSatisfiable, "65 parts, more than the 64"},
		{parts(MaxRangeParts) + ",,,,", http.StatusPartialContent, ""}, // empty parts are no parts
		{"bytes=-0", http.StatusRequestedRangeNotSatisfiable, `range "-0": a suffix of 0 bytes selects nothing`},
		{"bytes=0-9, -000", http.StatusRequestedRangeNotSatisfiable, "suffix of 0 bytes"},
		{"bytes=-10", http.StatusPartialContent, ""},
	} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Range", tc.rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("Range %.40q: %d %.100q, want %d with %q", tc.rng, resp.StatusCode, b, tc.code, tc.body)
		}
	}
}

// TestWriteDeadlineCutsOffStalledReader asks for a large file and reads
// nothing: once the socket buffers are full the server's writes block, the
// deadline (base plus the bytes written at the minimum rate) passes, and
// the server closes the connection, which the test hears from the
// server's connection-state hook. The client then finds the response cut
// short.
func TestWriteDeadlineCutsOffStalledReader(t *testing.T) {
	const size = 64 << 20 // more than loopback socket buffers hold
	closed := make(chan struct{})
	_, u := httpFileEnv(t, size,
		func(h http.Handler) http.Handler { return WriteDeadlines(h, 100*time.Millisecond, 64<<20) },
		func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				close(closed)
			}
		})
	addr := strings.TrimPrefix(u, "http://")
	addr, _, _ = strings.Cut(addr, "/")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path := u[strings.Index(u, "/v1/"):]
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(time.Minute): // a guard against a hang, not a timing
		t.Fatal("the server kept writing to a client that reads nothing for a minute")
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || n >= size || err == nil {
		t.Fatalf("%d: %d of %d bytes, then %v; want a response cut short", resp.StatusCode, n, size, err)
	}
	t.Logf("cut off after %d MiB", n>>20)
}

func TestWriteDeadline(t *testing.T) {
	start := time.Unix(1e9, 0)
	for _, tc := range []struct {
		bytes int64
		want  time.Duration
	}{
		{0, 30 * time.Second},
		{64 << 10, 31 * time.Second},
		{1 << 30, 30*time.Second + 16384*time.Second}, // 1 GiB at 64 KiB/s
		{1 << 62, maxWriteWait},                       // saturates
	} {
		if got := writeDeadline(start, 30*time.Second, 64<<10, tc.bytes).Sub(start); got != tc.want {
			t.Errorf("writeDeadline(%d bytes) = start + %v, want + %v", tc.bytes, got, tc.want)
		}
	}
}
