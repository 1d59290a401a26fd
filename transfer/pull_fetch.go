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
func (p *puller) fetch(ctx context.Context, s *source, it *item) (err error) {
	ranges := make([]Range, len(it.pieces))
	for i, pc := range it.pieces {
		ranges[i] = Range{PFN: pc.f.u.pfn, Path: pc.f.e.Path, Offset: pc.off, Length: pc.len}
		if pc.f.u.fast {
			// A Version means something only to the source that listed it,
			// the pull's only source when the unit was listed fast.
			ranges[i].Version = pc.f.e.Version
		}
		if pc.f.u.known.Load() {
			ranges[i].SHA256 = pc.f.want
		}
	}
	got := make([]int64, len(ranges))
	deferSync := canSyncFS && !p.o.NoSync && len(it.pieces) > 1
	var (
		cur      = -1
		h        *os.File
		herr     error // first error of a write, sync or close
		synced   = make([]bool, len(ranges))
		inline   = make([]bool, len(ranges)) // whole file received, digest matched, mode and mtime set
		held     = make([]bool, len(ranges)) // whole file received before its digest was known
		sums     = make([]Digest, len(ranges))
		sum      hash.Hash // of range cur so far, if it is a whole file
		unsynced []int     // inline or held ranges closed without fsync
		dw       *directWriter
		ckptAt   int64                        // got[cur] at the last checkpoint
		ckptEnd  = make([]int64, len(ranges)) // bytes synced and journaled by checkpoints
	)
	closeCur := func() {
		if h == nil {
			return
		}
		pc := it.pieces[cur]
		if dw != nil {
			if err := dw.Close(); err != nil && herr == nil {
				herr = err
			}
			dw = nil
		}
		if sum != nil && herr == nil && got[cur] == pc.len {
			sum.Sum(sums[cur][:0])
			switch {
			case !pc.f.u.known.Load():
				held[cur] = true // judged once the digests come (or in the journaling below)
			case sums[cur] == pc.f.want:
				herr = h.Chmod(pc.f.e.FileMode())
				if herr == nil {
					herr = os.Chtimes(pc.f.path, time.Time{}, pc.f.e.MTime)
				}
				inline[cur] = herr == nil
			}
		}
		sum = nil
		if pc.f.u.st.deferSync() {
			// Made durable when its unit is placed (placeUnits).
			if err := h.Close(); err != nil && herr == nil {
				herr = err
			}
			h = nil
			synced[cur] = herr == nil
			return
		}
		if (inline[cur] || held[cur]) && deferSync {
			if err := h.Close(); err != nil && herr == nil {
				herr = err
			}
			h = nil
			if herr == nil {
				unsynced = append(unsynced, cur)
			}
			return
		}
		if !p.o.NoSync {
			if err := fsync(h); err != nil && herr == nil {
				herr = err
			}
		}
		if err := h.Close(); err != nil && herr == nil {
			herr = err
		}
		h = nil
		synced[cur] = herr == nil
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(p.o.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	err = s.peer.Read(sctx, ranges, func(i int, off int64, b []byte) error {
		stall.Reset(p.o.StallTimeout)
		if i < 0 || i >= len(ranges) || i < cur || off != ranges[i].Offset+got[i] || int64(len(b)) > ranges[i].Length-got[i] {
			return fmt.Errorf("%w: source sent bytes %d+%d of range %d out of order", ErrCorrupt, off, len(b), i)
		}
		if i != cur {
			closeCur()
			if herr != nil {
				return localErr(herr)
			}
			cur = i
			if h, herr = p.openPiece(it.pieces[i]); herr != nil {
				return localErr(herr)
			}
			if it.pieces[i].whole() {
				sum = sha256.New()
				if it.pieces[i].len >= directMin {
					dw = newDirectWriter(h, 0)
				}
			}
			ckptAt = 0
		}
		if err := p.limit.wait(sctx, len(b)); err != nil {
			return err
		}
		var werr error
		switch {
		case dw != nil:
			werr = dw.Write(b, off)
		case bytes.Equal(b, zeros[:len(b)]):
			werr = zeroRange(h, off, int64(len(b)))
		default:
			_, werr = h.WriteAt(b, off)
		}
		if werr != nil {
			herr = werr
			return localErr(werr)
		}
		if sum != nil {
			sum.Write(b)
		}
		got[i] += int64(len(b))
		if dw != nil && got[i]-ckptAt >= p.o.CheckpointBytes && got[i] < ranges[i].Length {
			end, err := p.checkpoint(it.pieces[i].f, h, dw)
			if err != nil {
				herr = err
				return err
			}
			ckptAt, ckptEnd[i] = got[i], end
		}
		u := it.pieces[i].f.u
		u.srcBytes[s.idx].Add(int64(len(b)))
		u.fetched.Add(int64(len(b)))
		s.bytes.Add(int64(len(b)))
		p.fetched.Add(int64(len(b)))
		p.progress.Add(int64(len(b)))
		return nil
	})
	closeCur()
	if len(unsynced) > 0 {
		serr := p.syncUnits(it, unsynced)
		for _, i := range unsynced {
			synced[i] = serr == nil
		}
		if herr == nil {
			herr = serr
		}
	}
	if err == nil && herr != nil {
		err = localErr(herr)
	}
	if errors.Is(context.Cause(sctx), errStalled) && ctx.Err() == nil {
		err = fmt.Errorf("%w: no bytes for %v", ErrTimeout, p.o.StallTimeout)
	}

	// Journal what arrived (and was synced), then verify completed files.
	recs := map[*unitPull][]journalRec{}
	var rest []piece
	var complete []*fileState
	var done []*unitPull // units whose last file was verified here
	var judge []awaited  // held files whose digest is known now
	p.mu.Lock()
	for i, pc := range it.pieces {
		n := got[i]
		if n > 0 && synced[i] && held[i] {
			// All bytes, written and synced, but not yet verified.
			recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: "range", Path: pc.f.e.Path, Off: 0, Len: pc.f.e.Size})
			pc.f.done = pc.f.done.add(0, pc.f.e.Size)
			pc.f.contribs[s] = true
			if !pc.f.verified {
				a := awaited{f: pc.f, sum: sums[i], n: n}
				if pc.f.u.known.Load() {
					judge = append(judge, a)
				} else {
					pc.f.u.awaiting = append(pc.f.u.awaiting, a)
				}
			}
			continue
		}
		if n > 0 && synced[i] && inline[i] {
			pc.f.done = pc.f.done.add(0, pc.f.e.Size)
			pc.f.contribs[s] = true
			if !pc.f.verified {
				pc.f.verified = true
				recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: "verified", Path: pc.f.e.Path})
				if pc.f.u.left--; pc.f.u.left == 0 {
					done = append(done, pc.f.u)
				}
			}
			continue
		}
		if n > 0 && synced[i] {
			recs[pc.f.u] = append(recs[pc.f.u], journalRec{Op: "range", Path: pc.f.e.Path, Off: pc.off, Len: n})
			pc.f.done = pc.f.done.add(pc.off, pc.off+n)
			pc.f.contribs[s] = true
		} else {
			// Lost but for what checkpoints made durable (and journaled).
			p.progress.Add(-(n - ckptEnd[i]))
			if n = ckptEnd[i]; n > 0 {
				pc.f.done = pc.f.done.add(pc.off, pc.off+n)
				pc.f.contribs[s] = true
			}
		}
		if n < pc.len {
			rest = append(rest, piece{f: pc.f, off: pc.off + n, len: pc.len - n})
		} else if pc.f.done.bytes() == pc.f.e.Size && !pc.f.verified {
			complete = append(complete, pc.f)
		}
	}
	var jerr error
	for u, rs := range recs {
		if st := u.state.Load(); st == unitRunning || st == unitFailed { // a placed unit's staging is gone
			jerr = cmp.Or(jerr, u.st.append(rs...))
		}
	}
	p.mu.Unlock()
	if jerr != nil {
		return jerr
	}
	p.placeUnits(done)
	if err := p.judge(judge); err != nil {
		return err
	}
	for i, pc := range it.pieces {
		if got[i] > 0 && !pc.whole() && pc.f.e.Size > p.o.RangeSize && !slices.Contains(complete, pc.f) {
			p.bg.Go(func() { p.advanceHash(pc.f) })
		}
	}
	it.pieces = rest
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%w: stream ended %d ranges early", ErrCorrupt, len(rest))
	}
	for _, f := range slices.Compact(complete) {
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
	if err := f.u.st.append(journalRec{Op: "range", Path: f.e.Path, Off: 0, Len: end}); err != nil {
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
		return os.OpenFile(pc.f.path, os.O_WRONLY, 0)
	}
	h, err := os.OpenFile(pc.f.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		// Something else in the way (a directory of an older manifest)?
		if err := p.createFile(pc.f); err != nil {
			return nil, err
		}
		return os.OpenFile(pc.f.path, os.O_WRONLY, 0)
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
