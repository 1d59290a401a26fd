package transfer

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxEntries is the most entries a manifest may hold.
const MaxEntries = 1 << 20

// MaxManifestBytes bounds the size of a manifest a source builds, counted
// as its paths and versions plus entryOverhead a entry: about its size in
// the protobuf and JSON forms. A source refuses (ErrTooLarge) to list a
// unit with more, rather than build a reply no peer could take.
const MaxManifestBytes = 64 << 20

// entryOverhead is what an Entry takes in a manifest's encodings beyond its
// path and version: size, mode, mtime, SHA-256 and framing.
const entryOverhead = 96

// entrySize is the size of e counted against MaxManifestBytes.
func entrySize(e *Entry) int { return len(e.Path) + len(e.Version) + entryOverhead }

// MaxVersionLen is the longest Entry.Version a manifest may hold.
const MaxVersionLen = 128

// Digest is a SHA-256 digest. Its text form is lower-case hex.
type Digest [32]byte

func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is unset.
func (d Digest) IsZero() bool { return d == Digest{} }

func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*len(d) {
		return fmt.Errorf("sha256 %.80q: want %d hex digits", b, 2*len(d))
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("sha256 %.80q: %v", b, err)
	}
	return nil
}

// Entry is one directory or file of a unit.
type Entry struct {
	// Path is slash-separated and relative to the unit; see CleanPath.
	Path string `json:"path"`
	Dir  bool   `json:"dir,omitempty"`
	// Size in bytes; 0 for a directory.
	Size int64 `json:"size"`
	// Mode holds the permission bits (fs.ModePerm, setuid, setgid, sticky)
	// in Unix numbering, as in chmod.
	Mode  uint32    `json:"mode"`
	MTime time.Time `json:"mtime"`
	// SHA256 of a file's bytes; zero for a directory, and for files in a
	// manifest listed without digests (Source.FastManifest).
	SHA256 Digest `json:"sha256,omitzero"`
	// Version names the version of the file at the source that listed it
	// (a Source: its size, mtime, inode and ctime), for Range.Version; it
	// is opaque to others. Empty for a directory, or when unknown.
	Version string `json:"version,omitempty"`
}

// FileMode is the entry's mode as an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode {
	m := fs.FileMode(e.Mode & 0o777)
	if e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	if e.Dir {
		m |= fs.ModeDir
	}
	return m
}

// unixMode is the inverse of FileMode, for the permission bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// Manifest describes a unit: its directories and files, sorted by path in
// byte order (so a directory comes before what it holds). A Manifest is a
// value: nothing in this package changes one after it is returned.
type Manifest struct {
	PFN     string  `json:"pfn"`
	Entries []Entry `json:"entries"`
}

// TotalBytes is the sum of the files' sizes.
func (m *Manifest) TotalBytes() int64 {
	var n int64
	for i := range m.Entries {
		n += m.Entries[i].Size
	}
	return n
}

// Files counts the file entries.
func (m *Manifest) Files() int {
	n := 0
	for i := range m.Entries {
		if !m.Entries[i].Dir {
			n++
		}
	}
	return n
}

// Validate checks what a puller relies on before it creates anything from a
// manifest that came from outside: every path is clean and relative (see
// CleanPath), entries are sorted without duplicates, each entry's parent
// directory is listed before it (and is a directory), sizes are not
// negative, directories have no size or digest, and there are at most
// MaxEntries. Errors wrap ErrInvalid, or ErrRefused for paths that would
// escape the unit.
func (m *Manifest) Validate() error {
	if len(m.Entries) > MaxEntries {
		return fmt.Errorf("manifest: %w: %d entries, more than %d", ErrInvalid, len(m.Entries), MaxEntries)
	}
	dirs := make(map[string]bool)
	for i := range m.Entries {
		e := &m.Entries[i]
		if err := CleanPath(e.Path); err != nil {
			return fmt.Errorf("manifest entry %d: %w", i, err)
		}
		if i > 0 && m.Entries[i-1].Path >= e.Path {
			return fmt.Errorf("manifest entry %d: %w: path %q is not after %q (unsorted or duplicate)",
				i, ErrInvalid, e.Path, m.Entries[i-1].Path)
		}
		if parent := path.Dir(e.Path); parent != "." && !dirs[parent] {
			return fmt.Errorf("manifest entry %d: %w: parent of %q is not a directory listed before it", i, ErrInvalid, e.Path)
		}
		if e.Size < 0 {
			return fmt.Errorf("manifest entry %d: %w: %q has negative size %d", i, ErrInvalid, e.Path, e.Size)
		}
		if len(e.Version) > MaxVersionLen {
			return fmt.Errorf("manifest entry %d: %w: %q has a version of %d bytes, more than %d", i, ErrInvalid, e.Path, len(e.Version), MaxVersionLen)
		}
		if e.Mode&^0o7777 != 0 {
			return fmt.Errorf("manifest entry %d: %w: %q has mode %#o beyond permission bits", i, ErrInvalid, e.Path, e.Mode)
		}
		if e.Dir {
			if e.Size != 0 || !e.SHA256.IsZero() || e.Version != "" {
				return fmt.Errorf("manifest entry %d: %w: directory %q has a size, digest or version", i, ErrInvalid, e.Path)
			}
			dirs[e.Path] = true
		}
	}
	return nil
}

// checkDigests checks that every file of m has a digest.
func (m *Manifest) checkDigests() error {
	for i := range m.Entries {
		if e := &m.Entries[i]; !e.Dir && e.SHA256.IsZero() {
			return fmt.Errorf("manifest entry %d: %w: file %q has no digest", i, ErrInvalid, e.Path)
		}
	}
	return nil
}

// DecodeManifest parses a manifest in its JSON form and validates it.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Limits on the names a source serves and a puller accepts, as Linux sets
// them: a path component (a file name) of at most NAME_MAX bytes, a path
// of at most PATH_MAX.
const (
	MaxNameLen = 255
	MaxPathLen = 4096
)

// CleanPath checks that p is a path a unit may hold: non-empty,
// slash-separated, relative, clean (path.Clean(p) == p, so no "." or empty
// components and no trailing slash), without NUL bytes and without ".."
// components, of at most MaxPathLen bytes with components of at most
// MaxNameLen. An absolute path or a ".." component is ErrRefused (it would
// escape the unit); anything else malformed is ErrInvalid. Its errors
// quote at most the start of a long path (see quoteName).
func CleanPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty path", ErrInvalid)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%w: path %s contains a NUL byte", ErrInvalid, quoteName(p))
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: path %s is absolute", ErrRefused, quoteName(p))
	case hasDotDot(p):
		return fmt.Errorf("%w: path %s has a \"..\" component", ErrRefused, quoteName(p))
	case p == "." || path.Clean(p) != p:
		return fmt.Errorf("%w: path %s is not clean (want %s)", ErrInvalid, quoteName(p), quoteName(path.Clean(p)))
	}
	return checkNameLens("path", p)
}

// checkNameLens checks that p, a PFN or a path (what names it in errors),
// is at most MaxPathLen bytes and each of its components at most
// MaxNameLen: the file system would refuse longer ones (ENAMETOOLONG).
func checkNameLens(what, p string) error {
	if len(p) > MaxPathLen {
		return fmt.Errorf("%w: %s %s is %d bytes, longer than %d (PATH_MAX)", ErrInvalid, what, quoteName(p), len(p), MaxPathLen)
	}
	i := 0
	for c := range strings.SplitSeq(p, "/") {
		if len(c) > MaxNameLen {
			return fmt.Errorf("%w: %s %s: component %d is %d bytes, longer than %d (NAME_MAX)", ErrInvalid, what, quoteName(p), i, len(c), MaxNameLen)
		}
		i++
	}
	return nil
}

// quoteName quotes a name for an error message; of a long one, only the
// first 128 bytes and its length, so that a request with a name of
// megabytes does not put megabytes into the reply and the log.
func quoteName(s string) string {
	const max = 128
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// hasDotDot reports whether a slash-separated path has a ".." component.
func hasDotDot(p string) bool {
	for c := range strings.SplitSeq(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}
