package main

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
)

// A role is one part of what rlsd can run. Its start function wires the role
// into the daemon before it serves: it opens the role's storage, registers
// its gRPC services and metrics, hands what must be released to d.onClose,
// which serve calls after the servers have stopped, and its goroutines to
// d.run, which serve starts once it serves and stops and waits for before it
// closes storage.
//
// Adding a role is adding an entry here.
func roleTable() map[string]func(d *daemon) error {
	return map[string]func(d *daemon) error{
		"lrc":      startLRC,
		"rli":      startRLI,
		"transfer": startTransfer,
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

// startLRC runs the local replica catalog: it opens DATA/catalog and serves
// it as rls.v1.Catalog, with its counts in the metrics and in Admin.Stats,
// and sends its soft state to the configured indexes.
func startLRC(d *daemon) error {
	cat, err := catalog.Open(filepath.Join(d.cfg.Data, "catalog"), &catalog.Options{
		NoSync: d.cfg.NoSync,
		Logger: d.log.With("role", "lrc"),
	})
	if err != nil {
		return fmt.Errorf("lrc: %w", err)
	}
	d.onClose(func() error { return cat.Close() })
	d.failStop(cat.Failed(), cat.Err)
	d.admin.Catalog = cat
	d.page.Catalog = catalogStatus{cat}
	rlsv1.RegisterCatalogServer(d.grpc, api.NewCatalogServer(cat))
	if err := d.metrics.Register(api.NewCatalogCollector(cat)); err != nil {
		return fmt.Errorf("lrc: metrics: %w", err)
	}
	return startSender(d, cat)
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
	v := &index.Verifier{Dial: d.sec.dialer.DialConn}
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
