package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// ChunkSize is the most bytes a Source hands to one call of a Read callback;
// the gRPC service sends one message per call.
const ChunkSize = 1 << 20

// SourceOptions configure NewSource.
type SourceOptions struct {
	// Logger, default slog.Default().
	Logger *slog.Logger
	// MaxCachedFiles bounds the digest cache (about 150 bytes a file).
	// Default 1<<20.
	MaxCachedFiles int
	// DigestDB, if set, is the absolute path of a directory (created if
	// missing) where the Source keeps every digest it computes in a Pebble
	// database, behind the in-memory cache and with the same rule: a
	// record holds while the file's (size, mtime, inode, ctime) are those
	// it was hashed at. A Source opened again on the same directory (after
	// a restart) then hashes only the files that changed. One Source at a
	// time may use a directory. Empty: digests live in memory only.
	DigestDB string
	// DigestPruneInterval: with DigestDB, records that can no longer be
	// used (of files deleted, changed since, or no longer under an export
	// root) are deleted in the background when the Source opens and then
	// every DigestPruneInterval (default DefaultDigestPruneInterval;
	// negative: only by PruneDigests).
	DigestPruneInterval time.Duration
}

// DefaultDigestPruneInterval is SourceOptions.DigestPruneInterval's default.
const DefaultDigestPruneInterval = 24 * time.Hour

// Source serves the storage units under a set of export roots. It is safe
// for concurrent use.
//
// Confinement: every file and directory is opened through an os.Root, one
// per export root, so ".." components, absolute paths and symlinks that
// resolve outside the root are refused by the kernel-level walk at the
// moment of the open, even if the tree changes between a check and a use.
// Symlinks inside a unit are served as the regular file they point to when
// that lies under the same root; symlinks to directories and special files
// are refused.
//
// Digests are cached per file, keyed by (size, mtime, inode, ctime): a
// Manifest call stats every file and hashes only those whose key changed.
// With SourceOptions.DigestDB the cache survives a restart. FastManifest
// lists a unit at once, without digests, and hashes in the background.
// Reads check only that the file still has its cached size and mtime (a
// cheap fstat); a file whose bytes changed without either changing is
// served as it is, and the puller's digest check catches it.
type Source struct {
	roots []exportRoot
	log   *slog.Logger
	max   int

	mu       sync.Mutex
	cache    map[fileID]cachedFile
	inflight map[fileID]*hashCall
	db       *digestDB // nil without SourceOptions.DigestDB

	// Background hashing started by FastManifest; Close cancels and waits.
	grace    time.Duration // hashGrace; tests lengthen it (export_hooks_test.go)
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	// joined, if not nil, is called as a digest call starts waiting for
	// a hash of the file (its absolute path) that another call makes:
	// the event tests wait for (export_hooks_test.go). Nil in production.
	joined func(name string)

	sent, hashedBytes, hashedFiles, loaded atomic.Int64
	hashedInline, readDirect               atomic.Int64
	noDirectLogged                         atomic.Bool
}

type exportRoot struct {
	path string // absolute and clean
	root *os.Root
}

// fileID names a file: its export root and its path relative to the root.
type fileID struct {
	root int
	rel  string
}

// statKey is what a cached digest is valid for.
type statKey struct {
	size       int64
	mtime      int64 // ns
	ino, ctime int64 // ctime in ns
}

type cachedFile struct {
	key    statKey
	digest Digest
}

// hashCall is a hash of one file in progress; its waiters read cached and
// err once done is closed. Whoever completes it (finish) sets both first.
type hashCall struct {
	done   chan struct{}
	cached cachedFile
	err    error

	// A claimable call is one that a whole-file Read of version key may
	// take over (claimed.CompareAndSwap(false, true)) to hash the bytes
	// as it sends them, so that the file is read once. FastManifest
	// registers such calls for its files and hashes those that no Read
	// claimed within hashGrace; a Read registers one already claimed.
	// Whoever claims it must complete it.
	claimable bool
	key       statKey
	claimed   atomic.Bool
}

func newClaimableCall(k statKey) *hashCall {
	return &hashCall{done: make(chan struct{}), claimable: true, key: k}
}

// NewSource opens the export roots, which must be absolute paths of
// existing directories. It fails with an error wrapping ErrInvalid naming
// the bad root. Close releases them.
func NewSource(roots []string, opts *SourceOptions) (*Source, error) {
	if opts == nil {
		opts = &SourceOptions{}
	}
	s := &Source{
		log: opts.Logger, max: opts.MaxCachedFiles, grace: hashGrace,
		cache: make(map[fileID]cachedFile), inflight: make(map[fileID]*hashCall),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.max <= 0 {
		s.max = 1 << 20
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	if len(roots) == 0 {
		return nil, fmt.Errorf("export roots: %w: none given", ErrInvalid)
	}
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			s.Close()
			return nil, fmt.Errorf("export root %q: %w: not an absolute path", r, ErrInvalid)
		}
		clean := filepath.Clean(r)
		root, err := os.OpenRoot(clean)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("export root %q: %w: %v", r, ErrInvalid, err)
		}
		s.roots = append(s.roots, exportRoot{path: clean, root: root})
	}
	if opts.DigestDB != "" {
		db, err := openDigestDB(opts.DigestDB, s.log)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.db = db
		if every := cmp.Or(opts.DigestPruneInterval, DefaultDigestPruneInterval); every > 0 {
			s.bg.Go(func() { s.pruneLoop(every) })
		}
	}
	return s, nil
}

// PruneDigests deletes the digest database's records that can no longer
// be used: of files that are gone, changed since they were hashed, or no
// longer under an export root. It returns how many it kept and deleted.
// Without a digest database it does nothing.
func (s *Source) PruneDigests(ctx context.Context) (kept, deleted int, err error) {
	if s.db == nil {
		return 0, 0, nil
	}
	roots := make([]string, len(s.roots))
	for i, r := range s.roots {
		roots[i] = r.path
	}
	return s.db.prune(ctx, roots)
}

// pruneLoop prunes the digest database now and then every interval, until
// Close.
func (s *Source) pruneLoop(every time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		kept, deleted, err := s.PruneDigests(s.bgCtx)
		switch {
		case err != nil && s.bgCtx.Err() == nil:
			s.log.Warn("digest database: prune failed", "error", err)
		case err == nil && deleted > 0:
			s.log.Info("digest database pruned", "kept", kept, "deleted", deleted, "took", time.Since(start).Round(time.Millisecond))
		case err == nil:
			s.log.Debug("digest database pruned", "kept", kept, "took", time.Since(start).Round(time.Millisecond))
		}
		t.Reset(every)
	}
}

// Close stops the background hashing, waits for it, and releases the
// export roots and the digest database. Calls after Close fail.
func (s *Source) Close() error {
	s.bgCancel()
	s.bg.Wait()
	var errs []error
	for _, r := range s.roots {
		errs = append(errs, r.root.Close())
	}
	if s.db != nil {
		errs = append(errs, s.db.close())
	}
	return errors.Join(errs...)
}

// Err returns nil while the Source's digest database is healthy (or when
// it has none), and its failure after a storage error: the database then
// reads and writes nothing more (digests are computed, not cached) and the
// process should exit. See internal/failstop.
func (s *Source) Err() error {
	if s.db == nil {
		return nil
	}
	return s.db.guard.Err()
}

// Failed is closed when the digest database fails; never without one.
func (s *Source) Failed() <-chan struct{} {
	if s.db == nil {
		return nil
	}
	return s.db.guard.Done()
}

// Roots returns the export roots, cleaned.
func (s *Source) Roots() []string {
	out := make([]string, len(s.roots))
	for i, r := range s.roots {
		out[i] = r.path
	}
	return out
}

// SourceStats are a Source's counters since NewSource.
type SourceStats struct {
	BytesSent   int64 // file bytes handed to Read callbacks and File readers
	FilesHashed int64
	BytesHashed int64
	CachedFiles int
	// DigestsLoaded counts digests read from the digest database
	// (SourceOptions.DigestDB) instead of hashing the file.
	DigestsLoaded int64
	// BytesHashedInline are the bytes of BytesHashed hashed as a Read
	// sent them, for files read whole whose digest was not known: those
	// files were not read a second time to hash them.
	BytesHashedInline int64
	// BytesReadDirect are the bytes read with O_DIRECT (long ranges),
	// bypassing the page cache.
	BytesReadDirect int64
}

// Stats reads the counters; it is cheap and never blocks on I/O.
func (s *Source) Stats() SourceStats {
	s.mu.Lock()
	n := len(s.cache)
	s.mu.Unlock()
	return SourceStats{
		BytesSent: s.sent.Load(), FilesHashed: s.hashedFiles.Load(),
		BytesHashed: s.hashedBytes.Load(), CachedFiles: n, DigestsLoaded: s.loaded.Load(),
		BytesHashedInline: s.hashedInline.Load(), BytesReadDirect: s.readDirect.Load(),
	}
}

// Name implements Peer.
func (s *Source) Name() string { return "local" }

// Manifest returns the unit's manifest. Every file is stat'ed; files whose
// (size, mtime, inode, ctime) differ from the cached digest's are hashed
// again (once, however many calls want them at the same time). Each file's
// Version names the stat key its digest was computed for.
func (s *Source) Manifest(ctx context.Context, pfn string) (*Manifest, error) {
	ri, m, files, err := s.list(ctx, pfn)
	if err != nil {
		return nil, err
	}
	if err := s.digests(ctx, ri, m, files); err != nil {
		return nil, err
	}
	slices.SortFunc(m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

// FastManifest returns the unit's manifest without digests (SHA256 zero),
// as soon as its files are listed and stat'ed, and starts hashing in the
// background the files whose digest is not cached, so that a Manifest
// call made later returns sooner (it waits for those hashes rather than
// starting its own). Each file's Version names the version listed: a Read
// of a Range with that Version fails with ErrChanged if the file is no
// longer that version, and a later Manifest whose entry has the same
// Version has the digest of that very version. The background hashing
// ends with Close.
//
// Files are not hashed at once (but empty ones): a puller that lists a
// unit fast reads it next, and a Read of a whole file hashes it as it
// sends it (claiming the hash, see hashCall), so that each file is read
// once, big or small. Those no Read claims within hashGrace are hashed in
// the background; a Manifest call meanwhile waits for whichever hashes
// them.
func (s *Source) FastManifest(ctx context.Context, pfn string) (*Manifest, error) {
	ri, m, files, err := s.list(ctx, pfn)
	if err != nil {
		return nil, err
	}
	// A file whose digest database record holds is cached at once: that
	// reads no file byte.
	if s.db != nil {
		for _, f := range files {
			s.known(fileID{ri, f.rel}, f.key)
		}
	}
	var now []pendingDigest
	var later []claimableHash
	s.mu.Lock()
	for _, f := range files {
		id := fileID{ri, f.rel}
		if c, ok := s.cache[id]; ok && c.key == f.key {
			continue
		}
		if _, busy := s.inflight[id]; !busy && f.key.size > 0 {
			call := newClaimableCall(f.key)
			s.inflight[id] = call
			later = append(later, claimableHash{id, call})
			continue
		}
		now = append(now, f)
	}
	s.mu.Unlock()
	if len(now) > 0 {
		scratch := &Manifest{PFN: m.PFN, Entries: slices.Clone(m.Entries)}
		s.bg.Go(func() {
			if err := s.digests(s.bgCtx, ri, scratch, now); err != nil && s.bgCtx.Err() == nil {
				s.log.Debug("background hashing failed", "pfn", m.PFN, "error", err)
			}
		})
	}
	if len(later) > 0 {
		s.bg.Go(func() { s.hashUnclaimed(m.PFN, later) })
	}
	slices.SortFunc(m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	return m, nil
}

// hashGrace is how long FastManifest leaves its files to be claimed by
// a whole-file Read (which hashes them as it sends them) before it hashes
// them itself. A puller that listed a unit fast asks for its bytes within
// milliseconds; one that reads files in several ranges delays its digests
// by this much.
const hashGrace = time.Second

type claimableHash struct {
	id   fileID
	call *hashCall
}

// hashUnclaimed waits hashGrace, then hashes the files of calls that no
// Read claimed, hashWorkers at a time, and completes those calls. On Close
// it completes them with the context's error, unhashed: every call it
// claims is completed, so that no waiter is left behind.
func (s *Source) hashUnclaimed(pfn string, calls []claimableHash) {
	t := time.NewTimer(s.grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.bgCtx.Done():
	}
	mine := slices.DeleteFunc(calls, func(c claimableHash) bool { return !c.call.claimed.CompareAndSwap(false, true) })
	var g errgroup.Group
	g.SetLimit(hashWorkers)
	for _, c := range mine {
		g.Go(func() error {
			var res cachedFile
			err := s.bgCtx.Err()
			if err == nil {
				res, err = s.load(s.bgCtx, c.id, c.call.key, nil)
			}
			if err != nil && s.bgCtx.Err() == nil {
				s.log.Debug("background hashing failed", "pfn", pfn, "path", c.id.rel, "error", err)
			}
			s.finish(c.id, c.call, res, err)
			return nil // completed in the call, for its waiters
		})
	}
	_ = g.Wait()
}

// list resolves pfn and walks its unit: the manifest's entries, unsorted
// and without digests, and the files to hash.
func (s *Source) list(ctx context.Context, pfn string) (int, *Manifest, []pendingDigest, error) {
	ri, rel, err := s.resolve(pfn)
	if err != nil {
		return 0, nil, nil, err
	}
	root := s.roots[ri].root
	unit, err := root.OpenRoot(rel)
	if err != nil {
		// Say why: no such unit, or not a directory.
		fi, serr := root.Stat(rel)
		switch {
		case serr != nil:
			return 0, nil, nil, fsError("unit "+pfn, serr)
		case !fi.IsDir():
			return 0, nil, nil, fmt.Errorf("%w: PFN %q is not a directory", ErrInvalid, pfn)
		}
		return 0, nil, nil, fsError("unit "+pfn, err)
	}
	defer unit.Close()
	m := &Manifest{PFN: path.Clean(pfn)}
	var files []pendingDigest
	size := 0
	if err := s.walk(ctx, ri, unit, rel, "", m, &files, &size); err != nil {
		return 0, nil, nil, err
	}
	return ri, m, files, nil
}

// pendingDigest is a file entry of a manifest being built whose digest is
// still to be filled in.
type pendingDigest struct {
	entry int // in Manifest.Entries
	rel   string
	key   statKey
}

// hashWorkers is how many files Manifest hashes at the same time: the
// reads of a unit that is not in the page cache overlap, and hashing uses
// every core.
const hashWorkers = 8

// digests fills in the digests of files, hashing those the cache does not
// hold a few at a time. On failure it returns the error of the first file
// in the manifest's order.
func (s *Source) digests(ctx context.Context, ri int, m *Manifest, files []pendingDigest) error {
	errs := make([]error, len(files))
	one := func(i int) {
		f := &files[i]
		c, err := s.digest(ctx, fileID{ri, f.rel}, f.key, nil)
		if err != nil {
			errs[i] = fmt.Errorf("file %q: %w", m.Entries[f.entry].Path, err)
			return
		}
		e := &m.Entries[f.entry]
		e.SHA256 = c.digest
		if c.key != f.key {
			// The file changed since the walk: the entry describes the
			// version hashed, so that its Version names what the digest is of.
			e.Size, e.MTime, e.Version = c.key.size, time.Unix(0, c.key.mtime), c.key.version()
		}
	}
	var g errgroup.Group
	g.SetLimit(hashWorkers)
	for i := range files {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { one(i); return nil }) // errors by file, in errs
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// walk adds the entries of directory unitRel/dir, opened as dirRoot
// (beneath its export root), to m, and its files to files, to be hashed.
// Each entry is looked at through dirRoot, one fstatat(2) of its name,
// not by a path resolved again from the export root. size counts the
// manifest's bytes (entrySize); walk fails with ErrTooLarge once the
// manifest would pass MaxEntries or MaxManifestBytes.
func (s *Source) walk(ctx context.Context, ri int, dirRoot *os.Root, unitRel, dir string, m *Manifest, files *[]pendingDigest, size *int) error {
	root := s.roots[ri].root
	d, err := openInRoot(dirRoot, ".")
	if err != nil {
		return fsError(fmt.Sprintf("directory %q", dir), err)
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("reading directory %q: %w", dir, err)
	}
	for _, de := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join(dir, de.Name())
		rel := path.Join(unitRel, p)
		if len(m.Entries) >= MaxEntries {
			return fmt.Errorf("%w: unit has more than %d entries (transfer.MaxEntries)", ErrTooLarge, MaxEntries)
		}

		fi, err := dirRoot.Lstat(de.Name())
		if err != nil {
			return fsError(fmt.Sprintf("%q", p), err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if fi, err = root.Stat(rel); err != nil {
				return fsError(fmt.Sprintf("symlink %q", p), err)
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%w: symlink %q points to a %v, not a regular file", ErrRefused, p, fi.Mode().Type())
			}
		}
		switch {
		case fi.IsDir():
			if err := addEntry(m, Entry{Path: p, Dir: true, Mode: unixMode(fi.Mode()), MTime: fi.ModTime()}, size); err != nil {
				return err
			}
			sub, err := dirRoot.OpenRoot(de.Name())
			if err != nil {
				return fsError(fmt.Sprintf("directory %q", p), err)
			}
			err = s.walk(ctx, ri, sub, unitRel, p, m, files, size)
			sub.Close()
			if err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			k := keyOf(fi)
			*files = append(*files, pendingDigest{entry: len(m.Entries), rel: rel, key: k})
			if err := addEntry(m, Entry{
				Path: p, Size: fi.Size(), Mode: unixMode(fi.Mode()), MTime: fi.ModTime(), Version: k.version(),
			}, size); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %q is a %v, not a regular file or directory", ErrRefused, p, fi.Mode().Type())
		}
	}
	return nil
}

// addEntry appends e to m, counting its bytes in size, unless that would
// pass MaxManifestBytes.
func addEntry(m *Manifest, e Entry, size *int) error {
	if *size += entrySize(&e); *size > MaxManifestBytes {
		return fmt.Errorf("%w: manifest would exceed %d MiB (transfer.MaxManifestBytes) after %d entries",
			ErrTooLarge, MaxManifestBytes>>20, len(m.Entries))
	}
	m.Entries = append(m.Entries, e)
	return nil
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// File is an open file of a unit, with its manifest entry. It counts the
// bytes read from it in the Source's BytesSent. Not safe for concurrent use.
type File struct {
	Entry Entry
	f     *os.File
	sent  *atomic.Int64
}

func (f *File) Read(p []byte) (int, error) {
	n, err := f.f.Read(p)
	f.sent.Add(int64(n))
	return n, err
}

func (f *File) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(p, off)
	f.sent.Add(int64(n))
	return n, err
}

func (f *File) Seek(off int64, whence int) (int64, error) { return f.f.Seek(off, whence) }
func (f *File) Close() error                              { return f.f.Close() }

// Open opens file p (a manifest path) of unit pfn through the export root,
// and returns it with its entry. If want is not zero and the file's digest
// is not want, it fails with ErrChanged. The digest comes from the cache
// when the file's size and mtime match it, else the file is hashed first.
// The caller closes the File.
func (s *Source) Open(ctx context.Context, pfn, p string, want Digest) (*File, error) {
	f, fi, id, err := s.openFile(pfn, p)
	if err != nil {
		return nil, err
	}
	k := keyOf(fi)
	d, err := s.checkDigest(ctx, id, k, f, pfn, p, want)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{
		Entry: Entry{Path: p, Size: fi.Size(), Mode: unixMode(fi.Mode()), MTime: fi.ModTime(), SHA256: d, Version: k.version()},
		f:     f, sent: &s.sent,
	}, nil
}
