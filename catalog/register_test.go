package catalog

import (
	"errors"
	"testing"
)

func TestRegisterUnits(t *testing.T) {
	c, err := Open(t.TempDir(), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.DefineAttr(AttrDef{Name: "size", Object: LFN, Type: TypeString}); err != nil {
		t.Fatal(err)
	}
	units := []Unit{
		{LFN: "1", PFN: "/s/D1", Attrs: []Attr{{"files", IntValue(2)}, {"series", StringValue("hmi.x")}}},
		{LFN: "2", PFN: "/s/D2", Attrs: []Attr{{"size", IntValue(5)}}}, // size is a string attribute
		{LFN: "3", PFN: ""},
	}
	errs, seq, err := c.RegisterUnits(units)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], ErrInvalid) || !errors.Is(errs[2], ErrInvalid) {
		t.Fatalf("errs %v", errs)
	}
	if seq == 0 {
		t.Fatal("no change-feed record")
	}
	for _, lfn := range []string{"2", "3"} {
		if ok, _ := c.LFNExists(lfn); ok {
			t.Fatalf("failed unit %s was written", lfn)
		}
	}
	as, err := c.Attrs(LFN, "1")
	if err != nil || len(as) != 2 || as[0].Value.Int != 2 || as[1].Value.Str != "hmi.x" {
		t.Fatalf("attrs %v, %v", as, err)
	}
	// Again, with a new value: idempotent, the value is overwritten.
	units[0].Attrs[0].Value = IntValue(3)
	errs, _, err = c.RegisterUnits(units[:1])
	if err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	if pfns, _ := c.QueryLFN("1"); len(pfns) != 1 {
		t.Fatalf("pfns %v", pfns)
	}
	if as, _ := c.Attrs(LFN, "1", "files"); as[0].Value.Int != 3 {
		t.Fatalf("files %v", as)
	}
	if st := c.Stats(); st.Mappings != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A unit that gives one undefined attribute values of two types is refused
// whole: nothing of it is written (found by pgcatalog's differential test).
func TestRegisterUnitTwoTypesForOneAttribute(t *testing.T) {
	c, err := Open(t.TempDir(), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errs, _, err := c.RegisterUnits([]Unit{{LFN: "1", PFN: "/s/D1", Attrs: []Attr{{"x", IntValue(1)}, {"x", StringValue("a")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], ErrInvalid) {
		t.Fatalf("errs %v", errs)
	}
	if ok, _ := c.LFNExists("1"); ok {
		t.Fatal("the refused unit's mapping was written")
	}
	if defs, _ := c.AttrDefs(LFN); len(defs) != 0 {
		t.Fatalf("the refused unit defined %v", defs)
	}
}
