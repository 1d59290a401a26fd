package transfer

// Placing: a verified unit is finished in staging, synced and renamed into
// place in one step; progress and results are reported.

import (
	"os"
	"path/filepath"
	"sync"
	"time"
)

// place finishes unit u in staging (directory modes and mtimes, removal
// of anything an older manifest left), syncs it, and renames it to dest.
func (p *puller) place(u *unitPull) error {
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
	// Deepest first: entries are sorted, so children follow their parent.
	for i := len(u.m.Entries) - 1; i >= 0; i-- {
		e := &u.m.Entries[i]
		if !e.Dir {
			continue
		}
		path := filepath.Join(unit, filepath.FromSlash(e.Path))
		if err := u.st.syncDir(path); err != nil {
			return localErr(err)
		}
		if err := os.Chmod(path, e.FileMode()); err != nil {
			return localErr(err)
		}
		if err := os.Chtimes(path, time.Time{}, e.MTime); err != nil {
			return localErr(err)
		}
	}
	if err := u.st.syncDir(unit); err != nil {
		return localErr(err)
	}
	if _, err := os.Lstat(u.dest); err == nil && p.o.Force {
		// Swap, then delete the old unit, now in staging.
		if err := exchange(unit, u.dest); err != nil {
			old := unit + ".old"
			if err := os.Rename(u.dest, old); err != nil {
				return localErr(err)
			}
			if err := os.Rename(unit, u.dest); err != nil {
				return localErr(err)
			}
			unit = old
		}
		if err := os.RemoveAll(unit); err != nil {
			u.log.Warn("could not remove the replaced unit", "path", unit, "error", err)
		}
	} else if err := os.Rename(unit, u.dest); err != nil {
		return localErr(err)
	}
	return localErr(u.st.syncDir(filepath.Dir(u.dest)))
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
			r.Manifest = u.m.Digest()
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
