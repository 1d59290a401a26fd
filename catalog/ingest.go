package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Large batches of new keys are partly ingested as sorted tables instead of
// being applied through the write-ahead log and the memtable (as
// CockroachDB's IMPORT does for ranges that hold no keys yet).
//
// A bulk create of 10,000 sunums writes 50,000 keys in five tables (name
// records and mappings by LFN and by PFN, and the feed), each run of keys
// in key order. Applied as a batch, every key is written to the log, put in
// the memtable, flushed to level 0 and then rewritten by each compaction on
// its way down the tree: profiles of bulk loads showed two fifths of the CPU
// in flushes and compactions. A run of new LFN records ('L'), new mappings
// by LFN ('l') or feed records ('f') whose key range holds no key yet
// (new sunums; the feed only grows at its end) becomes one table file
// instead, written once, which Pebble links into the bottom level, where it
// never needs compacting. The other runs (PFN records and mappings by PFN,
// whose storage-unit paths interleave with those loaded before, and the
// state record) are applied as a batch as before: ingested, they would land
// in level 0 as small overlapping tables, each compacted with everything
// below it.
//
// The call stays atomic:
//   - for readers, because the catalog ingests and then applies the batch
//     while it holds the writers' lock, and reads that start in between
//     see a snapshot from before both (readView): a read sees both steps
//     or neither;
//   - across a crash, because the ingested keys are exactly those that did
//     not exist before the call, all named by its feed records, whose
//     sequence numbers pass the state record's until the batch (with the
//     state record) is durable. Open deletes the keys of any feed record
//     past the state record's sequence number (recoverIngest), which
//     restores the catalog as it was before the call.
//
// Only batches of sets (bulk creates and adds) are considered: their feed
// records are creates (a new LFN: its 'L' record and 'l' mapping did not
// exist) and adds (a new mapping: its 'l' key did not exist).

// ingestMinKeys is the least number of keys a run needs to be ingested:
// below it, a table file costs more than the log.
const ingestMinKeys = 2048

// ingestDir is the directory, inside the catalog's, where tables are built
// before Pebble links them in; whatever a crash left there is removed at
// Open.
const ingestDir = "ingest.tmp"

// ingestable reports whether a run of keys with this tag may be ingested:
// only the kinds of keys that recoverIngest can take back.
func ingestable(tag byte) bool {
	return tag == tagLFN || tag == tagLFNMapping || tag == tagFeed
}

// splitForIngest splits b into the runs to ingest and a batch of the rest
// (nil if nothing is to be ingested): b must hold only sets, with each
// tag's keys in increasing order in one run, and an ingestable run must
// be long enough and fall in a key range that holds no key yet. It runs
// with c.mu held.
func (c *Catalog) splitForIngest(b *pebble.Batch) (ingest []keyRun, rest *pebble.Batch, err error) {
	if int(b.Count()) < ingestMinKeys {
		return nil, nil, nil
	}
	var (
		runs []keyRun
		seen [256]bool
	)
	r := b.Reader()
	for {
		kind, k, v, ok, err := r.Next()
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			break
		}
		if kind != pebble.InternalKeyKindSet || len(k) == 0 {
			return nil, nil, nil
		}
		n := len(runs)
		if n == 0 || runs[n-1].tag != k[0] {
			if seen[k[0]] {
				return nil, nil, nil
			}
			seen[k[0]] = true
			runs = append(runs, keyRun{tag: k[0]})
			n++
		}
		run := &runs[n-1]
		if len(run.keys) > 0 && bytes.Compare(run.keys[len(run.keys)-1], k) >= 0 {
			return nil, nil, nil
		}
		run.keys = append(run.keys, k)
		run.values = append(run.values, v)
	}
	var keep []keyRun
	for _, run := range runs {
		if ingestable(run.tag) && len(run.keys) >= ingestMinKeys {
			empty, err := c.rangeEmpty(run.keys[0], run.keys[len(run.keys)-1])
			if err != nil {
				return nil, nil, err
			}
			if empty {
				ingest = append(ingest, run)
				continue
			}
		}
		keep = append(keep, run)
	}
	if len(ingest) == 0 {
		return nil, nil, nil
	}
	rest = c.db.NewBatchWithSize(len(b.Repr()))
	for _, run := range keep {
		for i, k := range run.keys {
			if err := rest.Set(k, run.values[i], nil); err != nil {
				_ = rest.Close()
				return nil, nil, err
			}
		}
	}
	return ingest, rest, nil
}

// rangeEmpty reports whether no key lies in [first, last].
func (c *Catalog) rangeEmpty(first, last []byte) (bool, error) {
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: first, UpperBound: append(append([]byte(nil), last...), 0)})
	if err != nil {
		return false, err
	}
	found := it.First()
	return !found, it.Close()
}

// keyRun is a run of a batch's keys in increasing order, all with one tag.
// Keys and values point into the batch.
type keyRun struct {
	tag          byte
	keys, values [][]byte
}

// buildTables writes each run into a new table file (synced) and returns
// their paths, and a function that removes the files, which the caller
// calls once Pebble has linked (or copied) them in, or on failure. It runs
// with c.mu held. An error changes nothing in the catalog.
func (c *Catalog) buildTables(runs []keyRun) (paths []string, remove func(), err error) {
	fs := c.ingestFS
	remove = func() {
		for _, p := range paths {
			_ = fs.Remove(p)
		}
	}
	if err := fs.MkdirAll(fs.PathJoin(c.dir, ingestDir), 0o755); err != nil {
		return nil, remove, err
	}
	c.ingestSeq++
	format := c.db.FormatMajorVersion().MaxTableFormat()
	for _, run := range runs {
		p := fs.PathJoin(c.dir, ingestDir, strconv.FormatUint(c.ingestSeq, 10)+"-"+strconv.Itoa(int(run.tag))+".sst")
		paths = append(paths, p)
		if err := c.writeTable(p, format, run); err != nil {
			return nil, remove, fmt.Errorf("catalog: build table for ingestion: %w", err)
		}
	}
	return paths, remove, nil
}

// commitIngest commits b, whose state record is set, as ingested runs and
// a batch of the rest (see splitForIngest), visible to readers at once. It
// runs with c.mu held and returns the function that waits for the rest to
// be durable, as commit does. Reads are not blocked: while Pebble links the
// tables in and the batch is applied, they see a snapshot of the catalog
// as before the call (see readView).
func (c *Catalog) commitIngest(b *pebble.Batch, runs []keyRun, rest *pebble.Batch) (wait func() error, err error) {
	paths, remove, err := c.buildTables(runs)
	defer remove()
	if err != nil {
		_ = rest.Close()
		return nil, err
	}
	pinned := c.pinReads()
	err = c.guard.Apply(func() error { return c.db.Ingest(context.Background(), paths) })
	if err == nil && c.failAfterIngest != nil { // tests: a crash between the two steps
		err = c.guard.Apply(c.failAfterIngest)
	}
	if err == nil {
		err = c.guard.Apply(func() error {
			if c.noSync {
				return c.db.Apply(rest, pebble.NoSync)
			}
			return c.db.ApplyNoSyncWait(rest, pebble.Sync)
		})
	}
	if err != nil {
		// The catalog has failed (guard.Apply): reads stay pinned to the
		// state before the call, and fail from now on.
		_ = rest.Close()
		return nil, err
	}
	c.unpinReads(pinned)
	if c.noSync {
		return func() error { _ = rest.Close(); return b.Close() }, nil
	}
	return func() error {
		if err := c.guard.Apply(rest.SyncWait); err != nil {
			return err // rest stays with Pebble, which may still hold it
		}
		_ = rest.Close()
		return b.Close()
	}, nil
}

// recoverIngest takes back the ingested part of a bulk write whose batch
// did not become durable before a crash: the keys of every feed record past
// the state record's sequence number, which did not exist before that
// write (see splitForIngest). It runs in Open, after the state is loaded.
func (c *Catalog) recoverIngest() error {
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: feedKey(c.state.seq + 1), UpperBound: []byte{tagFeed + 1}})
	if err != nil {
		return err
	}
	b := c.db.NewBatch()
	defer b.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[1:])
		ch, err := decodeChange(seq, it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		keys := [][]byte{feedKey(seq), pairKey(tagLFNMapping, ch.LFN, ch.PFN)}
		switch ch.Kind {
		case ChangeCreate:
			keys = append(keys, nameKey(tagLFN, ch.LFN))
		case ChangeAdd:
		default:
			_ = it.Close()
			return fmt.Errorf("catalog: feed record %d (%s) past the state record's sequence number %d", seq, ch.Kind, c.state.seq)
		}
		for _, k := range keys {
			if err := b.Delete(k, nil); err != nil {
				_ = it.Close()
				return err
			}
		}
		n++
	}
	if err := it.Close(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	c.logger.Warn("catalog: took back an interrupted bulk write", "records", n, "from_seq", c.state.seq+1)
	return c.db.Apply(b, pebble.Sync)
}

// writeTable writes one run into a new table file at path.
func (c *Catalog) writeTable(path string, format sstable.TableFormat, run keyRun) error {
	f, err := c.ingestFS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	// Written for the bottom level, where most runs go; the options of the
	// other levels are the same here.
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), c.tableOpts.MakeWriterOptions(len(c.tableOpts.Levels)-1, format))
	for i, k := range run.keys {
		if err := w.Set(k, run.values[i]); err != nil {
			_ = w.Close()
			return err
		}
	}
	return w.Close() // syncs and closes f
}

// removeIngestLeftovers removes the tables a crash left unlinked.
func removeIngestLeftovers(fs vfs.FS, dir string) error {
	tmp := fs.PathJoin(dir, ingestDir)
	names, err := fs.List(tmp)
	if err != nil {
		return nil // no such directory
	}
	for _, n := range names {
		if err := fs.Remove(fs.PathJoin(tmp, n)); err != nil {
			return err
		}
	}
	return nil
}
