package transfer

// The security boundary of a Source: a PFN is resolved to an export root
// and a path under it, and files are opened through os.Root, so that "..",
// absolute escapes and symlinks out of a root are refused.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// ResolvePFN maps a PFN to the export root that holds it and its path
// relative to that root. The PFN must be an absolute path without NUL bytes
// and without ".." components, of at most MaxPathLen bytes with components
// of at most MaxNameLen, strictly under one of the roots once
// cleaned. Errors wrap ErrInvalid (malformed) or ErrRefused (outside the
// roots, or a root itself). It does not touch the file system.
func (s *Source) ResolvePFN(pfn string) (root string, rel string, err error) {
	i, rel, err := s.resolve(pfn)
	if err != nil {
		return "", "", err
	}
	return s.roots[i].path, rel, nil
}

func (s *Source) resolve(pfn string) (int, string, error) {
	switch {
	case pfn == "":
		return 0, "", fmt.Errorf("%w: empty PFN", ErrInvalid)
	case strings.IndexByte(pfn, 0) >= 0:
		return 0, "", fmt.Errorf("%w: PFN %s contains a NUL byte", ErrInvalid, quoteName(pfn))
	case !strings.HasPrefix(pfn, "/"):
		return 0, "", fmt.Errorf("%w: PFN %s is not an absolute path", ErrInvalid, quoteName(pfn))
	case hasDotDot(pfn):
		return 0, "", fmt.Errorf("%w: PFN %s has a \"..\" component", ErrRefused, quoteName(pfn))
	}
	if err := checkNameLens("PFN", pfn); err != nil {
		return 0, "", err
	}
	clean := path.Clean(pfn)
	for i, r := range s.roots {
		if clean == r.path {
			return 0, "", fmt.Errorf("%w: PFN %s is an export root, not a storage unit", ErrRefused, quoteName(pfn))
		}
		prefix := r.path
		if prefix != "/" {
			prefix += "/"
		}
		if rel, ok := strings.CutPrefix(clean, prefix); ok {
			return i, rel, nil
		}
	}
	return 0, "", fmt.Errorf("%w: PFN %s is not under an export root", ErrRefused, quoteName(pfn))
}

// fsError turns an error from an os.Root operation into one of the package
// sentinels, naming what.
func fsError(what string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist", ErrNotFound, what)
	case isEscape(err):
		return fmt.Errorf("%w: %s resolves outside its export root", ErrRefused, what)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %s: %v", ErrRefused, what, err)
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: %s does not exist (a path component is not a directory)", ErrNotFound, what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isEscape reports whether err is os.Root's refusal of a path that leaves
// the root ("path escapes from parent"). The os package does not export the
// error value, so its text is matched; TestSourceRefusesEscapes would catch a
// change.
func isEscape(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// openFile opens regular file p of unit pfn through its export root.
func (s *Source) openFile(pfn, p string) (*os.File, fs.FileInfo, fileID, error) {
	ri, unitRel, err := s.resolve(pfn)
	if err != nil {
		return nil, nil, fileID{}, err
	}
	if err := CleanPath(p); err != nil {
		return nil, nil, fileID{}, err
	}
	rel := path.Join(unitRel, p)
	f, err := openInRoot(s.roots[ri].root, rel)
	if err != nil {
		return nil, nil, fileID{}, fsError(fmt.Sprintf("file %q of %s", p, pfn), err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fileID{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fileID{}, fmt.Errorf("%w: %q of %s is a %v, not a regular file", ErrRefused, p, pfn, fi.Mode().Type())
	}
	return f, fi, fileID{ri, rel}, nil
}
