package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/solar-archive/rls/internal/failstop"
	"github.com/solar-archive/rls/internal/pebblelog"
)

// storeCacheSize is the block cache of a Store (Pebble's default size):
// its working set (the records and index keys of the units in flight and
// due, and the tables' filters) is small, and RSS must stay bounded
// however many sunums the store holds.
const storeCacheSize = 8 << 20

// StoreOptions tune a Store. The zero value is the durable default.
type StoreOptions struct {
	// NoSync acknowledges writes before the WAL is synced (tests only).
	NoSync bool
	// FS is the file system; default the OS's (tests use vfs.NewMem()).
	FS vfs.FS
	// Logger receives a line per state change and Pebble's messages.
	Logger *slog.Logger
	// OnChange, if set, is called after each committed change of a record,
	// in commit order, with the record before (nil if new) and after (nil
	// if removed). It must not call the store.
	OnChange func(old, new *Record)
	// CachedRecords is how many records of units in flight (in a state
	// other than DONE and INVD) the store keeps decoded in memory (see
	// recordCache); default DefaultCachedRecords, negative for none.
	CachedRecords int
}

// DefaultCachedRecords is the default StoreOptions.CachedRecords: a few
// windows of every lane, a few MiB.
const DefaultCachedRecords = 16384

// Store is the durable mirror state: one Record per sunum, in Pebble. It is
// safe for concurrent use. Every write is one synced batch: when a method
// returns nil, its changes survive kill -9.
type Store struct {
	db   *pebble.DB
	log  *slog.Logger
	opts StoreOptions
	wo   *pebble.WriteOptions

	// mu serializes read-modify-write of records; it is held while a
	// batch is built and committed.
	mu      sync.Mutex
	counts  [INVD + 1]int64 // records per state; guarded by mu
	changed chan struct{}   // closed and replaced after each commit; guarded by mu
	closed  bool

	// guard stops the store at its first storage error (see Err).
	guard *failstop.Guard

	cache recordCache
	// commits counts update's commits; changed under mu.
	commits atomic.Uint64
	// reads counts the records read from Pebble (not from the cache), so
	// that tests can hold the scheduler to what it must read.
	reads atomic.Int64
}

// OpenStore opens (creating if needed) the store in dir.
func OpenStore(dir string, opts *StoreOptions) (*Store, error) {
	if opts == nil {
		opts = &StoreOptions{}
	}
	s := &Store{opts: *opts, log: opts.Logger, changed: make(chan struct{}), wo: pebble.Sync}
	s.cache.init(opts.CachedRecords)
	if s.log == nil {
		s.log = slog.Default()
	}
	if opts.NoSync {
		s.wo = pebble.NoSync
	}
	// Every state change reads the record first (a point Get), and the
	// records are rewritten often, so flushes leave many small tables:
	// bloom filters let a Get skip the tables that do not hold its key,
	// and the block cache keeps the rest off the file system.
	cache := pebble.NewCache(storeCacheSize)
	defer cache.Unref()
	po := &pebble.Options{FS: opts.FS, Logger: pebblelog.New(s.log), FormatMajorVersion: pebble.FormatNewest, Cache: cache}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	s.guard = failstop.New("mirror", dir, s.log)
	s.guard.Configure(po)
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("mirror: open store %s: %w", dir, err)
	}
	s.db = db
	// Count records per state from the state index (keys only).
	for _, st := range States {
		n := 0
		err := s.scan([]byte{tagState, byte(st)}, nil, func(k, _ []byte) bool { n++; return true })
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		s.counts[st] = int64(n)
	}
	return s, nil
}

// Err returns nil while the store is healthy, and its failure after a
// storage error (a full disk, a write or sync that failed): it then reads
// and writes nothing more, so that no state change that was not durable is
// acted on, and the process should exit. See internal/failstop.
func (s *Store) Err() error { return s.guard.Err() }

// Failed is closed when the store fails (see Err).
func (s *Store) Failed() <-chan struct{} { return s.guard.Done() }

// Close closes the store. Close of a failed store returns its failure and
// leaves the files as they were fenced.
func (s *Store) Close() error {
	if err := s.guard.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}

// get reads the record of sunum from Pebble (nil if unknown). The caller
// owns the record.
func (s *Store) get(r pebble.Reader, sunum uint64) (*Record, error) {
	if err := s.guard.Err(); err != nil {
		return nil, err
	}
	s.reads.Add(1)
	v, closer, err := r.Get(recordKey(sunum))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return decodeRecord(sunum, v)
}

// Get returns the records of sunums, nil for those not known: those of
// units in flight from the cache (one read from Pebble is cached for the
// state changes and re-checks that follow), the others from Pebble. Each
// is a copy the caller may change. Get does not wait for writers, but
// to cache a record it read.
func (s *Store) Get(sunums []uint64) ([]*Record, error) {
	if err := s.guard.Err(); err != nil {
		return nil, err
	}
	out := make([]*Record, len(sunums))
	for i, n := range sunums {
		if r, ok := s.cache.get(n); ok {
			out[i] = r.clone()
			continue
		}
		gen := s.commits.Load()
		r, err := s.get(s.db, n)
		if err != nil {
			return nil, err
		}
		if r != nil && cacheable(r.State) {
			if r, err = s.cacheRead(n, r, gen); err != nil {
				return nil, err
			}
			r = r.clone()
		}
		out[i] = r
	}
	return out, nil
}

// cacheRead caches r, the record of sunum that Get read from Pebble when
// the store had made gen commits, and returns the record to cache: r if
// nothing was committed since (so r is what is committed), else the
// record as committed now, read again under mu.
func (s *Store) cacheRead(sunum uint64, r *Record, gen uint64) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if c, ok := s.cache.get(sunum); ok {
		return c, nil
	}
	if s.commits.Load() != gen {
		return s.lookup(sunum)
	}
	s.cache.put(sunum, r)
	return r, nil
}

// mutation is what update's fn decides for one record.
type mutation uint8

const (
	keep mutation = iota
	write
	remove
	// writeHook writes a DONE record and marks its on-done hook pending
	// (see pendingHooks), in the same batch.
	writeHook
)

// update reads the record of each sunum (nil if unknown; from the cache
// if it holds it), lets fn change it, and writes every changed record,
// with the index keys that changed, in one synced batch. fn gets a copy it
// may modify. A record whose state changes gets Changed = now and a log
// line. update returns the records after the change (nil for unknown or
// removed ones), which the caller must not modify: the cache may hold
// them.
func (s *Store) update(sunums []uint64, now time.Time, fn func(sunum uint64, r *Record) (*Record, mutation)) ([]*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	b := s.db.NewBatch()
	defer b.Close()
	type change struct{ old, new *Record }
	var changes []change
	out := make([]*Record, len(sunums))
	seen := make(map[uint64]*Record, len(sunums))
	for i, n := range sunums {
		old, ok := seen[n]
		if !ok {
			var err error
			if old, err = s.lookup(n); err != nil {
				return nil, err
			}
		}
		var in *Record
		if old != nil {
			in = old.clone()
		}
		nr, m := fn(n, in)
		switch m {
		case keep:
			out[i] = old
			continue
		case remove:
			nr = nil
		}
		if nr != nil {
			nr.Sunum = n
			if old == nil || old.State != nr.State {
				nr.Changed = now
			}
			if !nr.State.scheduled() {
				nr.Due = time.Time{}
			}
		}
		if err := writeKeys(b, n, old, nr, m); err != nil {
			return nil, err
		}
		seen[n] = nr
		out[i] = nr
		changes = append(changes, change{old, nr})
	}
	if b.Empty() {
		return out, nil
	}
	if err := s.guard.Apply(func() error { return b.Commit(s.wo) }); err != nil {
		return nil, fmt.Errorf("mirror: store: %w", err)
	}
	s.commits.Add(1)
	for _, c := range changes {
		if c.new != nil {
			s.cache.put(c.new.Sunum, c.new)
		} else {
			s.cache.remove(c.old.Sunum)
		}
		if c.old != nil {
			s.counts[c.old.State]--
		}
		if c.new != nil {
			s.counts[c.new.State]++
		}
		s.logChange(c.old, c.new, now)
		if s.opts.OnChange != nil {
			s.opts.OnChange(c.old, c.new)
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return out, nil
}

// writeKeys adds to b the change of sunum's record from old to nr (nil
// for none), with m: the record, the index keys that change (each record's
// computed once: a PNDG re-check changes only its due key), and the
// on-done mark.
func writeKeys(b *pebble.Batch, sunum uint64, old, nr *Record, m mutation) error {
	var had, has [][]byte
	if old != nil {
		had = old.indexKeys()
	}
	if nr != nil {
		has = nr.indexKeys()
	}
	in := func(ks [][]byte, k []byte) bool {
		return slices.ContainsFunc(ks, func(o []byte) bool { return bytes.Equal(o, k) })
	}
	for _, k := range had {
		if !in(has, k) {
			if err := b.Delete(k, nil); err != nil {
				return err
			}
		}
	}
	if old != nil && old.State == DONE && (nr == nil || nr.State != DONE) {
		if err := b.Delete(hookKey(sunum), nil); err != nil {
			return err
		}
	}
	if m == writeHook && nr != nil && nr.State == DONE {
		if err := b.Set(hookKey(sunum), nil, nil); err != nil {
			return err
		}
	}
	if nr == nil {
		return b.Delete(recordKey(sunum), nil)
	}
	if err := b.Set(recordKey(sunum), nr.encode(nil), nil); err != nil {
		return err
	}
	for _, k := range has {
		if !in(had, k) {
			if err := b.Set(k, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookup returns the record of sunum as committed (nil if unknown), from
// the cache or from Pebble, and caches what it read. The caller holds mu
// and must not modify the record.
func (s *Store) lookup(sunum uint64) (*Record, error) {
	if r, ok := s.cache.get(sunum); ok {
		return r, nil
	}
	r, err := s.get(s.db, sunum)
	if err == nil && r != nil {
		s.cache.put(sunum, r)
	}
	return r, err
}

// logChange writes the line of a state change: sunum, from, to, source,
// bytes, how long the record spent in its former state, reason.
func (s *Store) logChange(old, new *Record, now time.Time) {
	switch {
	case new == nil && old != nil:
		s.log.Info("mirror state", "sunum", old.Sunum, "from", old.State.String(), "to", "removed")
	case new != nil && (old == nil || old.State != new.State):
		from, dur := "-", time.Duration(0)
		if old != nil {
			from, dur = old.State.String(), now.Sub(old.Changed)
		}
		s.log.Info("mirror state", "sunum", new.Sunum, "from", from, "to", new.State.String(),
			"series", new.Series, "lane", new.Lane.String(), "source", new.Source, "bytes", new.Bytes,
			"duration", dur, "reason", new.Reason)
	}
}

// Changed returns a channel closed at the next committed change.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Counts returns the number of records per state.
func (s *Store) Counts() map[State]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[State]int64, len(States))
	for _, st := range States {
		m[st] = s.counts[st]
	}
	return m
}

// Accept records requests durably and idempotently (see Acceptor): an
// unknown sunum becomes NQUE, due now, in its lane; a user request for a
// sunum queued in the bulk lane moves it to the user lane; anything else
// known stays as it is (DONE stays DONE; INVD and FAIL wait for Retry or
// their retry time). A missing series is filled in. It returns the sunums
// that were new, and those moved to the user lane.
func (s *Store) Accept(reqs []Request, now time.Time) (added, promoted []uint64, err error) {
	for i, q := range reqs {
		if strings.IndexByte(q.Series, 0) >= 0 {
			return nil, nil, fmt.Errorf("%w: request %d (sunum %d): series contains a NUL byte", ErrInvalid, i, q.Sunum)
		}
		if q.Priority != LaneBulk && q.Priority != LaneUser {
			return nil, nil, fmt.Errorf("%w: request %d (sunum %d): unknown priority %d", ErrInvalid, i, q.Sunum, q.Priority)
		}
	}
	byNum := make(map[uint64]Request, len(reqs))
	sunums := make([]uint64, 0, len(reqs))
	for _, q := range reqs {
		p, dup := byNum[q.Sunum]
		if !dup {
			sunums = append(sunums, q.Sunum)
		} else {
			q.Priority = max(q.Priority, p.Priority)
			q.Series = cmpOr(q.Series, p.Series)
		}
		byNum[q.Sunum] = q
	}
	_, err = s.update(sunums, now, func(n uint64, r *Record) (*Record, mutation) {
		q := byNum[n]
		if r == nil {
			added = append(added, n)
			return &Record{State: NQUE, Series: q.Series, Lane: q.Priority, Enqueued: now, Due: now}, write
		}
		m := keep
		if r.Series == "" && q.Series != "" {
			r.Series, m = q.Series, write
		}
		if q.Priority == LaneUser && r.Lane == LaneBulk && r.State != DONE && r.State != INVD {
			r.Lane, m = LaneUser, write
			if r.State == FAIL || r.State == PNDG {
				r.Due = now // a user asks now
			}
			promoted = append(promoted, n)
		}
		return r, m
	})
	if err != nil {
		return nil, nil, err
	}
	return added, promoted, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// hooksRan clears the pending marks of sunums, durably: Pebble keeps an
// unsynced write in its buffer until the next sync, so a kill would bring
// back marks of hooks that ran long before.
func (s *Store) hooksRan(sunums []uint64) error {
	if len(sunums) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, n := range sunums {
		if err := b.Delete(hookKey(n), nil); err != nil {
			return err
		}
	}
	if err := s.guard.Apply(func() error { return b.Commit(s.wo) }); err != nil {
		return fmt.Errorf("mirror: store: %w", err)
	}
	return nil
}

// requeueInFlight puts every record left REDY, BQUED or QUED by an engine
// that stopped back to NQUE, due now: the next engine works it again (a
// unit already placed is then found in place, not pulled again). It is
// called before an engine starts.
func (s *Store) requeueInFlight(now time.Time) (int, error) {
	total := 0
	for _, st := range []State{REDY, BQUED, QUED} {
		for {
			var batch []uint64
			if err := s.byState(st, 0, func(n uint64) bool {
				batch = append(batch, n)
				return len(batch) < 1024
			}); err != nil {
				return total, err
			}
			if len(batch) == 0 {
				break
			}
			_, err := s.update(batch, now, func(_ uint64, r *Record) (*Record, mutation) {
				if r == nil || r.State != st {
					return r, keep
				}
				r.State, r.Due, r.Reason = NQUE, now, "requeued: the engine stopped while it was "+st.String()
				return r, write
			})
			if err != nil {
				return total, err
			}
			total += len(batch)
		}
	}
	return total, nil
}

// wait blocks until fn, called now and after each change, returns true.
func (s *Store) wait(ctx context.Context, fn func() (bool, error)) error {
	for {
		ch := s.Changed()
		ok, err := fn()
		if err != nil || ok {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
