package api

import "testing"

func TestTieredPool(t *testing.T) {
	p := newTieredPool(8, 21)
	for _, c := range []struct{ n, cap int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 512}, {32 << 10, 32 << 10}, {32<<10 + 10, 64 << 10},
		{1<<20 + 20, 2 << 20}, {2 << 20, 2 << 20},
	} {
		b := p.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.cap {
			t.Errorf("Get(%d): len %d cap %d; want len %d cap %d", c.n, len(*b), cap(*b), c.n, c.cap)
		}
		p.Put(b)
	}
	// Larger than the top tier: allocated as asked, not pooled.
	big := p.Get(2<<20 + 1)
	if len(*big) != 2<<20+1 {
		t.Errorf("Get(2 MiB + 1): len %d", len(*big))
	}
	p.Put(big)
	// A buffer that is not a tier's size is not pooled, so Get never
	// returns a short one.
	odd := make([]byte, 300)
	p.Put(&odd)
	for range 100 {
		if b := p.Get(300); cap(*b) != 512 {
			t.Fatalf("Get(300) after Put of a 300-byte buffer: cap %d", cap(*b))
		}
	}
	// What is put back comes back (sync.Pool may drop it; it never
	// hands out another tier's buffer).
	b := p.Get(4000)
	(*b)[0] = 42
	p.Put(b)
	if c := p.Get(3000); cap(*c) != 4096 || len(*c) != 3000 {
		t.Errorf("Get(3000): len %d cap %d", len(*c), cap(*c))
	}
}
