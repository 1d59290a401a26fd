package transfer

// Verifying: hashing what arrived, judging it against the manifest's
// digests (blaming the source of a bad copy), and making verified files
// durable.

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

var zeros = make([]byte, ChunkSize)

// hashTo extends f's running digest (f.hsum, of bytes [0, f.hat)) with
// the bytes of h up to end, or to its end of file if end < 0, and returns
// the digest and the number of bytes it covers. Called with f.hmu held.
func (p *puller) hashTo(f *fileState, h *os.File, end int64) (d Digest, n int64, err error) {
	if f.hsum == nil {
		f.hsum, f.hat = sha256.New(), 0
	}
	if end < 0 {
		fi, err := h.Stat()
		if err != nil {
			return d, 0, err
		}
		end = fi.Size()
	}
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	for f.hat < end {
		k, err := h.ReadAt((*buf)[:min(int64(len(*buf)), end-f.hat)], f.hat)
		f.hsum.Write((*buf)[:k])
		f.hat += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			f.hsum, f.hat = nil, 0
			return d, 0, err
		}
	}
	f.hsum.Sum(d[:0])
	return d, f.hat, nil
}

// advanceHash hashes, in the background of a multi-piece file's fetch,
// the bytes of its synced and journaled prefix (which stay as they are
// until the file is reset), so that verify has only the rest to read once
// the last piece lands. Only one goroutine hashes a file at a time; a call
// while one does makes it look again.
func (p *puller) advanceHash(f *fileState) {
	f.hwant.Store(true)
	for f.hwant.Load() {
		if !f.hmu.TryLock() {
			return
		}
		var h *os.File
		for f.hwant.Swap(false) {
			p.mu.Lock()
			var end int64
			if !f.verified && len(f.done) > 0 && f.done[0].off == 0 {
				end = f.done[0].end
			}
			p.mu.Unlock()
			if end <= f.hat {
				continue
			}
			if h == nil {
				var err error
				if h, err = openBlocking(f.path, os.O_RDONLY, 0); err != nil {
					break
				}
			}
			if _, _, err := p.hashTo(f, h, end); err != nil {
				break // verify hashes it all again
			}
		}
		if h != nil {
			h.Close()
		}
		f.hmu.Unlock()
	}
}

// verify checks a complete staging file against its digest. A good file
// gets its mode and mtime, is synced and journaled as verified; a bad one is
// emptied and queued again, avoiding sources that sent it bad bytes twice.
// If the digest is not known yet, the file waits in its unit's awaiting
// with the digest of its bytes. unitDone reports that it was the last file
// of its unit to verify.
func (p *puller) verify(f *fileState) (unitDone bool, err error) {
	h, err := openBlocking(f.path, os.O_RDWR, 0)
	if err != nil {
		return false, localErr(err)
	}
	defer h.Close()
	// Hashing holds hmu until the file is verified or reset, so that
	// advanceHash never hashes bytes about to be thrown away.
	f.hmu.Lock()
	defer f.hmu.Unlock()
	d, n, err := p.hashTo(f, h, -1)
	if err != nil {
		f.hsum, f.hat = nil, 0
		return false, localErr(err)
	}
	p.mu.Lock()
	if !f.u.known.Load() {
		// f.hat covers the whole file now, so advanceHash leaves it be.
		f.u.awaiting = append(f.u.awaiting, awaited{f: f, sum: d, n: n})
		p.mu.Unlock()
		return false, nil
	}
	p.mu.Unlock()
	f.hsum, f.hat = nil, 0
	if n == f.e.Size && d == f.want {
		if err := h.Chmod(f.e.FileMode()); err != nil {
			return false, localErr(err)
		}
		if err := os.Chtimes(f.path, time.Time{}, f.e.MTime); err != nil {
			return false, localErr(err)
		}
		if !p.o.NoSync && !f.u.st.deferSync() {
			if err := fsync(h); err != nil {
				return false, localErr(err)
			}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if f.verified {
			return false, nil
		}
		f.verified = true
		f.u.left--
		return f.u.left == 0, f.u.st.append(journalRec{Op: opVerified, Path: f.e.Path})
	}
	return false, p.reject(f, h, d, n)
}

// reject throws away the bytes of f, whose digest is d (of n bytes), not
// f.want: the file is emptied (sparse again), its records reset, and it is
// queued again, avoiding sources that sent it bad bytes twice. h, if not
// nil, is f's staging file open for writing. The caller holds f.hmu.
func (p *puller) reject(f *fileState, h *os.File, d Digest, n int64) error {
	if h == nil {
		var err error
		if h, err = openBlocking(f.path, os.O_RDWR, 0); err != nil {
			return localErr(err)
		}
		defer h.Close()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	avoid := map[*source]bool{}
	for s := range f.contribs {
		names = append(names, s.peer.Name())
		// Only a source that sent the whole bad copy is to blame; one
		// mismatch may be a fluke, two are not.
		if len(f.contribs) == 1 {
			if f.corrupted[s]++; f.corrupted[s] >= 2 {
				avoid[s] = true
			}
		}
	}
	f.isolate = len(f.contribs) > 1
	slices.Sort(names)
	cerr := fmt.Errorf("%w: file %q: SHA-256 %s, want %s (%d bytes, from %s)",
		ErrCorrupt, f.e.Path, d, f.want, n, strings.Join(names, ", "))
	p.log.Warn("digest mismatch; bytes thrown away", "path", f.e.Path, "error", cerr)
	f.u.refetch.Add(f.done.bytes())
	p.progress.Add(-f.done.bytes())
	f.done, f.contribs = nil, map[*source]bool{}
	if err := h.Truncate(0); err != nil {
		return localErr(err)
	}
	if err := h.Truncate(f.e.Size); err != nil {
		return localErr(err)
	}
	if err := f.u.st.append(journalRec{Op: opReset, Path: f.e.Path}); err != nil {
		return err
	}
	items := p.batch(p.piecesOf(f), avoid)
	for _, it := range items {
		it.lastErr = cerr
	}
	p.q.add(items...)
	return nil
}

// awaited is a file whose bytes are all written and synced, and their
// digest, waiting for the digest the file should have.
type awaited struct {
	f   *fileState
	sum Digest
	n   int64 // bytes hashed
}

// judge verifies files whose digests are known now: good ones are
// accepted, bad ones rejected.
func (p *puller) judge(files []awaited) error {
	var good []*fileState
	for _, a := range files {
		if a.n == a.f.e.Size && a.sum == a.f.want {
			good = append(good, a.f)
			continue
		}
		a.f.hmu.Lock()
		a.f.hsum, a.f.hat = nil, 0
		err := p.reject(a.f, nil, a.sum, a.n)
		a.f.hmu.Unlock()
		if err != nil {
			return err
		}
	}
	return p.accept(good)
}

// accept finishes files whose bytes (written and synced) matched their
// digests: they get their modes and mtimes, are synced again for those
// (one syncfs(2) per file system where there is one), and journaled as
// verified. A unit whose last file it was is placed.
func (p *puller) accept(files []*fileState) error {
	if len(files) == 0 {
		return nil
	}
	for _, f := range files {
		if err := os.Chmod(f.path, f.e.FileMode()); err != nil {
			return localErr(err)
		}
		if err := os.Chtimes(f.path, time.Time{}, f.e.MTime); err != nil {
			return localErr(err)
		}
	}
	if !p.o.NoSync {
		if err := p.syncFiles(files); err != nil {
			return localErr(err)
		}
	}
	recs := map[*unitPull][]journalRec{}
	var done []*unitPull
	p.mu.Lock()
	for _, f := range files {
		if f.verified {
			continue
		}
		f.verified = true
		recs[f.u] = append(recs[f.u], journalRec{Op: opVerified, Path: f.e.Path})
		if f.u.left--; f.u.left == 0 {
			done = append(done, f.u)
		}
	}
	var jerr error
	for u, rs := range recs {
		if st := u.state.Load(); st == unitRunning || st == unitFailed {
			jerr = cmp.Or(jerr, u.st.append(rs...))
		}
	}
	p.mu.Unlock()
	if jerr != nil {
		return jerr
	}
	p.placeUnits(done)
	return nil
}

// syncFiles makes files durable: one syncfs(2) per file system of their
// units' staging directories where there is one, else one fsync each.
func (p *puller) syncFiles(files []*fileState) error {
	if !canSyncFS {
		for _, f := range files {
			h, err := openBlocking(f.path, os.O_RDONLY, 0)
			if err != nil {
				return err
			}
			err = fsync(h)
			if cerr := h.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	devs := map[uint64]bool{}
	seen := map[*unitPull]bool{}
	for _, f := range files {
		if seen[f.u] || f.u.st.deferSync() { // synced when placed
			continue
		}
		seen[f.u] = true
		dev, err := devOf(f.u.st.lock)
		if err != nil {
			return err
		}
		if !devs[dev] {
			devs[dev] = true
			if err := syncFS(f.u.st.lock); err != nil {
				return err
			}
		}
	}
	return nil
}
