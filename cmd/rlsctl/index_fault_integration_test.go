package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// TestFaultRLIKill is the index's crash contract, for RLS_FAULT_ROUNDS
// rounds on one data directory. Five sites send soft state over the real
// Update stream (through api.IndexSink, as an
// LRC does): two small lists, a Bloom filter, a site that sends a list and
// then deltas on top of it, and a list of 70,000 LFNs. Each generation of
// a site holds LFNs of its own, so that any mix of two generations shows.
// The RLI is killed with SIGKILL either after a random delay or while the
// big list is half sent (its stream open, some chunks in, the rest not);
// the choice, the delay and the chunk are drawn from the logged seed.
//
// While the sites send, a reader checks that a lookup never sees part of
// the big list's generations. After each restart, every site is served
// with the generation it last had acknowledged, or with the one the kill
// cut if that update's stream had ended (never with one cut mid-stream),
// and with exactly that generation's LFNs: a list or delta site's LFNs of
// the generations involved are located where that generation holds them
// and nowhere else, and a Bloom site answers as that generation's filter.
func TestFaultRLIKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills rlsd processes")
	}
	rng := rlsdtest.FaultRand(t)
	rounds := rlsdtest.FaultRounds(t)
	sites := []*softSite{
		{name: "list-a", mode: index.ModeList, n: 400},
		{name: "list-b", mode: index.ModeList, n: 900},
		{name: "bloom", mode: index.ModeBloom, n: 3000},
		{name: "delta", mode: index.ModeDelta, n: 1000},
		{name: "big", mode: index.ModeList, n: 70_000},
	}
	big := sites[4]
	for _, s := range sites {
		s.contents = map[uint64]map[string]bool{}
		s.filters = map[uint64]*bloom.BloomFilter{}
	}
	rli := startRLI(t, "rli")
	for round := range rounds {
		if round > 0 {
			rli = rli.restart(t, "rls.v1.Index")
			checkSoftState(t, rli, sites, fmt.Sprintf("after kill %d", round))
		}
		cl := rli.index()
		midStream := rng.IntN(2) == 1
		var killAt string
		if midStream {
			// Paused before the name that starts chunk c+1: chunks 1..c
			// (16,384 names each) have been sent.
			c := 1 + rng.IntN(4)
			big.pause = &pause{update: rng.IntN(3), at: c*16384 + 1, reached: make(chan struct{}), release: make(chan struct{})}
			killAt = fmt.Sprintf("during the big list's update %d of the round, after %d chunks", big.pause.update+1, c)
		}
		delay := rlsdtest.Delay(rng, 10*time.Millisecond, 1500*time.Millisecond)
		if !midStream {
			killAt = fmt.Sprintf("after %v", delay)
		}

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, s := range sites {
			s.rng = rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
			wg.Go(func() { s.run(ctx, t, cl) })
		}
		wg.Go(func() { big.watch(ctx, t, cl) })
		if midStream {
			select {
			case <-big.pause.reached:
			case <-time.After(2 * time.Minute):
				t.Fatal("the big list never reached its pause")
			}
		} else {
			time.Sleep(delay) // the fault's random moment, not a wait for a state
		}
		rli.Kill()
		if midStream {
			close(big.pause.release)
		}
		cancel()
		wg.Wait()
		var sent []string
		for _, s := range sites {
			sent = append(sent, fmt.Sprintf("%s %d acked, cut %d (ended: %v)", s.name, s.acked, s.cut, s.cutEnded))
			s.pause = nil
		}
		t.Logf("round %d: kill -9 %s: %q", round, killAt, sent)
		if t.Failed() {
			return
		}
	}
	rli = rli.restart(t, "rls.v1.Index")
	checkSoftState(t, rli, sites, fmt.Sprintf("after kill %d", rounds))
	if code := rli.Stop(30 * time.Second); code != 0 {
		t.Fatalf("rlsd exited %d on SIGTERM, want 0\n%s", code, rli.Log())
	}
}

// pause holds a list update mid-stream: before the name at index at of
// the round's update number update, the sender signals reached and waits
// for release.
type pause struct {
	update, at int
	reached    chan struct{}
	release    chan struct{}
}

// softSite is one sending site and what it sent. Its fields are used by
// its sender goroutine during a round and by the test between rounds;
// issued alone is read by the watcher meanwhile.
type softSite struct {
	name string
	mode index.Mode // list, bloom, or delta (a list, then deltas)
	n    int        // LFNs of a full update

	rng      *rand.Rand
	gen      uint64 // the last generation sent
	acked    uint64 // the generation the index acknowledged last
	cut      uint64 // the generation of the update the kill cut, or 0
	cutEnded bool   // whether the cut update's stream had ended (it may have applied)
	pause    *pause
	issued   atomic.Uint64 // generations sent so far (the watcher's range)

	contents map[uint64]map[string]bool    // by generation
	filters  map[uint64]*bloom.BloomFilter // bloom: by generation
	updates  int                           // of the round
}

func (s *softSite) lfn(gen uint64, j int) string { return fmt.Sprintf("%s/g%d/%06d", s.name, gen, j) }

// run sends updates until ctx ends or one fails (the index was killed).
func (s *softSite) run(ctx context.Context, t *testing.T, cl rlsv1.IndexClient) {
	s.updates = 0
	for ctx.Err() == nil {
		s.gen++
		g := s.gen
		s.issued.Store(g)
		h := index.Header{Site: s.name, Endpoint: "127.0.0.1:9", Generation: g, Validity: time.Hour, Updated: time.Now()}
		ended := true // whether the stream's body was all sent
		var ack index.Ack
		var err error
		sink := api.NewIndexSink(cl)
		switch {
		case s.mode == index.ModeDelta && s.acked > 0 && s.rng.IntN(5) > 0:
			// A delta on the acknowledged generation: some LFNs in, some out.
			base := s.contents[s.acked]
			next := maps.Clone(base)
			var added, removed []string
			for j := range 1 + s.rng.IntN(200) {
				l := s.lfn(g, j)
				added = append(added, l)
				next[l] = true
			}
			for _, l := range slices.Sorted(maps.Keys(base)) {
				if s.rng.IntN(20) == 0 {
					removed = append(removed, l)
					delete(next, l)
				}
			}
			s.contents[g] = next
			h.BaseGeneration = s.acked
			ack, err = sink.Send(ctx, index.DeltaUpdate(h, added, removed))
		case s.mode == index.ModeBloom:
			names := s.full(g)
			m, k := index.BloomGeometry(uint64(len(names)), index.DefaultFalsePositiveRate)
			f := bloom.New(uint(m), uint(k))
			for _, l := range names {
				f.AddString(l)
			}
			s.filters[g] = f
			h.Bloom = index.BloomParams{Version: index.BloomVersion, M: m, K: k, Entries: uint64(len(names))}
			ack, err = sink.Send(ctx, index.BloomUpdate(h, f.BitSet().Words()))
		default: // a full list
			names := s.full(g)
			h.Entries = uint64(len(names))
			ended = false
			p := s.pause
			if p != nil && p.update != s.updates {
				p = nil
			}
			ack, err = sink.Send(ctx, index.ListUpdate(h, func(yield func(string) bool) {
				for j, l := range names {
					if p != nil && j == p.at {
						close(p.reached)
						<-p.release
						return // the index is gone: the rest is never sent
					}
					if !yield(l) {
						return
					}
				}
				ended = true
			}))
		}
		s.updates++
		if err != nil {
			// The index was killed: this update may or may not have applied.
			// (A delta or filter sent whole may have; a list ends the
			// stream only after the last name.)
			s.cut, s.cutEnded = g, ended
			if status.Code(err) == codes.FailedPrecondition {
				t.Errorf("%s: delta on generation %d refused: %v", s.name, h.BaseGeneration, err)
			}
			return
		}
		if ack.Generation != g {
			t.Errorf("%s: update of generation %d acknowledged as generation %d", s.name, g, ack.Generation)
			return
		}
		s.acked = g
		for old := range s.contents {
			if old < s.acked {
				delete(s.contents, old) // no longer a possible outcome
				delete(s.filters, old)
			}
		}
	}
}

// full makes generation g's full state: n LFNs of g's own.
func (s *softSite) full(g uint64) []string {
	names := make([]string, s.n)
	set := make(map[string]bool, s.n)
	for j := range names {
		names[j] = s.lfn(g, j)
		set[names[j]] = true
	}
	s.contents[g] = set
	return names
}

// watch looks up the first and last LFN of each of the site's (list)
// generations until ctx ends or the index goes: a lookup must find both of
// one generation, or neither, and never two generations.
func (s *softSite) watch(ctx context.Context, t *testing.T, cl rlsv1.IndexClient) {
	for ctx.Err() == nil {
		top := s.issued.Load() + 1
		var lfns []string
		for g := uint64(1); g <= top; g++ {
			lfns = append(lfns, s.lfn(g, 0), s.lfn(g, s.n-1))
		}
		resp, err := cl.Locate(ctx, &rlsv1.LocateRequest{Lfns: lfns})
		if err != nil {
			return
		}
		var seen []int // indexes into lfns: 2(g-1) is g's first LFN, 2(g-1)+1 its last
		for i, r := range resp.GetResults() {
			if slices.ContainsFunc(r.GetSites(), func(c *rlsv1.SiteCandidate) bool { return c.GetSite() == s.name }) {
				seen = append(seen, i)
			}
		}
		if len(seen) != 0 && (len(seen) != 2 || seen[0]%2 != 0 || seen[1] != seen[0]+1) {
			var names []string
			for _, i := range seen {
				names = append(names, lfns[i])
			}
			t.Errorf("%s: a lookup during updates finds %q: part of a generation, or two", s.name, names)
			return
		}
	}
}

// checkSoftState checks what the restarted index holds for each site
// against what the site had acknowledged, then makes that the site's
// acknowledged state.
func checkSoftState(t *testing.T, rli *node, sites []*softSite, when string) {
	t.Helper()
	ctx := ctxT(t)
	resp, err := rli.index().Sites(ctx, &rlsv1.SitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]uint64{}
	for _, si := range resp.GetSites() {
		held[si.GetSite()] = si.GetGeneration()
	}
	for _, s := range sites {
		g := held[s.name]
		if g != s.acked && (g != s.cut || !s.cutEnded || s.cut == 0) {
			t.Fatalf("%s: the index holds generation %d of site %s; it acknowledged %d, and the kill cut %d (stream ended: %v)",
				when, g, s.name, s.acked, s.cut, s.cutEnded)
		}
		// The LFNs of every generation that could be there.
		probe := map[string]bool{}
		for _, gen := range []uint64{s.acked, s.cut, g} {
			maps.Copy(probe, s.contents[gen])
		}
		lfns := slices.Sorted(maps.Keys(probe))
		want := s.contents[g]
		var wrong []string
		for c := range slices.Chunk(lfns, 20_000) {
			r, err := rli.index().Locate(ctx, &rlsv1.LocateRequest{Lfns: c})
			if err != nil {
				t.Fatal(err)
			}
			for i, res := range r.GetResults() {
				found := slices.ContainsFunc(res.GetSites(), func(c *rlsv1.SiteCandidate) bool { return c.GetSite() == s.name })
				expect := want[c[i]]
				if s.mode == index.ModeBloom && g != 0 {
					expect = s.filters[g].TestString(c[i])
				}
				if found != expect {
					wrong = append(wrong, fmt.Sprintf("%s found=%v", c[i], found))
				}
			}
		}
		if len(wrong) > 0 {
			t.Fatalf("%s: site %s at generation %d: %d of %d LFNs answered otherwise than that generation holds them (a half update?), e.g. %q",
				when, s.name, g, len(wrong), len(lfns), wrong[:min(5, len(wrong))])
		}
		s.acked, s.cut, s.cutEnded = g, 0, false
		for old := range s.contents {
			if old != g {
				delete(s.contents, old)
				delete(s.filters, old)
			}
		}
	}
}
