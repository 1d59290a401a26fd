package catalog_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/catalog/catalogtest"
)

// TestStore runs the conformance suite on the Pebble catalog, with durable
// writes as in production.
func TestStore(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) catalog.Store {
		c, err := catalog.Open(t.TempDir(), &catalog.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	})
}
