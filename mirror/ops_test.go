package mirror

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// List and Coverage walk the store in one pass, a page at a time: their
// answers are those of a brute-force look at every record, and what they
// allocate does not grow with the records they pass over (List skips
// other series without decoding them; Coverage keeps only ranges).
func TestListAndCoverageOnePass(t *testing.T) {
	const n = 3000
	s := openTestStore(t, vfs.NewMem())
	defer s.Close()
	w := newWorld()
	w.holds["jsoc"] = map[uint64]bool{}
	now := time.Unix(1000, 0)
	var all []uint64
	state := func(k uint64) State { return [...]State{DONE, FAIL, PNDG}[k%3] }
	series := func(k uint64) string { return [...]string{"b", "a"}[k%2] }
	for k := uint64(1); k <= n+500; k++ {
		w.holds["jsoc"][k], w.series[k] = true, series(k)
		if k <= n {
			all = append(all, k)
		}
	}
	if _, err := s.update(all, now, func(k uint64, _ *Record) (*Record, mutation) {
		return &Record{State: state(k), Series: series(k), Due: now}, write
	}); err != nil {
		t.Fatal(err)
	}
	e, err := New(s, Config{StoreDir: t.TempDir(), Locator: w, Authority: fakeAuthority{w}, Puller: w, Registrar: w})
	if err != nil {
		t.Fatal(err)
	}

	var want, got []uint64
	for _, k := range all {
		if state(k) == FAIL && series(k) == "a" {
			want = append(want, k)
		}
	}
	for after, pages := uint64(0), 0; ; pages++ {
		rs, more, err := e.List(ListQuery{State: FAIL, Series: "a", After: after, Limit: 100})
		if err != nil || pages > n {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, r := range rs {
			if r.State != FAIL || r.Series != "a" {
				t.Fatalf("listed %+v", r)
			}
			got = append(got, r.Sunum)
			after = r.Sunum
		}
		if !more {
			break
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List pages: %d sunums, want %d", len(got), len(want))
	}

	cs, err := e.Coverage(context.Background(), "a")
	if err != nil || len(cs) != 1 {
		t.Fatalf("coverage: %v, %v", cs, err)
	}
	c := cs[0]
	var present, missing int
	for k := uint64(1); k <= n+500; k++ {
		if series(k) != "a" {
			continue
		}
		if k <= n && state(k) == DONE {
			present++
		} else {
			missing++
		}
	}
	count := func(rs []Range) (m int) {
		for _, r := range rs {
			for k := r.First; k <= r.Last; k++ {
				if series(k) == "a" {
					m++
				}
			}
		}
		return m
	}
	wantStates := map[string]int64{"DONE": n / 6, "FAIL": n / 6, "PNDG": n / 6}
	if c.Authority != int64(present+missing) || count(c.Present) != present || count(c.Missing) != missing ||
		!reflect.DeepEqual(c.States, wantStates) {
		t.Errorf("coverage %s: authority %d, present %d in %d ranges, missing %d in %d ranges, states %v; want %d, %d, %d, %v",
			c.Series, c.Authority, count(c.Present), len(c.Present), count(c.Missing), len(c.Missing), c.States,
			present+missing, present, missing, wantStates)
	}

	// Nothing per record passed over.
	if a := testing.AllocsPerRun(3, func() {
		if _, _, err := e.List(ListQuery{State: FAIL, Series: "none"}); err != nil {
			t.Fatal(err)
		}
	}); a > 100 {
		t.Errorf("List over %d records of other series: %.0f allocations", n/3, a)
	}
	w.holds["jsoc"] = nil // the authority's list is not the store's to bound
	if a := testing.AllocsPerRun(3, func() {
		if _, err := e.Coverage(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}); a > 100 {
		t.Errorf("Coverage over %d records: %.0f allocations", n/2, a)
	}
}
