package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// pread reads into p at off with one pread(2), unlike os.File.ReadAt,
// which loops on a short read: with O_DIRECT a short read means EOF, and
// a second read at the unaligned offset after it would fail with EINVAL.
func pread(f *os.File, p []byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if n, rerr = unix.Pread(int(fd), p, off); rerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, &os.PathError{Op: "pread", Path: f.Name(), Err: rerr}
	}
	return n, nil
}
