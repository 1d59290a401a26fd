package transfer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/solar-archive/rls/transfer"
)

// A unit placed by a pull into an export root is served from there with
// the digests it was verified against: the next site's manifest of it
// hashes nothing. A file changed since is hashed again, and a directory
// outside the roots is refused.
func TestSourceAdopt(t *testing.T) {
	root, store := t.TempDir(), t.TempDir()
	unit := makeUnit(t, root, "D1", 3000)
	src := newPeer(newSource(t, root), "jsoc")
	dest := filepath.Join(store, "D1")
	var placed *transfer.PullResult
	rs, err := transfer.PullUnits(context.Background(), []transfer.Unit{{PFN: unit, Dest: dest}}, transfer.PullOptions{
		Sources: []transfer.Peer{src}, NoSync: true, ManifestFirst: true,
		OnPlaced: func(_ int, r *transfer.PullResult) { placed = r },
	})
	if err != nil || rs[0].Err != nil {
		t.Fatal(err, rs[0].Err)
	}
	if placed == nil || len(placed.Entries) == 0 {
		t.Fatalf("OnPlaced reported %+v, want the placed unit's entries", placed)
	}

	mirror := newSource(t, store) // the mirror's own transfer role
	n, err := mirror.Adopt(dest, placed.Entries)
	if err != nil {
		t.Fatal(err)
	}
	if n != rs[0].Files {
		t.Errorf("adopted %d files of %d", n, rs[0].Files)
	}
	m, err := mirror.Manifest(context.Background(), dest)
	if err != nil {
		t.Fatal(err)
	}
	if st := mirror.Stats(); st.FilesHashed != 0 {
		t.Errorf("the manifest of an adopted unit hashed %d files", st.FilesHashed)
	}
	if m.Digest() != rs[0].Manifest {
		t.Errorf("manifest digest %v, want the pulled unit's %v", m.Digest(), rs[0].Manifest)
	}

	// A file rewritten after the adoption is not served with the old
	// digest.
	var file string
	for _, e := range placed.Entries {
		if !e.Dir {
			file = filepath.Join(dest, filepath.FromSlash(e.Path))
			break
		}
	}
	must(t, os.WriteFile(file, []byte("changed"), 0o644))
	m2, err := mirror.Manifest(context.Background(), dest)
	if err != nil {
		t.Fatal(err)
	}
	if st := mirror.Stats(); st.FilesHashed != 1 {
		t.Errorf("after a change the manifest hashed %d files, want 1", st.FilesHashed)
	}
	if m2.Digest() == m.Digest() {
		t.Error("a changed file kept its adopted digest")
	}

	if _, err := mirror.Adopt(unit, placed.Entries); err == nil {
		t.Errorf("Adopt of %s, outside the export roots: no error", unit)
	}
}
