package transfer

// Fetching: one stream of an item from a source into staging, with
// checkpoints that make a large file's prefix durable and journaled.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"os"
	"slices"
	"time"
)

// errStalled cancels a Read whose stream sent nothing for StallTimeout.
var errStalled = errors.New("stream stalled")

// fetch reads it's pieces from s into the staging files. On return,
// it.pieces holds what is still missing (none when fetch returns nil).
// Ranges received in full or in part are synced and journaled first, so
// that a retry, here or after a restart, fetches only the rest.
//
// A piece that is a whole file is hashed as it arrives: when its digest
// matches, the file gets its mode and mtime and is journaled as verified
// at once, without being read back. Such files of an item with several
// pieces are synced together by one syncfs(2) (where there is one) before
// the journal records them, instead of one fsync each; they are created
// here, not in prepare, so that the streams create files in parallel.
func (p *puller) fetch(ctx context.Context, s *source, it *item) error {
	st := newStream(p, s, it)
	if hook := p.o.hooks.fetched; hook != nil {
		defer func() { hook(st.received()) }()
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(p.o.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	err := s.peer.Read(sctx, st.ranges, func(i int, off int64, b []byte) error {
		stall.Reset(p.o.StallTimeout)
		return st.write(sctx, i, off, b)
	})
	if herr := st.end(); err == nil && herr != nil {
		err = localErr(herr)
	}
	if errors.Is(context.Cause(sctx), errStalled) && ctx.Err() == nil {
		err = fmt.Errorf("%w: no bytes for %v", ErrTimeout, p.o.StallTimeout)
	}

	// Journal what arrived (and was synced), then verify completed files.
	out, jerr := st.record()
	if jerr != nil {
		return jerr
	}
	p.placeUnits(out.done)
	if err := p.judge(out.judge); err != nil {
		return err
	}
	for i, pc := range it.pieces {
		if st.rs[i].got > 0 && !pc.whole() && pc.f.e.Size > p.o.RangeSize && !slices.Contains(out.complete, pc.f) {
			p.bg.Go(func() { p.advanceHash(pc.f) })
		}
	}
	it.pieces = out.rest
	if err == nil && len(out.rest) > 0 {
		err = fmt.Errorf("%w: stream ended %d ranges early", ErrCorrupt, len(out.rest))
	}
	for _, f := range slices.Compact(out.complete) {
		unitDone, verr := p.verify(f)
		if verr != nil {
			return verr
		}
		if unitDone {
			p.placeUnit(f.u)
		}
	}
	return err
}

// stream is the state of one fetch: the Read call of an item's pieces
// from one source, written range by range into the staging files. Not
// safe for concurrent use: the Read callback, then fetch, own it.
type stream struct {
	p         *puller
	s         *source
	it        *item
	ranges    []Range
	rs        []rangeState // by index in ranges
	deferSync bool         // whole files are synced together at the end (syncUnits)
	unsynced  []int        // inline or held ranges closed without fsync

	// The range being written, cur (-1 before the first byte).
	cur    int
	h      *os.File
	dw     *directWriter // h with direct I/O, for a large whole file
	sum    hash.Hash     // of range cur so far, if it is a whole file
	ckptAt int64         // rs[cur].got at the last checkpoint
	herr   error         // first error of a write, sync or close
}

// rangeState is what a stream did with one range.
type rangeState struct {
	got     int64  // bytes received
	synced  bool   // the bytes received are durable
	inline  bool   // whole file received, digest matched, mode and mtime set
	held    bool   // whole file received before its digest was known
	sum     Digest // of a whole file received
	ckptEnd int64  // bytes synced and journaled by checkpoints
}

func newStream(p *puller, s *source, it *item) *stream {
	st := &stream{
		p: p, s: s, it: it, cur: -1,
		ranges:    make([]Range, len(it.pieces)),
		rs:        make([]rangeState, len(it.pieces)),
		deferSync: canSyncFS && !p.o.NoSync && len(it.pieces) > 1,
	}
	for i, pc := range it.pieces {
		st.ranges[i] = Range{PFN: pc.f.u.pfn, Path: pc.f.e.Path, Offset: pc.off, Length: pc.len}
		if pc.f.u.fast {
			// A Version means something only to the source that listed it,
			// the pull's only source when the unit was listed fast.
			st.ranges[i].Version = pc.f.e.Version
		}
		if pc.f.u.known.Load() {
			st.ranges[i].SHA256 = pc.f.want
		}
	}
	return st
}

// write is the Read callback: it writes b, the bytes of range i from file
// offset off, checkpointing a large whole file as it grows.
func (st *stream) write(ctx context.Context, i int, off int64, b []byte) error {
	if i < 0 || i >= len(st.ranges) || i < st.cur || off != st.ranges[i].Offset+st.rs[i].got || int64(len(b)) > st.ranges[i].Length-st.rs[i].got {
		return fmt.Errorf("%w: source sent bytes %d+%d of range %d out of order", ErrCorrupt, off, len(b), i)
	}
	if i != st.cur {
		if err := st.open(i); err != nil {
			return err
		}
	}
	if err := waitBytes(ctx, st.p.limit, len(b)); err != nil {
		return err
	}
	var werr error
	switch {
	case st.dw != nil:
		werr = st.dw.Write(b, off)
	case bytes.Equal(b, zeros[:len(b)]):
		werr = zeroRange(st.h, off, int64(len(b)))
	default:
		_, werr = st.h.WriteAt(b, off)
	}
	if werr != nil {
		st.herr = werr
		return localErr(werr)
	}
	if st.sum != nil {
		st.sum.Write(b)
	}
	r := &st.rs[i]
	r.got += int64(len(b))
	if st.dw != nil && r.got-st.ckptAt >= st.p.o.CheckpointBytes && r.got < st.ranges[i].Length {
		end, err := st.p.checkpoint(st.it.pieces[i].f, st.h, st.dw)
		if err != nil {
			st.herr = err
			return err
		}
		st.ckptAt, r.ckptEnd = r.got, end
	}
	n := int64(len(b))
	u := st.it.pieces[i].f.u
	u.srcBytes[st.s.idx].Add(n)
	u.fetched.Add(n)
	st.s.bytes.Add(n)
	st.p.fetched.Add(n)
	st.p.progress.Add(n)
	return nil
}

// open closes the current range and opens range i for writing.
func (st *stream) open(i int) error {
	st.closeCur()
	if st.herr != nil {
		return localErr(st.herr)
	}
	st.cur = i
	pc := st.it.pieces[i]
	if st.h, st.herr = st.p.openPiece(pc); st.herr != nil {
		return localErr(st.herr)
	}
	if pc.whole() {
		st.sum = sha256.New()
		if pc.len >= directMin {
			st.dw = newDirectWriter(st.h, 0)
		}
	}
	st.ckptAt = 0
	return nil
}

// setErr keeps err if it is the stream's first error.
func (st *stream) setErr(err error) {
	if err != nil && st.herr == nil {
		st.herr = err
	}
}

// closeCur closes the current range's file: a whole file is judged
// against its digest (if known), and the file is synced, unless syncing
// is deferred to end.
func (st *stream) closeCur() {
	if st.h == nil {
		return
	}
	if st.dw != nil {
		st.setErr(st.dw.Close())
		st.dw = nil
	}
	st.judgeWhole()
	r := &st.rs[st.cur]
	if st.it.pieces[st.cur].f.u.st.deferSync() {
		// Made durable when its unit is placed (placeUnits).
		st.setErr(st.h.Close())
		st.h = nil
		r.synced = st.herr == nil
		return
	}
	if (r.inline || r.held) && st.deferSync {
		st.setErr(st.h.Close())
		st.h = nil
		if st.herr == nil {
			st.unsynced = append(st.unsynced, st.cur)
		}
		return
	}
	if !st.p.o.NoSync {
		st.setErr(fsync(st.h))
	}
	st.setErr(st.h.Close())
	st.h = nil
	r.synced = st.herr == nil
}

// judgeWhole checks a whole file that arrived complete against its
// digest: a match gets its mode and mtime (inline); without a digest yet,
// the file is held.
func (st *stream) judgeWhole() {
	pc, r := st.it.pieces[st.cur], &st.rs[st.cur]
	if st.sum != nil && st.herr == nil && r.got == pc.len {
		st.sum.Sum(r.sum[:0])
		switch {
		case !pc.f.u.known.Load():
			r.held = true // judged once the digests come (or in record)
		case r.sum == pc.f.want:
			st.herr = st.h.Chmod(pc.f.e.FileMode())
			if st.herr == nil {
				st.herr = os.Chtimes(pc.f.path, time.Time{}, pc.f.e.MTime)
			}
			r.inline = st.herr == nil
		}
	}
	st.sum = nil
}

// received is the number of bytes the stream received.
func (st *stream) received() int64 {
	var n int64
	for _, r := range st.rs {
		n += r.got
	}
	return n
}

// end closes the last range and syncs the files whose sync was deferred;
// it returns the stream's first local error.
func (st *stream) end() error {
	st.closeCur()
	if len(st.unsynced) > 0 {
		serr := st.p.syncUnits(st.it, st.unsynced)
		for _, i := range st.unsynced {
			st.rs[i].synced = serr == nil
		}
		st.setErr(serr)
	}
	return st.herr
}

// streamOutcome is what fetch does next with what a stream brought.
type streamOutcome struct {
	rest     []piece      // still missing
	complete []*fileState // every byte written, to verify
	done     []*unitPull  // units whose last file was verified in record
	judge    []awaited    // held files whose digest is known now
}

// record journals what arrived (and was synced), under puller.mu, and
// sorts the pieces into what is still missing and what is complete.
func (st *stream) record() (out streamOutcome, err error) {
	p := st.p
	recs := map[*unitPull][]journalRec{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, pc := range st.it.pieces {
		r := st.rs[i]
		n := r.got
		switch {
		case n > 0 && r.synced && r.held:
			// All bytes, written and synced, but not yet verified.
			recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: opRange, Path: pc.f.e.Path, Off: 0, Len: pc.f.e.Size})
			pc.f.done = pc.f.done.add(0, pc.f.e.Size)
			pc.f.contribs[st.s] = true
			if !pc.f.verified {
				a := awaited{f: pc.f, sum: r.sum, n: n}
				if pc.f.u.known.Load() {
					out.judge = append(out.judge, a)
				} else {
					pc.f.u.awaiting = append(pc.f.u.awaiting, a)
				}
			}
			continue
		case n > 0 && r.synced && r.inline:
			pc.f.done = pc.f.done.add(0, pc.f.e.Size)
			pc.f.contribs[st.s] = true
			if !pc.f.verified {
				pc.f.verified = true
				recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: opVerified, Path: pc.f.e.Path})
				if pc.f.u.left--; pc.f.u.left == 0 {
					out.done = append(out.done, pc.f.u)
				}
			}
			continue
		case n > 0 && r.synced:
			recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: opRange, Path: pc.f.e.Path, Off: pc.off, Len: n})
			pc.f.done = pc.f.done.add(pc.off, pc.off+n)
			pc.f.contribs[st.s] = true
		default:
			// Lost but for what checkpoints made durable (and journaled).
			p.progress.Add(-(n - r.ckptEnd))
			if n = r.ckptEnd; n > 0 {
				pc.f.done = pc.f.done.add(pc.off, pc.off+n)
				pc.f.contribs[st.s] = true
			}
		}
		if n < pc.len {
			out.rest = append(out.rest, piece{f: pc.f, off: pc.off + n, len: pc.len - n})
		} else if pc.f.done.bytes() == pc.f.e.Size && !pc.f.verified {
			out.complete = append(out.complete, pc.f)
		}
	}
	for u, rs := range recs {
		if s := u.state.Load(); s == unitRunning || s == unitFailed { // a placed unit's staging is gone
			err = cmp.Or(err, u.st.append(rs...))
		}
	}
	return out, err
}

// checkpoint makes what dw has written of f (a whole file arriving front
// to back) durable and journals it, so that a pull killed before the file
// is complete resumes after it.
// It returns the end of the bytes it journaled (0 if none).
func (p *puller) checkpoint(f *fileState, h *os.File, dw *directWriter) (int64, error) {
	end, err := dw.Drain()
	if err != nil {
		return 0, localErr(err)
	}
	if end == 0 {
		return 0, nil
	}
	if !p.o.NoSync {
		if err := fsync(h); err != nil {
			return 0, localErr(err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := f.u.state.Load(); st != unitRunning && st != unitFailed {
		return 0, nil
	}
	if err := f.u.st.append(journalRec{Op: opRange, Path: f.e.Path, Off: 0, Len: end}); err != nil {
		return 0, err
	}
	return end, nil
}

// whole reports whether pc is all of its file (which then has no bytes
// yet: pieces cover what is missing).
func (pc piece) whole() bool { return pc.off == 0 && pc.len == pc.f.e.Size }

// openPiece opens the staging file of pc for writing. A whole file is
// created (or emptied) here, with its final size; prepare created the
// others.
func (p *puller) openPiece(pc piece) (*os.File, error) {
	if !pc.whole() {
		return openBlocking(pc.f.path, os.O_WRONLY, 0)
	}
	h, err := openBlocking(pc.f.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		// Something else in the way (a directory of an older manifest)?
		if err := p.createFile(pc.f); err != nil {
			return nil, err
		}
		return openBlocking(pc.f.path, os.O_WRONLY, 0)
	}
	if err := h.Truncate(pc.f.e.Size); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// syncUnits makes the files of ranges idx of it durable: one syncfs(2)
// per file system of their units' staging directories.
func (p *puller) syncUnits(it *item, idx []int) error {
	seen := map[*unitPull]bool{}
	devs := map[uint64]bool{}
	for _, i := range idx {
		u := it.pieces[i].f.u
		if seen[u] {
			continue
		}
		seen[u] = true
		dev, err := devOf(u.st.lock)
		if err != nil {
			return err
		}
		if devs[dev] {
			continue
		}
		devs[dev] = true
		if err := syncFS(u.st.lock); err != nil {
			return err
		}
	}
	return nil
}
