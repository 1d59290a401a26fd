package transfer

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Digest returns the SHA-256 of the manifest's canonical form: for each
// entry in order, its path, kind, size, permission bits and file digest,
// one line each. The PFN, mtimes and source versions are left out, so that
// every site holding the same unit computes the same digest. It is zero if
// a file has no digest.
func (m *Manifest) Digest() Digest {
	h := sha256.New()
	var line []byte
	for i := range m.Entries {
		e := &m.Entries[i]
		if !e.Dir && e.SHA256.IsZero() {
			return Digest{}
		}
		kind := byte('f')
		if e.Dir {
			kind = 'd'
		}
		line = append(line[:0], e.Path...)
		line = append(line, '\t', kind, '\t')
		line = strconv.AppendInt(line, e.Size, 10)
		line = append(line, '\t')
		line = strconv.AppendUint(line, uint64(e.Mode), 8)
		line = append(line, '\t')
		line = append(line, e.SHA256.String()...)
		line = append(line, '\n')
		h.Write(line)
	}
	var d Digest
	h.Sum(d[:0])
	return d
}

// CheckInPlace reports whether directory dir holds exactly the unit m
// describes: the same directories and files, no others, each file of its
// size and SHA-256. A mismatch wraps ErrCorrupt; m must have digests.
// It reads every file once.
func CheckInPlace(dir string, m *Manifest) error {
	if err := m.checkDigests(); err != nil {
		return err
	}
	want := make(map[string]*Entry, len(m.Entries))
	for i := range m.Entries {
		want[filepath.FromSlash(m.Entries[i].Path)] = &m.Entries[i]
	}
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		e := want[rel]
		switch {
		case e == nil:
			return fmt.Errorf("%w: %s is not in the manifest", ErrCorrupt, rel)
		case e.Dir != d.IsDir() || (!e.Dir && !d.Type().IsRegular()):
			return fmt.Errorf("%w: %s is not a %s", ErrCorrupt, rel, map[bool]string{true: "directory", false: "regular file"}[e.Dir])
		}
		seen++
		if e.Dir {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		var got Digest
		h.Sum(got[:0])
		if n != e.Size || got != e.SHA256 {
			return fmt.Errorf("%w: %s does not match the manifest (size %d, want %d)", ErrCorrupt, rel, n, e.Size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seen != len(m.Entries) {
		return fmt.Errorf("%w: %s holds %d of the manifest's %d entries", ErrCorrupt, dir, seen, len(m.Entries))
	}
	return nil
}

// checkInPlace settles the units whose destination existed (see
// PullOptions.InPlace) once their manifests are in: placed if the
// destination matches, ErrExists if not.
func (p *puller) checkInPlace() {
	for _, u := range p.units {
		if !u.inPlace || u.state.Load() != unitRunning {
			continue
		}
		if !u.state.CompareAndSwap(unitRunning, unitFinishing) {
			continue
		}
		err := CheckInPlace(u.dest, u.m)
		u.elapsed = time.Since(u.start)
		if err != nil {
			u.err = fmt.Errorf("pull %s: %w: %s is there and differs: %v", u.pfn, ErrExists, u.dest, err)
			u.state.Store(unitFailed)
			continue
		}
		if err := p.beforePlace(u); err != nil {
			p.failPlacing(u, err)
			continue
		}
		u.state.Store(unitPlaced)
		u.log.Info("found in place", "dest", u.dest, "bytes", u.m.TotalBytes())
		removeStaleStaging(u.dest)
		p.placed(u)
	}
}

// placed reports a placed unit to PullOptions.OnPlaced.
func (p *puller) placed(u *unitPull) {
	if p.o.OnPlaced != nil {
		p.o.OnPlaced(u.index, p.result(u))
	}
}

// removeStaleStaging removes what a pull that placed dest and died before
// it cleaned up left in StagingDir(dest): the unit is in place, so that
// staging holds nothing of use. A staging directory another pull holds
// (locked) is left alone.
func removeStaleStaging(dest string) {
	dir := StagingDir(dest)
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	st, _, err := openStaging(dir, true)
	if err != nil {
		return
	}
	st.close(true)
}
