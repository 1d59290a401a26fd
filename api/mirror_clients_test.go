package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/mirror"
	"github.com/solar-archive/rls/transfer"
)

// noPeers is a Locator that knows no peers.
type noPeers struct{}

func (noPeers) Locate(ctx context.Context, lfns []string) ([][]mirror.Location, error) {
	return make([][]mirror.Location, len(lfns)), nil
}

// rootAuthority holds the units under one directory.
type rootAuthority struct{ root string }

func (a rootAuthority) Source() mirror.Source { return mirror.Source{Site: "jsoc", Endpoint: "jsoc"} }
func (a rootAuthority) Lookup(ctx context.Context, lfns []string) ([]string, error) {
	out := make([]string, len(lfns))
	for i, l := range lfns {
		if p := filepath.Join(a.root, "D"+l); exists(p) {
			out[i] = p
		}
	}
	return out, nil
}
func (a rootAuthority) Units(ctx context.Context, series string) ([]uint64, error) { return nil, nil }

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// The engine over the real seams: transfer.PullUnits (through
// TransferPuller) and catalog.RegisterUnits (through CatalogRegistrar).
// DONE means placed, identical, and registered with its attributes.
func TestMirrorOverTransferAndCatalog(t *testing.T) {
	root, store := t.TempDir(), t.TempDir()
	for i := 1; i <= 3; i++ {
		u := filepath.Join(root, fmt.Sprintf("D%d", i))
		if err := os.MkdirAll(u, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(u, "a.fits"), []byte(fmt.Sprint("unit ", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := transfer.NewSource([]string{root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cat, err := catalog.Open(t.TempDir(), &catalog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	st, err := mirror.OpenStore(t.TempDir(), &mirror.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	puller := &mirror.TransferPuller{Options: transfer.PullOptions{NoSync: true, Logger: quiet},
		Dial: func(string) (transfer.Peer, error) { return src, nil }}
	eng, err := mirror.New(st, mirror.Config{Site: "nso", StoreDir: store, Locator: noPeers{},
		Authority: rootAuthority{root}, Puller: puller, Registrar: api.CatalogRegistrar{Catalog: cat},
		Batch: mirror.BatchPolicy{Idle: time.Millisecond}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
	}()

	if err := eng.Accept(ctx, []mirror.Request{{Sunum: 1, Series: "hmi.x"}, {Sunum: 2}, {Sunum: 3}, {Sunum: 4}}); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	rs, err := eng.Wait(wctx, []uint64{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs[:3] {
		if r.State != mirror.DONE || r.Source != "jsoc" {
			t.Fatalf("%d: %+v", r.Sunum, r)
		}
		b, err := os.ReadFile(filepath.Join(store, fmt.Sprintf("D%d", r.Sunum), "a.fits"))
		if err != nil || string(b) != fmt.Sprint("unit ", r.Sunum) {
			t.Fatalf("%d: placed %q, %v", r.Sunum, b, err)
		}
	}
	if rs[3].State != mirror.INVD {
		t.Fatalf("4: %+v, want INVD", rs[3])
	}
	as, err := cat.Attrs(t.Context(), catalog.LFN, "1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range as {
		got[a.Name] = a.Value.String()
	}
	if got["series"] != "hmi.x" || got["source"] != "jsoc" || got["files"] != "1" || got["size"] != "6" || len(got["sha256"]) != 64 {
		t.Fatalf("attributes %v", got)
	}
	if pfns, _ := cat.QueryLFN(t.Context(), "2"); len(pfns) != 1 || pfns[0] != filepath.Join(store, "D2") {
		t.Fatalf("mapping of 2: %v", pfns)
	}

	// Registered reads back what a restarted engine keeps of a unit it
	// finds present: the registration's source, size and file count; a
	// mapping made by hand has no attributes, another PFN is not it.
	if _, err := cat.Create(t.Context(), "5", "/by/hand/D5"); err != nil {
		t.Fatal(err)
	}
	regs, err := api.CatalogRegistrar{Catalog: cat}.Registered(t.Context(),
		[]string{"1", "2", "5", "5", "4"}, []string{filepath.Join(store, "D1"), filepath.Join(store, "D2"), "/by/hand/D5", "/elsewhere", filepath.Join(store, "D4")})
	if err != nil {
		t.Fatal(err)
	}
	want := []*mirror.Placed{
		{LFN: "1", PFN: filepath.Join(store, "D1"), Bytes: 6, Files: 1, SHA256: got["sha256"], Series: "hmi.x", Source: "jsoc"},
		{LFN: "2", PFN: filepath.Join(store, "D2"), Bytes: 6, Files: 1, SHA256: regs[1].SHA256, Source: "jsoc"},
		{LFN: "5", PFN: "/by/hand/D5"},
		nil, nil,
	}
	for i := range want {
		if (regs[i] == nil) != (want[i] == nil) || (regs[i] != nil && *regs[i] != *want[i]) || (i == 1 && len(regs[1].SHA256) != 64) {
			t.Errorf("Registered[%d] = %+v, want %+v", i, regs[i], want[i])
		}
	}
}
