package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/solar-archive/rls/transfer"
)

// TransferPuller asks each unit's Place before placing it: a unit taken
// back is not placed and fails with ErrCancelled; the others are placed,
// each with its manifest's digest.
func TestTransferPullerPlace(t *testing.T) {
	root, store := t.TempDir(), t.TempDir()
	var units []PullUnit
	for i := range 3 {
		u := filepath.Join(root, fmt.Sprintf("D%d", i))
		if err := os.MkdirAll(u, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(u, "a.fits"), []byte(fmt.Sprint("unit ", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, PullUnit{Sunum: uint64(i), PFN: u, Dest: filepath.Join(store, filepath.Base(u))})
	}
	units[1].Place = func() bool { return false }
	units[2].Place = func() bool { return true }
	src, err := transfer.NewSource([]string{root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := &TransferPuller{Dial: func(string) (transfer.Peer, error) { return src, nil }}
	defer p.Close()
	rs := p.Pull(context.Background(), Source{Site: "jsoc", Endpoint: "local"}, units)
	for i, r := range rs {
		_, err := os.Stat(units[i].Dest)
		if i == 1 {
			if !errors.Is(r.Err, ErrCancelled) || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("unit taken back: %v (dest: %v); want ErrCancelled, not placed", r.Err, err)
			}
			continue
		}
		if r.Err != nil || err != nil || r.SHA256 == "" {
			t.Errorf("unit %d: %+v (dest: %v); want placed", i, r, err)
		}
	}
}
