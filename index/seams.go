package index

// The package's seams: what it needs of the world, as small interfaces.
// Package api implements Sink and Dialer over gRPC (as it implements
// transfer.Peer); a catalog implements Feed. Nothing in this package knows
// the wire format.

import (
	"context"

	"github.com/solar-archive/rls/catalog"
)

// Sink sends soft-state updates to one index.
type Sink interface {
	// Send sends u as one update and returns the index's acknowledgement
	// once the index committed it. An update that cannot be sent whole (a
	// list with more or fewer names than its header counts, an invalid
	// Update) fails, and the index commits nothing of it. When the index
	// refuses a delta that does not apply on top of what it holds (or an
	// update older than what it holds), the error wraps
	// ErrOutOfSequence: a full update is due. Send is safe for
	// concurrent use.
	Send(ctx context.Context, u Update) (Ack, error)
}

// SiteCatalog asks one site's catalog which LFNs it holds.
type SiteCatalog interface {
	// Lookup returns the PFNs of each of lfns that the catalog holds;
	// LFNs it does not hold are absent from the map. charge, when not
	// nil, is called with the size in bytes of each LFN's PFN list before
	// Lookup keeps it; once it returns an error, Lookup stops and returns
	// that error. Lookup is safe for concurrent use.
	Lookup(ctx context.Context, lfns []string, charge func(bytes int) error) (map[string][]string, error)
}

// Dialer connects to other sites: to indexes, to send them updates (Sender
// and Forwarder), and to sites' catalogs, to verify candidates (Verifier).
// Neither call connects; the first use does. What it returns may be an
// io.Closer: its owner closes it when done. Package api's IndexDialer
// dials gRPC. A Dialer is safe for concurrent use.
type Dialer interface {
	// Index returns a Sink to the index at addr (host:port).
	Index(addr string) (Sink, error)
	// Catalog returns the catalog of the site whose gRPC endpoint is
	// endpoint (host:port).
	Catalog(endpoint string) (SiteCatalog, error)
}

// Feed is what a Sender reads of its site's catalog: full listings from a
// consistent snapshot, and the change feed after it. *catalog.Catalog's
// methods, with a context. Its methods are safe for concurrent use.
type Feed interface {
	// Incarnation identifies the feed's history: generations (change-feed
	// positions) compare only within one incarnation.
	Incarnation() [catalog.IncarnationLen]byte
	// Stats returns the catalog's counts; the sender reads the LFN count
	// to size a full update before it scans.
	Stats(ctx context.Context) (catalog.Stats, error)
	// LastSeq returns the position of the last change record (0 if none).
	LastSeq(ctx context.Context) (uint64, error)
	// Changes returns up to limit change records at positions >= from, in
	// order; an error wrapping catalog.ErrNotFound if some were pruned.
	Changes(ctx context.Context, from uint64, limit int) ([]catalog.Change, error)
	// WaitChanges blocks until the feed holds a record at position from or
	// later, or ctx ends.
	WaitChanges(ctx context.Context, from uint64) error
	// ForEachLFN calls fn for every LFN, in byte order, from one
	// consistent snapshot, and returns the position that snapshot
	// reflects.
	ForEachLFN(ctx context.Context, fn func(lfn string) error) (seq uint64, err error)
}
