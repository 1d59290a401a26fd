package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	rlsv1 "github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// TestCrashKeepsAckedWrites is the durability contract: concurrent clients
// create mappings and record each one rlsd acknowledged; the test kill -9s
// rlsd while they write, restarts it on the same data, and finds every
// acknowledged mapping. It does this for several rounds on one directory, so
// each restart also recovers from the crashes before it.
func TestCrashKeepsAckedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rlsd processes")
	}
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--site", "crash", "--data", data, "--listen", "127.0.0.1:0", "--roles", "lrc"}

	const (
		rounds  = 3
		clients = 16
		// killAfter acked writes in a round, rlsd dies, with writes in flight.
		killAfter = 1500
	)
	var acked []string // every acknowledged LFN over all rounds
	for round := 0; round < rounds; round++ {
		p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", args...)
		if round > 0 {
			verify(t, p.Addr, acked, round)
		}
		cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		cat := rlsv1.NewCatalogClient(cc)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var (
			mu    sync.Mutex
			got   []string
			count atomic.Int64
			wg    sync.WaitGroup
			kill  = make(chan struct{})
			once  sync.Once
		)
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100000 && ctx.Err() == nil; i++ {
					lfn := fmt.Sprintf("r%d-c%d-%d", round, c, i)
					_, err := cat.Create(ctx, &rlsv1.MappingRequest{Lfn: lfn, Pfn: "/SUM1/D" + lfn})
					if err != nil {
						return // rlsd is gone
					}
					mu.Lock()
					got = append(got, lfn)
					mu.Unlock()
					if count.Add(1) == killAfter {
						once.Do(func() { close(kill) })
					}
				}
			}()
		}
		select {
		case <-kill:
		case <-ctx.Done():
			t.Fatalf("round %d: clients did not reach %d acked writes", round, killAfter)
		}
		p.Kill()
		wg.Wait()
		cancel()
		cc.Close()
		if count.Load() < killAfter {
			t.Fatalf("round %d: only %d writes acked", round, count.Load())
		}
		acked = append(acked, got...)
		t.Logf("round %d: %d writes acked before kill -9", round, len(got))
	}
	p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", args...)
	verify(t, p.Addr, acked, rounds)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("rlsd exited %d on SIGTERM, want 0\n%s", code, p.Log())
	}
}

// verify checks that every acked LFN exists with its PFN.
func verify(t *testing.T, addr string, acked []string, round int) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cat := rlsv1.NewCatalogClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const chunk = 5000
	for i := 0; i < len(acked); i += chunk {
		var items []*rlsv1.ExistsRequest
		for _, lfn := range acked[i:min(i+chunk, len(acked))] {
			items = append(items, &rlsv1.ExistsRequest{Lfn: lfn, Pfn: "/SUM1/D" + lfn})
		}
		r, err := cat.BulkExists(ctx, &rlsv1.BulkExistsRequest{Items: items})
		if err != nil {
			t.Fatalf("after restart %d: %v", round, err)
		}
		for j, ok := range r.GetExists() {
			if !ok {
				t.Fatalf("after restart %d: acknowledged mapping %s is lost (status %v)",
					round, items[j].GetLfn(), r.GetResults()[j])
			}
		}
	}
	st, err := rlsv1.NewAdminClient(cc).Stats(ctx, &rlsv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.GetCatalog().GetMappings(); n < uint64(len(acked)) {
		t.Fatalf("after restart %d: stats count %d mappings, fewer than the %d acknowledged", round, n, len(acked))
	}
}
