package catalog

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// The figures the LRC issue names, in process (the gRPC figures come from
// scripts/bench-lrc.sh): bulk load rate, single-LFN query rate, and durable
// single creates from 32 concurrent writers.

func sunumMappings(start, n int) []Mapping {
	ms := make([]Mapping, n)
	for i := range ms {
		s := start + i
		ms[i] = Mapping{LFN: fmt.Sprint(s), PFN: fmt.Sprintf("/SUM%d/D%d", s%64, s)}
	}
	return ms
}

// BenchmarkBulkCreate loads mappings in durable batches of 10,000, as
// `rlsctl lrc bulk create` does; b.N counts mappings.
func BenchmarkBulkCreate(b *testing.B) {
	c, _ := openTest(b)
	const chunk = 10000
	ms := sunumMappings(100_000_000, b.N)
	b.ResetTimer()
	for i := 0; i < len(ms); i += chunk {
		_, _, err := c.BulkWrite(b.Context(), OpCreate, ms[i:min(i+chunk, len(ms))])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "mappings/s")
}

// BenchmarkQueryLFN queries random existing sunums from 1,000,000 from all
// CPUs.
func BenchmarkQueryLFN(b *testing.B) {
	c, _ := openTest(b)
	const n = 1_000_000
	ms := sunumMappings(100_000_000, n)
	for i := 0; i < n; i += 50000 {
		if _, _, err := c.BulkWrite(b.Context(), OpCreate, ms[i:i+50000]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			m := ms[r.IntN(n)]
			pfns, err := c.QueryLFN(b.Context(), m.LFN)
			if err != nil || len(pfns) != 1 {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	m := c.db.Metrics().BlockCache
	b.ReportMetric(100*float64(m.Hits)/float64(m.Hits+m.Misses+1), "%cache-hits")
}

// BenchmarkDurableCreate32 runs durable single creates from 32 concurrent
// writers, which share fsyncs through group commit.
func BenchmarkDurableCreate32(b *testing.B) {
	c, _ := openTest(b)
	var next atomic.Int64
	b.SetParallelism(32) // × GOMAXPROCS goroutines; at least 32
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := c.Create(b.Context(), fmt.Sprint(i), "/SUM1/D"+fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}
