// Package failstop stops a Pebble store at its first storage error, so that
// nothing it could not make durable is ever served or acknowledged.
//
// PostgreSQL's answer to a failed fsync is the model: never go on after one.
// Once a Guard has failed (a write-ahead-log write or sync failed, Pebble
// panicked in its commit path, or a flush or compaction hit an I/O error):
//
//   - every later operation of the store returns the failure (*Error);
//   - the store's write-ahead log is fenced: each WAL file is truncated to
//     the offset its last successful sync covered, and nothing more is
//     written to it. A write is acknowledged only after a sync that covered
//     it, so after a restart Pebble replays exactly the acknowledged writes
//     and none of those whose callers were told they failed;
//   - Done is closed, so that the owner (rlsd) can turn health NOT_SERVING
//     and exit non-zero for a supervisor to restart it.
//
// Pebble itself is left as it is: after such an error its commit pipeline
// may hold locks forever (it panics with them held), so a failed store must
// not be closed, flushed or written again. The process is expected to exit.
package failstop

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/solar-archive/rls/internal/pebblelog"
)

// ErrFailed is wrapped by every *Error: the store stopped after a storage
// error and serves nothing more until the process restarts.
var ErrFailed = errors.New("storage failed")

// Error is the failure of a store. It wraps ErrFailed and the cause, so that
// errors.Is(err, syscall.ENOSPC) tells a full disk.
type Error struct {
	Store string // "catalog", "index", "transfer digests", "mirror"
	Dir   string // the store's data directory
	Err   error  // the first error seen
}

func (e *Error) Error() string {
	what := "storage failed"
	if e.DiskFull() {
		what = "disk full"
	}
	return fmt.Sprintf("%s: %s in data directory %s (the store has stopped; restart rlsd once fixed): %v", e.Store, what, e.Dir, e.Err)
}

func (e *Error) Unwrap() []error { return []error{ErrFailed, e.Err} }

// DiskFull reports whether the cause was a full file system (ENOSPC or
// EDQUOT).
func (e *Error) DiskFull() bool {
	return errors.Is(e.Err, syscall.ENOSPC) || errors.Is(e.Err, syscall.EDQUOT)
}

// Guard watches one Pebble store. Configure it into the store's Options
// before pebble.Open; then run every write through Apply and check Err
// before every read. A Guard is safe for concurrent use.
type Guard struct {
	store, dir string
	log        *slog.Logger

	err  atomic.Pointer[Error]
	once sync.Once
	done chan struct{}

	walMu sync.Mutex
	wals  map[*walFile]struct{} // open WAL files, fenced on failure

	// logMu rate-limits the background errors Pebble goes on reporting
	// after a failure (it retries flushes and compactions).
	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

// New returns a Guard for the store named store in dir, logging to log.
func New(store, dir string, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.Default()
	}
	return &Guard{store: store, dir: dir, log: log, done: make(chan struct{}), wals: map[*walFile]struct{}{}}
}

// Configure sets o's file system, logger and event listener so that the
// Guard sees every WAL write and sync, Pebble's fatal errors and its
// background errors. Call it after o is otherwise filled in (a nil FS means
// vfs.Default).
func (g *Guard) Configure(o *pebble.Options) {
	base := o.FS
	if base == nil {
		base = vfs.Default
	}
	o.FS = &guardFS{FS: base, g: g}
	o.Logger = pebblelog.Logger{L: g.log.With("component", "pebble"), OnFatal: func(msg string) {
		_ = g.Fail(errors.New(msg))
	}}
	prev := o.EventListener
	l := pebble.EventListener{BackgroundError: g.background}
	if prev != nil {
		l = pebble.TeeEventListener(*prev, l)
	}
	o.EventListener = &l
}

// Err returns the failure (an *Error), or nil while the store is healthy.
// Once it has returned the failure, Done is closed: a caller told that the
// store failed finds it failed everywhere.
func (g *Guard) Err() error {
	if e := g.err.Load(); e != nil {
		<-g.done // Fail may still be fencing and logging
		return e
	}
	return nil
}

// cause is Err without waiting for Fail to finish, for the paths that Fail
// itself may be waiting on (they hold walMu or a WAL's mu).
func (g *Guard) cause() error {
	if e := g.err.Load(); e != nil {
		return e
	}
	return nil
}

// Done is closed when the store fails.
func (g *Guard) Done() <-chan struct{} { return g.done }

// Fail stops the store with cause (the first cause wins), fences its WAL
// and logs once. It returns the store's *Error.
func (g *Guard) Fail(cause error) error {
	g.once.Do(func() {
		e := &Error{Store: g.store, Dir: g.dir, Err: cause}
		g.err.Store(e)
		g.fence()
		g.log.Error("storage failed; the store serves nothing more and rlsd must restart", "store", g.store, "dir", g.dir, "disk_full", e.DiskFull(), "error", cause)
		close(g.done)
	})
	return g.Err()
}

// Apply runs fn, a call into Pebble that writes, and fails the store when fn
// returns an error or panics (Pebble panics in its commit path when its WAL
// writer has failed). It returns the store's *Error in either case. If the
// store has already failed, fn is not run.
func (g *Guard) Apply(fn func() error) (err error) {
	if err := g.Err(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = g.Fail(fmt.Errorf("pebble panicked: %v", r))
		}
	}()
	if err := fn(); err != nil {
		return g.Fail(err)
	}
	return nil
}

// background is Pebble's BackgroundError listener. A flush or compaction
// that fails for lack of space, or with any I/O error, fails the store: the
// memtables it cannot flush would otherwise stall every writer forever.
func (g *Guard) background(err error) {
	if g.cause() == nil && storageError(err) {
		_ = g.Fail(err)
		return
	}
	g.logMu.Lock()
	defer g.logMu.Unlock()
	if now := time.Now(); now.Sub(g.lastLog) >= 10*time.Second {
		g.log.Warn("pebble background error", "store", g.store, "error", err, "suppressed", g.suppressed)
		g.lastLog, g.suppressed = now, 0
		return
	}
	g.suppressed++
}

// storageError reports whether err comes from the file system rather than
// from Pebble's own bookkeeping (a cancelled compaction is not reported).
func storageError(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return true
	}
	// Pebble wraps some I/O errors in its own types; their text still names
	// the OS error.
	s := err.Error()
	return strings.Contains(s, "no space left") || strings.Contains(s, "input/output error") || strings.Contains(s, "read-only file system")
}

// fence truncates every open WAL file to what its last successful sync
// covered and stops all writes to them.
func (g *Guard) fence() {
	g.walMu.Lock()
	defer g.walMu.Unlock()
	for f := range g.wals {
		if err := f.fence(); err != nil {
			g.log.Error("could not truncate the write-ahead log to its last sync: writes that failed may reappear after a restart",
				"store", g.store, "dir", g.dir, "wal", f.name, "error", err)
		}
	}
}

// guardFS wraps the store's file system so that WAL files report their
// writes and syncs to the Guard.
type guardFS struct {
	vfs.FS
	g *Guard
}

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs *guardFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.g.cause(); err != nil {
		return nil, err
	}
	f, err := fs.FS.Create(name, cat)
	return fs.wrap(name, f, err)
}

func (fs *guardFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.g.cause(); err != nil {
		return nil, err
	}
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	return fs.wrap(newname, f, err)
}

func (fs *guardFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !isWAL(name) {
		return f, err
	}
	w := &walFile{File: f, g: fs.g, name: name}
	fs.g.walMu.Lock()
	if err := fs.g.cause(); err != nil {
		fs.g.walMu.Unlock()
		_ = f.Close()
		return nil, err
	}
	fs.g.wals[w] = struct{}{}
	fs.g.walMu.Unlock()
	return w, nil
}

// walFile is a WAL file that knows how far it is durable. Pebble writes and
// syncs a WAL from one goroutine at a time; mu keeps the fence out of a
// write or sync in progress.
type walFile struct {
	vfs.File
	g    *Guard
	name string

	mu      sync.Mutex
	written int64 // bytes written from offset 0
	durable int64 // bytes covered by the last successful sync
	fenced  bool
}

func (f *walFile) Write(p []byte) (int, error) {
	n, err := f.write(p)
	if err != nil && !errors.Is(err, ErrFailed) {
		_ = f.g.Fail(fmt.Errorf("write %s: %w", f.name, err))
	}
	return n, err
}

func (f *walFile) write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced {
		return 0, f.g.cause()
	}
	n, err := f.File.Write(p)
	f.written += int64(n)
	return n, err
}

func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	// Pebble appends to a WAL; a positioned write would break the offset
	// bookkeeping, so it is refused.
	return 0, fmt.Errorf("failstop: positioned write to WAL %s", f.name)
}

// sync runs do, a sync of the file that reports whether it made the whole
// file durable, and records how far the file is durable.
func (f *walFile) sync(do func() (full bool, err error)) (bool, error) {
	full, err := f.syncLocked(do)
	if err != nil && !errors.Is(err, ErrFailed) {
		_ = f.g.Fail(fmt.Errorf("sync %s: %w", f.name, err))
	}
	return full, err
}

func (f *walFile) syncLocked(do func() (bool, error)) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced {
		return false, f.g.cause()
	}
	at := f.written
	full, err := do()
	if err == nil && full {
		f.durable = at
	}
	return full, err
}

func (f *walFile) Sync() error {
	_, err := f.sync(func() (bool, error) { return true, f.File.Sync() })
	return err
}

func (f *walFile) SyncData() error {
	_, err := f.sync(func() (bool, error) { return true, f.File.SyncData() })
	return err
}

// SyncTo may only queue a prefix for syncing; unless it reports a full sync,
// nothing more is known to be durable.
func (f *walFile) SyncTo(length int64) (bool, error) {
	return f.sync(func() (bool, error) { return f.File.SyncTo(length) })
}

func (f *walFile) Close() error {
	f.g.walMu.Lock()
	delete(f.g.wals, f)
	f.g.walMu.Unlock()
	return f.File.Close()
}

// fence truncates the file to its durable length and syncs that, then
// refuses every later write and sync.
func (f *walFile) fence() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced {
		return nil
	}
	f.fenced = true
	fd := f.Fd()
	if fd == vfs.InvalidFd {
		return errors.New("no file descriptor")
	}
	if err := syscall.Ftruncate(int(fd), f.durable); err != nil {
		return err
	}
	return syscall.Fsync(int(fd))
}
