package catalog_test

import (
	"testing"

	"github.com/solar-archive/rls/catalog"
)

func TestIncarnation(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	open := func(dir string) *catalog.Catalog {
		c, err := catalog.Open(dir, &catalog.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open(dir1)
	inc := c.Incarnation()
	if inc == ([catalog.IncarnationLen]byte{}) {
		t.Fatal("zero incarnation")
	}
	c.Close()
	c = open(dir1)
	if got := c.Incarnation(); got != inc {
		t.Fatalf("after reopen incarnation %x, was %x", got, inc)
	}
	c.Close()
	c = open(dir2)
	defer c.Close()
	if c.Incarnation() == inc {
		t.Fatal("two catalogs share an incarnation")
	}
}
