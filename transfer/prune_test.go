package transfer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/solar-archive/rls/transfer"
)

// TestPruneDigests: the digest database drops the records of files that
// were deleted, that changed since they were hashed, or that are no
// longer under an export root, and keeps the others.
func TestPruneDigests(t *testing.T) {
	root1, root2 := t.TempDir(), t.TempDir()
	for _, f := range []struct{ root, name string }{{root1, "D1/a"}, {root1, "D1/b"}, {root1, "D1/c"}, {root2, "D2/d"}} {
		must(t, os.MkdirAll(filepath.Join(f.root, filepath.Dir(f.name)), 0o755))
		must(t, os.WriteFile(filepath.Join(f.root, f.name), randBytes(t, 1000), 0o644))
	}
	db := filepath.Join(t.TempDir(), "digests")
	ctx := context.Background()
	open := func(roots ...string) *transfer.Source {
		s, err := transfer.NewSource(roots, &transfer.SourceOptions{DigestDB: db, DigestPruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open(root1, root2)
	for _, u := range []string{filepath.Join(root1, "D1"), filepath.Join(root2, "D2")} {
		if _, err := s.Manifest(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if kept, deleted, err := s.PruneDigests(ctx); err != nil || kept != 4 || deleted != 0 {
		t.Errorf("prune with every file as hashed: kept %d, deleted %d, %v; want 4, 0", kept, deleted, err)
	}
	must(t, s.Close())

	must(t, os.Remove(filepath.Join(root1, "D1/a")))
	must(t, os.WriteFile(filepath.Join(root1, "D1/b"), randBytes(t, 1001), 0o644))
	s = open(root1) // root2 is no longer exported
	defer s.Close()
	if kept, deleted, err := s.PruneDigests(ctx); err != nil || kept != 1 || deleted != 3 {
		t.Errorf("prune: kept %d, deleted %d, %v; want 1 kept (c), 3 deleted (a gone, b changed, d not exported)", kept, deleted, err)
	}
	if kept, deleted, err := s.PruneDigests(ctx); err != nil || kept != 1 || deleted != 0 {
		t.Errorf("second prune: kept %d, deleted %d, %v; want 1, 0", kept, deleted, err)
	}
	// c's record still serves.
	if _, err := s.Manifest(ctx, filepath.Join(root1, "D1")); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.DigestsLoaded != 1 || st.FilesHashed != 1 {
		t.Errorf("manifest after the prune: %+v; want c loaded, b hashed", st)
	}
}
