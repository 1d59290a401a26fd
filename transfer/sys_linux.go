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
