package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// BenchmarkDeltaVisible measures how long a new mapping takes to become
// locatable at an index, end to end: a durable catalog write, the sender's
// delta (with its default coalescing delay, DefaultDeltaDelay) over gRPC on
// loopback, the index's synced apply. It reports the median and the worst
// latency over b.N writes, one at a time.
func BenchmarkDeltaVisible(b *testing.B) {
	x, err := Open(b.TempDir(), &Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	addr := serveIndex(b, x)
	cat, err := catalog.Open(b.TempDir(), &catalog.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	s, err := NewSender(cat, "a", "a:7600", []Target{{Addr: addr, Mode: ModeDelta}}, SenderOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			b.Errorf("sender: %v", err)
		}
	}()
	for len(x.Sites()) == 0 { // the first full update
		time.Sleep(time.Millisecond)
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		lfn := fmt.Sprint("delta-", i)
		i++
		start := time.Now()
		if _, err := cat.Create(b.Context(), lfn, "/p/"+lfn); err != nil {
			b.Fatal(err)
		}
		for deadline := start.Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			res, err := x.Locate([]string{lfn})
			if err != nil {
				b.Fatal(err)
			}
			if len(res[0]) > 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s not locatable after 10 s", lfn)
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
