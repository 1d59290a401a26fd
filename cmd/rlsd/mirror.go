package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/mirror"
	"github.com/solar-archive/rls/mirror/intake"
	"github.com/solar-archive/rls/transfer"
)

// routeConfig is one entry of mirror-routes (file only): the units of the
// series matching Series (a path.Match pattern, "hmi.*") are judged and,
// at tier 1, pulled last from Authority ([SITE=]HOST:PORT) rather than from
// mirror-authority.
type routeConfig struct {
	Series    string `yaml:"series"`
	Authority string `yaml:"authority"`
}

// bindMirror declares the mirror role's settings (see config.bind).
func (c *config) bindMirror(b *binder) {
	b.flag(&c.MirrorIndex, "mirror-index", "mirror role: comma-separated RLI addresses asked where units are (in order, until one answers)")
	b.flag(&c.MirrorStore, "mirror-store", "mirror role: directory units land in, as DIR/D<sunum>; must lie under an export root")
	b.flag(&c.MirrorTier, "mirror-tier", "mirror role: 1 pulls from peers, then from the authority; 2 only from peers (PNDG while none holds a unit)")
	b.flag(&c.MirrorAuthority, "mirror-authority", "mirror role: the default authoritative site, [SITE=]HOST:PORT (required at tier 1; optional at tier 2, where it judges INVD and coverage); per-series authorities under mirror-routes: in the config file")
	b.fileOnly(&c.MirrorRoutes, "mirror-routes")
	b.flag(&c.MirrorUserWorkers, "mirror-user-workers", "mirror role: concurrent pull calls of the user lane")
	b.flag(&c.MirrorBulkWorkers, "mirror-bulk-workers", "mirror role: concurrent pull calls of the bulk lane")
	b.flag(&c.MirrorSourceMin, "mirror-source-min", "mirror role: fewest concurrent pull calls per source site (the limit adapts between min and max)")
	b.flag(&c.MirrorSourceMax, "mirror-source-max", "mirror role: most concurrent pull calls per source site")
	b.flag(&c.MirrorRetryBase, "mirror-retry-base", "mirror role: first slow retry delay of a failed unit (after 3 quick rounds); doubles, with jitter")
	b.flag(&c.MirrorRetryCap, "mirror-retry-cap", "mirror role: longest retry delay")
	b.flag(&c.MirrorPendingInterval, "mirror-pending-interval", "mirror role: how often PNDG units (tier 2) are located again")
	b.flag(&c.MirrorBatchUnits, "mirror-batch-units", "mirror role: most units of one pull call")
	b.flag(&c.MirrorBatchBytes, "mirror-batch-bytes", "mirror role: most bytes of one pull call")
	b.flag(&c.MirrorBatchIdle, "mirror-batch-idle", "mirror role: a batch not full is sent when no unit joined it for this long")
	b.flag(&c.MirrorOnDone, "mirror-on-done", "mirror role: shell command run after each unit is DONE (at least once: again after a kill), with arguments SUNUM PATH SERIES (and env RLS_SUNUM, RLS_PATH, RLS_SERIES); its failure is logged")
	b.flag(&c.MirrorIntakeDSN, "mirror-intake-dsn", "mirror role: PostgreSQL DSN of the DRMS database whose queue table feeds the mirror; empty: no PostgreSQL intake")
	b.flag(&c.MirrorIntakeTable, "mirror-intake-table", "mirror role: the queue table, NAME or SCHEMA.NAME (columns sunum bigint, recnum bigint, series_name text)")
	b.flag(&c.MirrorIntakeChannel, "mirror-intake-channel", "mirror role: the channel the queue's trigger NOTIFYs")
	b.flag(&c.MirrorIntakePoll, "mirror-intake-poll-interval", "mirror role: how long the intake waits for a notification before it reads the table anyway")
	b.flag(&c.MirrorIntakeBatch, "mirror-intake-batch-size", "mirror role: most queue rows claimed and recorded per transaction")
}

// validateMirror checks the mirror role's settings. The store must lie
// under an export root, so that the next site can pull what lands there.
func (c *config) validateMirror() error {
	if !slices.Contains(c.Roles, "mirror") {
		return nil
	}
	if len(c.MirrorIndex) == 0 {
		return usageErrorf("role mirror needs at least one index address (--mirror-index, RLSD_MIRROR_INDEX or mirror-index: in the config file)")
	}
	if c.MirrorStore == "" {
		return usageErrorf("role mirror needs a store directory (--mirror-store, RLSD_MIRROR_STORE or mirror-store: in the config file), under an export root")
	}
	if _, err := c.mirrorStoreDir(); err != nil {
		return err
	}
	if c.MirrorTier != 1 && c.MirrorTier != 2 {
		return usageErrorf("mirror-tier %d: want 1 or 2", c.MirrorTier)
	}
	if c.MirrorAuthority != "" {
		if _, _, err := parseAuthority(c.MirrorAuthority); err != nil {
			return usageErrorf("mirror-authority: %v", err)
		}
	}
	for i, r := range c.MirrorRoutes {
		if r.Series == "" {
			return usageErrorf("mirror-routes[%d]: no series pattern", i)
		}
		if _, err := path.Match(r.Series, ""); err != nil {
			return usageErrorf("mirror-routes[%d]: series pattern %q: %v", i, r.Series, err)
		}
		if _, _, err := parseAuthority(r.Authority); err != nil {
			return usageErrorf("mirror-routes[%d] (series %q): authority: %v", i, r.Series, err)
		}
	}
	if c.MirrorTier == 1 && c.MirrorAuthority == "" {
		return usageErrorf("mirror-tier 1 pulls from the authority last and asks it whether a sunum exists: set mirror-authority (--mirror-authority [SITE=]HOST:PORT)")
	}
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"mirror-user-workers", int64(c.MirrorUserWorkers)}, {"mirror-bulk-workers", int64(c.MirrorBulkWorkers)},
		{"mirror-source-min", int64(c.MirrorSourceMin)}, {"mirror-source-max", int64(c.MirrorSourceMax)},
		{"mirror-batch-units", int64(c.MirrorBatchUnits)}, {"mirror-batch-bytes", c.MirrorBatchBytes},
		{"mirror-intake-batch-size", int64(c.MirrorIntakeBatch)},
		{"mirror-retry-base", int64(c.MirrorRetryBase)}, {"mirror-retry-cap", int64(c.MirrorRetryCap)},
		{"mirror-pending-interval", int64(c.MirrorPendingInterval)}, {"mirror-batch-idle", int64(c.MirrorBatchIdle)},
		{"mirror-intake-poll-interval", int64(c.MirrorIntakePoll)},
	} {
		if v.n <= 0 {
			return usageErrorf("%s: must be positive", v.name)
		}
	}
	if c.MirrorSourceMax < c.MirrorSourceMin {
		return usageErrorf("mirror-source-max %d is less than mirror-source-min %d", c.MirrorSourceMax, c.MirrorSourceMin)
	}
	if c.MirrorRetryCap < c.MirrorRetryBase {
		return usageErrorf("mirror-retry-cap %v is less than mirror-retry-base %v", c.MirrorRetryCap, c.MirrorRetryBase)
	}
	if c.MirrorIntakeDSN != "" {
		if _, err := intake.ParseTable(c.MirrorIntakeTable); err != nil {
			return usageErrorf("mirror-intake-table: %v", err)
		}
	}
	return nil
}

// mirrorStoreDir returns the mirror store's absolute path, or a usage
// error naming it and the export roots when it does not lie under one.
// Symbolic links in the store's existing part and in the roots are
// resolved first, so that a link cannot take the store out of a root.
func (c *config) mirrorStoreDir() (string, error) {
	store, err := filepath.Abs(c.MirrorStore)
	if err != nil {
		return "", usageErrorf("mirror-store %q: %v", c.MirrorStore, err)
	}
	real := resolveExisting(store)
	for _, r := range c.ExportRoots {
		if rel, err := filepath.Rel(resolveExisting(r), real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return store, nil
		}
	}
	return "", usageErrorf("mirror-store %s does not lie under an export root (%s): the next site pulls the units from here, so the store must be served; put it under one or add an export root",
		store, strings.Join(c.ExportRoots, ", "))
}

// resolveExisting resolves the symbolic links of the longest existing
// prefix of the absolute path p and appends the rest.
func resolveExisting(p string) string {
	p = filepath.Clean(p)
	var rest []string
	for {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{real}, rest...)...)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// parseAuthority splits [SITE=]HOST:PORT. Without SITE, the site is named
// by its address (in records' sources and logs).
func parseAuthority(s string) (site, addr string, err error) {
	site, addr, ok := strings.Cut(s, "=")
	if !ok {
		site, addr = "", s
	}
	if _, _, err := net.SplitHostPort(addr); err != nil || addr == "" {
		return "", "", fmt.Errorf("%q: want [SITE=]HOST:PORT", s)
	}
	return site, addr, nil
}

// startMirror runs the mirror: its state in DATA/mirror, units placed in
// the mirror store (served by the transfer role) and registered in the
// lrc role's catalog, rls.v1.Mirror, its metrics, and the PostgreSQL
// intake when one is configured. A failure of the state store stops rlsd
// (exit 3); a queue table without the expected columns is refused at start
// (exit 2).
func startMirror(d *daemon) error {
	c := d.cfg
	log := d.log.With("role", "mirror")
	storeDir, err := c.mirrorStoreDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return fmt.Errorf("mirror: store: %w", err)
	}
	if d.catalog == nil {
		return errors.New("mirror: the lrc role did not start") // startOrder prevents it
	}
	store, err := mirror.OpenStore(filepath.Join(c.Data, "mirror"), &mirror.StoreOptions{NoSync: c.NoSync, Logger: log})
	if err != nil {
		return err
	}
	d.onClose(store.Close)
	d.failStop(store.Failed(), store.Err)

	loc, err := api.DialIndexLocator(c.MirrorIndex, d.sec.dialer)
	if err != nil {
		return usageErrorf("mirror-index: %v", err)
	}
	d.onClose(loc.Close)
	cfg := mirror.Config{
		Site: c.Site, Tier: c.MirrorTier, StoreDir: storeDir, Locator: loc,
		Registrar:   api.CatalogRegistrar{Catalog: d.catalog},
		UserWorkers: c.MirrorUserWorkers, BulkWorkers: c.MirrorBulkWorkers,
		MinPerSource: c.MirrorSourceMin, MaxPerSource: c.MirrorSourceMax,
		Retry:           mirror.RetryPolicy{Fast: mirror.DefaultRetry.Fast, FastDelay: mirror.DefaultRetry.FastDelay, Base: c.MirrorRetryBase, Cap: c.MirrorRetryCap},
		PendingInterval: c.MirrorPendingInterval,
		Batch:           mirror.BatchPolicy{Units: c.MirrorBatchUnits, Bytes: c.MirrorBatchBytes, Idle: c.MirrorBatchIdle, Large: mirror.DefaultBatch.Large},
		Logger:          log,
	}
	dial := func(s string) (*api.CatalogAuthority, error) {
		site, addr, _ := parseAuthority(s) // validated
		a, err := api.DialAuthority(site, addr, d.sec.dialer)
		if err != nil {
			return nil, err
		}
		d.onClose(a.Close)
		return a, nil
	}
	if c.MirrorAuthority != "" {
		if cfg.Authority, err = dial(c.MirrorAuthority); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
	}
	for _, r := range c.MirrorRoutes {
		a, err := dial(r.Authority)
		if err != nil {
			return fmt.Errorf("mirror: route %q: %w", r.Series, err)
		}
		cfg.Routes = append(cfg.Routes, mirror.Route{Series: r.Series, Authority: a})
	}
	po := transfer.PullOptions{NoSync: c.NoSync, BatchUnits: c.MirrorBatchUnits}
	// The store lies under an export root: the transfer role serves each
	// unit placed there to the next site, with the digests it was verified
	// against instead of hashing it again.
	src, log := d.source, d.log.With("role", "mirror")
	po.OnPlaced = func(_ int, r *transfer.PullResult) {
		if _, err := src.Adopt(r.Dest, r.Entries); err != nil {
			log.Debug("transfer: adopt the digests of a placed unit", "dest", r.Dest, "error", err)
		}
	}
	puller := api.NewTransferPuller(po, d.sec.dialer)
	d.onClose(puller.Close)
	cfg.Puller = puller
	if c.MirrorOnDone != "" {
		cfg.OnDone = onDoneCommand(c.MirrorOnDone)
	}
	e, err := mirror.New(store, cfg)
	if err != nil {
		return usageErrorf("mirror: %v", err)
	}
	rlsv1.RegisterMirrorServer(d.grpc, api.NewMirrorServer(e))
	if err := d.metrics.Register(e.Collector()); err != nil {
		return fmt.Errorf("mirror: metrics: %w", err)
	}
	d.run(e.Run)
	d.page.Mirror = &mirrorStatus{e: e}
	log.Info("mirror running", "tier", c.MirrorTier, "store", storeDir, "index", strings.Join(c.MirrorIndex, ","),
		"authority", c.MirrorAuthority, "routes", len(c.MirrorRoutes))
	if c.MirrorIntakeDSN == "" {
		return nil
	}
	return startIntake(d, e, log)
}

// startIntake feeds the engine from the PostgreSQL queue table. The table
// is checked once at start: one that lacks a column refuses the
// configuration (exit 2); a server that cannot be reached is an outage the
// intake waits out.
func startIntake(d *daemon, e *mirror.Engine, log *slog.Logger) error {
	c := d.cfg
	in, err := intake.New(intake.Config{
		DSN: c.MirrorIntakeDSN, Table: c.MirrorIntakeTable, Channel: c.MirrorIntakeChannel,
		PollInterval: c.MirrorIntakePoll, BatchSize: c.MirrorIntakeBatch,
		Logger: log,
	}, intakeSink{e})
	if err != nil {
		return usageErrorf("mirror intake: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.Check(ctx); errors.Is(err, intake.ErrBadTable) {
		return usageErrorf("mirror intake: %v", err)
	} else if err != nil {
		log.Warn("mirror intake: PostgreSQL not reachable at start; the intake keeps trying", "error", err)
	}
	if err := d.metrics.Register(in); err != nil {
		return fmt.Errorf("mirror intake: metrics: %w", err)
	}
	d.run(in.Run)
	return nil
}

// intakeSink hands the intake's rows to the engine, in the bulk lane. The
// engine's Accept is durable and idempotent, as intake.Sink requires.
type intakeSink struct{ e *mirror.Engine }

func (s intakeSink) Accept(ctx context.Context, reqs []intake.Request) error {
	out := make([]mirror.Request, len(reqs))
	for i, r := range reqs {
		out[i] = mirror.Request{Sunum: r.Sunum, Series: r.Series, Priority: mirror.LaneBulk}
	}
	return s.e.Accept(ctx, out)
}

// onDoneTimeout bounds one run of the on-done command.
const onDoneTimeout = 5 * time.Minute

// onDoneCommand runs cmd with /bin/sh after each unit is DONE, as
// `cmd SUNUM PATH SERIES`, with RLS_SUNUM, RLS_PATH and RLS_SERIES in its
// environment. A non-zero exit is an error (the engine logs it; the unit
// stays DONE), with the end of the command's output.
func onDoneCommand(cmd string) mirror.OnDone {
	return func(ctx context.Context, sunum uint64, dir, series string) error {
		ctx, cancel := context.WithTimeout(ctx, onDoneTimeout)
		defer cancel()
		n := strconv.FormatUint(sunum, 10)
		c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd+` "$@"`, "rls-on-done", n, dir, series)
		c.Env = append(os.Environ(), "RLS_SUNUM="+n, "RLS_PATH="+dir, "RLS_SERIES="+series)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Run(); err != nil {
			b := bytes.TrimSpace(out.Bytes())
			if len(b) > 512 {
				b = b[len(b)-512:]
			}
			return fmt.Errorf("on-done command: %w: %s", err, b)
		}
		return nil
	}
}
