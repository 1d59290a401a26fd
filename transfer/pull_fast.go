package transfer

// Fast listing: the digests of a unit listed without them, fetched in the
// background while its bytes travel, and checked against the listing.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// startDigests gets, in the background, the digests of the running units
// listed without them (at most 8 Manifest calls at a time), while their
// bytes travel. The queue is held open until each unit's digests are
// applied or the unit fails; the goroutines end with ctx.
func (p *puller) startDigests(ctx context.Context) {
	var fast []*unitPull
	for _, u := range p.units {
		if u.fast && u.state.Load() == unitRunning {
			p.q.hold()
			fast = append(fast, u)
		}
	}
	if len(fast) == 0 {
		return
	}
	p.bg.Go(func() {
		var g errgroup.Group
		g.SetLimit(8)
		for _, u := range fast {
			g.Go(func() error {
				defer p.q.release()
				if ctx.Err() != nil {
					return nil
				}
				err := p.fetchDigests(ctx, u)
				var le *localError
				switch {
				case err == nil || ctx.Err() != nil:
				case errors.As(err, &le):
					p.q.fail(err)
				default:
					u.fail(err)
				}
				return nil // the unit's failure, or the pull's through q
			})
		}
		_ = g.Wait()
	})
}

// digestRate is the slowest hashing rate a source is granted: the call
// for a unit's digests may take StallTimeout plus its size at this rate.
const digestRate = 16 << 20

// fetchDigests gets u's manifest with digests from its source (which
// hashes the unit meanwhile), checks that it lists the same versions as
// the manifest the pull started from, and applies the digests. A
// transient failure is retried, up to MaxFailures tries.
func (p *puller) fetchDigests(ctx context.Context, u *unitPull) error {
	peer := p.o.Sources[0]
	timeout := p.o.StallTimeout + time.Duration(u.m.TotalBytes()/digestRate)*time.Second
	var m *Manifest
	var err error
	for try := 1; ; try++ {
		mctx, cancel := context.WithTimeout(ctx, timeout)
		m, err = peer.Manifest(mctx, u.pfn)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		if try >= p.o.MaxFailures || !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrUnavailable) {
			break
		}
		u.log.Debug("digests failed; trying again", "peer", peer.Name(), "error", err)
		select {
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	if err == nil {
		err = m.Validate()
	}
	if err == nil {
		err = m.checkDigests()
	}
	if err == nil {
		err = sameListing(u.m, m)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("digests from %s: %w", peer.Name(), err)
	}
	return p.applyDigests(u, m)
}

// sameListing checks that full (a manifest with digests) lists what
// listed (the same unit's manifest without digests) did: the same
// entries, and for each the same size, mode, mtime and Version. Else the
// unit changed at the source in between: ErrChanged.
func sameListing(listed, full *Manifest) error {
	if len(listed.Entries) != len(full.Entries) {
		return fmt.Errorf("%w: the unit has %d entries now, %d when listed", ErrChanged, len(full.Entries), len(listed.Entries))
	}
	for i := range listed.Entries {
		a, b := &listed.Entries[i], &full.Entries[i]
		if a.Path != b.Path || a.Dir != b.Dir || a.Size != b.Size || a.Mode != b.Mode || !a.MTime.Equal(b.MTime) || a.Version != b.Version {
			return fmt.Errorf("%w: %q changed since the unit was listed", ErrChanged, a.Path)
		}
	}
	return nil
}

// applyDigests sets the digests of u's files from full (checked by
// sameListing), records them in the staging manifest, and judges the
// files that were waiting for them.
func (p *puller) applyDigests(u *unitPull, full *Manifest) error {
	sums := make(map[string]Digest, len(full.Entries))
	withSums := &Manifest{PFN: u.m.PFN, Entries: slices.Clone(u.m.Entries)}
	for i := range full.Entries {
		sums[full.Entries[i].Path] = full.Entries[i].SHA256
		withSums.Entries[i].SHA256 = full.Entries[i].SHA256
	}
	p.mu.Lock()
	if u.state.Load() != unitRunning {
		p.mu.Unlock()
		return nil
	}
	// First the staging manifest: a journal record "verified" is only ever
	// made against a manifest with digests.
	if err := u.st.setManifest(withSums); err != nil {
		p.mu.Unlock()
		return err
	}
	for _, f := range u.files {
		f.want = sums[f.e.Path]
	}
	u.known.Store(true)
	waiting := u.awaiting
	u.awaiting = nil
	left := u.left
	p.mu.Unlock()
	u.log.Debug("digests applied", "waiting_files", len(waiting))
	if err := p.judge(waiting); err != nil {
		return err
	}
	if left == 0 {
		p.placeUnit(u)
	}
	return nil
}
