// Package peertest is the conformance suite of transfer.Peer (and of
// transfer.FastManifester, for peers that are one). Every implementation
// runs it: the Source of package transfer in the process, and the gRPC
// client of package api against a real server on loopback, so that a pull
// sees the same manifests, bytes and errors whichever peer serves it.
//
// Usage, in an implementation's tests:
//
//	func TestPeerConformance(t *testing.T) {
//		peertest.Run(t, func(t *testing.T, root string) transfer.Peer {
//			return newPeerServing(t, root)
//		})
//	}
package peertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/solar-archive/rls/transfer"
)

// NewPeer returns the peer under test, serving the units under root (its
// one export root) until the test ends. The suite fills root first.
type NewPeer func(t *testing.T, root string) transfer.Peer

// bigSize is the size of the unit's big file: more than two chunks, and
// not a multiple of one.
const bigSize = 2*transfer.ChunkSize + 12345

// fixture is the unit the suite serves, and what it holds.
type fixture struct {
	root, outside string
	pfn           string // the unit D1
	big           []byte // D1/sub/big
	peer          transfer.Peer
}

// setup writes, under a fresh root, unit D1 (sub/big, sub/small, an empty
// file, an empty directory, a symlink to a file inside), D2 holding a
// symlink to a file outside the root, and D3, a symlink to a directory
// outside; then it starts the peer.
func setup(t *testing.T, newPeer NewPeer) *fixture {
	t.Helper()
	f := &fixture{root: t.TempDir(), outside: t.TempDir()}
	f.pfn = filepath.Join(f.root, "D1")
	f.big = make([]byte, bigSize)
	for i := range f.big {
		f.big[i] = byte(i*7 + i/4093)
	}
	must(t, os.MkdirAll(filepath.Join(f.pfn, "sub"), 0o755))
	must(t, os.MkdirAll(filepath.Join(f.pfn, "empty-dir"), 0o700))
	must(t, os.WriteFile(filepath.Join(f.pfn, "sub", "big"), f.big, 0o644))
	must(t, os.WriteFile(filepath.Join(f.pfn, "sub", "small"), []byte("small\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(f.pfn, "empty"), nil, 0o444))
	must(t, os.Symlink("small", filepath.Join(f.pfn, "sub", "link-in")))
	old := time.Date(2010, 5, 1, 12, 0, 0, 123456789, time.UTC)
	must(t, os.Chtimes(filepath.Join(f.pfn, "sub", "small"), old, old))
	secret := filepath.Join(f.outside, "secret")
	must(t, os.WriteFile(secret, []byte("secret"), 0o600))
	must(t, os.MkdirAll(filepath.Join(f.root, "D2"), 0o755))
	must(t, os.Symlink(secret, filepath.Join(f.root, "D2", "link-out")))
	must(t, os.Symlink(f.outside, filepath.Join(f.root, "D3")))
	f.peer = newPeer(t, f.root)
	return f
}

// Run runs the suite against the peers newPeer returns; the
// FastManifester tests run if they are one.
func Run(t *testing.T, newPeer NewPeer) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, *fixture)
	}{
		{"Manifest", testManifest},
		{"ManifestRefused", testManifestRefused},
		{"Read", testRead},
		{"ReadErrors", testReadErrors},
		{"ReadCallbackError", testReadCallbackError},
		{"ReadCancelled", testReadCancelled},
		{"ReadChangedFile", testReadChangedFile},
		{"ReadSymlinkSwappedOut", testReadSymlinkSwappedOut},
		{"FastManifest", testFastManifest},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, setup(t, newPeer)) })
	}
}

// testManifest: the manifest lists every entry of the unit, sorted, with
// the sizes, modes, mtimes and SHA-256 digests the files have on disk; a
// symlink inside is listed as its target.
func testManifest(t *testing.T, f *fixture) {
	m, err := f.peer.Manifest(context.Background(), f.pfn)
	if err != nil {
		t.Fatal(err)
	}
	if m.PFN != f.pfn {
		t.Errorf("manifest PFN %q, want %q", m.PFN, f.pfn)
	}
	want := []string{"empty", "empty-dir", "sub", "sub/big", "sub/link-in", "sub/small"}
	var got []string
	for _, e := range m.Entries {
		got = append(got, e.Path)
		fi, err := os.Stat(filepath.Join(f.pfn, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if e.Dir != fi.IsDir() || e.FileMode() != fi.Mode() || e.Dir && (e.Size != 0 || !e.SHA256.IsZero()) {
			t.Errorf("entry %+v: on disk a %v of mode %v", e, map[bool]string{true: "directory", false: "file"}[fi.IsDir()], fi.Mode())
		}
		if e.Dir {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.pfn, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if e.Size != fi.Size() || !e.MTime.Equal(fi.ModTime()) || e.SHA256 != transfer.Digest(sha256.Sum256(b)) {
			t.Errorf("entry %+v: on disk %d bytes, mtime %v, SHA-256 %x", e, fi.Size(), fi.ModTime(), sha256.Sum256(b))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("manifest lists %q, want %q", got, want)
	}
	if m.TotalBytes() != bigSize+int64(len("small\n"))*2 {
		t.Errorf("manifest totals %d bytes", m.TotalBytes())
	}
}

// testManifestRefused: a malformed PFN is ErrInvalid, one outside the
// export root (or reaching outside through a symlink) ErrRefused, a
// missing unit ErrNotFound.
func testManifestRefused(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		pfn  string
		want error
	}{
		{"", transfer.ErrInvalid},
		{"relative/D1", transfer.ErrInvalid},
		{f.pfn + "\x00", transfer.ErrInvalid},
		{f.root + "/../" + filepath.Base(f.root) + "/D1", transfer.ErrRefused},
		{f.pfn + "/..", transfer.ErrRefused},
		{f.outside, transfer.ErrRefused},
		{"/etc", transfer.ErrRefused},
		{f.root, transfer.ErrRefused},
		{filepath.Join(f.root, "D2"), transfer.ErrRefused}, // holds a symlink out
		{filepath.Join(f.root, "D3"), transfer.ErrRefused}, // is a symlink out
		{filepath.Join(f.root, "D4"), transfer.ErrNotFound},
	} {
		if _, err := f.peer.Manifest(context.Background(), tc.pfn); !errors.Is(err, tc.want) {
			t.Errorf("Manifest(%q): %v, want %v", tc.pfn, err, tc.want)
		}
	}
}

// piece is one call of a Read callback.
type piece struct {
	i   int
	off int64
	n   int
}

// testRead: several ranges in one call arrive in order, each in
// consecutive pieces of at most ChunkSize bytes, with the file's bytes; an
// empty range brings no piece.
func testRead(t *testing.T, f *fixture) {
	m, err := f.peer.Manifest(context.Background(), f.pfn)
	if err != nil {
		t.Fatal(err)
	}
	big := entry(t, m, "sub/big")
	ranges := []transfer.Range{
		{PFN: f.pfn, Path: "sub/big", Offset: 10, Length: 2*transfer.ChunkSize + 5, SHA256: big.SHA256, Version: big.Version},
		{PFN: f.pfn, Path: "sub/big", Offset: 0, Length: 0},
		{PFN: f.pfn, Path: "sub/small", Offset: 1, Length: 3},
		{PFN: f.pfn, Path: "sub/big", Offset: bigSize - 1, Length: 1},
		{PFN: f.pfn, Path: "sub/link-in", Offset: 0, Length: 6},
	}
	got := make([][]byte, len(ranges))
	var pieces []piece
	err = f.peer.Read(context.Background(), ranges, func(i int, off int64, p []byte) error {
		pieces = append(pieces, piece{i, off, len(p)})
		if i < 0 || i >= len(ranges) || len(p) > transfer.ChunkSize || off != ranges[i].Offset+int64(len(got[i])) {
			t.Errorf("piece %d: range %d, offset %d, %d bytes", len(pieces)-1, i, off, len(p))
			return nil
		}
		got[i] = append(got[i], p...)
		return nil
	})
	if err != nil {
		t.Fatalf("read: %v (pieces %v)", err, pieces)
	}
	for k := 1; k < len(pieces); k++ {
		if pieces[k].i < pieces[k-1].i {
			t.Errorf("pieces out of order: %v", pieces)
		}
	}
	for i, want := range [][]byte{f.big[10 : 10+2*transfer.ChunkSize+5], nil, []byte("mal"), f.big[bigSize-1:], []byte("small\n")} {
		if !bytes.Equal(got[i], want) {
			t.Errorf("range %d (%+v): %d bytes, want %d", i, ranges[i], len(got[i]), len(want))
		}
	}
}

// testReadErrors: a range that escapes the unit or the root is
// ErrRefused, one of a missing file ErrNotFound, one past the end of its
// file ErrInvalid, one asking for a digest or version the file does not
// have ErrChanged; no byte is delivered.
func testReadErrors(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		r    transfer.Range
		want error
	}{
		{transfer.Range{PFN: f.pfn, Path: "../D1/sub/small", Length: 1}, transfer.ErrRefused},
		{transfer.Range{PFN: f.pfn, Path: "/etc/passwd", Length: 1}, transfer.ErrRefused},
		{transfer.Range{PFN: f.pfn, Path: "sub/../../D2/link-out", Length: 1}, transfer.ErrRefused},
		{transfer.Range{PFN: filepath.Join(f.root, "D2"), Path: "link-out", Length: 1}, transfer.ErrRefused},
		{transfer.Range{PFN: "/etc", Path: "passwd", Length: 1}, transfer.ErrRefused},
		{transfer.Range{PFN: f.pfn, Path: "sub//small", Length: 1}, transfer.ErrInvalid},
		{transfer.Range{PFN: f.pfn, Path: "sub/none", Length: 1}, transfer.ErrNotFound},
		{transfer.Range{PFN: f.pfn, Path: "sub/small", Offset: 6, Length: 1}, transfer.ErrInvalid},
		{transfer.Range{PFN: f.pfn, Path: "sub/small", Length: 1, SHA256: transfer.Digest{1}}, transfer.ErrChanged},
		{transfer.Range{PFN: f.pfn, Path: "sub/small", Length: 1, Version: "bogus"}, transfer.ErrChanged},
	} {
		err := f.peer.Read(context.Background(), []transfer.Range{tc.r}, func(int, int64, []byte) error {
			t.Errorf("read %+v delivered bytes", tc.r)
			return nil
		})
		if !errors.Is(err, tc.want) {
			t.Errorf("read %+v: %v, want %v", tc.r, err, tc.want)
		}
	}
}

// testReadCallbackError: an error from the callback ends the read, and
// Read returns it.
func testReadCallbackError(t *testing.T, f *fixture) {
	stop := errors.New("enough")
	calls := 0
	err := f.peer.Read(context.Background(), []transfer.Range{{PFN: f.pfn, Path: "sub/big", Length: bigSize}}, func(int, int64, []byte) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("read whose callback failed: %v after %d calls, want the callback's error after 1", err, calls)
	}
}

// testReadCancelled: a read whose context ends early returns an error,
// unless every byte was delivered already.
func testReadCancelled(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ranges := make([]transfer.Range, 64) // more than a stream's buffers hold
	for i := range ranges {
		ranges[i] = transfer.Range{PFN: f.pfn, Path: "sub/big", Length: bigSize}
	}
	var n int64
	err := f.peer.Read(ctx, ranges, func(_ int, _ int64, p []byte) error {
		n += int64(len(p))
		cancel()
		return nil
	})
	if err == nil && n != int64(len(ranges))*bigSize {
		t.Errorf("read cancelled in its first piece: no error after %d of %d bytes", n, int64(len(ranges))*bigSize)
	}
}

// testReadChangedFile: once a file changed, a read with the digest of the
// manifest made before is ErrChanged, and the next manifest has the new
// digest.
func testReadChangedFile(t *testing.T, f *fixture) {
	ctx := context.Background()
	m, err := f.peer.Manifest(ctx, f.pfn)
	if err != nil {
		t.Fatal(err)
	}
	old := entry(t, m, "sub/small")
	must(t, os.WriteFile(filepath.Join(f.pfn, "sub", "small"), []byte("changed\n"), 0o600))
	err = f.peer.Read(ctx, []transfer.Range{{PFN: f.pfn, Path: old.Path, Length: 1, SHA256: old.SHA256}}, func(int, int64, []byte) error { return nil })
	if !errors.Is(err, transfer.ErrChanged) {
		t.Errorf("read of an old version: %v, want ErrChanged", err)
	}
	m, err = f.peer.Manifest(ctx, f.pfn)
	if err != nil {
		t.Fatal(err)
	}
	if e := entry(t, m, "sub/small"); e.SHA256 != transfer.Digest(sha256.Sum256([]byte("changed\n"))) || e.Size != 8 {
		t.Errorf("manifest after the change: %+v", e)
	}
}

// testReadSymlinkSwappedOut: a file swapped for a symlink out of the root
// after the manifest was made is refused when it is read.
func testReadSymlinkSwappedOut(t *testing.T, f *fixture) {
	ctx := context.Background()
	m, err := f.peer.Manifest(ctx, f.pfn)
	if err != nil {
		t.Fatal(err)
	}
	e := entry(t, m, "sub/small")
	target := filepath.Join(f.pfn, "sub", "small")
	must(t, os.Remove(target))
	must(t, os.Symlink(filepath.Join(f.outside, "secret"), target))
	err = f.peer.Read(ctx, []transfer.Range{{PFN: f.pfn, Path: e.Path, Length: e.Size, SHA256: e.SHA256}}, func(int, int64, []byte) error {
		t.Error("read bytes through a symlink out")
		return nil
	})
	if !errors.Is(err, transfer.ErrRefused) {
		t.Errorf("read of a file swapped for a symlink out: %v, want ErrRefused", err)
	}
}

// testFastManifest: a FastManifester lists the unit without digests but
// with Versions; the manifest made after has the same Versions, with
// digests; a read of a listed version is served until the file changes,
// then ErrChanged.
func testFastManifest(t *testing.T, f *fixture) {
	fp, ok := f.peer.(transfer.FastManifester)
	if !ok {
		t.Skipf("%T is not a transfer.FastManifester", f.peer)
	}
	ctx := context.Background()
	fast, err := fp.FastManifest(ctx, f.pfn)
	if err != nil {
		t.Fatal(err)
	}
	full, err := fp.Manifest(ctx, f.pfn)
	if err != nil {
		t.Fatal(err)
	}
	if len(fast.Entries) != len(full.Entries) {
		t.Fatalf("%d entries listed fast, %d in the manifest", len(fast.Entries), len(full.Entries))
	}
	for i, e := range fast.Entries {
		g := full.Entries[i]
		if !e.SHA256.IsZero() || e.Path != g.Path || e.Size != g.Size || e.Mode != g.Mode || !e.MTime.Equal(g.MTime) ||
			e.Version != g.Version || (!e.Dir && (e.Version == "" || g.SHA256.IsZero())) {
			t.Errorf("entry %d: fast %+v, full %+v", i, e, g)
		}
	}
	big := entry(t, fast, "sub/big")
	read := func() error {
		return fp.Read(ctx, []transfer.Range{{PFN: f.pfn, Path: big.Path, Length: big.Size, Version: big.Version}}, func(int, int64, []byte) error { return nil })
	}
	if err := read(); err != nil {
		t.Fatalf("read of the version listed: %v", err)
	}
	// A touch changes the version: the read is refused.
	now := time.Now()
	must(t, os.Chtimes(filepath.Join(f.pfn, "sub", "big"), now, now))
	if err := read(); !errors.Is(err, transfer.ErrChanged) {
		t.Errorf("read of a version no longer there: %v, want ErrChanged", err)
	}
}

func entry(t *testing.T, m *transfer.Manifest, path string) transfer.Entry {
	t.Helper()
	for _, e := range m.Entries {
		if e.Path == path {
			return e
		}
	}
	t.Fatalf("manifest of %s has no %q", m.PFN, path)
	return transfer.Entry{}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
