package transfer

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/solar-archive/rls/internal/failstop"
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
//
// Like every store of rls it is fail-stop (internal/failstop): after a
// storage error it reads and writes nothing more, and the Source reports
// the failure through Err and Failed.
type digestDB struct {
	db    *pebble.DB
	guard *failstop.Guard
}

// digestRecordLen: size, mtime, inode and ctime (8 bytes each, big
// endian), then the digest.
const digestRecordLen = 4*8 + len(Digest{})

func openDigestDB(dir string, log *slog.Logger) (*digestDB, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("digest database %q: %w: not an absolute path", dir, ErrInvalid)
	}
	po := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebblelog.New(log),
	}
	guard := failstop.New("transfer digests", dir, log)
	guard.Configure(po)
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("digest database %s: %w", dir, err)
	}
	return &digestDB{db: db, guard: guard}, nil
}

// close closes the database; a failed one is left as it was fenced.
func (d *digestDB) close() error {
	if err := d.guard.Err(); err != nil {
		return err
	}
	return d.db.Close()
}

// get returns the record of file name if there is one and it is for key k.
func (d *digestDB) get(name string, k statKey) (cachedFile, bool) {
	if d.guard.Err() != nil {
		return cachedFile{}, false
	}
	v, closer, err := d.db.Get([]byte(name))
	if err != nil {
		return cachedFile{}, false
	}
	defer closer.Close()
	c, ok := decodeRecord(v)
	return c, ok && c.key == k
}

// decodeRecord decodes a record's value; false if it is not one.
func decodeRecord(v []byte) (cachedFile, bool) {
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
	return c, true
}

// put stores the record of file name.
func (d *digestDB) put(name string, c cachedFile) error {
	var v [digestRecordLen]byte
	binary.BigEndian.PutUint64(v[0:], uint64(c.key.size))
	binary.BigEndian.PutUint64(v[8:], uint64(c.key.mtime))
	binary.BigEndian.PutUint64(v[16:], uint64(c.key.ino))
	binary.BigEndian.PutUint64(v[24:], uint64(c.key.ctime))
	copy(v[32:], c.digest[:])
	return d.guard.Apply(func() error { return d.db.Set([]byte(name), v[:], pebble.NoSync) })
}

// pruneBatch is how many deletions prune commits at a time.
const pruneBatch = 1024

// prune deletes the records that can no longer be used: of a file that is
// gone, that is not under one of roots (absolute, clean), or whose stat
// key is no longer the record's (the file changed and was not hashed
// again since). A record is never used once its key is stale, so without
// this the records of deleted and rewritten files would pile up forever.
// It stats every file named (following symlinks, as the Source's reads
// do); a record it deletes wrongly, if the file changed back in between,
// costs one hash. It returns how many records it kept and deleted.
func (d *digestDB) prune(ctx context.Context, roots []string) (kept, deleted int, err error) {
	if err := d.guard.Err(); err != nil {
		return 0, 0, err
	}
	it, err := d.db.NewIterWithContext(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	b := d.db.NewBatch()
	defer func() { b.Close() }()
	flush := func() error {
		if b.Empty() {
			return nil
		}
		if err := d.guard.Apply(func() error { return b.Commit(pebble.NoSync) }); err != nil {
			return err
		}
		b.Close()
		b = d.db.NewBatch()
		return nil
	}
	for it.First(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return kept, deleted, err
		}
		name := string(it.Key())
		if !underRoot(name, roots) || !d.holds(name, it.Value()) {
			if err := b.Delete(it.Key(), nil); err != nil {
				return kept, deleted, err
			}
			deleted++
			if int(b.Count()) >= pruneBatch {
				if err := flush(); err != nil {
					return kept, deleted, err
				}
			}
			continue
		}
		kept++
	}
	if err := it.Error(); err != nil {
		return kept, deleted, err
	}
	return kept, deleted, flush()
}

// holds reports whether record v of file name is for the file's present
// stat key.
func (d *digestDB) holds(name string, v []byte) bool {
	c, ok := decodeRecord(v)
	if !ok {
		return false
	}
	fi, err := os.Stat(name)
	return err == nil && fi.Mode().IsRegular() && keyOf(fi) == c.key
}

func underRoot(name string, roots []string) bool {
	for _, r := range roots {
		if r == string(filepath.Separator) {
			return filepath.IsAbs(name)
		}
		if strings.HasPrefix(name, r) && len(name) > len(r) && name[len(r)] == filepath.Separator {
			return true
		}
	}
	return false
}
