//go:build !linux

package transfer

import (
	"errors"
	"os"
)

// pread is not needed where setDirect is unsupported: readRange never
// reads directly there.
func pread(f *os.File, p []byte, off int64) (int, error) { return 0, errors.ErrUnsupported }

const directAlign = 4096

func setDirect(f *os.File, on bool) error { return errors.ErrUnsupported }
