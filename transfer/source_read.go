package transfer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"syscall"
)

// Long ranges are read with O_DIRECT: straight from the device into the
// Source's buffers. A buffered read of a file not in the page cache
// allocates a page cache page for every 4 KiB, which on a VM with free
// page reporting costs about as much CPU as hashing the bytes twice; the
// pages are also of no use afterwards, as a range is sent once. (A file
// already in the page cache is read from the device again: the bulk
// transfers this is for read files written long before.)
const (
	// directMin is the shortest range read directly; shorter ones are
	// read through the page cache, where the per-call cost of direct I/O
	// (no read-ahead by the kernel, aligned blocks) would dominate.
	directMin = 4 << 20
	// directBlock is the size of one direct read: large enough that the
	// device sees few requests, small enough that the ring stays small.
	directBlock = 4 << 20
	// directDepth is how many blocks a range's read-ahead ring holds: the
	// one being sent and up to two read ahead of it.
	directDepth = 3
)

var directPool = sync.Pool{New: func() any { b := alignedBuffer(directBlock); return &b }}

// Read implements Peer: it streams the ranges in order through fn, in
// pieces of at most ChunkSize bytes. fn must not keep p after it returns.
//
// A range that covers a whole file whose digest is not known yet is hashed
// as it is sent (unless another call is already hashing the file), and the
// digest cached if the file did not change meanwhile: a later Manifest,
// or one waiting for it, then does not read the file again.
func (s *Source) Read(ctx context.Context, ranges []Range, fn func(i int, off int64, p []byte) error) error {
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	for i, r := range ranges {
		if err := s.readRange(ctx, i, r, *buf, fn); err != nil {
			return err
		}
	}
	return nil
}

// rangeRead is the state of one readRange call. Not safe for concurrent
// use: the read-ahead goroutine touches only the file.
type rangeRead struct {
	s   *Source
	i   int
	r   Range
	h   *os.File
	k   statKey // at open
	end int64
	fn  func(int, int64, []byte) error

	sum    hash.Hash // the inline hash of a whole-file range, or nil
	hashed int64     // bytes written to sum
}

// readRange streams range r. With r.Version, the file must be that
// version when it is opened and still be once the range is read; with
// r.SHA256, it must have that digest (hashed first if not cached). With
// neither, whatever the file holds is sent.
func (s *Source) readRange(ctx context.Context, i int, r Range, buf []byte, fn func(int, int64, []byte) error) (err error) {
	if r.Offset < 0 || r.Length < 0 {
		return fmt.Errorf("%w: range %d of %s: negative offset or length", ErrInvalid, i, quoteName(r.Path))
	}
	h, fi, id, err := s.openFile(r.PFN, r.Path)
	if err != nil {
		return err
	}
	defer h.Close()
	k := keyOf(fi)
	if r.Version != "" && k.version() != r.Version {
		return fmt.Errorf("%w: file %q of %s is not the version listed (it changed since)", ErrChanged, r.Path, r.PFN)
	}
	if !r.SHA256.IsZero() {
		if _, err := s.checkDigest(ctx, id, k, h, r.PFN, r.Path, r.SHA256); err != nil {
			return err
		}
	}
	if r.Offset+r.Length > fi.Size() || r.Offset+r.Length < r.Offset {
		return fmt.Errorf("%w: range %d: bytes %d+%d of %q are past its end (%d bytes)",
			ErrInvalid, i, r.Offset, r.Length, r.Path, fi.Size())
	}
	rr := &rangeRead{s: s, i: i, r: r, h: h, k: k, end: r.Offset + r.Length, fn: fn}
	// With r.SHA256 the digest was just cached (or joined): nothing to hash.
	// Claiming comes after checkDigest, which would otherwise wait for the
	// call claimed here.
	if r.SHA256.IsZero() && r.Offset == 0 && r.Length == fi.Size() && r.Length > 0 {
		if call := s.claimInline(id, k); call != nil {
			rr.sum = sha256.New()
			defer func() { s.endInline(id, call, rr, err) }()
		}
	}
	off := r.Offset
	if r.Length >= directMin {
		if off, err = rr.direct(ctx, off); err != nil {
			return err
		}
	}
	return rr.buffered(ctx, off, buf)
}

// claimInline returns the hash call that a Read of all of file id, at
// version k, is to complete by hashing the bytes it sends, or nil if the
// digest is known or another call is hashing the file.
func (s *Source) claimInline(id fileID, k statKey) *hashCall {
	if s.known(id, k) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[id]; ok && c.key == k {
		return nil
	}
	if call, ok := s.inflight[id]; ok {
		if call.claimable && call.key == k && call.claimed.CompareAndSwap(false, true) {
			return call
		}
		return nil
	}
	call := newClaimableCall(k)
	call.claimed.Store(true)
	s.inflight[id] = call
	return call
}

// endInline completes call, the inline hash of rr's file, once its read
// ended with err. The digest holds if every byte was hashed and the file
// is still the version opened (stat'ed after the last byte was read);
// else the call fails, and its waiters hash the file themselves.
func (s *Source) endInline(id fileID, call *hashCall, rr *rangeRead, err error) {
	if err == nil && rr.hashed != rr.k.size {
		err = fmt.Errorf("only %d of %d bytes hashed", rr.hashed, rr.k.size)
	}
	if err == nil {
		if after, serr := rr.h.Stat(); serr != nil || keyOf(after) != rr.k {
			err = fmt.Errorf("%w: file %q changed while read", ErrChanged, rr.r.Path)
		}
	}
	if err != nil {
		s.log.Debug("digest of a whole-file read dropped", "pfn", rr.r.PFN, "path", rr.r.Path, "error", err)
		s.finish(id, call, cachedFile{}, fmt.Errorf("hashing file %q as it was read: %w", rr.r.Path, err))
		return
	}
	c := cachedFile{key: rr.k}
	rr.sum.Sum(c.digest[:0])
	s.hashedFiles.Add(1)
	s.store(id, c)
	s.finish(id, call, c, nil)
}

// emit hands p, the bytes at off, to the callback, hashing them first if
// the range is hashed inline.
func (rr *rangeRead) emit(off int64, p []byte) error {
	if rr.r.Version != "" && off+int64(len(p)) == rr.end {
		// Before the last piece leaves: every byte sent was read from the
		// version listed.
		if after, err := rr.h.Stat(); err != nil || keyOf(after) != rr.k {
			return fmt.Errorf("%w: file %q of %s changed while read", ErrChanged, rr.r.Path, rr.r.PFN)
		}
	}
	if rr.sum != nil {
		rr.sum.Write(p)
		rr.hashed += int64(len(p))
		rr.s.hashedBytes.Add(int64(len(p)))
		rr.s.hashedInline.Add(int64(len(p)))
	}
	rr.s.sent.Add(int64(len(p)))
	return rr.fn(rr.i, off, p)
}

func (rr *rangeRead) shrank() error {
	return fmt.Errorf("%w: file %q of %s shrank while read", ErrChanged, rr.r.Path, rr.r.PFN)
}

// buffered sends the range's bytes from off through the page cache.
func (rr *rangeRead) buffered(ctx context.Context, off int64, buf []byte) error {
	for off < rr.end {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := rr.h.ReadAt(buf[:min(int64(len(buf)), rr.end-off)], off)
		if n > 0 {
			if err := rr.emit(off, buf[:n]); err != nil {
				return err
			}
			off += int64(n)
		}
		if err == io.EOF && off < rr.end {
			return rr.shrank()
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// errNoDirect marks a direct read the file system refused (EINVAL): the
// rest of the range is read through the page cache.
type errNoDirect struct{ err error }

func (e errNoDirect) Error() string { return e.err.Error() }

// direct sends the range's bytes from off with O_DIRECT reads, and returns
// where it stopped: the range's end, or, if the file system does not do
// direct I/O, the offset from which the rest is to be read buffered (the
// file is then back in buffered mode).
func (rr *rangeRead) direct(ctx context.Context, off int64) (int64, error) {
	if err := setDirect(rr.h, true); err != nil {
		rr.noDirect(err)
		return off, nil
	}
	off, err := rr.directBlocks(ctx, off)
	var nd errNoDirect
	if errors.As(err, &nd) {
		rr.noDirect(nd.err)
		if err := setDirect(rr.h, false); err != nil {
			return off, fmt.Errorf("file %q of %s: leaving direct I/O: %w", rr.r.Path, rr.r.PFN, err)
		}
		return off, nil
	}
	return off, err
}

// noDirect logs, once per Source, that direct reads are not possible.
func (rr *rangeRead) noDirect(err error) {
	if !rr.s.noDirectLogged.Swap(true) {
		rr.s.log.Debug("direct reads refused; reading through the page cache", "pfn", rr.r.PFN, "path", rr.r.Path, "error", err)
	}
}

// directRead is one block read ahead: n bytes of file at off (aligned) in
// buf, then err (io.EOF at the end of the file).
type directRead struct {
	buf *[]byte
	off int64
	n   int
	err error
}

// directBlocks sends the range from off, reading it in aligned blocks of
// directBlock with a read-ahead goroutine: the device reads the next
// blocks while this one is hashed and sent. directDepth buffers go round
// between the two; the goroutine ends, and the buffers are back in the
// pool, before it returns.
func (rr *rangeRead) directBlocks(ctx context.Context, off int64) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	free := make(chan *[]byte, directDepth)
	reads := make(chan directRead, directDepth)
	for range directDepth {
		free <- directPool.Get().(*[]byte)
	}
	var wg sync.WaitGroup
	wg.Go(func() { readAhead(ctx, rr.h, alignDown(off), alignUp(rr.end), free, reads) })
	defer func() {
		cancel()
		wg.Wait()
		for b := range reads {
			directPool.Put(b.buf)
		}
		for len(free) > 0 {
			directPool.Put(<-free)
		}
	}()
	for off < rr.end {
		var b directRead
		var ok bool
		select {
		case b, ok = <-reads:
		case <-ctx.Done():
			return off, ctx.Err()
		}
		if !ok {
			if err := ctx.Err(); err != nil {
				return off, err
			}
			return off, fmt.Errorf("file %q of %s: read-ahead ended at %d, before %d", rr.r.Path, rr.r.PFN, off, rr.end)
		}
		err := rr.sendBlock(ctx, b, &off)
		free <- b.buf // never blocks: it has room for every buffer
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// sendBlock sends the bytes of block b from *off (where the range's
// previous piece ended) to the range's end, in pieces of at most
// ChunkSize, and advances *off.
func (rr *rangeRead) sendBlock(ctx context.Context, b directRead, off *int64) error {
	rr.s.readDirect.Add(int64(b.n))
	p := (*b.buf)[:b.n]
	lo := *off - b.off // the head of the first block precedes the range
	hi := min(int64(b.n), rr.end-b.off)
	for lo < hi {
		// Blocks read ahead are not sent once ctx is done.
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(ChunkSize, hi-lo)
		if err := rr.emit(b.off+lo, p[lo:lo+n]); err != nil {
			return err
		}
		lo += n
		*off += n
	}
	switch {
	case b.err == nil || *off >= rr.end:
		return nil
	case b.err == io.EOF:
		return rr.shrank()
	case errors.Is(b.err, syscall.EINVAL):
		return errNoDirect{b.err}
	}
	return fmt.Errorf("file %q of %s: %w", rr.r.Path, rr.r.PFN, b.err)
}

// readAhead reads f directly from off (aligned) to stop (aligned, and
// possibly past the end of the file), a block into each buffer taken from
// free, and sends the reads to out, in order. It stops at the first error
// or at the end of the file (a read short of an aligned length, sent with
// io.EOF), and when ctx is done; it closes out. out must have room for
// every buffer, so that sending never blocks.
func readAhead(ctx context.Context, f *os.File, off, stop int64, free <-chan *[]byte, out chan<- directRead) {
	defer close(out)
	for off < stop {
		var b *[]byte
		select {
		case b = <-free:
		case <-ctx.Done():
			return
		}
		want := min(directBlock, stop-off)
		n, err := pread(f, (*b)[:want], off)
		if err == nil && int64(n) < want && (n == 0 || (off+int64(n))%directAlign != 0) {
			err = io.EOF
		}
		out <- directRead{buf: b, off: off, n: n, err: err}
		if err != nil {
			return
		}
		off += int64(n)
	}
}
