package catalog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
	cpu0 := cpuTime()
	for i := 0; i < len(ms); i += chunk {
		_, _, err := c.BulkWrite(b.Context(), OpCreate, ms[i:min(i+chunk, len(ms))])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "mappings/s")
	// Until compactions have settled (no compaction in 20 polls over
	// 200 ms), as scripts/bench-lrc.sh waits.
	for quiet := 0; quiet < 20; {
		if st, err := c.StorageStats(b.Context()); err == nil && st.CompactionsRunning == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "settled-mappings/s")
	b.ReportMetric(cpuSince(cpu0)/float64(b.N), "cpu-µs/op")
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
	cpu0 := cpuTime()
	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	b.RunParallel(func(pb *testing.PB) {
		var own []time.Duration
		for pb.Next() {
			i := next.Add(1)
			t0 := time.Now()
			if _, err := c.Create(b.Context(), fmt.Sprint(i), "/SUM1/D"+fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
			own = append(own, time.Since(t0))
		}
		mu.Lock()
		lats = append(lats, own...)
		mu.Unlock()
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	slices.Sort(lats)
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(cpuSince(cpu0)/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time the process used so far, in µs: unlike ns/op it
// hardly depends on what else runs on the machine.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

func cpuSince(t0 float64) float64 { return cpuTime() - t0 }

// BenchmarkBulkQuery looks up 1,000 random existing sunums of 300,000 a
// call, as BulkQuery does for a gRPC call; b.N counts names.
func BenchmarkBulkQuery(b *testing.B) {
	c, _ := openTest(b)
	const n = 300_000
	ms := sunumMappings(100_000_000, n)
	for i := 0; i < n; i += 50000 {
		if _, _, err := c.BulkWrite(b.Context(), OpCreate, ms[i:i+50000]); err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	names := make([]string, 1000)
	b.ResetTimer()
	cpu0 := cpuTime()
	for done := 0; done < b.N; done += len(names) {
		for i := range names {
			names[i] = ms[r.IntN(n)].LFN
		}
		found := 0
		errs, err := c.BulkQueryEach(b.Context(), LFN, names, func(int, string) error { found++; return nil })
		if err != nil || found != len(names) {
			b.Fatal(err, errs)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "names/s")
	b.ReportMetric(cpuSince(cpu0)/float64(b.N), "cpu-µs/op")
}

// BenchmarkQueryLFNDuringBulkLoad sends single-LFN lookups of 200,000
// loaded sunums at a steady 2,000 a second from 32 goroutines while one
// goroutine bulk-creates new sunums in durable batches of 10,000 (each
// ingested), as scripts/bench-lrc.sh's big part does over gRPC; b.N counts
// lookups. A lookup's latency runs from when it was due, so that a stalled
// lookup also counts the ones queued behind it. Run it pinned to one CPU
// (taskset -c 1 … -cpu 1), as the server runs in that script.
func BenchmarkQueryLFNDuringBulkLoad(b *testing.B) {
	c, _ := openTest(b)
	const (
		n       = 200_000
		conc    = 32
		perSec  = 2000
		chunk   = 10_000
		loadAt  = 400_000_000
		between = time.Second / perSec * conc // one goroutine's interval
	)
	ms := sunumMappings(100_000_000, n)
	for i := 0; i < n; i += 50000 {
		if _, _, err := c.BulkWrite(b.Context(), OpCreate, ms[i:i+50000]); err != nil {
			b.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var loaded atomic.Int64
	loadDone := make(chan error, 1)
	go func() {
		for next := loadAt; ; next += chunk {
			select {
			case <-stop:
				loadDone <- nil
				return
			default:
			}
			if _, _, err := c.BulkWrite(b.Context(), OpCreate, sunumMappings(next, chunk)); err != nil {
				loadDone <- err
				return
			}
			loaded.Add(chunk)
		}
	}()
	b.ResetTimer()
	start := time.Now()
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 3))
			due := start.Add(between * time.Duration(g) / conc)
			for i := g; i < b.N; i += conc {
				time.Sleep(time.Until(due))
				m := ms[r.IntN(n)]
				if pfns, err := c.QueryLFN(b.Context(), m.LFN); err != nil || len(pfns) != 1 {
					b.Error(m.LFN, pfns, err)
					return
				}
				lats[g] = append(lats[g], time.Since(due))
				due = due.Add(between)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(stop)
	if err := <-loadDone; err != nil {
		b.Fatal(err)
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	ms2 := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(ms2(all[len(all)/2]), "p50-ms")
	b.ReportMetric(ms2(all[len(all)*99/100]), "p99-ms")
	b.ReportMetric(ms2(all[len(all)-1]), "max-ms")
	b.ReportMetric(float64(loaded.Load())/b.Elapsed().Seconds(), "loaded-mappings/s")
}
