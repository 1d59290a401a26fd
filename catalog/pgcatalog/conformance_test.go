package pgcatalog

import (
	"testing"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/catalog/catalogtest"
)

// TestConformance runs the catalog conformance suite on PostgreSQL, each
// case on a fresh database.
func TestConformance(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) catalog.Store { return openDSN(t, newDB(t)) })
}
