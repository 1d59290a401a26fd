package transfer

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	"github.com/solar-archive/rls/internal/pebblelog"
)

// digestDB is the persistent layer of a Source's digest cache: a Pebble
// database that maps a file's absolute path to the (size, mtime, inode,
// ctime) it was hashed at and its SHA-256. A record holds only while the
// file's stat key is the one it names, as for the in-memory cache; a
// record of another key is replaced when the file is hashed again.
//
// Writes are not synced: a record lost in a crash costs one hash, and a
// record never says more than a hash computed for its key did. It is safe
// for concurrent use.
type digestDB struct {
	db *pebble.DB
}

// digestRecordLen: size, mtime, inode and ctime (8 bytes each, big
// endian), then the digest.
const digestRecordLen = 4*8 + len(Digest{})

func openDigestDB(dir string, log *slog.Logger) (*digestDB, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("digest database %q: %w: not an absolute path", dir, ErrInvalid)
	}
	db, err := pebble.Open(dir, &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebblelog.New(log),
	})
	if err != nil {
		return nil, fmt.Errorf("digest database %s: %w", dir, err)
	}
	return &digestDB{db: db}, nil
}

func (d *digestDB) close() error { return d.db.Close() }

// get returns the record of file name if there is one and it is for key k.
func (d *digestDB) get(name string, k statKey) (cachedFile, bool) {
	v, closer, err := d.db.Get([]byte(name))
	if err != nil {
		return cachedFile{}, false
	}
	defer closer.Close()
	if len(v) != digestRecordLen {
		return cachedFile{}, false
	}
	var c cachedFile
	c.key = statKey{
		size:  int64(binary.BigEndian.Uint64(v[0:])),
		mtime: int64(binary.BigEndian.Uint64(v[8:])),
		ino:   int64(binary.BigEndian.Uint64(v[16:])),
		ctime: int64(binary.BigEndian.Uint64(v[24:])),
	}
	copy(c.digest[:], v[32:])
	return c, c.key == k
}

// put stores the record of file name.
func (d *digestDB) put(name string, c cachedFile) error {
	var v [digestRecordLen]byte
	binary.BigEndian.PutUint64(v[0:], uint64(c.key.size))
	binary.BigEndian.PutUint64(v[8:], uint64(c.key.mtime))
	binary.BigEndian.PutUint64(v[16:], uint64(c.key.ino))
	binary.BigEndian.PutUint64(v[24:], uint64(c.key.ctime))
	copy(v[32:], c.digest[:])
	return d.db.Set([]byte(name), v[:], pebble.NoSync)
}
