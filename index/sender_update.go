package index

// The sender's updates: a full update (list or Bloom) from a catalog
// snapshot, and a delta from the change feed.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// full sends a full update from a catalog snapshot. The caller holds t.sem.
func (s *Sender) full(ctx context.Context, t *target) Result {
	start := time.Now()
	mode := t.cfg.fullMode()
	t.mu.Lock()
	t.st.fullStarted = start
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()

	h := Header{Site: s.site, Endpoint: s.endpoint, Mode: mode, Validity: t.cfg.Validity, Updated: start, Incarnation: s.incarnation()}
	var (
		entries uint64
		err     error
	)
	switch mode {
	case ModeList:
		var names []string
		if names, h.Generation, err = s.snapshotList(ctx, t.cfg); err == nil {
			h.Entries, entries = uint64(len(names)), uint64(len(names))
			_, err = t.sink.Send(ctx, ListUpdate(h, slices.Values(names)))
		}
	case ModeBloom:
		var words []uint64
		if h.Bloom, words, h.Generation, err = s.snapshotBloom(ctx, t.cfg); err == nil {
			entries = h.Bloom.Entries
			_, err = t.sink.Send(ctx, BloomUpdate(h, words))
		}
	}
	res := Result{Target: t.cfg.Addr, Mode: mode, Generation: h.Generation, Entries: entries, Took: time.Since(start), Sites: 1}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		res.Err = fmt.Errorf("%v update to %s: %w", mode, t.cfg.Addr, err)
	} else {
		t.st.gen, t.st.haveState, t.st.forceFull = h.Generation, true, false
		t.st.lastFull = start
	}
	t.st.fullResult = res
	s.record(t, res)
	return res
}

// snapshotList returns the target's LFNs from one catalog snapshot, and the
// generation the snapshot reflects. The names are held in memory because the
// header, which travels first, counts them (about 20 MB for a million
// sunums).
func (s *Sender) snapshotList(ctx context.Context, t Target) ([]string, uint64, error) {
	var names []string
	if t.Patterns == nil {
		st, err := s.cat.Stats(ctx)
		if err != nil {
			return nil, 0, err
		}
		names = make([]string, 0, st.LFNs)
	}
	seq, err := s.cat.ForEachLFN(ctx, func(lfn string) error {
		if t.match(lfn) {
			names = append(names, lfn)
		}
		return nil
	})
	return names, seq, err
}

// snapshotBloom builds a Bloom filter of the target's LFNs from one catalog
// snapshot, with the geometry BloomGeometry gives for their number, and
// returns the generation the snapshot reflects. It sizes the filter from
// the catalog's LFN count, which bounds the number of matching names, and
// folds it to the right size at the end; should the catalog grow past a
// power-of-two boundary between the count and the snapshot, it builds again.
func (s *Sender) snapshotBloom(ctx context.Context, t Target) (BloomParams, []uint64, uint64, error) {
	st, err := s.cat.Stats(ctx)
	if err != nil {
		return BloomParams{}, nil, 0, err
	}
	est := st.LFNs
	for {
		mBuild, k := BloomGeometry(est, t.FalsePositiveRate)
		b := newBloomBuilder(mBuild, k, bloomWorkers())
		seq, err := s.cat.ForEachLFN(ctx, func(lfn string) error {
			if t.match(lfn) {
				b.add(lfn)
			}
			return nil
		})
		if err != nil {
			b.stop()
			return BloomParams{}, nil, 0, err
		}
		m, _ := BloomGeometry(b.n, t.FalsePositiveRate)
		if m > mBuild {
			b.stop()
			est = b.n
			continue
		}
		words := b.finish(m)
		return BloomParams{Version: BloomVersion, M: m, K: k, Entries: b.n}, words, seq, nil
	}
}

// delta sends the catalog's changes since the generation the target holds,
// reduced to their net effect on the target's LFNs. It sends nothing if the
// catalog did not change. It fails with errNeedFull (and marks a full update
// due) if the changes were pruned or the index does not hold that
// generation. The caller holds t.sem.
func (s *Sender) delta(ctx context.Context, t *target) Result {
	start := time.Now()
	t.mu.Lock()
	base, ok := t.st.gen, t.st.haveState && !t.st.forceFull
	t.mu.Unlock()
	res := Result{Target: t.cfg.Addr, Mode: ModeDelta, Generation: base, Sites: 1}
	if !ok {
		res.Err = fmt.Errorf("delta to %s: %w: no state acknowledged yet", t.cfg.Addr, errNeedFull)
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()
	last, err := s.cat.LastSeq(ctx)
	if err == nil && last <= base {
		return res
	}
	var (
		added, removed []string
		gen            uint64
	)
	if err == nil {
		added, removed, gen, err = s.netChanges(ctx, t.cfg, base)
	}
	if err == nil {
		h := Header{
			Site: s.site, Endpoint: s.endpoint, Mode: ModeDelta, Validity: t.cfg.Validity,
			BaseGeneration: base, Generation: gen, Updated: start, Incarnation: s.incarnation(),
		}
		res.Entries = uint64(len(added) + len(removed))
		_, err = t.sink.Send(ctx, DeltaUpdate(h, added, removed))
		if errors.Is(err, ErrOutOfSequence) {
			err = fmt.Errorf("%w: the index does not hold generation %d (%v)", errNeedFull, base, err)
		}
	}
	res.Took = time.Since(start)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		res.Err = fmt.Errorf("delta to %s: %w", t.cfg.Addr, err)
		t.st.forceFull = t.st.forceFull || errors.Is(err, errNeedFull)
	} else if t.st.gen == base { // not overtaken by a full update
		t.st.gen, res.Generation = gen, gen
	}
	s.record(t, res)
	return res
}

// maxDeltaChanges bounds the change records one delta reads; the rest
// follow in the next delta.
const maxDeltaChanges = 1 << 20

// netChanges reads the change feed after base and reduces it to the LFNs of
// t that were added and removed between base and gen, the last record read.
// An LFN that did not exist at base and does not exist at gen (or existed at
// both) is in neither list: the index, which holds the state at base, needs
// no word about it.
func (s *Sender) netChanges(ctx context.Context, t Target, base uint64) (added, removed []string, gen uint64, err error) {
	type effect struct{ existedBefore, existsAfter bool }
	net := make(map[string]*effect)
	note := func(lfn string, exists bool) {
		if !t.match(lfn) {
			return
		}
		e := net[lfn]
		if e == nil {
			// The first record of an LFN tells whether it existed at base.
			e = &effect{existedBefore: !exists}
			net[lfn] = e
		}
		e.existsAfter = exists
	}
	gen = base
	for read := 0; read < maxDeltaChanges; {
		chs, err := s.cat.Changes(ctx, gen+1, 10000)
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, nil, 0, fmt.Errorf("%w: %v", errNeedFull, err)
		}
		if err != nil {
			return nil, nil, 0, err
		}
		if len(chs) == 0 {
			break
		}
		for _, ch := range chs {
			if ch.LFNRemoved {
				if ch.Kind == catalog.ChangeRenameLFN {
					note(ch.Old, false)
				} else {
					note(ch.LFN, false)
				}
			}
			if ch.LFNAdded {
				note(ch.LFN, true)
			}
		}
		gen = chs[len(chs)-1].Seq
		read += len(chs)
	}
	for lfn, e := range net {
		switch {
		case e.existsAfter && !e.existedBefore:
			added = append(added, lfn)
		case !e.existsAfter && e.existedBefore:
			removed = append(removed, lfn)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed, gen, nil
}
