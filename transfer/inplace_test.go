package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/solar-archive/rls/transfer"
)

// A crash after some units of a batch were placed: the next pull of the
// batch finds them in place, checks them against the manifest, reports
// them placed, and fetches only the others.
func TestPullUnitsInPlace(t *testing.T) {
	root, dst := t.TempDir(), t.TempDir()
	var units []transfer.Unit
	for i := range 5 {
		u := filepath.Join(root, fmt.Sprintf("D%d", i))
		must(t, os.MkdirAll(filepath.Join(u, "sub"), 0o755))
		must(t, os.WriteFile(filepath.Join(u, "a.fits"), randBytes(t, 1000+i), 0o644))
		must(t, os.WriteFile(filepath.Join(u, "sub/b.txt"), randBytes(t, 10+i), 0o600))
		units = append(units, transfer.Unit{PFN: u, Dest: filepath.Join(dst, filepath.Base(u))})
	}
	src := newPeer(newSource(t, root), "src")
	first, err := transfer.PullUnits(context.Background(), units[:3], transfer.PullOptions{Sources: []transfer.Peer{src}, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// Unit 2's copy was damaged meanwhile: it is not taken as placed.
	must(t, os.WriteFile(filepath.Join(units[2].Dest, "a.fits"), []byte("bad"), 0o644))
	// Unit 1's pull died after it placed the unit, before it removed its
	// staging directory: the next pull removes it.
	stale := transfer.StagingDir(units[1].Dest)
	must(t, os.MkdirAll(filepath.Join(stale, "unit"), 0o700))
	must(t, os.WriteFile(filepath.Join(stale, "journal"), []byte("{}\n"), 0o600))

	var mu sync.Mutex
	reported := map[int]bool{}
	readsBefore := src.reads.Load()
	rs, _ := transfer.PullUnits(context.Background(), units, transfer.PullOptions{
		Sources: []transfer.Peer{src}, NoSync: true, InPlace: true,
		OnPlaced: func(i int, r *transfer.PullResult) {
			mu.Lock()
			defer mu.Unlock()
			if r.Err != nil || reported[i] {
				t.Errorf("OnPlaced(%d): err %v, reported before %v", i, r.Err, reported[i])
			}
			reported[i] = true
		},
	})
	for i, r := range rs {
		switch i {
		case 0, 1:
			if r.Err != nil || !r.InPlace || r.Fetched != 0 || r.Manifest != first[i].Manifest || r.Manifest.IsZero() {
				t.Errorf("unit %d: %+v; want found in place with manifest %v", i, r, first[i].Manifest)
			}
		case 2:
			if !errors.Is(r.Err, transfer.ErrExists) || reported[i] {
				t.Errorf("damaged unit: %v (reported %v), want ErrExists", r.Err, reported[i])
			}
		default:
			if r.Err != nil || r.InPlace || r.Fetched != r.Bytes || !reported[i] {
				t.Errorf("unit %d: %+v (reported %v)", i, r, reported[i])
			}
			if got, want := treeDigest(t, r.Dest), treeDigest(t, units[i].PFN); got != want {
				t.Errorf("unit %d differs", i)
			}
		}
	}
	if _, err := os.Lstat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale staging of a unit found in place is still there: %v", err)
	}
	if len(reported) != 4 {
		t.Errorf("OnPlaced for %d units, want 4", len(reported))
	}
	if n := src.reads.Load() - readsBefore; n != 1 {
		t.Errorf("%d Read calls, want 1 (for units 3 and 4 only)", n)
	}
}
