package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/solar-archive/rls/internal/rlsdtest"
)

// TestDiskFullPull fills the puller's disk in the middle of a pull: the
// pull fails with a clear error, no part of the unit is visible at its
// destination, and once space is freed the same pull resumes and places the
// unit whole.
func TestDiskFullPull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a small file system and runs rlsd")
	}
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	rlsctl := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsctl")
	root := t.TempDir()
	src := startSource(t, rlsd, root)
	unit := filepath.Join(root, "D3000")
	writeUnit(t, unit, 48<<20, 1<<20) // 48 MiB, every MiB random

	mnt := rlsdtest.SmallDisk(t, 64)
	free := rlsdtest.Fill(t, mnt, 16)
	dest := filepath.Join(mnt, "D3000")
	start := time.Now()
	r := runRlsctl(t, rlsctl, "transfer", "pull", "--from", src.Addr, unit, "--to", dest)
	t.Logf("failed pull took %v: %s", time.Since(start), r.stderr)
	if r.code == 0 {
		t.Fatalf("a 48 MiB pull onto 16 MiB of space succeeded: %s", r.stdout)
	}
	if !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("pull onto a full disk: exit %d, stderr %q does not say the disk is full", r.code, r.stderr)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after the failed pull, %s exists (%v): a half unit is visible", dest, err)
	}

	free()
	r = runRlsctl(t, rlsctl, "-o", "json", "transfer", "pull", "--from", src.Addr, unit, "--to", dest)
	if r.code != 0 {
		t.Fatalf("pull after freeing space: exit %d, stderr %q", r.code, r.stderr)
	}
	if pr := r.pull(t); pr.ResumedBytes == 0 {
		t.Errorf("the pull after freeing space resumed nothing: %+v", pr)
	}
	sameTree(t, unit, dest)
	if _, err := os.Stat(filepath.Join(mnt, ".rls-staging")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staging left behind: %v", err)
	}
}
