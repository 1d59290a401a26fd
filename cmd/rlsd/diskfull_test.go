package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api"
	rlsv1 "github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// outcomes sorts the LFNs a test wrote by what rlsd answered.
type outcomes struct {
	mu sync.Mutex
	// acked: rlsd acknowledged the write; it must survive.
	acked []string
	// failed: rlsd answered that the write failed (its store stopped); it
	// must never be read, now or after a restart.
	failed []string
	// unknown: the call ended without an answer from the store (the
	// connection closed as rlsd exited); either outcome is allowed.
	unknown []string
}

// storeFailed reports whether err is rlsd's own answer that its store
// stopped, as opposed to a connection lost when the process exited.
func storeFailed(err error) bool {
	s, ok := status.FromError(err)
	return ok && (s.Code() == codes.ResourceExhausted || s.Code() == codes.Unavailable) &&
		strings.Contains(s.Message(), "data directory")
}

func (o *outcomes) record(lfns []string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil:
		o.acked = append(o.acked, lfns...)
	case storeFailed(err):
		o.failed = append(o.failed, lfns...)
	default:
		o.unknown = append(o.unknown, lfns...)
	}
}

// TestDiskFullCatalog fills the disk under a running rlsd's catalog. The
// writes that fail are never visible, a retry is not told the name exists,
// rlsd exits on its own with status 3 and a message naming the data
// directory (no flood of background errors, no hang), and after a restart
// with space it serves exactly what it acknowledged.
func TestDiskFullCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a small file system and runs rlsd")
	}
	mnt := rlsdtest.SmallDisk(t, 128)
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	data := filepath.Join(mnt, "data")
	args := []string{"--site", "full", "--data", data, "--listen", "127.0.0.1:0", "--roles", "lrc"}
	p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", args...)
	// Leave a few MiB: the WAL preallocated at start takes the first
	// writes, the first flush or log rotation finds the disk full.
	free := rlsdtest.Fill(t, mnt, 4)

	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cat := rlsv1.NewCatalogClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var (
		out      outcomes
		wg       sync.WaitGroup
		seen     = make(chan string, 1) // a failed LFN that was read back
		firstBad = make(chan string, 1)
	)
	const writers, batch, maxCalls = 6, 500, 2000 // bounded: 6M mappings at most
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for call := 0; call < maxCalls && ctx.Err() == nil; call++ {
				var lfns []string
				req := &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_CREATE}
				for i := 0; i < batch; i++ {
					lfn := fmt.Sprintf("w%d-%d-%d", w, call, i)
					lfns = append(lfns, lfn)
					req.Mappings = append(req.Mappings, &rlsv1.Mapping{Lfn: lfn, Pfn: "/SUM1/D" + lfn + strings.Repeat("x", 64)})
				}
				resp, err := cat.BulkWrite(ctx, req)
				if err == nil && resp.GetFailed() > 0 {
					t.Errorf("bulk create: %d items failed: %v", resp.GetFailed(), resp.GetResults()[0])
				}
				out.record(lfns, err)
				if err != nil {
					if storeFailed(err) {
						select {
						case firstBad <- lfns[0]:
						default:
						}
					}
					return
				}
			}
		})
	}
	// A reader that asks for a failed write, as a client retrying would.
	wg.Go(func() {
		var lfn string
		select {
		case lfn = <-firstBad:
		case <-p.Exited():
			return
		case <-ctx.Done():
			return
		}
		for range 1000 {
			r, err := cat.Exists(ctx, &rlsv1.ExistsRequest{Lfn: lfn})
			if err != nil {
				return
			}
			if r.GetExists() {
				seen <- lfn
				return
			}
		}
	})

	select {
	case <-p.Exited():
	case <-ctx.Done():
		t.Fatalf("rlsd did not stop on its own after the disk filled:\n%s", tail(p.Log(), 40))
	}
	wg.Wait()
	select {
	case lfn := <-seen:
		t.Errorf("a write that failed (%s) was read back", lfn)
	default:
	}
	if code := p.ExitCode(); code != 3 {
		t.Errorf("rlsd exit status %d, want 3\n%s", code, tail(p.Log(), 40))
	}
	log := p.Log()
	if !strings.Contains(log, "disk full") || !strings.Contains(log, data) {
		t.Errorf("rlsd's log does not say the disk under %s is full:\n%s", data, tail(log, 40))
	}
	if n := strings.Count(log, "background error"); n > 5 {
		t.Errorf("%d background-error lines: the log floods", n)
	}
	if len(out.failed) == 0 {
		t.Fatalf("no write failed with the store's own error (acked %d, unknown %d):\n%s",
			len(out.acked), len(out.unknown), tail(log, 40))
	}
	t.Logf("acknowledged %d, failed %d, unknown %d", len(out.acked), len(out.failed), len(out.unknown))
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "storage failed") {
			t.Log(l)
		}
	}

	// Restart with space: exactly what was acknowledged.
	free()
	p = rlsdtest.Start(t, rlsd, "rls.v1.Catalog", args...)
	cc2, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	cat = rlsv1.NewCatalogClient(cc2)
	present := func(lfns []string) (n int, first string) {
		const chunk = 5000
		for i := 0; i < len(lfns); i += chunk {
			var items []*rlsv1.ExistsRequest
			for _, lfn := range lfns[i:min(i+chunk, len(lfns))] {
				items = append(items, &rlsv1.ExistsRequest{Lfn: lfn})
			}
			r, err := cat.BulkExists(context.Background(), &rlsv1.BulkExistsRequest{Items: items})
			if err != nil {
				t.Fatal(err)
			}
			for j, ok := range r.GetExists() {
				if ok {
					if n == 0 {
						first = items[j].GetLfn()
					}
					n++
				}
			}
		}
		return n, first
	}
	if n, _ := present(out.acked); n != len(out.acked) {
		t.Errorf("after restart, %d of %d acknowledged mappings are there", n, len(out.acked))
	}
	if n, first := present(out.failed); n != 0 {
		t.Errorf("after restart, %d writes that failed are visible (such as %s)", n, first)
	}
	st, err := rlsv1.NewAdminClient(cc2).Stats(context.Background(), &rlsv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m := st.GetCatalog().GetMappings(); m < uint64(len(out.acked)) || m > uint64(len(out.acked)+len(out.unknown)) {
		t.Errorf("after restart, stats count %d mappings; acknowledged %d, unknown %d", m, len(out.acked), len(out.unknown))
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("rlsd exit status %d after SIGTERM, want 0", code)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestDiskFullIndex fills the disk under a running RLI while sites send it
// full list updates. An update whose snapshot could not be made durable is
// refused and never served; the RLI exits 3 on its own; after a restart
// with space it serves exactly the sites whose updates it acknowledged.
func TestDiskFullIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a small file system and runs rlsd")
	}
	mnt := rlsdtest.SmallDisk(t, 64)
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	data := filepath.Join(mnt, "data")
	args := []string{"--site", "rli", "--data", data, "--listen", "127.0.0.1:0", "--roles", "rli"}
	p := rlsdtest.Start(t, rlsd, "rls.v1.Index", args...)
	free := rlsdtest.Fill(t, mnt, 4)

	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := rlsv1.NewIndexClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const names = 20000 // ~0.3 MB of names a site
	var acked, failed []string
	for i := 0; i < 1000 && ctx.Err() == nil; i++ { // 300 MB at most: bounded
		site := fmt.Sprintf("site%03d", i)
		h := index.Header{Site: site, Endpoint: "127.0.0.1:1", Generation: 1, Validity: time.Hour, Entries: names, Updated: time.Now()}
		_, err := api.NewIndexSink(cl).Send(ctx, index.ListUpdate(h, func(yield func(string) bool) {
			for j := 0; j < names; j++ {
				if !yield(fmt.Sprintf("%s-%09d", site, j)) {
					return
				}
			}
		}))
		if err == nil {
			acked = append(acked, site)
			continue
		}
		if storeFailed(err) {
			failed = append(failed, site)
		}
		break
	}
	select {
	case <-p.Exited():
	case <-ctx.Done():
		t.Fatalf("the RLI did not stop on its own after its disk filled:\n%s", tail(p.Log(), 40))
	}
	if code := p.ExitCode(); code != 3 {
		t.Errorf("rlsd exit status %d, want 3\n%s", code, tail(p.Log(), 40))
	}
	if len(failed) == 0 {
		t.Fatalf("no update failed with the index's own error (acked %d):\n%s", len(acked), tail(p.Log(), 40))
	}
	t.Logf("acknowledged %d sites, failed %d", len(acked), len(failed))

	free()
	p = rlsdtest.Start(t, rlsd, "rls.v1.Index", args...)
	cc2, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	r, err := rlsv1.NewIndexClient(cc2).Sites(context.Background(), &rlsv1.SitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]uint64{}
	for _, s := range r.GetSites() {
		held[s.GetSite()] = s.GetEntries()
	}
	for _, s := range acked {
		if held[s] != names {
			t.Errorf("after restart, acknowledged site %s holds %d entries, want %d", s, held[s], names)
		}
	}
	for _, s := range failed {
		if _, ok := held[s]; ok {
			t.Errorf("after restart, site %s whose update failed is served", s)
		}
	}
	if len(held) != len(acked) {
		t.Errorf("after restart, %d sites held, %d acknowledged", len(held), len(acked))
	}
}
