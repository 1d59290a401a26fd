//go:build !linux

package transfer

import (
	"errors"
	"os"
)

func zeroRange(f *os.File, off, n int64) error { return writeZeros(f, off, n) }

func exchange(a, b string) error { return errors.ErrUnsupported }
