package transfer_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// directSupported reports whether the file system of dir does O_DIRECT.
func directSupported(t *testing.T, dir string) bool {
	t.Helper()
	name := filepath.Join(dir, ".direct-probe")
	must(t, os.WriteFile(name, make([]byte, 4096), 0o644))
	defer os.Remove(name)
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}
