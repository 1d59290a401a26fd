package transfer_test

import (
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/solar-archive/rls/transfer"
)

// FuzzPFNPath checks PFN resolution and path cleaning, which stand between
// a request and the file system: whatever they accept names something
// strictly under an export root, and what they reject is ErrInvalid or
// ErrRefused.
func FuzzPFNPath(f *testing.F) {
	base := f.TempDir()
	roots := []string{filepath.Join(base, "a"), filepath.Join(base, "b", "c")}
	for _, r := range roots {
		if err := os.MkdirAll(r, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	src, err := transfer.NewSource(roots, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { src.Close() })
	for _, s := range [][2]string{
		{roots[0] + "/D1", "x/y"}, {roots[0] + "/../a/D1", "../z"}, {roots[1] + "//D2/", "/etc/passwd"},
		{"relative", "a/./b"}, {roots[0], ""}, {roots[0] + "x/D1", "a\x00b"}, {"/", "."}, {roots[1] + "/D3/..", "a//b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pfn, p string) {
		root, rel, err := src.ResolvePFN(pfn)
		if err != nil {
			if !errors.Is(err, transfer.ErrInvalid) && !errors.Is(err, transfer.ErrRefused) {
				t.Fatalf("ResolvePFN(%q): %v: neither ErrInvalid nor ErrRefused", pfn, err)
			}
		} else {
			if rel == "" || path.Join(root, rel) != path.Clean(pfn) || !strings.HasPrefix(path.Clean(pfn), root+"/") {
				t.Fatalf("ResolvePFN(%q) = %q, %q: not strictly under the root", pfn, root, rel)
			}
			if err := transfer.CleanPath(rel); err != nil {
				t.Fatalf("ResolvePFN(%q) = %q: rel not clean: %v", pfn, rel, err)
			}
		}
		if err := transfer.CleanPath(p); err != nil {
			if !errors.Is(err, transfer.ErrInvalid) && !errors.Is(err, transfer.ErrRefused) {
				t.Fatalf("CleanPath(%q): %v: neither ErrInvalid nor ErrRefused", p, err)
			}
			return
		}
		joined := path.Join("/unit", p)
		if !strings.HasPrefix(joined, "/unit/") || path.Clean(p) != p || strings.Contains(p, "\x00") {
			t.Fatalf("CleanPath accepted %q, which joins to %q", p, joined)
		}
	})
}

// FuzzManifest checks manifest decoding, the gate for manifests from
// other sites: a manifest it accepts has only clean relative paths, sorted
// and unique, with parents listed, and survives a round trip unchanged.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"pfn":"/a/D1","entries":[{"path":"d","dir":true,"size":0,"mode":493,"mtime":"2020-01-01T00:00:00Z"},` +
		`{"path":"d/f","size":3,"mode":420,"mtime":"2020-01-01T00:00:00Z","sha256":"` + strings.Repeat("ab", 32) + `"}]}`))
	f.Add([]byte(`{"entries":[{"path":"../x","size":1}]}`))
	f.Add([]byte(`{"entries":[{"path":"a"},{"path":"a"}]}`))
	f.Add([]byte(`{"entries":[{"path":"a/b"}]}`))
	f.Add([]byte(`{"entries":[{"path":"/abs","size":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := transfer.DecodeManifest(b)
		if err != nil {
			if !errors.Is(err, transfer.ErrInvalid) && !errors.Is(err, transfer.ErrRefused) {
				t.Fatalf("DecodeManifest: %v: neither ErrInvalid nor ErrRefused", err)
			}
			return
		}
		seen := map[string]bool{}
		for i, e := range m.Entries {
			if err := transfer.CleanPath(e.Path); err != nil {
				t.Fatalf("accepted entry %d with path %q: %v", i, e.Path, err)
			}
			if seen[e.Path] || (i > 0 && m.Entries[i-1].Path >= e.Path) {
				t.Fatalf("accepted entry %d %q: duplicate or unsorted", i, e.Path)
			}
			if dir := path.Dir(e.Path); dir != "." && !seen[dir] {
				t.Fatalf("accepted entry %q before its parent", e.Path)
			}
			if e.Size < 0 {
				t.Fatalf("accepted negative size %d", e.Size)
			}
			seen[e.Path] = true
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := transfer.DecodeManifest(again)
		if err != nil {
			t.Fatalf("re-encoded manifest rejected: %v\n%s", err, again)
		}
		for i := range m.Entries {
			// Times round-trip as instants; compare them as such.
			a, b := m.Entries[i], m2.Entries[i]
			if !a.MTime.Equal(b.MTime) {
				t.Fatalf("entry %d mtime %v became %v", i, a.MTime, b.MTime)
			}
			a.MTime = b.MTime
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("entry %d changed in a round trip: %+v became %+v", i, a, b)
			}
		}
	})
}
