package transfer

// The Source's digests: a cache in memory keyed by each file's stat key,
// backed by the digest database, with one hash in flight per file that
// every caller (and a Read hashing the file as it sends it) shares.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"syscall"
)

// version is the key's text form, the Version of a manifest entry: opaque
// to pullers, who only hand it back.
func (k statKey) version() string {
	return strconv.FormatInt(k.size, 36) + "." + strconv.FormatInt(k.mtime, 36) + "." +
		strconv.FormatInt(k.ino, 36) + "." + strconv.FormatInt(k.ctime, 36)
}

func keyOf(fi fs.FileInfo) statKey {
	k := statKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.ino = int64(st.Ino)
		k.ctime = st.Ctim.Nano()
	}
	return k
}

// digest returns the digest of file id for stat key k: the cached one if
// its key is k, else a new hash of the file, read through f if given or
// opened through the root. A hash of the file in progress is joined
// rather than started again.
//
// A claimable call (a Read hashing the file as it sends it, or waiting to
// be claimed by one) is joined once: if it ends without the digest of k
// (the Read failed, or the file changed), the next claimable call found
// is not waited for: the file is hashed here, for that call's waiters if
// no Read claimed it yet, else alone. So a waiter waits for at most one
// Read, however many Reads of the file fail, and each hash it starts ends
// (hash gives up on a file that keeps changing).
func (s *Source) digest(ctx context.Context, id fileID, k statKey, f *os.File) (cachedFile, error) {
	joinClaimable := true
	for {
		s.mu.Lock()
		if c, ok := s.cache[id]; ok && c.key == k {
			s.mu.Unlock()
			return c, nil
		}
		call, ok := s.inflight[id]
		if ok && (joinClaimable || !call.claimable) {
			s.mu.Unlock()
			if s.joined != nil {
				s.joined(s.absPath(id))
			}
			select {
			case <-call.done:
			case <-ctx.Done():
				return cachedFile{}, ctx.Err()
			}
			if call.err == nil && call.cached.key == k {
				return call.cached, nil
			}
			// The call failed, or the file changed under it: hash again.
			joinClaimable = joinClaimable && !call.claimable
			continue
		}
		if ok && call.claimed.CompareAndSwap(false, true) {
			// Still waiting for a Read: hashed here instead, for the
			// call's waiters too.
			s.mu.Unlock()
			c, err := s.load(ctx, id, call.key, f)
			s.finish(id, call, c, err)
			if err != nil {
				return cachedFile{}, err
			}
			return c, nil
		}
		if ok {
			// A Read is hashing the file: hashed again here, alone.
			s.mu.Unlock()
			c, err := s.load(ctx, id, k, f)
			if err != nil {
				return cachedFile{}, err
			}
			s.remember(id, c)
			return c, nil
		}
		call = &hashCall{done: make(chan struct{})}
		s.inflight[id] = call
		s.mu.Unlock()

		c, err := s.load(ctx, id, k, f)
		s.finish(id, call, c, err)
		if err != nil {
			return cachedFile{}, err
		}
		// If the file changed since k, c is of its new version, cached.
		return c, nil
	}
}

// finish completes call, the hash of file id: it caches c unless err,
// removes the call from the in-flight ones and wakes its waiters.
func (s *Source) finish(id fileID, call *hashCall, c cachedFile, err error) {
	call.cached, call.err = c, err
	s.mu.Lock()
	if s.inflight[id] == call {
		delete(s.inflight, id)
	}
	if err == nil {
		s.rememberLocked(id, c)
	}
	s.mu.Unlock()
	close(call.done)
}

// remember caches c, the digest of file id.
func (s *Source) remember(id fileID, c cachedFile) {
	s.mu.Lock()
	s.rememberLocked(id, c)
	s.mu.Unlock()
}

func (s *Source) rememberLocked(id fileID, c cachedFile) {
	if _, ok := s.cache[id]; !ok && len(s.cache) >= s.max {
		for evict := range s.cache { // a random victim: map order
			delete(s.cache, evict)
			break
		}
	}
	s.cache[id] = c
}

// absPath is file id's absolute path, the digest database's key.
func (s *Source) absPath(id fileID) string {
	return filepath.Join(s.roots[id.root].path, filepath.FromSlash(id.rel))
}

// load returns the digest database's record of file id if it holds for
// key k, else hashes the file and records the result there.
func (s *Source) load(ctx context.Context, id fileID, k statKey, f *os.File) (cachedFile, error) {
	if s.db == nil {
		return s.hash(ctx, id, f)
	}
	if c, ok := s.db.get(s.absPath(id), k); ok {
		s.loaded.Add(1)
		return c, nil
	}
	c, err := s.hash(ctx, id, f)
	if err == nil {
		s.store(id, c)
	}
	return c, err
}

// known reports whether the digest of file id for key k is known without
// reading the file: cached in memory, or recorded in the digest database
// (and then cached).
func (s *Source) known(id fileID, k statKey) bool {
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if ok && c.key == k {
		return true
	}
	if s.db == nil {
		return false
	}
	if c, ok := s.db.get(s.absPath(id), k); ok {
		s.loaded.Add(1)
		s.remember(id, c)
		return true
	}
	return false
}

// store records c, the digest of file id, in the digest database, if
// there is one. A failed write costs a hash after a restart: logged only.
func (s *Source) store(id fileID, c cachedFile) {
	if s.db == nil {
		return
	}
	if err := s.db.put(s.absPath(id), c); err != nil {
		s.log.Warn("digest database: write failed", "path", s.absPath(id), "error", err)
	}
}

// hash computes a file's digest. It retries a few times if the file changes
// while it is read, then fails with ErrChanged.
func (s *Source) hash(ctx context.Context, id fileID, f *os.File) (cachedFile, error) {
	if f == nil {
		var err error
		if f, err = openInRoot(s.roots[id.root].root, id.rel); err != nil {
			return cachedFile{}, fsError(fmt.Sprintf("%q", id.rel), err)
		}
		defer f.Close()
	}
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	for range 3 {
		before, err := f.Stat()
		if err != nil {
			return cachedFile{}, err
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: io.NewSectionReader(f, 0, before.Size())}, *buf)
		if err != nil {
			return cachedFile{}, err
		}
		after, err := f.Stat()
		if err != nil {
			return cachedFile{}, err
		}
		s.hashedFiles.Add(1)
		s.hashedBytes.Add(n)
		if k := keyOf(after); k == keyOf(before) && n == before.Size() {
			c := cachedFile{key: k}
			h.Sum(c.digest[:0])
			return c, nil
		}
		s.log.Debug("file changed while hashed; hashing again", "path", id.rel)
	}
	return cachedFile{}, fmt.Errorf("%w: file keeps changing while it is hashed", ErrChanged)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// checkDigest returns the digest of open file f (id, with stat key k):
// the cached one when the file's size and mtime match it, else a new hash.
// If want is not zero and the digest is not want, it fails with ErrChanged.
func (s *Source) checkDigest(ctx context.Context, id fileID, k statKey, f *os.File, pfn, p string, want Digest) (Digest, error) {
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if !ok || c.key.size != k.size || c.key.mtime != k.mtime {
		var err error
		if c, err = s.digest(ctx, id, k, f); err != nil {
			return Digest{}, fmt.Errorf("file %q of %s: %w", p, pfn, err)
		}
	}
	if !want.IsZero() && c.digest != want {
		return Digest{}, fmt.Errorf("%w: file %q of %s has SHA-256 %s, not the requested %s", ErrChanged, p, pfn, c.digest, want)
	}
	return c.digest, nil
}

// Adopt caches the digests of entries, the manifest of a unit just placed
// at dir (under one of s's export roots) by a pull that verified each file
// against them, so that serving the unit next lists it with one stat per
// file and hashes nothing: a mirror that places a unit is the next site's
// source for it. An entry whose file is not a regular file of its size
// now, or that has no digest, is skipped: it is hashed when asked for, as
// any other. Adopt returns how many files it cached; it reads no file.
func (s *Source) Adopt(dir string, entries []Entry) (int, error) {
	ri, unit, err := s.resolve(dir)
	if err != nil {
		return 0, err
	}
	// Each file is looked at through the unit's directory, not by a path
	// resolved again from the export root.
	unitRoot, err := s.roots[ri].root.OpenRoot(unit)
	if err != nil {
		return 0, nil // nothing to cache: the unit is not there (any more)
	}
	defer unitRoot.Close()
	n := 0
	for _, e := range entries {
		if e.Dir || e.SHA256.IsZero() {
			continue
		}
		rel := path.Join(unit, e.Path)
		fi, err := unitRoot.Lstat(filepath.FromSlash(e.Path))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
			continue
		}
		id, c := fileID{ri, rel}, cachedFile{key: keyOf(fi), digest: e.SHA256}
		s.remember(id, c)
		s.store(id, c)
		n++
	}
	return n, nil
}
