package catalog

import (
	"errors"
	"testing"
)

// A unit that gives one undefined attribute values of two types is refused
// whole: nothing of it is written (found by pgcatalog's differential test).
func TestRegisterUnitTwoTypesForOneAttribute(t *testing.T) {
	c, err := Open(t.TempDir(), &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errs, _, err := c.RegisterUnits(t.Context(), []Unit{{LFN: "1", PFN: "/s/D1", Attrs: []Attr{{"x", IntValue(1)}, {"x", StringValue("a")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], ErrInvalid) {
		t.Fatalf("errs %v", errs)
	}
	if ok, _ := c.LFNExists(t.Context(), "1"); ok {
		t.Fatal("the refused unit's mapping was written")
	}
	if defs, _ := c.AttrDefs(t.Context(), LFN); len(defs) != 0 {
		t.Fatalf("the refused unit defined %v", defs)
	}
}
