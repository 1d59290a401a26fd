package catalog

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
)

func ingestions(c *Catalog) int64 { return int64(c.db.Metrics().Ingest.Count) }

// checkMappings checks that exactly ms (and nothing else of the sunums from
// 100,000,000 on) are in c, both ways, with one create record each.
func checkLoaded(t *testing.T, c *Catalog, ms []Mapping) {
	t.Helper()
	st := stats(t, c)
	if st.Mappings != uint64(len(ms)) || st.LFNs != uint64(len(ms)) || st.PFNs != uint64(len(ms)) || st.Seq != uint64(len(ms)) {
		t.Fatalf("stats %+v, want %d mappings, LFNs, PFNs and records", st, len(ms))
	}
	for _, i := range []int{0, 1, len(ms) / 2, len(ms) - 1} {
		m := ms[i]
		if got, err := c.QueryLFN(t.Context(), m.LFN); err != nil || !slices.Equal(got, []string{m.PFN}) {
			t.Errorf("QueryLFN(%s) = %v, %v", m.LFN, got, err)
		}
		if got, err := c.QueryPFN(t.Context(), m.PFN); err != nil || !slices.Equal(got, []string{m.LFN}) {
			t.Errorf("QueryPFN(%s) = %v, %v", m.PFN, got, err)
		}
	}
	n := 0
	if _, err := c.ForEachLFN(t.Context(), func(string) error { n++; return nil }); err != nil || n != len(ms) {
		t.Errorf("ForEachLFN: %d LFNs, %v; want %d", n, err, len(ms))
	}
	chs, err := c.Changes(t.Context(), 1, len(ms)+10)
	if err != nil || len(chs) != len(ms) {
		t.Fatalf("Changes: %d records, %v; want %d", len(chs), err, len(ms))
	}
	for i, ch := range chs {
		if ch.Seq != uint64(i+1) || ch.Kind != ChangeCreate || ch.LFN != ms[i].LFN || ch.PFN != ms[i].PFN || !ch.LFNAdded {
			t.Fatalf("record %d: %+v, want the create of %v", i, ch, ms[i])
		}
	}
}

// TestBulkCreateIngests checks that a large bulk create into empty ranges
// ingests tables, and that the result is the catalog the same calls make
// through the log alone: reads both ways, the feed, the counts, later
// writes to the ingested names, a reopen.
func TestBulkCreateIngests(t *testing.T) {
	c, dir := openTest(t)
	ms := sunumMappings(100_000_000, 30_000)
	for i := 0; i < len(ms); i += 10_000 {
		errs, _, err := c.BulkWrite(t.Context(), OpCreate, ms[i:i+10_000])
		must(t, err)
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	if n := ingestions(c); n != 3 {
		t.Errorf("%d ingestions for 3 bulk creates of 10,000 new sunums, want 3", n)
	}
	checkLoaded(t, c, ms)

	// The same names again: every item exists, nothing is written.
	errs, _, err := c.BulkWrite(t.Context(), OpCreate, ms[:10_000])
	must(t, err)
	for _, e := range errs {
		if !errors.Is(e, ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", e)
		}
	}
	// Later writes to ingested names go through the log as usual.
	_, err = c.Add(t.Context(), ms[5].LFN, "/SUM9/extra")
	must(t, err)
	_, err = c.Delete(t.Context(), ms[5].LFN, ms[5].PFN)
	must(t, err)
	_, err = c.Delete(t.Context(), ms[6].LFN, ms[6].PFN)
	must(t, err)
	if ok, _ := c.LFNExists(t.Context(), ms[6].LFN); ok {
		t.Errorf("%s exists after the delete of its one mapping", ms[6].LFN)
	}
	must(t, c.Close())

	c2, err := Open(dir, &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, err)
	defer c2.Close()
	if got, err := c2.QueryLFN(t.Context(), ms[5].LFN); err != nil || !slices.Equal(got, []string{"/SUM9/extra"}) {
		t.Errorf("after reopen, QueryLFN(%s) = %v, %v", ms[5].LFN, got, err)
	}
	if st := stats(t, c2); st.Mappings != uint64(len(ms))-1 || st.LFNs != uint64(len(ms))-1 || st.Seq != uint64(len(ms))+3 {
		t.Errorf("after reopen: %+v", st)
	}
}

// TestIngestCrashBetweenSteps fails the catalog after a bulk create has
// ingested its tables and before its batch (PFN records and mappings by
// PFN, the state record) is applied: a restart must show the catalog as it
// was before the call, and take the same call again.
func TestIngestCrashBetweenSteps(t *testing.T) {
	c, dir := openTest(t)
	first, second := sunumMappings(100_000_000, 10_000), sunumMappings(100_010_000, 10_000)
	_, _, err := c.BulkWrite(t.Context(), OpCreate, first)
	must(t, err)
	c.failAfterIngest = func() error { return errors.New("injected crash between ingest and batch") }
	if _, _, err := c.BulkWrite(t.Context(), OpCreate, second); !errors.Is(err, ErrFailed) {
		t.Fatalf("bulk create with a crash after its ingest: %v, want ErrFailed", err)
	}
	if ingestions(c) != 2 {
		t.Fatalf("%d ingestions, want 2 (the crash comes after the second)", ingestions(c))
	}
	// A restart: the failed catalog keeps its files (and its lock) as they
	// are; a copy stands in for them.
	c2, err := Open(copyDir(t, dir), &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	must(t, err)
	defer c2.Close()
	checkLoaded(t, c2, first)
	for _, m := range []Mapping{second[0], second[len(second)-1]} {
		if ok, err := c2.LFNExists(t.Context(), m.LFN); ok || err != nil {
			t.Errorf("LFN %s of the interrupted call exists after the restart (%v)", m.LFN, err)
		}
		if ok, err := c2.MappingExists(t.Context(), m.LFN, m.PFN); ok || err != nil {
			t.Errorf("mapping %v of the interrupted call exists after the restart (%v)", m, err)
		}
	}
	errs, _, err := c2.BulkWrite(t.Context(), OpCreate, second)
	must(t, err)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkLoaded(t, c2, append(slices.Clone(first), second...))
}
