package index

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

// siteNames returns site s's n names for the Locate benchmarks.
func siteNames(s, n int) []string {
	lfns := make([]string, n)
	for i := range lfns {
		lfns[i] = fmt.Sprintf("%d.%d", s, i)
	}
	return lfns
}

// locateProbes returns the Locate benchmarks' 1,000 probes: half held by
// one of sites sites, half by none.
func locateProbes(sites int) []string {
	probes := make([]string, 1000)
	for i := range probes {
		if i%2 == 0 {
			probes[i] = fmt.Sprintf("%d.%d", i%sites, i)
		} else {
			probes[i] = fmt.Sprintf("absent.%d", i)
		}
	}
	return probes
}

// BenchmarkLocate looks up LFNs (half held by one site, half by none) in an
// index of Bloom sites, each with a filter of 10,000 LFNs at 1% false
// positives (m = 2^17, k = 7: all in one bit-sliced group).
func BenchmarkLocate(b *testing.B) {
	for _, sites := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("filters=%d", sites), func(b *testing.B) {
			x := openTest(b, b.TempDir(), nil)
			for s := range sites {
				f, p := newFilter(0.01, siteNames(s, 10_000)...)
				mustReceive(b, x, bloomMsgs(fmt.Sprintf("site%04d", s), 1, f, p))
			}
			probes := locateProbes(sites)
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if _, err := x.Locate(probes); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(probes))/time.Since(start).Seconds(), "lfns/s")
		})
	}
}

// BenchmarkReceiveList1M applies a full list of 1M LFNs (sunum-like
// names), synced to disk, and reports the index's memory per LFN.
func BenchmarkReceiveList1M(b *testing.B) {
	const n = 1_000_000
	lfns := make([]string, n)
	for i := range lfns {
		lfns[i] = fmt.Sprint(100_000_000 + i)
	}
	h := header("jsoc", ModeList, 1)
	h.Entries = n
	msgs := []Message{{Part: PartHeader, Header: h}}
	for i := 0; i < n; i += 16384 {
		msgs = append(msgs, Message{Part: PartLFNs, LFNs: lfns[i:min(n, i+16384)]})
	}
	x, err := Open(b.TempDir(), &Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		if _, err := x.Receive(recvFrom(msgs)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lfns/s")
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(x.Stats().MemoryBytes)/n, "index-B/lfn")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/lfn")
}

// BenchmarkProbeEachFilter is the baseline for BenchmarkLocate: the same
// lookups as one bloom/v3 Test per site filter, as an index that keeps each
// site's filter apart must do.
func BenchmarkProbeEachFilter(b *testing.B) {
	for _, sites := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("filters=%d", sites), func(b *testing.B) {
			filters := make([]*bloom.BloomFilter, sites)
			for s := range sites {
				filters[s], _ = newFilter(0.01, siteNames(s, 10_000)...)
			}
			probes := locateProbes(sites)
			found := 0
			start := time.Now()
			for b.Loop() {
				for _, p := range probes {
					for _, f := range filters {
						if f.TestString(p) {
							found++
						}
					}
				}
			}
			b.ReportMetric(float64(b.N*len(probes))/time.Since(start).Seconds(), "lfns/s")
			if found == 0 {
				b.Fatal("no filter matched")
			}
		})
	}
}

// BenchmarkLocateLists is BenchmarkLocate with list sites, each holding
// 10,000 LFNs: a lookup tests a site's list only when the filter of its
// list, stored bit-sliced with the others, matches.
func BenchmarkLocateLists(b *testing.B) {
	for _, sites := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("lists=%d", sites), func(b *testing.B) {
			x := openTest(b, b.TempDir(), nil)
			for s := range sites {
				mustReceive(b, x, listMsgs(fmt.Sprintf("site%04d", s), 1, siteNames(s, 10_000)...))
			}
			probes := locateProbes(sites)
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				res, err := x.Locate(probes)
				if err != nil || len(res[0]) != 1 {
					b.Fatal(res[0], err)
				}
			}
			b.ReportMetric(float64(b.N*len(probes))/time.Since(start).Seconds(), "lfns/s")
		})
	}
}
