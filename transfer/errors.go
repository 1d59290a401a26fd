// Package transfer moves storage units between sites, verified.
//
// A storage unit is a directory of files; its PFN is its absolute path at the
// source. A Source serves the units that lie under its export roots: it
// resolves a PFN to a directory inside one root (refusing "..", absolute
// escapes and symlinks that point outside, at open time, through os.Root),
// builds and caches a Manifest (paths, sizes, modes, mtimes and SHA-256
// digests), and reads byte ranges of the unit's files.
//
// Pull brings a unit from one or more Peers (a Source in the same process, or
// a remote rlsd through package api) into a staging directory beside its
// destination, verifies every file against the manifest, fsyncs, and renames
// the unit into place in one step, so that no reader ever sees half a unit.
// An interrupted pull resumes from the staging directory without fetching
// again what it had already written and synced.
//
// Errors match the sentinels below with errors.Is; package api maps them to
// and from gRPC status codes.
package transfer

import "errors"

var (
	// ErrNotFound: the unit or file does not exist at the source.
	ErrNotFound = errors.New("not found")
	// ErrRefused: the source refuses the PFN or path, because it lies
	// outside its export roots (".." components, absolute escapes,
	// symlinks out) or is not something it serves.
	ErrRefused = errors.New("refused")
	// ErrInvalid: a malformed PFN, path, range or manifest.
	ErrInvalid = errors.New("invalid")
	// ErrTimeout: a source did not answer, or its stream stalled, in time.
	ErrTimeout = errors.New("timed out")
	// ErrUnavailable: a source could not be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrCorrupt: bytes did not match the manifest's size or digest.
	ErrCorrupt = errors.New("corrupt")
	// ErrChanged: the source's file is not the version of the manifest (it
	// changed since, or this source holds other content).
	ErrChanged = errors.New("changed at the source")
	// ErrExists: the pull destination exists already.
	ErrExists = errors.New("destination exists")
	// ErrTooLarge: a unit's manifest would hold more than MaxEntries
	// entries or MaxManifestBytes bytes.
	ErrTooLarge = errors.New("too large")
)
