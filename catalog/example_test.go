package catalog_test

import (
	"errors"
	"fmt"
	"log"
	"os"

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

	cat, err := catalog.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()

	// Create returns once the mapping is durable.
	if _, err := cat.Create("123456789", "/SUM12/D123456789"); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Add("123456789", "https://mirror.example/SUM3/D123456789"); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Create("123456789", "/SUM1/D123456789"); errors.Is(err, catalog.ErrExists) {
		fmt.Println("create again:", err)
	}

	pfns, err := cat.QueryLFN("123456789")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pfns:", pfns)

	if err := cat.DefineAttr(catalog.AttrDef{Name: "size", Object: catalog.LFN, Type: catalog.TypeInt}); err != nil {
		log.Fatal(err)
	}
	if err := cat.SetAttr(catalog.LFN, "123456789", "size", catalog.IntValue(4096), catalog.Upsert); err != nil {
		log.Fatal(err)
	}
	hits, _, err := cat.SearchAttr(catalog.Search{
		Object: catalog.LFN, Attr: "size", Op: catalog.OpGT, Value: catalog.IntValue(1024),
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hits {
		fmt.Println("larger than 1 KiB:", h.Name, h.Value)
	}

	st := cat.Stats()
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
	cat, err := catalog.Open(dir, &catalog.Options{NoSync: true})
	if err != nil {
		log.Fatal(err)
	}
	defer cat.Close()

	if _, err := cat.Create("100", "/SUM1/D100"); err != nil {
		log.Fatal(err)
	}
	seq, _ := cat.ForEachLFN(func(lfn string) error {
		fmt.Println("full state:", lfn)
		return nil
	})
	if _, err := cat.Create("101", "/SUM1/D101"); err != nil {
		log.Fatal(err)
	}
	if _, err := cat.Delete("100", "/SUM1/D100"); err != nil {
		log.Fatal(err)
	}

	changes, err := cat.Changes(seq+1, 100)
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
