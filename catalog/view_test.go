package catalog

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// readsInWindow are the reads TestReadsDuringIngest makes while a bulk
// write of second has ingested its tables and not yet applied its batch:
// they must see the catalog as before the write (first and single) and
// nothing of it.
func readsInWindow(c *Catalog, first, second []Mapping, single Mapping, seq uint64) error {
	var errs []error
	check := func(what string, ok bool, err error) {
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, errors.New(what+": "+err.Error()))
		} else if !ok {
			errs = append(errs, errors.New(what))
		}
	}
	bg := context.Background()
	for _, m := range []Mapping{first[0], first[len(first)-1], single} {
		pfns, err := c.QueryLFN(bg, m.LFN)
		check("QueryLFN of "+m.LFN+" written before the bulk write", err == nil && slices.Equal(pfns, []string{m.PFN}), err)
	}
	for _, m := range []Mapping{second[0], second[len(second)/2], second[len(second)-1]} {
		_, err := c.QueryLFN(bg, m.LFN)
		check("QueryLFN of "+m.LFN+" (ingested, its batch not applied) is ErrNotFound", errors.Is(err, ErrNotFound), nil)
		_, err = c.QueryPFN(bg, m.PFN)
		check("QueryPFN of "+m.PFN+" is ErrNotFound", errors.Is(err, ErrNotFound), nil)
		ok, err := c.LFNExists(bg, m.LFN)
		check("LFNExists of "+m.LFN+" is false", !ok, err)
		ok, err = c.MappingExists(bg, m.LFN, m.PFN)
		check("MappingExists of "+m.LFN+" is false", !ok, err)
	}
	found := 0
	_, err := c.BulkQueryEach(bg, LFN, []string{second[1].LFN, first[1].LFN, second[2].LFN}, func(int, string) error { found++; return nil })
	check("BulkQueryEach finds only the LFN written before", err == nil && found == 1, err)
	chs, err := c.Changes(bg, seq+1, 10)
	check("Changes past the last record before the bulk write is empty", err == nil && len(chs) == 0, err)
	return errors.Join(errs...)
}

// TestReadsDuringIngest checks that reads are not blocked while a bulk
// write ingests tables and applies the rest of its batch, and that they
// see all of that write or none of it: reads made between the two steps
// (from the test hook there) see the catalog as it was before the write,
// including a single write acknowledged just before, and reads after it
// returns see all of it.
func TestReadsDuringIngest(t *testing.T) {
	c, _ := openTest(t)
	first, second := sunumMappings(100_000_000, 10_000), sunumMappings(100_010_000, 10_000)
	single := Mapping{LFN: "99999999", PFN: "/SUM1/D99999999"}
	_, _, err := c.BulkWrite(t.Context(), OpCreate, first)
	must(t, err)
	seq, err := c.Create(t.Context(), single.LFN, single.PFN)
	must(t, err)

	windows := 0
	c.failAfterIngest = func() error {
		windows++
		// In another goroutine, as a reader would: the bulk write waits
		// here, holding the writers' lock, until the reads are done.
		done := make(chan error, 1)
		go func() { done <- readsInWindow(c, first, second, single, seq) }()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(time.Minute): // a bound on a deadlock, not a speed
			t.Error("reads waited for the bulk write's ingest and batch")
		}
		return nil
	}
	errs, _, err := c.BulkWrite(t.Context(), OpCreate, second)
	must(t, err)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if windows != 1 || ingestions(c) != 2 {
		t.Fatalf("%d windows between ingest and batch, %d ingestions; want 1 and 2", windows, ingestions(c))
	}
	c.failAfterIngest = nil
	all := slices.Concat(first, []Mapping{single}, second)
	checkLoaded(t, c, all)
}

// TestBulkAttrsThenIngest checks that BulkAttrsEach gives back its read:
// a bulk write that ingests must wait for the reads in flight, and an
// unreturned one would stop it (and every writer) for good.
func TestBulkAttrsThenIngest(t *testing.T) {
	c, _ := openTest(t)
	ms := sunumMappings(100_000_000, 10_000)
	if _, _, err := c.BulkAttrs(t.Context(), LFN, []string{"x"}, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := c.BulkWrite(t.Context(), OpCreate, ms); done <- err }()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(time.Minute): // a bound on a deadlock, not a speed
		t.Fatal("a bulk write that ingests waited for a BulkAttrs call that had returned")
	}
	if ingestions(c) != 1 {
		t.Fatalf("%d ingestions, want 1", ingestions(c))
	}
}
