package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/catalog/pgcatalog"
	"github.com/solar-archive/rls/index"
)

// A role is one part of what rlsd can run. Its start function wires the role
// into the daemon before it serves: it opens the role's storage, registers
// its gRPC services and metrics, hands what must be released to d.onClose,
// which serve calls after the servers have stopped, and its goroutines to
// d.run, which serve starts once it serves and stops and waits for before it
// closes storage.
//
// A role names the roles it needs in the same rlsd (mirror needs lrc, for
// its catalog, and transfer, to serve what it placed). They are not enabled
// implicitly: a configuration that lacks one is refused (exit 2) with the
// missing roles named, so that what runs is what the operator wrote. Roles
// start in dependency order whatever order --roles lists them in.
//
// Adding a role is adding an entry here.
type role struct {
	needs []string
	start func(d *daemon) error
}

func roleTable() map[string]role {
	return map[string]role{
		"lrc":      {start: startLRC},
		"rli":      {start: startRLI},
		"transfer": {start: startTransfer},
		"mirror":   {needs: []string{"lrc", "transfer"}, start: startMirror},
	}
}

// knownRoles lists the role names in sorted order, for messages and help.
func knownRoles() []string {
	names := make([]string, 0, len(roleTable()))
	for name := range roleTable() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// missingRoles returns, per role of roles, the roles it needs that roles
// lacks (sorted by role name), for the error that refuses them.
func missingRoles(roles []string) []string {
	table := roleTable()
	var out []string
	for _, r := range slices.Sorted(slices.Values(roles)) {
		var missing []string
		for _, n := range table[r].needs {
			if !slices.Contains(roles, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			noun := "role"
			if len(missing) > 1 {
				noun = "roles"
			}
			out = append(out, fmt.Sprintf("role %s needs %s %s in the same rlsd", r, noun, strings.Join(missing, " and ")))
		}
	}
	return out
}

// startOrder orders roles so that every role comes after the roles it
// needs; roles that do not depend on each other keep their sorted order.
// roles must be known and hold what they need (see missingRoles).
func startOrder(roles []string) []string {
	table := roleTable()
	var out []string
	seen := map[string]bool{}
	var visit func(r string)
	visit = func(r string) {
		if seen[r] {
			return
		}
		seen[r] = true
		for _, n := range table[r].needs {
			visit(n)
		}
		out = append(out, r)
	}
	for _, r := range slices.Sorted(slices.Values(roles)) {
		visit(r)
	}
	return out
}

// startLRC runs the local replica catalog: it opens DATA/catalog (or, with
// --catalog-dsn, the PostgreSQL catalog) and serves it as rls.v1.Catalog,
// with its counts in the metrics and in Admin.Stats, and sends its soft
// state to the configured indexes.
func startLRC(d *daemon) error {
	cat, err := openCatalog(d)
	if err != nil {
		return err
	}
	d.onClose(func() error { return cat.Close() })
	if fs, ok := cat.(catalog.FailStopper); ok {
		d.failStop(fs.Failed(), fs.Err)
	}
	d.catalog = cat
	d.admin.Catalog = cat
	d.page.Catalog = catalogStatus{cat}
	rlsv1.RegisterCatalogServer(d.grpc, api.NewCatalogServer(cat))
	if pc, ok := cat.(*pgcatalog.Catalog); ok {
		d.awaitCatalog(pc)
	}
	if err := d.metrics.Register(api.NewCatalogCollector(cat)); err != nil {
		return fmt.Errorf("lrc: metrics: %w", err)
	}
	return startSender(d, cat)
}

// openCatalog opens the Pebble catalog in DATA/catalog, or the PostgreSQL
// catalog named by --catalog-dsn. A malformed DSN, or a PostgreSQL schema
// newer than this rlsd knows or dirty, is a configuration error (exit 2).
// A database that cannot be reached is not: rlsd serves, the catalog
// service NOT_SERVING and its calls UNAVAILABLE, while the catalog
// connects in the background (see awaitCatalog).
func openCatalog(d *daemon) (catalog.Store, error) {
	log := d.log.With("role", "lrc")
	if d.cfg.CatalogDSN == "" {
		cat, err := catalog.Open(filepath.Join(d.cfg.Data, "catalog"), &catalog.Options{NoSync: d.cfg.NoSync, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("lrc: %w", err)
		}
		return cat, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cat, err := pgcatalog.Open(ctx, d.cfg.CatalogDSN, &pgcatalog.Options{Logger: log, Background: true})
	if err := catalogConfigError(err); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("lrc: --catalog-dsn: %w", err)
	}
	return cat, nil
}

// catalogConfigError returns err as a usageError (exit 2) when it says the
// PostgreSQL catalog's configuration is wrong, else nil.
func catalogConfigError(err error) error {
	if errors.Is(err, pgcatalog.ErrDSN) || errors.Is(err, pgcatalog.ErrSchemaTooNew) || errors.Is(err, pgcatalog.ErrSchemaDirty) {
		return usageError{fmt.Errorf("lrc: --catalog-dsn: %w", err)}
	}
	return nil
}

// awaitCatalog keeps the catalog service NOT_SERVING in the health service
// until the PostgreSQL catalog, connecting in the background, is ready;
// if it gives up (a schema met newer than known, say), rlsd exits as it
// would have at start. From then on it pings the database (watchCatalog)
// and keeps the service NOT_SERVING while it cannot be reached. It is
// called after the service is registered.
func (d *daemon) awaitCatalog(cat *pgcatalog.Catalog) {
	log := d.log.With("role", "lrc")
	service := rlsv1.Catalog_ServiceDesc.ServiceName
	ready := false
	select {
	case <-cat.Ready():
		log.Info("catalog in PostgreSQL", "schema_version", pgcatalog.SchemaVersion())
		ready = true
	default:
		d.grpc.SetServing(service, false)
	}
	d.run(func(ctx context.Context) error {
		if !ready {
			select {
			case <-ctx.Done():
				return nil
			case <-cat.Ready():
			}
			if err := cat.ReadyErr(); err != nil {
				if uerr := catalogConfigError(err); uerr != nil {
					return uerr
				}
				return fmt.Errorf("lrc: --catalog-dsn: %w", err)
			}
			log.Info("catalog in PostgreSQL", "schema_version", pgcatalog.SchemaVersion())
			d.grpc.SetServing(service, true)
		}
		watchCatalog(ctx, cat, catalogPingInterval, func(serving bool) { d.grpc.SetServing(service, serving) }, log)
		return nil
	})
}

// catalogPingInterval is how often rlsd pings the PostgreSQL catalog's
// database; a ping that gets no answer within catalogPingTimeout failed
// (a stopped server refuses at once; a host that drops packets takes the
// timeout).
const (
	catalogPingInterval = time.Second
	catalogPingTimeout  = 5 * time.Second
)

// watchCatalog pings the database every interval until ctx ends, and calls
// set(false) when a ping fails (the database went away: calls fail with
// UNAVAILABLE meanwhile, and the pool reconnects by itself), set(true)
// when one succeeds again, logging each change.
func watchCatalog(ctx context.Context, cat *pgcatalog.Catalog, interval time.Duration, set func(serving bool), log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	serving := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, catalogPingTimeout)
		err := cat.Ping(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && serving:
			log.Warn("catalog database unreachable; catalog service NOT_SERVING until it answers", "err", err)
		case err == nil && !serving:
			log.Info("catalog database reachable again; catalog service SERVING")
		default:
			continue
		}
		serving = err == nil
		set(serving)
	}
}

// startRLI runs the replica location index: it opens DATA/index (answering
// at once from the sites' last state), serves it as rls.v1.Index, and
// forwards it to the configured parent indexes.
func startRLI(d *daemon) error {
	x, err := index.Open(filepath.Join(d.cfg.Data, "index"), &index.Options{
		Site:           d.cfg.Site,
		ExpireInterval: d.cfg.IndexExpireInterval,
		NoSync:         d.cfg.NoSync,
		MaxBloomBits:   d.cfg.IndexMaxBloomBits,
		MaxSites:       d.cfg.IndexMaxSites,
		Logger:         d.log.With("role", "rli"),
	})
	if err != nil {
		return fmt.Errorf("rli: %w", err)
	}
	v := &index.Verifier{Dialer: api.NewIndexDialer(d.sec.dialer)}
	d.onClose(func() error { v.Close(); return x.Close() })
	d.failStop(x.Failed(), x.Err)
	d.admin.Index = x
	d.page.Index = indexStatus{x}
	rlsv1.RegisterIndexServer(d.grpc, api.NewIndexServer(x, v, &api.IndexServerOptions{UpdateIdleTimeout: d.cfg.IndexUpdateIdleTimeout}))
	if err := d.metrics.Register(api.NewIndexCollector(x)); err != nil {
		return fmt.Errorf("rli: metrics: %w", err)
	}
	return startForwarder(d, x)
}

// withNeeds returns roles with every role they need, directly or not.
func withNeeds(roles []string) []string {
	table := roleTable()
	out := slices.Clone(roles)
	for i := 0; i < len(out); i++ {
		for _, n := range table[out[i]].needs {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}
