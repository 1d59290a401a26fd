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

// directAlign is the alignment O_DIRECT I/O needs here: of the file
// offset, the length and the buffer's address (the page size covers every
// logical block size in use).
const directAlign = 4096

// setDirect turns O_DIRECT on or off for f's open file description.
// Direct I/O moves bytes between the device and the caller's buffer
// without the page cache: no copy into or out of it, and no page cache
// pages to allocate (and on a VM, to fault in) for a bulk transfer that
// is read or written once. It fails (EINVAL) on a file system that does
// not support it; callers then go on without it.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		var fl int
		if fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr != nil {
			return
		}
		if on {
			fl |= unix.O_DIRECT
		} else {
			fl &^= unix.O_DIRECT
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl)
	}); err != nil {
		return err
	}
	return ferr
}
