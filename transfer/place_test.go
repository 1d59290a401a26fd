package transfer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/transfer"
)

// smallUnits writes n units of 1-4 small files (one in a subdirectory)
// under root and returns them with destinations under dst.
func smallUnits(t *testing.T, root, dst string, n int) []transfer.Unit {
	var units []transfer.Unit
	for i := range n {
		u := filepath.Join(root, fmt.Sprintf("D%03d", i))
		must(t, os.MkdirAll(filepath.Join(u, "sub"), 0o755))
		for k := range 1 + i%4 {
			must(t, os.WriteFile(filepath.Join(u, "sub", fmt.Sprintf("f%d.fits", k)), randBytes(t, 500+97*i+k), 0o644))
		}
		units = append(units, transfer.Unit{PFN: u, Dest: filepath.Join(dst, filepath.Base(u))})
	}
	return units
}

// A batch of small units is made durable as a group: their files are not
// synced one by one and no journal is written, so the whole batch costs a
// couple of syncs (one syncfs(2) of the staged units, one fsync of their
// parent directory), not several per unit. Each unit is complete at its
// destination when OnPlaced reports it.
func TestPullUnitsSmallGroupSync(t *testing.T) {
	for _, manifestFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("ManifestFirst=%v", manifestFirst), func(t *testing.T) {
			root, dst := t.TempDir(), t.TempDir()
			units := smallUnits(t, root, dst, 48)
			src := newPeer(newSource(t, root), "src")
			var mu sync.Mutex
			reported := 0
			before := transfer.Syncs()
			rs, err := transfer.PullUnits(context.Background(), units, transfer.PullOptions{
				Sources: []transfer.Peer{src}, ManifestFirst: manifestFirst,
				OnPlaced: func(i int, r *transfer.PullResult) {
					if got, want := treeDigest(t, units[i].Dest), treeDigest(t, units[i].PFN); got != want {
						t.Errorf("unit %d reported placed before it was complete:\n got %s\nwant %s", i, got, want)
					}
					mu.Lock()
					reported++
					mu.Unlock()
				},
			})
			syncs := transfer.Syncs() - before
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				if r.Fetched != r.Bytes || r.Manifest.IsZero() {
					t.Errorf("unit %d: %+v", i, r)
				}
			}
			if reported != len(units) {
				t.Errorf("OnPlaced for %d units, want %d", reported, len(units))
			}
			if reads := src.reads.Load(); syncs > 2*reads {
				t.Errorf("%d syncs for %d small units in %d Read calls; want at most 2 a call", syncs, len(units), reads)
			}
			if _, err := os.Stat(filepath.Join(dst, ".rls-staging")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("staging left behind: %v", err)
			}
		})
	}
}

// A small unit has no resume journal: a pull of it that fails leaves no
// staging directory behind, and a pull that finds one (left by a process
// that died) trusts nothing in it, not even the journal of an earlier,
// journaled pull, since its bytes may have been rewritten since.
func TestPullUnitsSmallUnjournaled(t *testing.T) {
	root, dst := t.TempDir(), t.TempDir()
	units := smallUnits(t, root, dst, 3)
	ctx := context.Background()

	flaky := newPeer(newSource(t, root), "flaky")
	flaky.failAfter.Store(0)
	rs, _ := transfer.PullUnits(ctx, units[:1], transfer.PullOptions{Sources: []transfer.Peer{flaky}, MaxFailures: 1})
	if !errors.Is(rs[0].Err, transfer.ErrUnavailable) {
		t.Fatalf("pull from a failing source: %v, want ErrUnavailable", rs[0].Err)
	}
	for _, p := range []string{units[0].Dest, transfer.StagingDir(units[0].Dest)} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after a failed pull of a small unit: %v", p, err)
		}
	}

	// As if a journaled pull had verified sub/f0.fits, and a process had
	// then died while it rewrote that file: the journal vouches for bytes
	// that are not the source's.
	src := newSource(t, root)
	m, err := src.Manifest(ctx, units[1].PFN)
	must(t, err)
	stage := transfer.StagingDir(units[1].Dest)
	must(t, os.MkdirAll(filepath.Join(stage, "unit", "sub"), 0o755))
	mb, err := json.Marshal(m)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(stage, "manifest.json"), mb, 0o600))
	must(t, os.WriteFile(filepath.Join(stage, "journal"), []byte(`{"op":"verified","path":"sub/f0.fits"}`+"\n"), 0o600))
	fi, err := os.Stat(filepath.Join(units[1].PFN, "sub", "f0.fits"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(stage, "unit", "sub", "f0.fits"), make([]byte, fi.Size()), 0o644))
	must(t, os.WriteFile(filepath.Join(stage, "unit", "stray"), []byte("x"), 0o644))

	rs, err = transfer.PullUnits(ctx, units[1:], transfer.PullOptions{Sources: []transfer.Peer{src}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if got, want := treeDigest(t, r.Dest), treeDigest(t, units[1+i].PFN); got != want {
			t.Errorf("unit %d differs from the source:\n got %s\nwant %s", 1+i, got, want)
		}
		if r.Resumed != 0 || r.Fetched != r.Bytes {
			t.Errorf("unit %d: resumed %d, fetched %d of %d; want all fetched", 1+i, r.Resumed, r.Fetched, r.Bytes)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, ".rls-staging")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staging left behind: %v", err)
	}
}

// BenchmarkPullUnitsSmall pulls batches of 48 small units (1-4 files of
// at most 64 KiB each, as scripts/bench-mirror.sh's) from a warm gRPC
// source on loopback into one store directory, durably, as the mirror
// does (ManifestFirst, InPlace): units/s is the figure.
func BenchmarkPullUnitsSmall(b *testing.B) {
	root := b.TempDir()
	var pfns []string
	for i := range 48 {
		u := filepath.Join(root, fmt.Sprintf("D%d", i))
		must(b, os.MkdirAll(u, 0o755))
		for k := range 1 + i%4 {
			must(b, os.WriteFile(filepath.Join(u, fmt.Sprintf("f%d.fits", k)), randBytes(b, 1000+(i*7919+k*104729)%(16<<10)), 0o644))
		}
		pfns = append(pfns, u)
	}
	src, err := transfer.NewSource([]string{root}, &transfer.SourceOptions{Logger: quiet})
	must(b, err)
	defer src.Close()
	srv, err := api.NewServer(api.ServerOptions{Logger: quiet})
	must(b, err)
	rlsv1.RegisterTransferServer(srv, api.NewTransferServer(src))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	go func() { _ = srv.Serve(lis) }()
	defer func() { _ = srv.Shutdown(context.Background()) }()
	for _, p := range pfns {
		_, err := src.Manifest(context.Background(), p)
		must(b, err)
	}
	cl, err := api.DialTransfer(lis.Addr().String(), nil)
	must(b, err)
	defer cl.Close()
	opts := transfer.PullOptions{Sources: []transfer.Peer{cl}, ManifestFirst: true, InPlace: true, Logger: quiet}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		store := b.TempDir()
		units := make([]transfer.Unit, len(pfns))
		for i, p := range pfns {
			units[i] = transfer.Unit{PFN: p, Dest: filepath.Join(store, filepath.Base(p))}
		}
		b.StartTimer()
		if _, err := transfer.PullUnits(context.Background(), units, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(pfns))/b.Elapsed().Seconds(), "units/s")
}

// BeforePlace takes back a unit of a batch at the last moment: it is not
// placed (one found in place stays as it is) and fails with the error
// given; the others are placed.
func TestPullUnitsBeforePlace(t *testing.T) {
	root, dst := t.TempDir(), t.TempDir()
	units := smallUnits(t, root, dst, 4)
	src := newPeer(newSource(t, root), "src")
	opts := transfer.PullOptions{Sources: []transfer.Peer{src}, InPlace: true}
	if _, err := transfer.PullUnits(context.Background(), units[3:], opts); err != nil {
		t.Fatal(err)
	}
	errNo := errors.New("no longer wanted")
	var mu sync.Mutex
	var asked []int
	opts.BeforePlace = func(i int) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, i)
		if i%2 == 1 {
			return errNo
		}
		return nil
	}
	rs, _ := transfer.PullUnits(context.Background(), units, opts)
	for i, r := range rs {
		_, statErr := os.Stat(units[i].Dest)
		switch {
		case i%2 == 0 && (r.Err != nil || statErr != nil):
			t.Errorf("unit %d: %v (dest: %v); want placed", i, r.Err, statErr)
		case i == 1 && (!errors.Is(r.Err, errNo) || !errors.Is(statErr, fs.ErrNotExist)):
			t.Errorf("unit 1: %v (dest: %v); want not placed, the veto's error", r.Err, statErr)
		case i == 3 && (!errors.Is(r.Err, errNo) || statErr != nil):
			t.Errorf("unit 3, in place before: %v (dest: %v); want left there, the veto's error", r.Err, statErr)
		}
	}
	if len(asked) != 4 {
		t.Errorf("BeforePlace asked about %v, want every unit once", asked)
	}
	if _, err := os.Stat(filepath.Join(dst, ".rls-staging")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staging left behind: %v", err)
	}
}
