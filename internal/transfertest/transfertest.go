// Package transfertest holds helpers shared by the transfer tests: the unit
// tests of package transfer and the integration tests that pull with real
// rlsd and rlsctl processes.
package transfertest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TreeDigest describes a directory tree: every entry's path, type and mode,
// and for files their size, mtime and SHA-256. Two trees are the same unit
// when their descriptions are equal.
func TreeDigest(t testing.TB, dir string) string {
	t.Helper()
	d, err := TreeDigestErr(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TreeDigestErr is TreeDigest for callers that cannot fail a test (other
// goroutines): it returns the error.
func TreeDigestErr(dir string) (string, error) {
	var buf bytes.Buffer
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			fmt.Fprintf(&buf, "%s dir %v\n", rel, fi.Mode())
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		fmt.Fprintf(&buf, "%s %v %d %d %x\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), h.Sum(nil))
		return nil
	})
	return buf.String(), err
}
