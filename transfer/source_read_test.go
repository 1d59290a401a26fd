package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/solar-archive/rls/transfer"
)

// bigUnit writes a unit holding one small file and big.fits, of size
// random bytes (more than the direct-read threshold), and returns the
// unit's path and big.fits' contents.
func bigUnit(t *testing.T, size int) (unit string, big []byte) {
	t.Helper()
	unit = filepath.Join(t.TempDir(), "D1")
	must(t, os.MkdirAll(unit, 0o755))
	big = randBytes(t, size)
	must(t, os.WriteFile(filepath.Join(unit, "big.fits"), big, 0o644))
	must(t, os.WriteFile(filepath.Join(unit, "small"), []byte("small\n"), 0o644))
	return unit, big
}

// bigSize is not a multiple of the 4 KiB direct I/O alignment.
const bigSize = 9<<20 + 1234

// collect reads r from src and returns its bytes, checking that the
// pieces come in order, each continuing the previous, none over ChunkSize.
func collect(ctx context.Context, src *transfer.Source, r transfer.Range) ([]byte, error) {
	var got []byte
	next := r.Offset
	err := src.Read(ctx, []transfer.Range{r}, func(i int, off int64, p []byte) error {
		if off != next || len(p) == 0 || len(p) > transfer.ChunkSize {
			return fmt.Errorf("piece of %d bytes at %d, want at most %d at %d", len(p), off, transfer.ChunkSize, next)
		}
		next += int64(len(p))
		got = append(got, p...)
		return nil
	})
	return got, err
}

func entryOf(t *testing.T, m *transfer.Manifest, p string) transfer.Entry {
	t.Helper()
	for _, e := range m.Entries {
		if e.Path == p {
			return e
		}
	}
	t.Fatalf("no entry %q in the manifest", p)
	return transfer.Entry{}
}

// Long ranges are read directly, in aligned blocks, whatever their own
// alignment: the bytes are the file's.
func TestSourceReadDirect(t *testing.T) {
	unit, big := bigUnit(t, bigSize)
	direct := directSupported(t, unit)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		off, length int64
	}{
		{"whole file", 0, bigSize},
		{"unaligned start", 5000, bigSize - 5000},
		{"ends before EOF", 0, bigSize - 777},
		{"unaligned inside", 12345, 5<<20 + 3},
		{"aligned inside", 4096, 4 << 20},
		{"last bytes", bigSize - 4<<20 - 1, 4<<20 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newSource(t, filepath.Dir(unit))
			got, err := collect(ctx, src, transfer.Range{PFN: unit, Path: "big.fits", Offset: tc.off, Length: tc.length})
			if err != nil {
				t.Fatal(err)
			}
			if want := big[tc.off : tc.off+tc.length]; !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, differing from the file's %d", len(got), len(want))
			}
			st := src.Stats()
			if st.BytesSent != tc.length {
				t.Errorf("BytesSent %d, want %d", st.BytesSent, tc.length)
			}
			if direct && st.BytesReadDirect < tc.length {
				t.Errorf("BytesReadDirect %d: want the range (%d bytes) read with O_DIRECT", st.BytesReadDirect, tc.length)
			}
		})
	}
}

// A whole-file Read of a file that FastManifest listed hashes it as it
// sends it: a Manifest, made after or waiting meanwhile, has its digest,
// and the file was hashed once, by the Read.
func TestSourceReadHashesOnce(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			unit, big := bigUnit(t, bigSize)
			src := newSource(t, filepath.Dir(unit))
			// The Reads below claim both files, however late they start:
			// nothing is hashed in the background.
			transfer.SetHashGrace(src, time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			fast, err := src.FastManifest(ctx, unit)
			must(t, err)
			type result struct {
				m   *transfer.Manifest
				err error
			}
			done := make(chan result, 1)
			manifest := func() { m, err := src.Manifest(ctx, unit); done <- result{m, err} }
			if concurrent {
				go manifest()
			}
			e := entryOf(t, fast, "big.fits")
			got, err := collect(ctx, src, transfer.Range{PFN: unit, Path: e.Path, Length: e.Size, Version: e.Version})
			must(t, err)
			if !bytes.Equal(got, big) {
				t.Fatal("read bytes differ from the file's")
			}
			small := entryOf(t, fast, "small")
			_, err = collect(ctx, src, transfer.Range{PFN: unit, Path: small.Path, Length: small.Size, Version: small.Version})
			must(t, err)
			if !concurrent {
				manifest()
			}
			res := <-done
			must(t, res.err)
			if d := entryOf(t, res.m, "big.fits"); [32]byte(d.SHA256) != sha256.Sum256(big) || d.Version != e.Version {
				t.Errorf("manifest entry %+v: want SHA-256 %x, version %s", d, sha256.Sum256(big), e.Version)
			}
			st := src.Stats()
			if st.BytesHashedInline != res.m.TotalBytes() || st.BytesHashed != res.m.TotalBytes() || st.FilesHashed != 2 {
				t.Errorf("stats %+v: want each file hashed once, as read: the unit's %d bytes",
					st, res.m.TotalBytes())
			}
		})
	}
}

// A whole-file Read cancelled midway leaves its hash unfinished: a
// Manifest, made after or waiting meanwhile, hashes the file itself.
func TestSourceReadCancelled(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(fmt.Sprintf("concurrent=%v", concurrent), func(t *testing.T) {
			unit, big := bigUnit(t, bigSize)
			// big.fits alone, which the Read claims however late it
			// starts: nothing is hashed in the background.
			must(t, os.Remove(filepath.Join(unit, "small")))
			src := newSource(t, filepath.Dir(unit))
			transfer.SetHashGrace(src, time.Hour)
			// joined is closed once a Manifest waits for the hash of
			// big.fits that the Read below makes.
			joined := make(chan struct{})
			var once sync.Once
			transfer.SetJoinedHook(src, func(name string) {
				if name == filepath.Join(unit, "big.fits") {
					once.Do(func() { close(joined) })
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := src.FastManifest(ctx, unit)
			must(t, err)
			type result struct {
				m   *transfer.Manifest
				err error
			}
			done := make(chan result, 1)
			manifest := func() { m, err := src.Manifest(ctx, unit); done <- result{m, err} }
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			err = src.Read(rctx, []transfer.Range{{PFN: unit, Path: "big.fits", Length: bigSize}}, func(int, int64, []byte) error {
				if concurrent && rctx.Err() == nil {
					// The Read is cancelled with a Manifest waiting for
					// its hash.
					go manifest()
					select {
					case <-joined:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				rcancel()
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled read: %v, want context.Canceled", err)
			}
			if !concurrent {
				manifest()
			}
			res := <-done
			must(t, res.err)
			if d := entryOf(t, res.m, "big.fits"); [32]byte(d.SHA256) != sha256.Sum256(big) {
				t.Errorf("manifest entry %+v: want SHA-256 %x", d, sha256.Sum256(big))
			}
			if st := src.Stats(); st.BytesHashedInline == 0 || st.BytesHashed != res.m.TotalBytes()+st.BytesHashedInline {
				t.Errorf("stats %+v: want the read's bytes hashed, then the whole unit", st)
			}
		})
	}
}

// A file that changes during a whole-file Read gets no digest from it:
// neither a Manifest nor an Open (which trusts a cached digest whose
// size and mtime match) sees the digest of the bytes sent.
func TestSourceReadChanging(t *testing.T) {
	unit, big := bigUnit(t, bigSize)
	src := newSource(t, filepath.Dir(unit))
	// The Read below claims both files, however late it starts: nothing
	// is left for the Manifest at the end to wait for.
	transfer.SetHashGrace(src, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fast, err := src.FastManifest(ctx, unit)
	must(t, err)
	e := entryOf(t, fast, "big.fits")
	small := entryOf(t, fast, "small")
	name := filepath.Join(unit, "big.fits")
	fi, err := os.Stat(name)
	must(t, err)
	// After the first piece, 1 MiB at 6 MiB is rewritten: the read may
	// send the old or the new bytes there, and sends some of the new ones
	// only if it had not read ahead that far.
	changed := append([]byte(nil), big...)
	copy(changed[6<<20:], randBytes(t, 1<<20))
	first := true
	err = src.Read(ctx, []transfer.Range{{PFN: unit, Path: e.Path, Length: e.Size}, {PFN: unit, Path: small.Path, Length: small.Size}}, func(int, int64, []byte) error {
		if first {
			first = false
			f, err := os.OpenFile(name, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(changed[6<<20:7<<20], 6<<20)
			return err
		}
		return nil
	})
	must(t, err)
	if st := src.Stats(); st.BytesHashedInline != bigSize+small.Size {
		t.Fatalf("stats %+v: want the read to have hashed the files (%d bytes)", st, bigSize+small.Size)
	}
	// Size and mtime as listed: Open trusts a cached digest then, so only
	// the digest of what the file holds now must be cached for them.
	must(t, os.Chtimes(name, fi.ModTime(), fi.ModTime()))
	f, err := src.Open(ctx, unit, "big.fits", transfer.Digest{})
	must(t, err)
	f.Close()
	if [32]byte(f.Entry.SHA256) != sha256.Sum256(changed) {
		t.Errorf("Open after the change: SHA-256 %s, want %x (the new contents)", f.Entry.SHA256, sha256.Sum256(changed))
	}
	m, err := src.Manifest(ctx, unit)
	must(t, err)
	if d := entryOf(t, m, "big.fits"); [32]byte(d.SHA256) != sha256.Sum256(changed) || d.Version == e.Version {
		t.Errorf("manifest after the change: %+v; want SHA-256 %x and a version other than %s", d, sha256.Sum256(changed), e.Version)
	}
}

// Small files too: a batched Read of every file of a unit listed fast
// hashes each as it sends it, and the Manifest that follows reads none
// of them again.
func TestSourceReadHashesSmallFilesOnce(t *testing.T) {
	unit := filepath.Join(t.TempDir(), "D2")
	must(t, os.MkdirAll(filepath.Join(unit, "sub"), 0o755))
	want := map[string][]byte{}
	var total int64
	for i := range 20 {
		p := fmt.Sprintf("sub/f%02d", i)
		b := randBytes(t, 1000+i*997)
		must(t, os.WriteFile(filepath.Join(unit, p), b, 0o644))
		want[p] = b
		total += int64(len(b))
	}
	must(t, os.WriteFile(filepath.Join(unit, "empty"), nil, 0o644))
	src := newSource(t, filepath.Dir(unit))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fast, err := src.FastManifest(ctx, unit)
	must(t, err)
	var ranges []transfer.Range
	for _, e := range fast.Entries {
		if !e.Dir && e.Size > 0 {
			ranges = append(ranges, transfer.Range{PFN: unit, Path: e.Path, Length: e.Size, Version: e.Version})
		}
	}
	got := make([][]byte, len(ranges))
	must(t, src.Read(ctx, ranges, func(i int, off int64, p []byte) error {
		got[i] = append(got[i], p...)
		return nil
	}))
	for i, r := range ranges {
		if !bytes.Equal(got[i], want[r.Path]) {
			t.Errorf("%s: read bytes differ from the file's", r.Path)
		}
	}
	m, err := src.Manifest(ctx, unit)
	must(t, err)
	for p, b := range want {
		if d := entryOf(t, m, p); [32]byte(d.SHA256) != sha256.Sum256(b) {
			t.Errorf("%s: SHA-256 %s, want %x", p, d.SHA256, sha256.Sum256(b))
		}
	}
	if st := src.Stats(); st.BytesHashedInline != total || st.BytesHashed != total {
		t.Errorf("stats %+v: want every file hashed once, as it was read (%d bytes)", st, total)
	}
}
