package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/solar-archive/rls/api"
)

// Defaults of the HTTP listener's limits.
const (
	// defaultHTTPIdleTimeout frees a keep-alive connection that sends no
	// next request. Without it idle clients held descriptors for ever,
	// and enough of them made the gRPC listener's accepts fail with "too
	// many open files".
	defaultHTTPIdleTimeout = 60 * time.Second
	// defaultHTTPWriteTimeout and defaultHTTPMinWriteRate bound how long a
	// response may take: 30 s plus its bytes at 64 KiB/s (a 1 GiB file
	// gets 4.5 hours). A client that stops reading is cut off; one that
	// reads at any useful rate is not.
	defaultHTTPWriteTimeout = 30 * time.Second
	defaultHTTPMinWriteRate = 64 << 10
	// httpReadHeaderTimeout bounds the wait for a request's headers, on
	// a new connection as on a kept-alive one once its first bytes came.
	httpReadHeaderTimeout = 10 * time.Second
)

// newHTTPServer returns the daemon's HTTP server for h, with the limits of
// cfg, and lis limited to the connections it may serve at once: beyond
// them, new connections wait in the kernel's backlog, holding no
// descriptor of rlsd's, so that HTTP clients cannot starve gRPC of
// descriptors. noFile is the process's open-file limit, which sets the
// default (half of it).
func newHTTPServer(cfg config, h http.Handler, lis net.Listener, noFile uint64, log *slog.Logger) (*http.Server, net.Listener) {
	maxConns := cfg.HTTPMaxConns
	if maxConns == 0 {
		maxConns = int(max(noFile/2, 1))
	}
	log.Info("http limits", "max_conns", maxConns, "idle_timeout", cfg.HTTPIdleTimeout,
		"write_timeout", cfg.HTTPWriteTimeout, "min_write_rate", cfg.HTTPMinWriteRate)
	srv := &http.Server{
		Handler:           api.WriteDeadlines(h, cfg.HTTPWriteTimeout, cfg.HTTPMinWriteRate),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return srv, netutil.LimitListener(lis, maxConns)
}

// raiseNoFile raises the soft open-file limit to the hard one, as daemons
// do, and returns the limit in force. (The Go runtime already does this at
// start on Linux; doing it here makes it explicit and gives the value to
// log.)
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return lim.Cur, fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", raised.Cur, err)
		}
		lim = raised
	}
	return lim.Cur, nil
}
