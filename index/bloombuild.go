package index

import (
	"runtime"
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
)

// bloomBuilder adds names to Bloom filters on worker goroutines, one filter
// each, while the caller produces the names (a catalog scan, single
// threaded). finish ORs the workers' filters together.
//
// The filters are built at a size mBuild that may exceed the final m (the
// count of names is known only after the scan): as both are powers of two
// and a name's bit is location % m, a filter of mBuild bits folds exactly
// into one of m bits by OR-ing its m-bit slices. Not safe for concurrent
// use; add and finish are called by one goroutine.
type bloomBuilder struct {
	mBuild  uint64
	k       uint32
	batches chan []string
	filters []*bloom.BloomFilter
	wg      sync.WaitGroup
	batch   []string
	n       uint64
}

const bloomBatch = 4096

// bloomWorkers is how many goroutines add names: one core is left to the
// goroutine that produces them.
func bloomWorkers() int { return max(1, runtime.GOMAXPROCS(0)-1) }

func newBloomBuilder(mBuild uint64, k uint32, workers int) *bloomBuilder {
	b := &bloomBuilder{mBuild: mBuild, k: k, batches: make(chan []string, 2*workers)}
	for range workers {
		f := bloom.New(uint(mBuild), uint(k))
		b.filters = append(b.filters, f)
		b.wg.Go(func() {
			for names := range b.batches {
				for _, s := range names {
					f.AddString(s)
				}
			}
		})
	}
	return b
}

// add adds one name. The builder keeps the string.
func (b *bloomBuilder) add(name string) {
	if b.batch == nil {
		b.batch = make([]string, 0, bloomBatch)
	}
	b.batch = append(b.batch, name)
	b.n++
	if len(b.batch) == bloomBatch {
		b.batches <- b.batch
		b.batch = nil
	}
}

// addAll adds names; the builder keeps the slice.
func (b *bloomBuilder) addAll(names []string) {
	b.n += uint64(len(names))
	for len(names) > 0 {
		n := min(len(names), bloomBatch)
		b.batches <- names[:n:n]
		names = names[n:]
	}
}

// stop waits for the workers. The builder cannot be used afterwards.
func (b *bloomBuilder) stop() {
	if len(b.batch) > 0 {
		b.batches <- b.batch
		b.batch = nil
	}
	close(b.batches)
	b.wg.Wait()
}

// finish stops the workers and returns the filter's words folded to m bits
// (m a power of two that divides mBuild, at least 64).
func (b *bloomBuilder) finish(m uint64) []uint64 {
	b.stop()
	words := b.filters[0].BitSet().Words()
	for _, f := range b.filters[1:] {
		for i, w := range f.BitSet().Words() {
			words[i] |= w
		}
	}
	return foldWords(words, m/64)
}

// foldWords ORs words into its first n words, slice by slice; n divides
// len(words).
func foldWords(words []uint64, n uint64) []uint64 {
	for i := n; i < uint64(len(words)); i += n {
		for j, w := range words[i : i+n] {
			words[j] |= w
		}
	}
	return words[:n:n]
}
