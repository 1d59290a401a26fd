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
// A row is as wide as the group's column capacity, cols: a power of two that
// doubles as sites join, from 1 (a lone site's rows are its filter, bit for
// bit). Bit (p, c) is bit p*cols+c of the rows, so rows narrower than a word
// share words, and the group never costs more than twice its filters.
//
// Rows change under wmu (fills and growth, which writers serialize); the
// rows slice and cols are replaced only while Index.mu is held for writing
// too, so readers holding Index.mu for reading see them stable. A fill
// writes a column while readers read the rows: words are read and written
// atomically, and a column is fully written before its slot points to its
// site, so readers never see half a filter as a site's.
type bloomGroup struct {
	geo  geometry
	mask uint64 // m-1 when m is a power of two, else 0

	wmu  sync.Mutex
	free []int // columns no site owns (guarded by wmu)
	used int   // columns handed out so far (guarded by wmu)
	live int   // columns reserved or owned (guarded by wmu)
	dead bool  // emptied and dropped from Index.groups (guarded by wmu)

	// Guarded by Index.mu; changed only with wmu held as well.
	cols  int      // column capacity: a power of two
	rows  []uint64 // m*cols bits
	slots []*site  // column -> site, nil when free or not yet published
}

func newBloomGroup(geo geometry) *bloomGroup {
	g := &bloomGroup{geo: geo}
	if geo.m&(geo.m-1) == 0 {
		g.mask = geo.m - 1
	}
	return g
}

// words is the number of words a row spans, 1 for rows up to a word wide.
func (g *bloomGroup) words() int { return max(1, g.cols/64) }

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
	if c >= g.cols {
		g.grow(mu)
	}
	return c
}

// grow doubles the column capacity; the caller holds wmu. Copying happens
// outside mu, since only wmu holders write rows.
func (g *bloomGroup) grow(mu *sync.RWMutex) {
	old, cols := uint64(g.cols), uint64(max(1, 2*g.cols))
	rows := make([]uint64, (g.geo.m*cols+63)/64)
	switch {
	case old >= 64: // whole words per row
		for p := uint64(0); p < g.geo.m; p++ {
			copy(rows[p*cols/64:], g.rows[p*old/64:(p+1)*old/64])
		}
	case old > 0: // rows of old bits, packed in words
		mask := uint64(1)<<old - 1
		for p := uint64(0); p < g.geo.m; p++ {
			bit := p * old
			v := g.rows[bit/64] >> (bit % 64) & mask
			nbit := p * cols
			rows[nbit/64] |= v << (nbit % 64)
		}
	}
	slots := make([]*site, cols)
	mu.Lock()
	copy(slots, g.slots)
	g.rows, g.cols, g.slots = rows, int(cols), slots
	mu.Unlock()
}

// fill writes a filter's bits into column c; the caller holds wmu. words
// holds at least ceil(m/64) words.
func (g *bloomGroup) fill(c int, words []uint64) {
	cols := uint64(g.cols)
	for p := uint64(0); p < g.geo.m; p++ {
		i := p*cols + uint64(c)
		cell, bit := &g.rows[i/64], uint64(1)<<(i%64)
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
	cols := uint64(g.cols)
	for p := uint64(0); p < g.geo.m; p++ {
		i := p*cols + uint64(c)
		if atomic.LoadUint64(&g.rows[i/64])>>(i%64)&1 != 0 {
			out[p/64] |= 1 << (p % 64)
		}
	}
	return out
}

// probe ANDs the rows a name hashes to into acc (g.words() words, all ones
// on entry) and calls fn for every published site whose filter matches. The
// caller holds Index.mu for reading. locs holds at least k locations.
func (g *bloomGroup) probe(locs []uint64, acc []uint64, fn func(s *site)) {
	cols := uint64(g.cols)
	if cols == 0 {
		return // created, no column handed out yet
	}
	for i := range g.geo.k {
		p := locs[i]
		if g.mask != 0 {
			p &= g.mask
		} else {
			p %= g.geo.m
		}
		var any uint64
		if cols >= 64 {
			row := g.rows[p*cols/64 : (p+1)*cols/64]
			for j := range acc {
				acc[j] &= atomic.LoadUint64(&row[j])
				any |= acc[j]
			}
		} else {
			bit := p * cols
			acc[0] &= atomic.LoadUint64(&g.rows[bit/64]) >> (bit % 64) & (1<<cols - 1)
			any = acc[0]
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

// prefilter gives a list site a column holding a filter of its list, at 1%
// false positives, so that lookups test its list only when the filter
// matches. s is not published yet.
func (x *Index) prefilter(s *site) {
	n := uint64(s.list.len())
	if n == 0 {
		return
	}
	m, k := BloomGeometry(n, DefaultFalsePositiveRate)
	words := make([]uint64, m/64)
	for i := range s.list.len() {
		name := s.list.bytes(i)
		for _, l := range bloom.Locations(name, uint(k)) {
			p := l & (m - 1)
			words[p/64] |= 1 << (p % 64)
		}
	}
	s.group, s.slot = x.reserveFill(geometry{m: m, k: k}, words)
}
