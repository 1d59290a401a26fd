package api

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// bufferPool is the gRPC buffer pool of the server and of the transfer
// client: buffers in tiers of powers of two from 256 B to 2 MiB, the top
// tier holding a whole transfer chunk (transfer.ChunkSize) with its
// message header. gRPC's default pool zeroes every buffer it hands out
// and has no tier between 32 KiB and 1 MiB, nor one above 1 MiB: each
// chunk of a small file took (and zeroed) a 1 MiB buffer, and each full
// chunk a fresh allocation, which profiles of the transfer benchmark
// showed as a tenth of the source's CPU. Zeroing is not needed: gRPC
// fills the length it asks for, a marshalled message or bytes read from
// the connection.
var bufferPool mem.BufferPool = newTieredPool(8, 21)

type tieredPool struct {
	min, max uint8 // exponents of the smallest and largest tiers
	tiers    []sync.Pool
}

func newTieredPool(min, max uint8) *tieredPool {
	return &tieredPool{min: min, max: max, tiers: make([]sync.Pool, max-min+1)}
}

// tier is the index of the smallest tier that holds n bytes, or -1.
func (p *tieredPool) tier(n int) int {
	e := uint8(bits.Len(uint(n - 1)))
	if n <= 1 {
		e = 0
	}
	if e > p.max {
		return -1
	}
	return int(max(e, p.min) - p.min)
}

func (p *tieredPool) Get(n int) *[]byte {
	t := p.tier(n)
	if t < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[t].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(int(p.min)+t))
	return &b
}

func (p *tieredPool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 { // not one of ours
		return
	}
	t := p.tier(c)
	if t < 0 || 1<<(int(p.min)+t) != c {
		return
	}
	p.tiers[t].Put(b)
}
