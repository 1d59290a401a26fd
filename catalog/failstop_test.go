package catalog

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// faultFS injects errors into the writes or syncs of WAL files once armed.
type faultFS struct {
	vfs.FS
	failWrite, failSync atomic.Bool
}

func (fs *faultFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

func (fs *faultFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	if err != nil || !strings.HasSuffix(newname, ".log") {
		return f, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

type faultFile struct {
	vfs.File
	fs *faultFS
}

// Write of an armed file writes half of p, as a file system that ran out of
// space in the middle of a write does, and fails with ENOSPC.
func (f *faultFile) Write(p []byte) (int, error) {
	if f.fs.failWrite.Load() {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return f.File.Write(p)
}

// Sync of an armed file fails after the bytes were written: the case where
// the page cache holds a record that never became durable.
func (f *faultFile) Sync() error {
	if f.fs.failSync.Load() {
		return syscall.EIO
	}
	return f.File.Sync()
}

func (f *faultFile) SyncData() error {
	if f.fs.failSync.Load() {
		return syscall.EIO
	}
	return f.File.SyncData()
}

// copyDir copies a (failed, still open) catalog directory, standing in for
// a restart: the failed catalog keeps its lock on the original.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}

// TestFailStop is the fail-stop contract: a write whose WAL write or sync
// failed is not acknowledged, is never read (not even by the writer's own
// retry), stops every later operation, and is not there after a restart,
// while every acknowledged write is.
func TestFailStop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		arm     func(fs *faultFS)
		errno   syscall.Errno
		diskful bool
	}{
		{"write ENOSPC", func(fs *faultFS) { fs.failWrite.Store(true) }, syscall.ENOSPC, true},
		{"sync EIO", func(fs *faultFS) { fs.failSync.Store(true) }, syscall.EIO, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{FS: vfs.Default}
			c, err := Open(dir, &Options{FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			for _, lfn := range []string{"1001", "1002"} {
				if _, err := c.Create(t.Context(), lfn, "/SUM1/D"+lfn); err != nil {
					t.Fatal(err)
				}
			}
			tc.arm(fs)
			_, err = c.Create(t.Context(), "1003", "/SUM1/D1003")
			if !errors.Is(err, ErrFailed) || !errors.Is(err, tc.errno) {
				t.Fatalf("create on a failing WAL: got %v, want ErrFailed wrapping %v", err, tc.errno)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the data directory %s", err, dir)
			}
			var fe interface{ DiskFull() bool }
			if !errors.As(err, &fe) || fe.DiskFull() != tc.diskful {
				t.Errorf("DiskFull() of %v: want %v", err, tc.diskful)
			}
			select {
			case <-c.Failed():
			default:
				t.Fatal("Failed() not closed after a WAL error")
			}
			// Nothing is served any more: not the failed write, not the
			// acknowledged ones, and a retry is not told it exists.
			if _, err := c.LFNExists(t.Context(), "1003"); !errors.Is(err, ErrFailed) {
				t.Errorf("exists after failure: %v, want ErrFailed", err)
			}
			if _, err := c.QueryLFN(t.Context(), "1001"); !errors.Is(err, ErrFailed) {
				t.Errorf("query after failure: %v, want ErrFailed", err)
			}
			if _, err := c.Create(t.Context(), "1003", "/SUM1/D1003"); !errors.Is(err, ErrFailed) {
				t.Errorf("retried create: %v, want ErrFailed (not ALREADY_EXISTS)", err)
			}
			if err := c.Close(); !errors.Is(err, ErrFailed) {
				t.Errorf("close of a failed catalog: %v, want its failure", err)
			}

			// "Restart": open a copy of the directory as it was left.
			r, err := Open(copyDir(t, dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for lfn, want := range map[string]bool{"1001": true, "1002": true, "1003": false} {
				got, err := r.LFNExists(t.Context(), lfn)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("after restart, %s exists = %v, want %v", lfn, got, want)
				}
			}
			if st, err := r.Stats(t.Context()); err != nil || st.Mappings != 2 {
				t.Errorf("after restart, %d mappings (%v), want 2", st.Mappings, err)
			}
		})
	}
}
