package index

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
)

// loopSet runs one loop per configured target: a Sender's indexes, a
// Forwarder's parents. T is the target with its state (a pointer), C its
// configuration. replace swaps the set while the loops run; run runs them.
// Its methods are safe for concurrent use.
type loopSet[T comparable, C any] struct {
	what string // in the log: "update targets", "forwarding targets"
	log  *slog.Logger
	cfg  func(T) C
	addr func(C) string
	same func(a, b C) bool
	ctl  func(T) *loopCtl
	// loop is one target's loop: it waits on wctx, which ends when run
	// stops or the target is removed, and sends on ctx, run's, so that a
	// removal does not cut an update short. Its error is run's.
	loop func(ctx, wctx context.Context, t T) error

	mu sync.Mutex
	// items is replaced by replace, never changed in place.
	items  []T             // guarded by mu
	runCtx context.Context // guarded by mu: run's while it runs, else nil
	errs   []error         // guarded by mu: the loops' failures, for run
	loops  sync.WaitGroup
}

// loopCtl controls one target's loop: stop ends it after the round in
// flight, and done is closed when it returned. Both are nil while no loop
// runs. Guarded by loopSet.mu.
type loopCtl struct {
	stop context.CancelFunc
	done chan struct{}
}

// current returns the targets, in configuration order.
func (s *loopSet[T, C]) current() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.items
}

// run runs every target's loop (those that replace adds included) until
// ctx is done, and returns the loops' errors joined once they all
// returned. It runs once.
func (s *loopSet[T, C]) run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	for _, t := range s.items {
		s.start(t, nil)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.runCtx = nil // replace starts no loop from now on
	s.mu.Unlock()
	s.loops.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// start starts t's loop once after is closed (if not nil). The caller
// holds s.mu, and run runs.
func (s *loopSet[T, C]) start(t T, after <-chan struct{}) {
	ctx := s.runCtx
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	c := s.ctl(t)
	c.stop, c.done = stop, done
	s.loops.Go(func() {
		defer close(done)
		defer stop()
		if after != nil {
			select {
			case <-after:
			case <-wctx.Done():
				return
			}
		}
		if err := s.loop(ctx, wctx, t); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, err)
			s.mu.Unlock()
		}
	})
}

// replace makes cfgs (checked, with their defaults) the set. A target
// whose configuration is unchanged (same) keeps its loop and state; the
// others are made by create. If create fails, the targets it made so far
// are passed to discard and nothing changes. A removed or changed
// target's loop is stopped (it ends after its round in flight) and the
// target passed to retire, with changed set when its address stays in
// the set: the changed target's new loop starts once the old one ended,
// so that one loop at most sends to an address. New loops start at once
// if run runs, else when it does. It logs what changed.
func (s *loopSet[T, C]) replace(cfgs []C, create func(C) (T, error), discard func(T), retire func(t T, changed bool)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.items
	next := make([]T, 0, len(cfgs))
	var fresh []T
	for _, c := range cfgs {
		if i := slices.IndexFunc(old, func(t T) bool { return s.same(s.cfg(t), c) }); i >= 0 {
			next = append(next, old[i])
			continue
		}
		t, err := create(c)
		if err != nil {
			for _, f := range fresh {
				discard(f)
			}
			return err
		}
		fresh = append(fresh, t)
		next = append(next, t)
	}
	var added, removed, changed []string
	after := map[string]<-chan struct{}{} // a changed target's old loop
	for _, t := range old {
		if slices.Contains(next, t) {
			continue
		}
		addr := s.addr(s.cfg(t))
		isChanged := slices.ContainsFunc(cfgs, func(c C) bool { return s.addr(c) == addr })
		if isChanged {
			changed = append(changed, addr)
			after[addr] = s.ctl(t).done
		} else {
			removed = append(removed, addr)
		}
		if stop := s.ctl(t).stop; stop != nil {
			stop()
		}
		retire(t, isChanged)
	}
	for _, t := range fresh {
		addr := s.addr(s.cfg(t))
		if !slices.Contains(changed, addr) {
			added = append(added, addr)
		}
		if s.runCtx != nil {
			s.start(t, after[addr])
		}
	}
	s.items = next
	if old != nil && len(added)+len(removed)+len(changed) > 0 {
		s.log.Info(s.what+" reloaded", "added", added, "removed", removed, "changed", changed, "unchanged", len(next)-len(fresh))
	}
	return nil
}
