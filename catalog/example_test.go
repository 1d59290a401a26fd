package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// A DRMS tool embeds the catalog directly: register a storage unit's
// replicas, describe it with attributes, and find it again.
func Example() {
	dir, err := os.MkdirTemp("", "catalog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	cat, err := catalog.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()

	// Create returns once the mapping is durable.
	if _, err := cat.Create(ctx, "123456789", "/SUM12/D123456789"); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Add(ctx, "123456789", "https://mirror.example/SUM3/D123456789"); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Create(ctx, "123456789", "/SUM1/D123456789"); errors.Is(err, catalog.ErrExists) {
		fmt.Println("create again:", err)
	}

	pfns, err := cat.QueryLFN(ctx, "123456789")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pfns:", pfns)

	if err := cat.DefineAttr(ctx, catalog.AttrDef{Name: "size", Object: catalog.LFN, Type: catalog.TypeInt}); err != nil {
		log.Fatal(err)
	}
	if err := cat.SetAttr(ctx, catalog.LFN, "123456789", "size", catalog.IntValue(4096), catalog.Upsert); err != nil {
		log.Fatal(err)
	}
	hits, _, err := cat.SearchAttr(ctx, catalog.Search{
		Object: catalog.LFN, Attr: "size", Op: catalog.OpGT, Value: catalog.IntValue(1024),
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hits {
		fmt.Println("larger than 1 KiB:", h.Name, h.Value)
	}

	st, err := cat.Stats(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("lfns:", st.LFNs, "pfns:", st.PFNs, "mappings:", st.Mappings)
	// Output:
	// create again: create "123456789": already exists: lfn exists
	// pfns: [/SUM12/D123456789 https://mirror.example/SUM3/D123456789]
	// larger than 1 KiB: 123456789 4096
	// lfns: 1 pfns: 2 mappings: 2
}

// The change feed lets a subscriber (such as the soft-state sender) follow
// every change after a consistent full scan.
func ExampleCatalog_Changes() {
	dir, _ := os.MkdirTemp("", "catalog-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	cat, err := catalog.Open(dir, &catalog.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()

	if _, err := cat.Create(ctx, "100", "/SUM1/D100"); err != nil {
		log.Fatal(err)
	}
	seq, _ := cat.ForEachLFN(ctx, func(lfn string) error {
		fmt.Println("full state:", lfn)
		return nil
	})
	if _, err := cat.Create(ctx, "101", "/SUM1/D101"); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Delete(ctx, "100", "/SUM1/D100"); err != nil {
		log.Fatal(err)
	}

	changes, err := cat.Changes(ctx, seq+1, 100)
	if err != nil {
		log.Fatal(err)
	}
	for _, ch := range changes {
		fmt.Println(ch.Seq, ch.Kind, ch.LFN, "added:", ch.LFNAdded, "removed:", ch.LFNRemoved)
	}
	// Output:
	// full state: 100
	// 2 create 101 added: true removed: false
	// 3 delete 100 added: false removed: true
}

// replicas counts the replicas of each LFN through the smallest part of
// the catalog it needs, so that it works on any backend (catalog.Store).
func replicas(ctx context.Context, q catalog.Querier, lfns []string) (map[string]int, error) {
	n := make(map[string]int, len(lfns))
	errs, err := q.BulkQueryEach(ctx, catalog.LFN, lfns, func(i int, _ string) error {
		n[lfns[i]]++
		return nil
	})
	if err != nil {
		return nil, err // the call as a whole failed: closed, unreachable, ctx ended
	}
	for i, err := range errs {
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return nil, fmt.Errorf("lfn %d: %w", i, err)
		}
	}
	return n, nil
}

// Code that takes one of catalog.Store's small interfaces instead of
// *catalog.Catalog runs on every backend; a deadline on ctx bounds it.
func ExampleQuerier() {
	dir, _ := os.MkdirTemp("", "catalog-example")
	defer os.RemoveAll(dir)
	cat, err := catalog.Open(dir, &catalog.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs, _, err := cat.BulkWrite(ctx, catalog.OpCreate, []catalog.Mapping{
		{LFN: "100", PFN: "/SUM1/D100"}, {LFN: "101", PFN: "/SUM1/D101"},
	})
	if err := errors.Join(append(errs, err)...); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Add(ctx, "100", "/SUM7/D100"); err != nil {
		log.Fatal(err)
	}
	n, err := replicas(ctx, cat, []string{"100", "101", "102"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n["100"], n["101"], n["102"])
	// Output:
	// 2 1 0
}
