//go:build !linux

package transfer

import (
	"errors"
	"os"
)

func zeroRange(f *os.File, off, n int64) error { return writeZeros(f, off, n) }

func exchange(a, b string) error { return errors.ErrUnsupported }

const canSyncFS = false

func syncFS(f *os.File) error { return errors.ErrUnsupported }

func devOf(f *os.File) (uint64, error) { return 0, errors.ErrUnsupported }

func openBlocking(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

func openInRoot(root *os.Root, name string) (*os.File, error) { return root.Open(name) }
