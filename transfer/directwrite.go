package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Direct writes. A file that arrives whole and front to back (a whole-file
// piece) is written with O_DIRECT: the bytes go from an aligned buffer to
// the device without being copied into the page cache. A pull writes
// each byte once and does not read it back (it hashes what arrives), so
// the page cache would only cost a copy, memory and writeback, and on a
// VM whose free memory goes back to the host, a fault on every page it
// allocates: hashing, writing and syncing 1 GiB from a 4 MiB buffer took
// 3.2-3.6 s of CPU buffered on the benchmark machine, 0.7 s direct.
//
// directMin and directBlock (source_read.go) are the same for writes:
// smaller files go through the page cache, where many small writes are
// cheaper than aligned direct ones, and each direct write is one block,
// from one of two buffers of directPool so that the next block fills
// while one is written.

// zeroBlock is what a block of zeros is compared with.
var zeroBlock = make([]byte, directBlock)

// directWriter writes one file front to back through O_DIRECT, a block at
// a time on its own goroutine while the caller fills the next block. A
// block of zeros is not written: the file was truncated to its size, so
// it reads as zeros and stays sparse where the source was. Close writes
// the tail, whose unaligned end goes through the page cache.
//
// A directWriter is used by one goroutine.
type directWriter struct {
	f    *os.File
	next int64   // file offset of the next byte Write takes
	cur  *[]byte // block being filled, of the file's bytes from next-fill
	fill int

	blocks  chan dwBlock // to the writer goroutine
	free    chan *[]byte // buffers back from it
	done    chan struct{}
	mu      sync.Mutex
	err     error // first write error
	written int64 // bytes [0, written) are on their way to the device, in order
}

type dwBlock struct {
	buf *[]byte
	off int64
	n   int
}

// newDirectWriter starts direct writes to f at offset off, which must be
// aligned. It returns nil when f's file system refuses O_DIRECT; the
// caller then writes through the page cache.
func newDirectWriter(f *os.File, off int64) *directWriter {
	if off%directAlign != 0 || setDirect(f, true) != nil {
		return nil
	}
	w := &directWriter{
		f: f, next: off, written: off,
		blocks: make(chan dwBlock, 1),
		free:   make(chan *[]byte, 2),
		done:   make(chan struct{}),
	}
	w.free <- directPool.Get().(*[]byte)
	w.free <- directPool.Get().(*[]byte)
	go w.loop()
	return w
}

func (w *directWriter) loop() {
	defer close(w.done)
	for b := range w.blocks {
		if w.failed() == nil {
			var err error
			if !bytes.Equal((*b.buf)[:b.n], zeroBlock[:b.n]) {
				_, err = w.f.WriteAt((*b.buf)[:b.n], b.off)
				if errors.Is(err, syscall.EINVAL) && setDirect(w.f, false) == nil {
					// The device wants a larger alignment than directAlign:
					// the rest goes through the page cache.
					_, err = w.f.WriteAt((*b.buf)[:b.n], b.off)
				}
			}
			w.mu.Lock()
			if err != nil && w.err == nil {
				w.err = err
			}
			if w.err == nil {
				w.written = b.off + int64(b.n)
			}
			w.mu.Unlock()
		}
		w.free <- b.buf
	}
}

func (w *directWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Write takes b, the file's bytes at off, which must be where the last
// Write ended.
func (w *directWriter) Write(b []byte, off int64) error {
	if off != w.next {
		return fmt.Errorf("direct write at %d, want %d", off, w.next)
	}
	for len(b) > 0 {
		if err := w.failed(); err != nil {
			return err
		}
		if w.cur == nil {
			w.cur = <-w.free
			w.fill = 0
		}
		n := copy((*w.cur)[w.fill:], b)
		w.fill += n
		w.next += int64(n)
		b = b[n:]
		if w.fill == directBlock {
			w.blocks <- dwBlock{buf: w.cur, off: w.next - directBlock, n: directBlock}
			w.cur = nil
		}
	}
	return nil
}

// Drain waits until every block handed over is written, and returns
// the end of the bytes written so far: an fsync of the file then makes
// [0, end) durable (the partial block being filled is not included).
func (w *directWriter) Drain() (end int64, err error) {
	// Both buffers back means the writer is idle.
	held := 0
	if w.cur != nil {
		held = 1
	}
	var got []*[]byte
	for range 2 - held {
		got = append(got, <-w.free)
	}
	for _, b := range got {
		w.free <- b
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written, w.err
}

// Close writes what is left, stops the writer and turns O_DIRECT off
// again; it does not sync or close the file.
func (w *directWriter) Close() error {
	var tailErr error
	if w.cur != nil {
		aligned := int(alignDown(int64(w.fill)))
		start := w.next - int64(w.fill)
		if aligned > 0 {
			w.blocks <- dwBlock{buf: w.cur, off: start, n: aligned}
		}
		close(w.blocks)
		<-w.done
		if w.failed() == nil && aligned < w.fill {
			// The unaligned end goes through the page cache.
			if tailErr = setDirect(w.f, false); tailErr == nil {
				_, tailErr = w.f.WriteAt((*w.cur)[aligned:w.fill], start+int64(aligned))
			}
		}
		if aligned == 0 {
			directPool.Put(w.cur) // else the writer gave it back to free
		}
		w.cur = nil
	} else {
		close(w.blocks)
		<-w.done
	}
	for range len(w.free) {
		directPool.Put(<-w.free)
	}
	err := errors.Join(w.failed(), tailErr)
	if derr := setDirect(w.f, false); err == nil && derr != nil {
		err = derr
	}
	return err
}
