package transfer

import "context"

// Range is a byte range of one file of a unit.
type Range struct {
	PFN    string
	Path   string // as in the unit's manifest
	Offset int64
	Length int64
	// SHA256 is the version wanted, from the manifest: a source whose file
	// has another digest fails with ErrChanged. Zero: any version.
	SHA256 Digest
}

// Peer is where a pull gets a unit's manifest and bytes: a Source in this
// process, or a remote rlsd (api.DialTransfer). Implementations are safe for
// concurrent use.
type Peer interface {
	// Name identifies the peer in logs and errors (its address).
	Name() string
	// Manifest returns the manifest of unit pfn.
	Manifest(ctx context.Context, pfn string) (*Manifest, error)
	// Read delivers the bytes of ranges, in order: each range's bytes in
	// consecutive pieces, fn(i, off, p) meaning that p holds the bytes of
	// ranges[i] from file offset off. p is valid only during the call. An
	// error from fn ends the read and is returned. Read returns nil once
	// every byte was delivered.
	Read(ctx context.Context, ranges []Range, fn func(i int, off int64, p []byte) error) error
}

var _ Peer = (*Source)(nil)
