package transfer

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
)

// A pull's staging directory, <parent>/.rls-staging/<name>, is flock'ed
// while a pull runs, so that two pulls never share it, and holds:
//
//	manifest.json  the manifest the journal refers to
//	journal        one JSON record a line, appended and fsynced as work is done
//	unit/          the unit being built; renamed to <parent>/<name> when complete
//
// A journal record says that a byte range of a file is written and synced
// ("range"), that a file is complete, verified against its digest, has its
// mode and mtime and is synced ("verified"), or that a file's earlier
// records no longer hold ("reset"). Records are appended only after the
// bytes they describe are fsynced, so after a crash the journal never
// claims more than the disk holds. A torn last line is ignored.
//
// A unit smaller than PullOptions.JournalMin has neither manifest.json nor
// journal (see staging.unjournaled), and is built in the staging directory
// itself, which is renamed to <parent>/<name> when complete: it is fetched
// again whole after a crash, and made durable only when it is placed,
// together with the other units placed at the same time (placeUnits).
const (
	stagingDirName = ".rls-staging"
	manifestFile   = "manifest.json"
	journalFile    = "journal"
	unitDir        = "unit"
)

// journalOp is the kind of a journal record; its value is what the
// journal file holds.
type journalOp string

const (
	opRange    journalOp = "range"    // Off..Off+Len of Path is written and synced
	opVerified journalOp = "verified" // Path is complete, verified, has its mode and mtime, and is synced
	opReset    journalOp = "reset"    // Path's earlier records no longer hold
)

type journalRec struct {
	Op   journalOp `json:"op"`
	Path string    `json:"path"`
	Off  int64     `json:"off,omitempty"`
	Len  int64     `json:"len,omitempty"`
}

// replayJournal applies an earlier run's journal records to the files
// whose records still hold (keep): the ranges done, the files verified,
// and resets. Records of other files, and ranges that do not fit their
// file, are ignored.
func replayJournal(recs []journalRec, files map[string]*fileState, keep map[string]bool) {
	for _, r := range recs {
		f := files[r.Path]
		if f == nil || !keep[r.Path] {
			continue
		}
		switch r.Op {
		case opRange:
			if r.Off >= 0 && r.Len > 0 && r.Off+r.Len <= f.e.Size {
				f.done = f.done.add(r.Off, r.Off+r.Len)
			}
		case opVerified:
			f.verified = true
		case opReset:
			f.done, f.verified = nil, false
		}
	}
}

// staging is an open staging directory. Its methods are not safe for
// concurrent use; the puller serializes them.
type staging struct {
	dir     string
	lock    *os.File // the directory, flock'ed
	journal *os.File
	noSync  bool
	// unjournaled: the unit is small enough to fetch again whole (see
	// PullOptions.JournalMin): it has no manifest.json or journal, load
	// finds nothing, and begin, setManifest and append write nothing. It
	// is built in dir itself (one directory less to make and remove per
	// unit), its files are made durable when it is placed, not as they
	// arrive, and after a crash nothing in dir is trusted.
	unjournaled bool
	// moved: dir was renamed into place; the path may be another pull's
	// staging directory now.
	moved bool
}

// unitPath is where the unit is built: dir/unit, or dir itself for an
// unjournaled unit.
func (s *staging) unitPath() string {
	if s.unjournaled {
		return s.dir
	}
	return filepath.Join(s.dir, unitDir)
}

// openStaging creates (or reopens) the staging directory and locks it.
// fresh reports whether it did not exist.
func openStaging(dir string, noSync bool) (st *staging, fresh bool, err error) {
	for range 3 {
		fresh, err := makeStaging(dir)
		if err != nil {
			return nil, false, err
		}
		d, err := openBlocking(dir, os.O_RDONLY, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile by the pull that held it
		}
		if err != nil {
			return nil, false, localErr(err)
		}
		if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			d.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, false, fmt.Errorf("%w: another pull is using the staging directory %s", ErrExists, dir)
			}
			return nil, false, localErr(fmt.Errorf("locking %s: %w", dir, err))
		}
		// The pull that held it may have removed it between the open and
		// the lock: then the lock is of a directory that is gone.
		held, err1 := d.Stat()
		now, err2 := os.Lstat(dir)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return &staging{dir: dir, lock: d, noSync: noSync}, fresh, nil
		}
		d.Close()
	}
	return nil, false, fmt.Errorf("%w: the staging directory %s keeps being removed by other pulls", ErrExists, dir)
}

// makeStaging creates the staging directory dir, and its parent if need
// be; fresh reports that dir did not exist. The parent is private; dir
// has the mode a unit's directory gets, since it may become one.
func makeStaging(dir string) (fresh bool, err error) {
	err = os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return false, localErr(err)
		}
		err = os.Mkdir(dir, 0o755)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	}
	return false, localErr(err)
}

// mkdir makes directory path of the unit being built (parents first:
// manifest entries are sorted), removing a file in its way. In a fresh
// staging directory nothing is in the way, and one mkdir(2) does.
func (s *staging) mkdir(path string, fresh bool) error {
	if path == s.dir {
		return nil
	}
	if fresh && os.Mkdir(path, 0o755) == nil {
		return nil
	}
	if fi, err := os.Lstat(path); err == nil && !fi.IsDir() {
		if err := os.RemoveAll(path); err != nil {
			return localErr(err)
		}
	}
	return localErr(os.MkdirAll(path, 0o755))
}

// unjournal makes s an unjournaled staging directory (see
// staging.unjournaled). A manifest and journal an earlier pull left are
// removed first, durably, so that no record of theirs can later vouch for
// bytes that this pull writes without journaling. fresh says that the
// staging directory did not exist before this pull.
func (s *staging) unjournal(fresh bool) error {
	s.unjournaled = true
	if fresh {
		return nil
	}
	removed := false
	for _, name := range []string{manifestFile, journalFile, manifestFile + ".tmp", journalFile + ".tmp"} {
		err := os.Remove(filepath.Join(s.dir, name))
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return localErr(err)
		}
	}
	if removed {
		return localErr(s.syncDir(s.dir))
	}
	return nil
}

// load returns the manifest and journal records of an earlier pull, or a
// nil manifest if there was none (or it cannot be read: then the staging
// directory starts over).
func (s *staging) load() (*Manifest, []journalRec) {
	if s.unjournaled {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, manifestFile))
	if err != nil {
		return nil, nil
	}
	m, err := DecodeManifest(b)
	if err != nil {
		return nil, nil
	}
	b, _ = os.ReadFile(filepath.Join(s.dir, journalFile))
	var recs []journalRec
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r journalRec
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			break // a torn last line
		}
		recs = append(recs, r)
	}
	return m, recs
}

// begin writes m and the records that still hold as a new journal (each
// replaced atomically), and opens the journal for appending.
func (s *staging) begin(m *Manifest, recs []journalRec) error {
	if s.unjournaled {
		return nil
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var jb bytes.Buffer
	for _, r := range recs {
		b, _ := json.Marshal(r)
		jb.Write(b)
		jb.WriteByte('\n')
	}
	if err := s.writeAtomic(manifestFile, mb); err != nil {
		return err
	}
	if err := s.writeAtomic(journalFile, jb.Bytes()); err != nil {
		return err
	}
	f, err := openBlocking(filepath.Join(s.dir, journalFile), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return localErr(err)
	}
	s.journal = f
	return nil
}

// setManifest replaces the manifest the journal refers to with m, the
// same manifest with more known (its digests).
func (s *staging) setManifest(m *Manifest) error {
	if s.unjournaled {
		return nil
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.writeAtomic(manifestFile, mb)
}

func (s *staging) writeAtomic(name string, b []byte) error {
	tmp := filepath.Join(s.dir, name+".tmp")
	f, err := openBlocking(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return localErr(err)
	}
	_, err = f.Write(b)
	if err == nil && !s.noSync {
		err = fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err == nil {
		err = s.syncDir(s.dir)
	}
	return localErr(err)
}

// append adds records to the journal and syncs it.
func (s *staging) append(recs ...journalRec) error {
	if len(recs) == 0 || s.unjournaled {
		return nil
	}
	var b bytes.Buffer
	for _, r := range recs {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	if _, err := s.journal.Write(b.Bytes()); err != nil {
		return localErr(err)
	}
	if !s.noSync {
		return localErr(fsync(s.journal))
	}
	return nil
}

// syncs counts the fsync(2) and syncfs(2) calls of pulls, so that tests
// can hold a batch of small units to a few.
var syncs atomic.Int64

// fsync syncs f (fsync(2)) and counts it.
func fsync(f *os.File) error {
	syncs.Add(1)
	return f.Sync()
}

// deferSync reports whether the unit's files are written without their
// own fsync and made durable by one syncfs(2) when it is placed: an
// unjournaled unit (nothing in staging is trusted after a crash, so
// nothing needs to be durable before placement) on a system with syncfs.
func (s *staging) deferSync() bool { return s.unjournaled && canSyncFS && !s.noSync }

func (s *staging) syncDir(dir string) error {
	if s.noSync {
		return nil
	}
	d, err := openBlocking(dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = fsync(d)
	d.Close()
	return err
}

// close unlocks the staging directory; remove also deletes what is left of
// it (after the unit was renamed into place), still locked. The
// .rls-staging directory is left to removeStagingRoots.
func (s *staging) close(remove bool) {
	if s.journal != nil {
		s.journal.Close()
	}
	if remove && !s.moved {
		os.RemoveAll(s.dir)
	}
	s.lock.Close()
}

// removeStagingRoots removes the .rls-staging directories of dests that
// are empty (one rmdir(2) each: it fails, as it should, where other pulls
// use one).
func removeStagingRoots(dests []string) {
	done := map[string]bool{}
	for _, d := range dests {
		root := filepath.Dir(StagingDir(d))
		if !done[root] {
			done[root] = true
			_ = syscall.Rmdir(root)
		}
	}
}

// intervals is a sorted set of disjoint, non-adjacent half-open byte ranges.
type intervals []interval

type interval struct{ off, end int64 }

func (iv intervals) add(off, end int64) intervals {
	if off >= end {
		return iv
	}
	out := make(intervals, 0, len(iv)+1)
	for _, x := range iv {
		switch {
		case x.end < off || x.off > end:
			out = append(out, x)
		default: // overlaps or touches: merge
			off, end = min(off, x.off), max(end, x.end)
		}
	}
	out = append(out, interval{off, end})
	slices.SortFunc(out, func(a, b interval) int { return cmp.Compare(a.off, b.off) })
	return out
}

// bytes is the number of bytes in the set.
func (iv intervals) bytes() int64 {
	var n int64
	for _, x := range iv {
		n += x.end - x.off
	}
	return n
}

// missing is the complement of the set in [0, size).
func (iv intervals) missing(size int64) intervals {
	var out intervals
	var at int64
	for _, x := range iv {
		if x.off > at {
			out = append(out, interval{at, min(x.off, size)})
		}
		at = max(at, x.end)
	}
	if at < size {
		out = append(out, interval{at, size})
	}
	return out
}

// localError marks a failure of the puller's own disk (not of a source):
// it ends the pull.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

func localErr(err error) error {
	if err == nil {
		return nil
	}
	var le *localError
	if errors.As(err, &le) {
		return err
	}
	return &localError{err}
}
