package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/transfer"
)

// startTransfer serves the storage units under the export roots as
// rls.v1.Transfer, and over HTTP under /v1/transfer/ on the HTTP listener,
// with its counters in the metrics. The digests it computes are kept in
// DATA/transfer-digests, so that a restarted rlsd does not hash again.
func startTransfer(d *daemon) error {
	data, err := filepath.Abs(d.cfg.Data)
	if err != nil {
		return fmt.Errorf("transfer: data directory: %w", err)
	}
	src, err := transfer.NewSource(d.cfg.ExportRoots, &transfer.SourceOptions{
		Logger:   d.log.With("role", "transfer"),
		DigestDB: filepath.Join(data, "transfer-digests"),
	})
	if err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	d.source = src
	d.onClose(src.Close)
	d.failStop(src.Failed(), src.Err)
	rlsv1.RegisterTransferServer(d.grpc, api.NewTransferServer(src))
	d.page.Transfer = transferStatus{src}
	api.NewTransferHTTPHandler(d.http, src, d.log.With("role", "transfer"))
	if err := d.metrics.Register(api.NewTransferCollector(src)); err != nil {
		return fmt.Errorf("transfer: metrics: %w", err)
	}
	d.log.Info("transfer serving", "export_roots", strings.Join(src.Roots(), ","))
	return nil
}

// validateTransfer checks the export roots: the transfer role needs at
// least one, and each must be an absolute path of an existing directory.
func (c *config) validateTransfer() error {
	if !slices.Contains(c.Roles, "transfer") {
		return nil
	}
	if len(c.ExportRoots) == 0 {
		return usageErrorf("role transfer needs at least one export root (--export-root, RLSD_EXPORT_ROOT or export-root: in the config file)")
	}
	for _, r := range c.ExportRoots {
		if !filepath.IsAbs(r) {
			return usageErrorf("export-root %q: not an absolute path", r)
		}
		if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
			return usageErrorf("export-root %q: not a directory", r)
		}
	}
	return nil
}

// pathList is a list of paths: in the configuration file a list or a
// comma-separated string, on the command line and in the environment a
// comma-separated string.
type pathList []string

func (l *pathList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = splitPaths(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

func splitPaths(s string) pathList { return pathList(splitRoles(s)) }
