package index

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/bits-and-blooms/bloom/v3"
)

// geometry is what filters must share to be stored together.
type geometry struct {
	m uint64
	k uint32
}

// bloomGroup holds the filters of every site that shares one geometry,
// bit-sliced: row p holds bit p of every site's filter, one bit per column,
// and a site owns one column. Testing a name against all the group's filters
// reads the name's k rows and ANDs them; the bits left standing are the sites
// whose filter matches. With 1,000 sites a row is 16 words, so a lookup costs
// k short rows instead of 1,000 filter probes.
//
// Rows change under wmu (fills and growth, which writers serialize); the
// rows slice and its width are replaced only while Index.mu is held for
// writing too, so readers holding Index.mu for reading see them stable. A
// fill writes a column while readers read the rows: words are read and
// written atomically, and a column is fully written before its slot points
// to its site, so readers never see half a filter as a site's.
type bloomGroup struct {
	geo  geometry
	mask uint64 // m-1 when m is a power of two, else 0

	wmu  sync.Mutex
	free []int // columns no site owns (guarded by wmu)
	used int   // columns handed out so far (guarded by wmu)
	live int   // columns reserved or owned (guarded by wmu)
	dead bool  // emptied and dropped from Index.groups (guarded by wmu)

	// Guarded by Index.mu; changed only with wmu held as well.
	w     int      // words per row
	rows  []uint64 // m*w words
	slots []*site  // column -> site, nil when free or not yet published
}

func newBloomGroup(geo geometry) *bloomGroup {
	g := &bloomGroup{geo: geo}
	if geo.m&(geo.m-1) == 0 {
		g.mask = geo.m - 1
	}
	return g
}

// reserve hands out a column for a new filter; the caller holds wmu. The
// column is not visible to readers until publish. It may grow the rows,
// which takes mu for writing.
func (g *bloomGroup) reserve(mu *sync.RWMutex) int {
	if n := len(g.free); n > 0 {
		c := g.free[n-1]
		g.free = g.free[:n-1]
		return c
	}
	c := g.used
	g.used++
	if c >= g.w*64 {
		g.grow(mu)
	}
	return c
}

// grow doubles the width of the rows (64 more sites at first); the caller
// holds wmu. Copying happens outside mu, since only wmu holders write rows.
func (g *bloomGroup) grow(mu *sync.RWMutex) {
	w := max(1, 2*g.w)
	rows := make([]uint64, g.geo.m*uint64(w))
	for p := uint64(0); p < g.geo.m; p++ {
		copy(rows[p*uint64(w):], g.rows[p*uint64(g.w):(p+1)*uint64(g.w)])
	}
	slots := make([]*site, w*64)
	mu.Lock()
	copy(slots, g.slots)
	g.rows, g.w, g.slots = rows, w, slots
	mu.Unlock()
}

// fill writes a filter's bits into column c; the caller holds wmu. words
// holds at least ceil(m/64) words.
func (g *bloomGroup) fill(c int, words []uint64) {
	w := uint64(g.w)
	word, bit := uint64(c/64), uint64(1)<<(c%64)
	for p := uint64(0); p < g.geo.m; p++ {
		cell := &g.rows[p*w+word]
		set := words[p/64]>>(p%64)&1 != 0
		cur := atomic.LoadUint64(cell)&bit != 0
		switch {
		case set && !cur:
			atomic.OrUint64(cell, bit)
		case !set && cur:
			atomic.AndUint64(cell, ^bit)
		}
	}
}

// column reads the filter in column c back, as ceil(m/64) words; the caller
// holds wmu (so that neither the rows nor the column change).
func (g *bloomGroup) column(c int) []uint64 {
	out := make([]uint64, (g.geo.m+63)/64)
	w := uint64(g.w)
	word, shift := uint64(c/64), uint(c%64)
	for p := uint64(0); p < g.geo.m; p++ {
		if atomic.LoadUint64(&g.rows[p*w+word])>>shift&1 != 0 {
			out[p/64] |= 1 << (p % 64)
		}
	}
	return out
}

// probe ANDs the rows a name hashes to into acc (len w, all ones on entry)
// and calls fn for every published site whose filter matches. The caller
// holds Index.mu for reading. locs holds at least k locations.
func (g *bloomGroup) probe(locs []uint64, acc []uint64, fn func(s *site)) {
	w := uint64(g.w)
	for i := range g.geo.k {
		p := locs[i]
		if g.mask != 0 {
			p &= g.mask
		} else {
			p %= g.geo.m
		}
		row := g.rows[p*w : p*w+w]
		var any uint64
		for j := range acc {
			acc[j] &= atomic.LoadUint64(&row[j])
			any |= acc[j]
		}
		if any == 0 {
			return
		}
	}
	for j, word := range acc {
		for word != 0 {
			c := j*64 + bits.TrailingZeros64(word)
			word &= word - 1
			if s := g.slots[c]; s != nil {
				fn(s)
			}
		}
	}
}

// locations returns the first k hash locations of name in the scheme of
// bloom/v3 (BloomVersion 1), not yet reduced modulo m: they are the same for
// every filter, whatever its m, so a name is hashed once per lookup.
func locations(name string, k uint32) []uint64 {
	// bloom.Locations only reads the bytes; the conversion need not copy.
	return bloom.Locations(unsafe.Slice(unsafe.StringData(name), len(name)), uint(k))
}
