package api

import (
	"context"

	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
)

// CatalogFeed is a catalog as the soft-state sender's index.Feed: its
// methods with a context. (Once the catalog's methods take one,
// *catalog.Catalog is an index.Feed itself and this goes.)
type CatalogFeed struct{ *catalog.Catalog }

var _ index.Feed = CatalogFeed{}

// Stats implements index.Feed.
func (c CatalogFeed) Stats(context.Context) (catalog.Stats, error) { return c.Catalog.Stats(), nil }

// LastSeq implements index.Feed.
func (c CatalogFeed) LastSeq(context.Context) (uint64, error) { return c.Catalog.LastSeq(), nil }

// Changes implements index.Feed.
func (c CatalogFeed) Changes(_ context.Context, from uint64, limit int) ([]catalog.Change, error) {
	return c.Catalog.Changes(from, limit)
}

// ForEachLFN implements index.Feed.
func (c CatalogFeed) ForEachLFN(_ context.Context, fn func(lfn string) error) (uint64, error) {
	return c.Catalog.ForEachLFN(fn)
}
