package index

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
)

// The index's properties that scenarios cannot state one case at a time:
// the bit-sliced store against each site's own filter, the fill check's
// line, and lookups during concurrent updates. The soft-state behaviour
// itself is in testdata/index (TestScenarios).

func TestBloomUpdates(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	var a, b []string
	for i := range 5000 {
		a = append(a, fmt.Sprint(i))
		if i%2 == 0 {
			b = append(b, fmt.Sprint(i))
		}
	}
	fa, pa := newFilter(0.01, a...)
	fb, pb := newFilter(0.001, b...) // another geometry, another group
	mustReceive(t, x, bloomMsgs("sao", 1, fa, pa))
	mustReceive(t, x, bloomMsgs("nso", 1, fb, pb))
	// A lone site's rows are its filter: the slicing costs no memory.
	if st := x.Stats(); st.BloomGroups != 2 || st.BloomSites != 2 || st.MemoryBytes != (pa.M+pb.M)/8 {
		t.Fatalf("stats = %+v, want 2 groups of one site, %d bytes", st, (pa.M+pb.M)/8)
	}
	res, err := x.Locate(a)
	if err != nil {
		t.Fatal(err)
	}
	for i, cands := range res {
		var sites []string
		for _, c := range cands {
			if c.KnownBy != ModeBloom {
				t.Fatalf("%s known by %v", a[i], c.KnownBy)
			}
			sites = append(sites, c.Site)
		}
		if !slices.Contains(sites, "sao") || (i%2 == 0 && !slices.Contains(sites, "nso")) {
			t.Fatalf("Locate(%s) = %v: a false negative", a[i], sites)
		}
	}
	// Absent names: only what the filters' own Test says (false positives
	// come from the filter, not from the slicing).
	for i := range 2000 {
		lfn := fmt.Sprint("absent-", i)
		var want []string
		if fb.TestString(lfn) {
			want = append(want, "nso/bloom")
		}
		if fa.TestString(lfn) {
			want = append(want, "sao/bloom")
		}
		wantWhere(t, x, []string{lfn}, strings.Join(want, ","))
	}
}

func TestBitSlicedMatchesFilters(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	x := openTest(t, t.TempDir(), clk)
	filters := map[string]*bloom.BloomFilter{}
	put := func(site string, gen uint64, n int) {
		var lfns []string
		for i := range n {
			lfns = append(lfns, fmt.Sprintf("%s-%d-%d", site, gen, i))
		}
		f, p := newFilter(0.01, lfns...)
		mustReceive(t, x, bloomMsgs(site, gen, f, p))
		filters[site] = f
	}
	for i := range 150 {
		put(fmt.Sprintf("s%03d", i), 1, 50+i%3*40) // 3 geometries... or fewer
	}
	for i := 0; i < 150; i += 7 {
		put(fmt.Sprintf("s%03d", i), 2, 60)
	}
	check := func() {
		t.Helper()
		var probes []string
		for i := range 150 {
			probes = append(probes, fmt.Sprintf("s%03d-1-%d", i, i%50), fmt.Sprintf("s%03d-2-%d", i, i%50))
		}
		res, err := x.Locate(probes)
		if err != nil {
			t.Fatal(err)
		}
		for i, lfn := range probes {
			var want []string
			for site, f := range filters {
				if f.TestString(lfn) {
					want = append(want, site)
				}
			}
			slices.Sort(want)
			var got []string
			for _, c := range res[i] {
				got = append(got, c.Site)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Locate(%s) = %v, the filters say %v", lfn, got, want)
			}
		}
	}
	check()
	// Half the sites stop sending: they expire and their columns free up.
	for i := 0; i < 150; i += 2 {
		mustReceive(t, x, listMsgs(fmt.Sprintf("s%03d", i), 3, "x")) // now a list site
		delete(filters, fmt.Sprintf("s%03d", i))
	}
	clk.add(30 * time.Minute)
	for i := 1; i < 150; i += 4 {
		put(fmt.Sprintf("s%03d", i), 4, 70) // refreshed, the others expire
	}
	clk.add(45 * time.Minute)
	if n := x.ExpireNow(); n == 0 {
		t.Fatal("nothing expired")
	}
	for i := 1; i < 150; i += 2 {
		if (i-1)%4 != 0 {
			delete(filters, fmt.Sprintf("s%03d", i))
		}
	}
	check()
	for i := 300; i < 340; i++ {
		put(fmt.Sprintf("s%03d", i), 1, 50) // reuse freed columns
	}
	check()
}

func TestFillRatio(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	m, k := BloomGeometry(2000, 0.01)
	n := int(float64(m) * math.Ln2 / float64(k)) // fill 1/2
	for _, tc := range []struct {
		names int
		ok    bool
	}{{n, true}, {2 * n, true}, {4 * n, false}} {
		f := bloom.New(uint(m), uint(k))
		for i := range tc.names {
			f.AddString(fmt.Sprint(i))
		}
		p := BloomParams{Version: BloomVersion, M: m, K: k, Entries: uint64(tc.names)}
		_, err := x.Receive(recvFrom(bloomMsgs(fmt.Sprint("site", tc.names), 1, f, p)))
		refused := errors.Is(err, ErrInvalid) && strings.Contains(err.Error(), "fill ratio")
		if tc.ok != (err == nil) || (err != nil && !refused) {
			t.Errorf("%d names in a filter for %d (m=%d k=%d, fill %.2f): Receive = %v", tc.names, n, m, k,
				float64(f.BitSet().Count())/float64(m), err)
		}
	}
	if got := len(x.Sites()); got != 2 {
		t.Fatalf("%d sites held, want 2 (the refused filter changed the index)", got)
	}
}

func TestConcurrentLocateAndUpdates(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	const sites = 80
	stable := func(s int) string { return fmt.Sprintf("stable-%d", s) }
	send := func(s, round int) error {
		lfns := []string{stable(s)}
		for i := range 20 + round%3*200 { // the geometry changes with round
			lfns = append(lfns, fmt.Sprintf("%d-%d-%d", s, round, i))
		}
		f, p := newFilter(0.01, lfns...)
		_, err := x.Receive(recvFrom(bloomMsgs(fmt.Sprint("site", s), uint64(round), f, p)))
		return err
	}
	for s := range sites {
		if err := send(s, 0); err != nil {
			t.Fatal(err)
		}
	}
	var writers, reader sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for w := range 2 {
		writers.Go(func() {
			for round := 1; round < 8; round++ {
				for s := w; s < sites; s += 2 {
					if err := send(s, round); err != nil {
						errc <- err
						return
					}
				}
			}
		})
	}
	reader.Go(func() {
		var probes []string
		for s := range sites {
			probes = append(probes, stable(s))
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := x.Locate(probes)
			if err != nil {
				errc <- err
				return
			}
			for s, cands := range res {
				if !slices.ContainsFunc(cands, func(c Candidate) bool { return c.Site == fmt.Sprint("site", s) }) {
					errc <- fmt.Errorf("%s went missing during an update: %+v", probes[s], cands)
					return
				}
			}
		}
	})
	writersDone := make(chan struct{})
	go func() { writers.Wait(); close(writersDone) }()
	select {
	case err := <-errc:
		close(stop)
		t.Fatal(err)
	case <-time.After(time.Minute):
		close(stop)
		t.Fatal("updates did not finish within a minute")
	case <-writersDone:
	}
	close(stop)
	reader.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if len(x.Sites()) != sites || !allRound(x, 7) {
		t.Fatalf("after the updates the index holds %+v, want %d sites at generation 7", x.Sites(), sites)
	}
}

func allRound(x *Index, round uint64) bool {
	for _, s := range x.Sites() {
		if s.Generation != round {
			return false
		}
	}
	return true
}

// TestDeltaDuplicateNamed checks that an LFN both added and removed in one
// delta is refused naming the same field every time: the check goes
// through added, then removed.
func TestDeltaDuplicateNamed(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	mustReceive(t, x, listMsgs("nso", 1, "1"))
	for range 32 {
		_, err := x.Receive(recvFrom(deltaMsgs("nso", 1, 2, []string{"5", "6"}, []string{"7", "5"})))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `delta.removed[1]: LFN "5" appears twice`) {
			t.Fatalf("Receive = %v, want ErrInvalid naming delta.removed[1]", err)
		}
	}
}

func TestReceiveCheckedRefusesBeforeTheBody(t *testing.T) {
	x := openTest(t, t.TempDir(), nil)
	mustReceive(t, x, listMsgs("jsoc", 1, "1", "2"))
	msgs := listMsgs("jsoc", 2, "fake")
	reads := 0
	recv := recvFrom(msgs)
	denied := errors.New("denied")
	var seen []string
	_, err := x.ReceiveChecked(func() (Message, error) {
		reads++
		return recv()
	}, func(h Header) error {
		seen = append(seen, h.Site)
		return denied
	})
	if !errors.Is(err, denied) {
		t.Fatalf("ReceiveChecked = %v, want the check's error", err)
	}
	if reads != 1 || !slices.Equal(seen, []string{"jsoc"}) {
		t.Fatalf("read %d messages, checked %q; want 1 and [jsoc]", reads, seen)
	}
	wantWhere(t, x, []string{"1", "fake"}, "jsoc/list", "")

	// An invalid header fails before the check is asked.
	bad := listMsgs("jsoc", 3, "3")
	bad[0].Header.Endpoint = ""
	if _, err := x.ReceiveChecked(recvFrom(bad), func(Header) error { t.Fatal("check called"); return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ReceiveChecked with no endpoint = %v, want ErrInvalid", err)
	}

	// Allowed, it applies.
	if _, err := x.ReceiveChecked(recvFrom(listMsgs("jsoc", 3, "3")), func(Header) error { return nil }); err != nil {
		t.Fatal(err)
	}
	wantWhere(t, x, []string{"1", "3"}, "", "jsoc/list")
}
