package index

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// The figures the soft-state issue names: a Bloom filter of 1M LFNs built
// from the catalog (Globus RLS: 18.4 s), the filter alone for 1M and 10M
// names, and a full list update of 1M LFNs end to end (Globus RLS: 831 s).

// sunums returns n sunums from 100,000,000 on, as LFNs.
func sunums(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(100_000_000 + i)
	}
	return out
}

// loadCatalog returns a catalog holding n sunums, once the storage engine's
// compactions after the load are done (they would compete with the
// benchmark for the CPUs).
func loadCatalog(b *testing.B, n int) *catalog.Catalog {
	b.Helper()
	cat := openCatalog(b)
	const chunk = 50_000
	for i := 0; i < n; i += chunk {
		ms := make([]catalog.Mapping, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			s := 100_000_000 + j
			ms = append(ms, catalog.Mapping{LFN: fmt.Sprint(s), PFN: fmt.Sprintf("/SUM%d/D%d", s%64, s)})
		}
		if _, _, err := cat.BulkWrite(b.Context(), catalog.OpCreate, ms); err != nil {
			b.Fatal(err)
		}
	}
	for idle, deadline := 0, time.Now().Add(2*time.Minute); idle < 5 && time.Now().Before(deadline); {
		if st, err := cat.StorageStats(b.Context()); err == nil && st.CompactionsRunning == 0 {
			idle++
		} else {
			idle = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cat
}

// BenchmarkBloomBuild1M scans a catalog of 1M sunums and builds their
// filter, as a full Bloom update does before it sends. ScanOnly is the scan
// alone, the floor of the build.
func BenchmarkBloomBuild1M(b *testing.B) {
	cat := loadCatalog(b, 1_000_000)
	s := &Sender{cat: cat}
	tg := Target{FalsePositiveRate: DefaultFalsePositiveRate}
	b.Run("ScanAndBuild", func(b *testing.B) {
		for b.Loop() {
			p, _, _, err := s.snapshotBloom(b.Context(), tg)
			if err != nil || p.Entries != 1_000_000 {
				b.Fatal(p, err)
			}
		}
	})
	b.Run("ScanOnly", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if _, err := cat.ForEachLFN(b.Context(), func(string) error { n++; return nil }); err != nil || n != 1_000_000 {
				b.Fatal(n, err)
			}
		}
	})
}

// BenchmarkBloomBuildNames builds a filter from names in memory.
func BenchmarkBloomBuildNames(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		names := sunums(n)
		b.Run(fmt.Sprintf("%dM", n/1_000_000), func(b *testing.B) {
			for b.Loop() {
				m, k := BloomGeometry(uint64(n), DefaultFalsePositiveRate)
				bb := newBloomBuilder(m, k, bloomWorkers()+1) // no scan to leave a core to
				bb.addAll(names)
				if w := bb.finish(m); uint64(len(w)) != m/64 {
					b.Fatal(len(w))
				}
			}
		})
	}
}

// BenchmarkListUpdate1M sends a full list update of a catalog of 1M sunums
// to an index on loopback: snapshot, stream, commit.
func BenchmarkListUpdate1M(b *testing.B) {
	cat := loadCatalog(b, 1_000_000)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	rec := newRecorder()
	serveOn(b, rec, lis)
	s, err := NewSender(cat, "jsoc", "jsoc:7600", []Target{{Addr: lis.Addr().String(), Mode: ModeList}}, SenderOptions{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		rs, err := s.UpdateNow(b.Context(), "")
		if err != nil || rs[0].Err != nil || rs[0].Entries != 1_000_000 {
			b.Fatal(rs, err)
		}
		rec.mu.Lock()
		rec.updates = nil // keep one update's names in memory, not b.N
		rec.mu.Unlock()
	}
}
