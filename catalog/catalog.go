package catalog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/solar-archive/rls/internal/failstop"
	"github.com/solar-archive/rls/internal/pebblelog"
)

// Options tune a catalog. The zero value (or nil) is the safe default.
type Options struct {
	// NoSync acknowledges writes once they are applied and handed to the
	// write-ahead log, without waiting for the log to be fsynced. A process
	// crash (kill -9) may then lose the last few milliseconds of acknowledged
	// writes, and an OS crash or power loss a little more; the catalog stays
	// consistent either way (the log is replayed as a prefix). Use it for
	// bulk loads that can be redone, and in tests.
	NoSync bool

	// CacheSize is the size in bytes of the block cache for reads. Default
	// 256 MiB. (Pebble charges memtables to the block cache; the catalog
	// adds their size on top, so that this much stays for reads.)
	CacheSize int64

	// MemTableSize is the size in bytes of each memtable; up to four may be
	// in memory at once. Larger memtables absorb bulk loads with fewer
	// flushes. Default 32 MiB.
	MemTableSize uint64

	// Logger receives Pebble's messages and the catalog's own. Default
	// slog.Default().
	Logger *slog.Logger

	// FS is the file system the catalog's files live on. Default the
	// operating system's (vfs.Default); tests use it to inject faults.
	FS vfs.FS
}

// Catalog is an open local replica catalog in Pebble: the embedded Store. It
// is safe for concurrent use. Its change-feed positions are dense: every
// record's Seq is the one before plus 1.
type Catalog struct {
	db     *pebble.DB
	logger *slog.Logger
	noSync bool
	// guard stops the catalog at its first storage error (see Err).
	guard *failstop.Guard

	// views is what reads of mappings, attributes and the feed look at:
	// the live store, or a snapshot while a bulk write ingests tables and
	// applies the rest of its batch (view.go), so that no read sees one
	// without the other.
	views views

	// closeMu is held shared by every operation and exclusively by Close,
	// so that Close waits for operations in flight and none starts after.
	closeMu sync.RWMutex
	closed  bool

	// mu serializes writers: it is held while a write reads what it must
	// check, builds its batch and applies it (but not while it waits for the
	// fsync, so that writers share syncs).
	mu    sync.Mutex
	state counts // guarded by mu; the counts after the last applied write
	// stripes[h] is the sequence number of the last write to a name record
	// or mapping whose key hashes to h (guarded by mu). Writers read records
	// before taking mu and use it to tell which of those reads are stale.
	stripes [stripes]uint64

	// dir, ingestFS and tableOpts are what ingest (ingest.go) needs to
	// build table files; ingestSeq numbers its files (guarded by mu).
	dir       string
	ingestFS  vfs.FS
	tableOpts *pebble.Options
	ingestSeq uint64
	// failAfterIngest, when set (by tests), runs between the ingest and
	// the batch of a write, and its error fails the catalog there.
	failAfterIngest func() error

	// queue holds single writes waiting for a group commit (group.go);
	// batches counts the batches committed (for tests).
	queue   writeQueue
	batches atomic.Uint64

	// stats mirrors state for lock-free readers.
	stats struct {
		seq, lfns, pfns, mappings atomic.Uint64
	}
	firstSeq atomic.Uint64 // oldest feed record kept
	// incarnation is set by Open and never changes (see Incarnation).
	incarnation [IncarnationLen]byte

	notifyMu sync.Mutex
	notifyCh chan struct{} // closed and replaced after every write that appends to the feed
}

// counts is the persistent state record, rewritten by every write that
// changes it, in the same batch.
type counts struct {
	seq, lfns, pfns, mappings uint64
}

func (s counts) encode() []byte {
	b := make([]byte, 0, 4*binary.MaxVarintLen64)
	b = binary.AppendUvarint(b, s.seq)
	b = binary.AppendUvarint(b, s.lfns)
	b = binary.AppendUvarint(b, s.pfns)
	return binary.AppendUvarint(b, s.mappings)
}

func decodeCounts(b []byte) (counts, error) {
	var s counts
	for _, p := range []*uint64{&s.seq, &s.lfns, &s.pfns, &s.mappings} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return counts{}, errors.New("catalog: corrupt state record")
		}
		*p, b = v, b[n:]
	}
	return s, nil
}

// Open opens the catalog in dir, creating it if needed. Only one process may
// have a directory open at a time. The caller must Close the catalog.
func Open(dir string, opts *Options) (*Catalog, error) {
	if opts == nil {
		opts = &Options{}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = 256 << 20
	}
	memTable := opts.MemTableSize
	if memTable == 0 {
		memTable = 32 << 20
	}
	const memTables = 4
	cache := pebble.NewCache(cacheSize + memTables*int64(memTable))
	defer cache.Unref()
	po := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                memTable,
		MemTableStopWritesThreshold: memTables,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       24,
		LBaseMaxBytes:               256 << 20,
		FormatMajorVersion:          pebble.FormatNewest,
		Logger:                      pebblelog.New(logger),
		FS:                          opts.FS,
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	guard := failstop.New("catalog", dir, logger)
	guard.Configure(po)
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", dir, err)
	}
	if err := removeIngestLeftovers(po.FS, dir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("catalog: open %s: %w", dir, err)
	}
	c := &Catalog{db: db, logger: logger, noSync: opts.NoSync, guard: guard, notifyCh: make(chan struct{}),
		dir: dir, ingestFS: po.FS, tableOpts: po.Clone()}
	c.tableOpts.EnsureDefaults()
	c.views.cur = &readView{r: db}
	if err := c.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("catalog: open %s: %w", dir, err)
	}
	return c, nil
}

// IncarnationLen is the length of a catalog incarnation in bytes.
const IncarnationLen = 16

// Incarnation returns the catalog's incarnation: 128 random bits made when
// the catalog was created (or, for a catalog made before incarnations
// existed, when it was first opened since) and stored with it. A catalog
// rebuilt from scratch gets a new one, so that change-feed sequence
// numbers, which start over with it, are compared only within one
// incarnation (soft-state updates carry both).
func (c *Catalog) Incarnation() [IncarnationLen]byte { return c.incarnation }

// loadIncarnation reads the incarnation, making and durably storing one if
// the catalog has none.
func (c *Catalog) loadIncarnation() error {
	v, closer, err := c.db.Get(incarnationKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if _, err := rand.Read(c.incarnation[:]); err != nil {
			return err
		}
		return c.db.Set(incarnationKey, c.incarnation[:], pebble.Sync)
	case err != nil:
		return err
	}
	defer closer.Close()
	if len(v) != IncarnationLen {
		return fmt.Errorf("catalog: corrupt incarnation record (%d bytes)", len(v))
	}
	copy(c.incarnation[:], v)
	return nil
}

// load reads the incarnation, the state record and the feed's horizon.
func (c *Catalog) load() error {
	if err := c.loadIncarnation(); err != nil {
		return err
	}
	v, closer, err := c.db.Get(stateKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return err
	default:
		c.state, err = decodeCounts(v)
		closer.Close()
		if err != nil {
			return err
		}
	}
	if err := c.recoverIngest(); err != nil {
		return err
	}
	c.publish()
	first := c.state.seq + 1
	it, err := c.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagFeed}, UpperBound: []byte{tagFeed + 1}})
	if err != nil {
		return err
	}
	if it.First() {
		first = binary.BigEndian.Uint64(it.Key()[1:])
	}
	c.firstSeq.Store(first)
	return it.Close()
}

func (c *Catalog) publish() {
	c.stats.seq.Store(c.state.seq)
	c.stats.lfns.Store(c.state.lfns)
	c.stats.pfns.Store(c.state.pfns)
	c.stats.mappings.Store(c.state.mappings)
}

// Close waits for operations in flight, then closes the catalog. Operations
// called after Close return ErrClosed. Close is idempotent.
//
// Close of a failed catalog (see Err) returns the failure at once and leaves
// Pebble's files as they are: operations stuck inside Pebble are not waited
// for, and nothing more is written. The next Open recovers exactly the
// acknowledged writes.
func (c *Catalog) Close() error {
	if err := c.guard.Err(); err != nil {
		return err
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.notifyMu.Lock()
	close(c.notifyCh) // wake waiters; they find the catalog closed
	c.notifyMu.Unlock()
	c.views.retired.Wait() // the snapshots of bulk writes' windows
	return c.db.Close()
}

// enter starts an operation, unless ctx has ended; the caller must call
// c.leave when done.
func (c *Catalog) enter(ctx context.Context, op string) error {
	if err := canceled(ctx, op); err != nil {
		return err
	}
	if err := c.guard.Err(); err != nil {
		return err
	}
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return fmt.Errorf("catalog: %s: %w", op, ErrClosed)
	}
	if err := c.guard.Err(); err != nil {
		c.closeMu.RUnlock()
		return err
	}
	return nil
}

// Err returns nil while the catalog is healthy. After a storage error (a
// write-ahead-log write or sync that failed, a full disk, a flush that
// cannot be written) it returns that failure, which wraps ErrFailed and the
// cause (errors.Is(err, syscall.ENOSPC) tells a full disk), and every
// operation returns it too: the catalog serves nothing more, so that no
// write that was not made durable is ever read. The process should exit;
// after a restart the catalog holds exactly the acknowledged writes.
func (c *Catalog) Err() error { return c.guard.Err() }

// Failed is closed when the catalog fails (see Err).
func (c *Catalog) Failed() <-chan struct{} { return c.guard.Done() }

func (c *Catalog) leave() { c.closeMu.RUnlock() }

// canceled returns an error wrapping ctx's, naming op, once ctx has ended.
// It is never an *Error: it concerns the call, not an item.
func canceled(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("catalog: %s: %w", op, err)
	}
	return nil
}

// checkEvery is how many items or keys a long scan or bulk call handles
// between two checks of its context.
const checkEvery = 256

// Stats returns the catalog's counts as of the last applied write. It reads
// in-memory counters and the attribute definitions and does not block
// writers.
func (c *Catalog) Stats(ctx context.Context) (Stats, error) {
	if err := c.enter(ctx, "stats"); err != nil {
		return Stats{}, err
	}
	defer c.leave()
	defs, err := attrDefs(c.db, 0)
	if err != nil {
		return Stats{}, err
	}
	return Stats{
		LFNs:     c.stats.lfns.Load(),
		PFNs:     c.stats.pfns.Load(),
		Mappings: c.stats.mappings.Load(),
		Seq:      c.stats.seq.Load(),
		FirstSeq: c.firstSeq.Load(),
		AttrDefs: uint64(len(defs)),
	}, nil
}

// StorageStats returns Pebble's figures: disk use and compaction debt. It
// costs a pass over Pebble's metrics, so call it for stats and scrapes, not
// per request.
func (c *Catalog) StorageStats(ctx context.Context) (StorageStats, error) {
	if err := c.enter(ctx, "storage stats"); err != nil {
		return StorageStats{}, err
	}
	defer c.leave()
	m := c.db.Metrics()
	return StorageStats{
		DiskBytes:           m.DiskSpaceUsage(),
		CompactionDebtBytes: m.Compact.EstimatedDebt,
		CompactionsRunning:  uint64(m.Compact.NumInProgress),
	}, nil
}

// LastSeq returns the sequence number of the last change-feed record (0 if
// none was ever written). It reads an in-memory counter: ctx is not
// consulted, and the error is always nil.
func (c *Catalog) LastSeq(context.Context) (uint64, error) { return c.stats.seq.Load(), nil }

// Notify returns a channel that is closed after the next write that appends
// to the change feed is applied (or when the catalog closes). Call it before
// reading the feed to not miss a write.
func (c *Catalog) Notify() <-chan struct{} {
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	return c.notifyCh
}

func (c *Catalog) wake() {
	c.notifyMu.Lock()
	close(c.notifyCh)
	c.notifyCh = make(chan struct{})
	c.notifyMu.Unlock()
}

// commit applies the batch built under c.mu and, unless NoSync, returns a
// function that waits for it to be durable. The caller holds c.mu and must
// release it before calling wait, so that concurrent writers share fsyncs.
func (c *Catalog) commit(b *pebble.Batch, next counts) (wait func() error, err error) {
	if next != c.state {
		if err := b.Set(stateKey, next.encode(), nil); err != nil {
			return nil, err
		}
	}
	runs, rest, err := c.splitForIngest(b)
	if err != nil {
		return nil, err
	}
	if runs != nil {
		wait, err = c.commitIngest(b, runs, rest)
	} else {
		err = c.guard.Apply(func() error {
			if c.noSync {
				return c.db.Apply(b, pebble.NoSync)
			}
			return c.db.ApplyNoSyncWait(b, pebble.Sync)
		})
	}
	if err != nil {
		return nil, err
	}
	c.batches.Add(1)
	feedGrew := next.seq != c.state.seq
	c.state = next
	c.publish()
	if feedGrew {
		c.wake()
	}
	if wait != nil {
		return wait, nil
	}
	if c.noSync {
		return b.Close, nil
	}
	return func() error {
		if err := c.guard.Apply(b.SyncWait); err != nil {
			return err // b stays with Pebble, which may still hold it
		}
		return b.Close()
	}, nil
}
