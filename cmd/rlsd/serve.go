package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/statuspage"
	"github.com/solar-archive/rls/transfer"
)

// daemon is what the roles are wired into. It is used by one goroutine, serve,
// while the roles start; it is not safe for concurrent use.
type daemon struct {
	cfg     config
	log     *slog.Logger
	sec     *security
	grpc    *api.Server
	metrics *prometheus.Registry
	admin   api.AdminInfo
	// catalog is the site's catalog once the lrc role started, else nil.
	catalog catalog.Store
	// source serves the export roots once the transfer role started.
	source  *transfer.Source
	closers []func() error
	// addr is the bound gRPC listen address, known before the roles start.
	addr string
	// tasks are the roles' goroutines (see run).
	tasks []func(ctx context.Context) error
	// http holds the routes of the HTTP listener (when --http-listen is
	// set); roles may add theirs.
	http *http.ServeMux
	// page are the status page's sources; roles set theirs (observe.go).
	page statuspage.Sources
	// retargeters are the roles' senders and forwarders, which a reload
	// gives the new update targets.
	retargeters []retargeter
}

// onClose registers f to release a role's resources after the servers have
// stopped. Closers run in reverse order of registration.
func (d *daemon) onClose(f func() error) { d.closers = append(d.closers, f) }

// run registers f to run in its own goroutine once the daemon serves. On
// the way out serve cancels ctx and waits for f to return before it closes
// the roles' storage. f returns nil when ctx is cancelled; any other error
// shuts the daemon down.
func (d *daemon) run(f func(ctx context.Context) error) { d.tasks = append(d.tasks, f) }

// failStop watches a role's store: when failed is closed (the store stopped
// after a storage error, see internal/failstop), the daemon turns health
// NOT_SERVING, stops serving and exits with status 3, so that a supervisor
// restarts it once the disk has room again. err returns the failure.
func (d *daemon) failStop(failed <-chan struct{}, err func() error) {
	d.run(func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-failed:
			return storeFailure{err()}
		}
	})
}

// storeFailure ends the daemon when one of its stores failed; rlsd exits
// with status 3.
type storeFailure struct{ err error }

func (e storeFailure) Error() string { return e.err.Error() }
func (e storeFailure) Unwrap() error { return e.err }

func (d *daemon) close() error {
	var errs []error
	for _, f := range slices.Backward(d.closers) {
		errs = append(errs, f())
	}
	return errors.Join(errs...)
}

// serve runs the daemon until ctx is cancelled (SIGTERM or SIGINT), a
// listener fails or a role's goroutine fails. It binds cfg.Listen, starts the
// configured roles, serves gRPC and, if set, HTTP on cfg.HTTPListen, logs
// "rlsd serving" with the bound addresses, and starts the roles' goroutines.
// On the way out it cancels those goroutines, turns health NOT_SERVING, lets
// calls in flight finish for cfg.ShutdownTimeout, stops the servers, waits
// for every goroutine, and only then closes the roles' storage. It returns
// nil after a clean shutdown on ctx. On SIGHUP it reads the configuration
// again with reload and applies what it can (see reloader).
func serve(ctx context.Context, cfg config, log *slog.Logger, reload func() (config, error)) (err error) {
	noFile, err := raiseNoFile()
	if err != nil {
		log.Warn("open-file limit", "error", err)
	}
	log.Info("open-file limit", "nofile", noFile)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sec, err := newSecurity(cfg, log)
	if err != nil {
		return err
	}
	srv, err := api.NewServer(api.ServerOptions{Logger: log, Registerer: reg, TLS: sec.tls, Authorizer: sec.auth})
	if err != nil {
		return err
	}
	d := &daemon{
		cfg: cfg, log: log, sec: sec, grpc: srv, metrics: reg, http: http.NewServeMux(),
		admin: api.AdminInfo{Site: cfg.Site, Version: buildVersion(), Roles: cfg.Roles, Started: time.Now()},
	}
	defer func() {
		if cerr := d.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing: %w", cerr))
		}
	}()
	// The listener is bound first, so that roles know the address (the
	// LRC's sender advertises it); connections wait in its backlog until
	// the server serves.
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	d.addr = lis.Addr().String()
	roles := roleTable()
	for _, name := range startOrder(cfg.Roles) {
		if err := roles[name].start(d); err != nil {
			lis.Close()
			return err
		}
	}
	rlsv1.RegisterAdminServer(srv, api.NewAdminServer(d.admin))
	d.observe()
	var (
		httpSrv *http.Server
		httpLis net.Listener
		serving atomic.Bool // /healthz answers 200 while true
	)
	if cfg.HTTPListen != "" {
		if httpLis, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
			lis.Close()
			return err
		}
		mux := d.http
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			if !serving.Load() {
				http.Error(w, "shutting down", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		// The authorizer wraps the whole mux, so that no route (the
		// transfer role's included) bypasses it.
		httpSrv, httpLis = newHTTPServer(cfg, sec.auth.Middleware(mux), httpLis, noFile, log)
		httpSrv.TLSConfig = sec.tls.HTTPServerConfig()
	}

	// Each server and each role goroutine runs in a goroutine owned by
	// this function, which waits for all before it returns (and before the
	// deferred close).
	var wg sync.WaitGroup
	errc := make(chan error, 2+len(d.tasks))
	// SIGHUP reloads; it is caught before "rlsd serving" is logged, so
	// that one sent after that line never kills the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	serving.Store(true)
	wg.Go(func() {
		if err := srv.Serve(lis); err != nil {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	})
	attrs := []any{"site", cfg.Site, "addr", lis.Addr().String(), "roles", strings.Join(cfg.Roles, ",")}
	if httpSrv != nil {
		wg.Go(func() {
			serveHTTP := func() error { return httpSrv.Serve(httpLis) }
			if httpSrv.TLSConfig != nil {
				serveHTTP = func() error { return httpSrv.ServeTLS(httpLis, "", "") }
			}
			if err := serveHTTP(); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http: %w", err)
			}
		})
		attrs = append(attrs, "http_addr", httpLis.Addr().String())
	}
	log.Info("rlsd serving", attrs...)
	tctx, stopTasks := context.WithCancel(context.Background())
	defer stopTasks()
	if reload != nil {
		r := &reloader{sec: sec, targets: d.retargeters, cur: cfg, load: reload, log: log}
		wg.Go(func() { r.run(tctx, hup) })
	}
	for _, f := range d.tasks {
		wg.Go(func() {
			if err := f(tctx); err != nil {
				errc <- err
			}
		})
	}

	shutdownTimeout := cfg.ShutdownTimeout
	select {
	case <-ctx.Done():
		log.Info("rlsd shutting down", "cause", context.Cause(ctx))
	case err = <-errc:
		if errors.As(err, new(storeFailure)) {
			// Calls stuck inside the failed store never return; the
			// others fail at once. Do not wait long for either.
			log.Error("rlsd stopping: a store failed", "error", err)
			shutdownTimeout = min(shutdownTimeout, time.Second)
		} else {
			log.Error("rlsd listener failed; shutting down", "error", err)
		}
	}
	stopTasks()
	serving.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		log.Warn("calls still running at the shutdown deadline were cancelled", "timeout", cfg.ShutdownTimeout)
	}
	// HTTP stops last, so that metrics stay scrapable while gRPC drains.
	if httpSrv != nil {
		if serr := httpSrv.Shutdown(sctx); serr != nil {
			httpSrv.Close()
		}
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-failedStoreWait(err, shutdownTimeout):
		// A role goroutine is stuck inside the failed store; the process
		// is about to exit, which ends it.
		log.Warn("role goroutines still inside the failed store at exit")
	}
	log.Info("rlsd stopped")
	return err
}

// failedStoreWait bounds the wait for the roles' goroutines after a store
// failure; otherwise it never fires.
func failedStoreWait(err error, d time.Duration) <-chan time.Time {
	if !errors.As(err, new(storeFailure)) {
		return nil
	}
	return time.After(d)
}
