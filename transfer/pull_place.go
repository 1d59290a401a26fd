package transfer

// Placing: verified units are finished in staging, synced together and
// renamed into place, each in one step; progress and results are reported.

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// placeUnits places units whose files are all verified (those of them
// that did not fail meanwhile) as one group, so that a batch of small
// units costs a few syncs, not several per unit:
//
//  1. each is finished in staging (directory modes and mtimes, removal of
//     anything an older manifest left);
//  2. their bytes and directories are made durable together (syncStaged);
//  3. each is renamed to its destination in one step;
//  4. each distinct parent directory is synced once.
//
// Only then is each reported placed (PullOptions.OnPlaced): a unit
// reported placed is complete and durable, and a crash at any step leaves
// its destination absent or whole. A unit that fails a step fails alone,
// except at step 2, which fails the group.
func (p *puller) placeUnits(units []*unitPull) {
	var group, renamed []*unitPull
	for _, u := range units {
		if u.state.CompareAndSwap(unitRunning, unitFinishing) {
			if err := p.tidy(u); err != nil {
				p.failPlacing(u, err)
				continue
			}
			group = append(group, u)
		}
	}
	if len(group) == 0 {
		return
	}
	if err := p.syncStaged(group); err != nil {
		for _, u := range group {
			p.failPlacing(u, err)
		}
		return
	}
	for _, u := range group {
		err := p.beforePlace(u)
		if err == nil {
			err = p.rename(u)
		}
		if err != nil {
			p.failPlacing(u, err)
			continue
		}
		renamed = append(renamed, u)
	}
	parents := map[string]error{}
	for _, u := range renamed {
		dir := filepath.Dir(u.dest)
		if _, ok := parents[dir]; !ok {
			parents[dir] = localErr(u.st.syncDir(dir))
		}
	}
	for _, u := range renamed {
		if err := parents[filepath.Dir(u.dest)]; err != nil {
			p.failPlacing(u, err)
			continue
		}
		u.elapsed = time.Since(u.start)
		u.state.Store(unitPlaced)
		u.log.Info("pulled", "dest", u.dest, "bytes", u.m.TotalBytes(), "fetched", u.fetched.Load(),
			"resumed", u.resumed, "elapsed", u.elapsed)
		p.placed(u)
	}
}

// beforePlace asks PullOptions.BeforePlace whether u may be placed.
func (p *puller) beforePlace(u *unitPull) error {
	if p.o.BeforePlace == nil {
		return nil
	}
	return p.o.BeforePlace(u.index)
}

// failPlacing fails u, which placeUnits holds in unitFinishing.
func (p *puller) failPlacing(u *unitPull, err error) {
	u.elapsed = time.Since(u.start)
	u.err = fmt.Errorf("pull %s: %w", u.pfn, err)
	u.state.Store(unitFailed)
}

// tidy finishes unit u in staging: anything an older manifest left is
// removed (in a fresh staging directory, only the manifest's entries were
// made), and directories get their modes and mtimes (deepest first).
func (p *puller) tidy(u *unitPull) error {
	if !u.fresh {
		if err := p.removeExtra(u); err != nil {
			return err
		}
	}
	unit := u.st.unitPath()
	// Entries are sorted, so children follow their parent.
	for i := len(u.m.Entries) - 1; i >= 0; i-- {
		e := &u.m.Entries[i]
		if !e.Dir {
			continue
		}
		path := filepath.Join(unit, filepath.FromSlash(e.Path))
		if err := os.Chmod(path, e.FileMode()); err != nil {
			return localErr(err)
		}
		if err := os.Chtimes(path, time.Time{}, e.MTime); err != nil {
			return localErr(err)
		}
	}
	return nil
}

// removeExtra removes what u's staging holds that its manifest does not
// list.
func (p *puller) removeExtra(u *unitPull) error {
	unit := u.st.unitPath()
	want := map[string]bool{}
	for _, e := range u.m.Entries {
		want[filepath.Join(unit, filepath.FromSlash(e.Path))] = true
	}
	var extra []string
	err := filepath.WalkDir(unit, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != unit && !want[path] {
			extra = append(extra, path)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return localErr(err)
	}
	for _, x := range extra {
		if err := os.RemoveAll(x); err != nil {
			return localErr(err)
		}
	}
	return nil
}

// syncStaged makes the tidied units durable in staging before any is
// renamed: one syncfs(2) per file system for the units whose files were
// written without their own fsync (staging.deferSync) — it covers the
// other units on that file system too — and for the others, whose files
// are synced already, an fsync of each of their directories.
func (p *puller) syncStaged(units []*unitPull) error {
	if p.o.NoSync {
		return nil
	}
	synced := map[uint64]bool{}
	for _, u := range units {
		if !u.st.deferSync() {
			continue
		}
		dev, err := devOf(u.st.lock)
		if err != nil {
			return localErr(err)
		}
		if !synced[dev] {
			if err := syncFS(u.st.lock); err != nil {
				return localErr(err)
			}
			synced[dev] = true
		}
	}
	for _, u := range units {
		if u.st.deferSync() {
			continue
		}
		if len(synced) > 0 {
			if dev, err := devOf(u.st.lock); err == nil && synced[dev] {
				continue
			}
		}
		unit := u.st.unitPath()
		for i := len(u.m.Entries) - 1; i >= 0; i-- {
			if e := &u.m.Entries[i]; e.Dir {
				if err := u.st.syncDir(filepath.Join(unit, filepath.FromSlash(e.Path))); err != nil {
					return localErr(err)
				}
			}
		}
		if err := u.st.syncDir(unit); err != nil {
			return localErr(err)
		}
	}
	return nil
}

// rename moves u from staging to its destination in one step (with
// Force, exchanging it with the unit there, which is then deleted).
func (p *puller) rename(u *unitPull) error {
	unit := u.st.unitPath()
	if _, err := os.Lstat(u.dest); err != nil || !p.o.Force {
		if err := os.Rename(unit, u.dest); err != nil {
			return localErr(err)
		}
		u.st.moved = unit == u.st.dir
		return nil
	}
	// Swap, then delete the old unit, now in staging.
	old := unit
	if err := exchange(unit, u.dest); err != nil {
		old = unit + ".old"
		if err := os.Rename(u.dest, old); err != nil {
			return localErr(err)
		}
		if err := os.Rename(unit, u.dest); err != nil {
			return localErr(err)
		}
	}
	u.st.moved = unit == u.st.dir
	if err := os.RemoveAll(old); err != nil {
		u.log.Warn("could not remove the replaced unit", "path", old, "error", err)
	}
	return nil
}

func (p *puller) reportProgress() (stop func()) {
	if p.o.Progress == nil {
		return func() {}
	}
	var total int64
	for _, u := range p.units {
		if u.m != nil {
			total += u.m.TotalBytes()
		}
	}
	report := func() { p.o.Progress(Progress{Done: p.progress.Load(), Total: total, Resumed: p.resumed}) }
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-done:
				report()
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// result reports on u, once the pull is over.
func (p *puller) result(u *unitPull) *PullResult {
	r := &PullResult{
		PFN: u.pfn, Dest: u.dest, Resumed: u.resumed,
		Fetched: u.fetched.Load(), Refetched: u.refetch.Load(), Elapsed: u.elapsed, Err: u.err,
		InPlace: u.inPlace,
	}
	if u.m != nil {
		r.Bytes, r.Files = u.m.TotalBytes(), u.m.Files()
		r.Dirs = len(u.m.Entries) - r.Files
		if u.state.Load() == unitPlaced {
			r.Manifest, r.Entries = u.m.Digest(), u.m.Entries
		}
	}
	if p.q == nil {
		return r // before the queue starts (a unit found in place): no sources yet
	}
	p.q.mu.Lock()
	defer p.q.mu.Unlock()
	for i, s := range p.sources {
		r.Sources = append(r.Sources, SourceResult{Name: s.peer.Name(), Bytes: u.srcBytes[i].Load(), Dropped: s.dropped, Slow: s.slow, Err: s.lastErr})
	}
	return r
}

// writeZeros writes n zero bytes at off.
func writeZeros(f *os.File, off, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}
