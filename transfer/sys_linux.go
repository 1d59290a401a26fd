package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// zeroRange makes [off, off+n) of f read as zeros without writing them,
// keeping the file sparse where the source's was.
func zeroRange(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		return writeZeros(f, off, n)
	}
	return err
}

// exchange swaps the directories at a and b atomically.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// canSyncFS: syncFS flushes a whole file system, so that files written
// without their own fsync can be synced in one call.
const canSyncFS = true

// syncFS flushes the file system that holds f: data and metadata of every
// file on it (syncfs(2)).
func syncFS(f *os.File) error {
	syncs.Add(1)
	return unix.Syncfs(int(f.Fd()))
}

// devOf is the device of the file system that holds f.
func devOf(f *os.File) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return st.Dev, nil
}
