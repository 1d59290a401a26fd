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
