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

// openBlocking is os.OpenFile for the files and directories a pull writes
// and syncs with blocking calls. os.OpenFile hands every descriptor to the
// runtime's poller: two fcntl(2) to make it non-blocking, an
// epoll_ctl(2) that a regular file refuses, two more fcntl(2) to make it
// blocking again, and a close through the poller; on a batch of small
// units, a file or two each, that was as much as the open itself. Here an
// open costs one open(2) and one fcntl(2) (os.NewFile's check of the
// flags), and the file is read and written with plain pread/pwrite.
func openBlocking(name string, flag int, perm os.FileMode) (*os.File, error) {
	for {
		fd, err := unix.Open(name, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

// openInRoot opens file or directory name beneath root for reading. It
// asks for O_NONBLOCK, which changes nothing for a regular file or a
// directory (and makes the open of a FIFO return at once, to be refused
// as no regular file), because os.Root's opens hand the descriptor to
// the runtime's poller: one already non-blocking costs an epoll_ctl(2)
// that a regular file refuses, where a blocking one costs four fcntl(2)
// more to make it non-blocking and back. A source opens every file it
// serves, and every directory it lists.
func openInRoot(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
}
