package transfer

// Preparing a unit's pull: its manifest from the first source that gives
// one, and the staging directory set up from it and from what an earlier,
// interrupted pull journaled (work whose version still matches is kept).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// fetchManifest gets u's manifest from the first source that gives one;
// from a lone FastManifester (unless ManifestFirst), without digests: then
// u.fast is set, and startDigests gets them.
func (p *puller) fetchManifest(ctx context.Context, u *unitPull) (*Manifest, error) {
	var errs []error
	fp, fast := p.o.Sources[0].(FastManifester)
	fast = fast && len(p.o.Sources) == 1 && !p.o.ManifestFirst && !u.inPlace
	for _, peer := range p.o.Sources {
		mctx, cancel := context.WithTimeout(ctx, p.o.StallTimeout)
		var m *Manifest
		var err error
		if fast {
			m, err = fp.FastManifest(mctx, u.pfn)
		} else {
			m, err = peer.Manifest(mctx, u.pfn)
		}
		cancel()
		if err == nil {
			if err = m.Validate(); err == nil && !fast {
				err = m.checkDigests()
			}
			if err == nil {
				u.fast = fast && m.Files() > 0
				return m, nil
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		u.log.Debug("manifest failed", "peer", peer.Name(), "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", peer.Name(), err))
	}
	return nil, fmt.Errorf("manifest: %w", mostTelling(errs))
}

// mostTelling picks the error to report when every source failed: a
// timeout or unreachable source before NOT_FOUND (a unit is missing only if
// every source that answered says so and none failed to answer), and a
// refusal or corruption before either. The others are kept in the message.
func mostTelling(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	for _, want := range []error{ErrCorrupt, ErrChanged, ErrRefused, ErrInvalid, ErrTimeout, ErrUnavailable, ErrNotFound} {
		for i, err := range errs {
			if errors.Is(err, want) {
				others := slices.Delete(slices.Clone(errs), i, i+1)
				return fmt.Errorf("%w (also: %v)", err, errors.Join(others...))
			}
		}
	}
	return errors.Join(errs...)
}

// prepare sets up u's staging directory for its manifest: it keeps what an earlier
// run did for files that did not change, creates directories and files,
// verifies empty files, and queues the work.
func (p *puller) prepare(u *unitPull) error {
	if u.m.TotalBytes() < p.o.JournalMin {
		if err := u.st.unjournal(u.fresh); err != nil {
			return err
		}
	}
	old, recs := u.st.load()
	byPath, err := stageTree(u)
	if err != nil {
		return err
	}
	replayJournal(recs, byPath, unchangedFiles(old, u.m))
	if err := u.st.begin(u.m, u.resumable()); err != nil {
		return err
	}
	u.known.Store(!u.fast)
	p.resumed += u.resumed
	p.progress.Add(u.resumed)
	if u.resumed > 0 {
		u.log.Info("resuming pull", "staging", u.st.dir, "resumed_bytes", u.resumed)
	}
	for _, f := range u.files {
		if f.verified {
			continue
		}
		u.left++
		if f.e.Size > 0 && f.done == nil && f.e.Size <= p.o.RangeSize {
			continue // a whole piece: fetch creates it
		}
		if err := p.createFile(f); err != nil {
			return err
		}
	}
	return nil
}

// unchangedFiles returns the paths of the files of m whose records in the
// journal of old, the manifest of an earlier run, still hold: the same
// size and version.
func unchangedFiles(old, m *Manifest) map[string]bool {
	keep := map[string]bool{}
	if old == nil {
		return keep
	}
	prev := map[string]*Entry{}
	for i := range old.Entries {
		prev[old.Entries[i].Path] = &old.Entries[i]
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if o := prev[e.Path]; o != nil && !e.Dir && !o.Dir && o.Size == e.Size && sameVersion(o, e) {
			keep[e.Path] = true
		}
	}
	return keep
}

// stageTree creates the directories of u's manifest in its staging unit
// and sets u.files; it returns the files by path.
func stageTree(u *unitPull) (map[string]*fileState, error) {
	unit := u.st.unitPath()
	if err := u.st.mkdir(unit, u.fresh); err != nil {
		return nil, err
	}
	byPath := map[string]*fileState{}
	for i := range u.m.Entries {
		e := &u.m.Entries[i]
		path := filepath.Join(unit, filepath.FromSlash(e.Path))
		if e.Dir {
			if err := u.st.mkdir(path, u.fresh); err != nil {
				return nil, err
			}
			continue
		}
		f := &fileState{u: u, e: e, path: path, want: e.SHA256, contribs: map[*source]bool{}, corrupted: map[*source]int{}}
		u.files = append(u.files, f)
		byPath[e.Path] = f
	}
	return byPath, nil
}

// resumable checks what the journal claimed of u's files, counts it in
// u.resumed, and returns it as the records of the new journal. Files
// claimed verified must still be there with their size. Without digests
// yet, a file verified against an earlier manifest's digest is verified
// again, against the digest to come.
func (u *unitPull) resumable() []journalRec {
	var kept []journalRec
	for _, f := range u.files {
		if f.verified {
			if fi, err := os.Stat(f.path); err != nil || fi.Size() != f.e.Size {
				f.verified, f.done = false, nil
			} else if u.fast {
				f.verified, f.done = false, intervals{{0, f.e.Size}}
			}
		}
		switch {
		case f.verified:
			u.resumed += f.e.Size
			kept = append(kept, journalRec{Op: opVerified, Path: f.e.Path})
		default:
			for _, x := range f.done {
				kept = append(kept, journalRec{Op: opRange, Path: f.e.Path, Off: x.off, Len: x.end - x.off})
			}
			u.resumed += f.done.bytes()
		}
	}
	return kept
}

// sameVersion reports whether entries o (of an earlier manifest) and e
// describe the same version of a file: the same digest, or, when either
// was listed without one, the same Version from the source.
func sameVersion(o, e *Entry) bool {
	if !o.SHA256.IsZero() && !e.SHA256.IsZero() {
		return o.SHA256 == e.SHA256
	}
	return o.Version != "" && o.Version == e.Version
}
