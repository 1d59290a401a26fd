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
	// Version is the version wanted, as the source listed it (Entry.Version,
	// meaningful only to the source that listed it): the source fails with
	// ErrChanged if its file is another version when the range is opened or
	// by the time its last byte is read. Empty: any version.
	Version string
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

// FastManifester is a Peer that can list a unit before its digests are
// known (see Source.FastManifest). Pull uses it for single-source pulls: it
// fetches the bytes while the source hashes, then verifies every file
// against the digests of a Manifest call before placing the unit.
type FastManifester interface {
	Peer
	// FastManifest returns the manifest of unit pfn without digests, with
	// each file's Version, and lets the peer start hashing, so that a
	// Manifest call made later returns the digests of the versions listed
	// (with the same Versions) unless files changed.
	FastManifest(ctx context.Context, pfn string) (*Manifest, error)
}

var (
	_ Peer           = (*Source)(nil)
	_ FastManifester = (*Source)(nil)
)
