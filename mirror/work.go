package mirror

// A pull call: its units go from BQUED to QUED, are pulled from one source,
// those placed are registered in one catalog batch, and every unit's next
// state is written in one store batch. Cancel can take a unit back until
// it is being registered.

import (
	"context"
	"fmt"
	"time"
)

// flightState is how far a unit of a pull call has come, as far as Cancel
// is concerned.
type flightState uint8

const (
	flPulling     flightState = iota // not placed: a cancel stops it being placed
	flPlaced                         // renamed into place, not registered: a cancel stops it being registered
	flRegistering                    // being registered: past cancelling
)

// flight is a unit of a pull call in flight. Guarded by Engine.flightMu.
type flight struct {
	state     flightState
	cancelled bool
	call      *callFlight
}

// callFlight is a pull call in flight: once every unit of it is
// cancelled, cancel ends it (its bytes stop coming).
type callFlight struct {
	cancel context.CancelFunc
	live   int // units not cancelled
}

// work pulls batch from src, registers what was placed, and writes every
// unit's next state in one batch: DONE, BQUED for the next source, FAIL or
// INVD. It returns the jobs to try at their next source. If ctx ends, it
// writes nothing: the units stay QUED and the next Run queues them again.
// A unit cancelled meanwhile is neither placed (if it was not yet) nor
// registered, and its result is ignored: Cancel removed its record.
func (e *Engine) work(ctx context.Context, src Location, batch []*job) (retry []*job) {
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	jobs, units := e.startCall(src, batch, pcancel)
	if len(jobs) == 0 {
		e.observe(src.Site, 0, 0, 0, nil)
		return nil
	}
	defer e.land(jobs)
	start := time.Now()
	res := e.cfg.Puller.Pull(pctx, src.Source, units)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		e.abandon(src, jobs, elapsed)
		return nil
	}
	regErr, cancelled := e.registerPlaced(ctx, src, jobs, units, res)
	if ctx.Err() != nil {
		// Stopping: what was registered is found present by the next Run.
		e.abandon(src, jobs, elapsed)
		return nil
	}
	now := time.Now()
	var fetched int64
	var fails []errClass
	nplaced, live := 0, 0
	next := make(map[uint64]func(*Record) *Record, len(jobs))
	for i, j := range jobs {
		if cancelled[i] {
			continue
		}
		live++
		r := res[i]
		if r.Err == nil && regErr[i] == nil {
			nplaced++
			fetched += r.Fetched
		} else if r.Err != nil {
			fails = append(fails, classify(r.Err))
		}
		fn, again := e.nextState(src, j, r, regErr[i], now)
		next[j.sunum] = fn
		if again {
			retry = append(retry, j)
		}
	}
	if live == 0 {
		elapsed = 0 // every unit was cancelled: nothing to judge the source by
	}
	e.observe(src.Site, nplaced, fetched, elapsed, fails)
	return e.finishCall(ctx, jobs, next, retry, now)
}

// startCall writes the units of batch that are still BQUED as QUED and
// registers them as in flight in one call, which cancel ends; it returns
// their jobs and what to pull. A unit cancelled meanwhile is released.
func (e *Engine) startCall(src Location, batch []*job, cancel context.CancelFunc) ([]*job, []PullUnit) {
	// Cancel either sees the flights or has removed the records first.
	e.cancelMu.RLock()
	defer e.cancelMu.RUnlock()
	ns := make([]uint64, len(batch))
	for i, j := range batch {
		ns[i] = j.sunum
	}
	written, err := e.store.update(ns, time.Now(), func(_ uint64, r *Record) (*Record, mutation) {
		if r == nil || r.State != BQUED {
			return r, keep
		}
		r.State, r.Reason = QUED, "pulling from "+src.Site
		return r, write
	})
	if err != nil {
		e.log.Error("mirror: write pulling", "error", err)
	}
	var jobs []*job
	var units []PullUnit
	call := &callFlight{cancel: cancel}
	e.flightMu.Lock()
	defer e.flightMu.Unlock()
	for i, j := range batch {
		if err != nil || written[i] == nil || written[i].State != QUED {
			e.release(j.sunum) // cancelled meanwhile
			continue
		}
		n := j.sunum
		units = append(units, PullUnit{Sunum: n, PFN: j.source().PFN, Dest: e.Dest(n), Place: func() bool { return e.placing(n) }})
		jobs = append(jobs, j)
		e.flights[n] = &flight{call: call}
		call.live++
	}
	return jobs, units
}

// placing is PullUnit.Place: a unit may be placed unless it was cancelled.
func (e *Engine) placing(n uint64) bool {
	e.flightMu.Lock()
	defer e.flightMu.Unlock()
	f := e.flights[n]
	if f == nil {
		return true
	}
	if f.cancelled {
		return false
	}
	f.state = flPlaced
	return true
}

// land forgets the flights of jobs.
func (e *Engine) land(jobs []*job) {
	e.flightMu.Lock()
	defer e.flightMu.Unlock()
	for _, j := range jobs {
		delete(e.flights, j.sunum)
	}
}

// abandon gives up a call cut by the engine's stop: nothing is written,
// the units stay QUED for the next Run, and the source is not judged by it.
func (e *Engine) abandon(src Location, jobs []*job, elapsed time.Duration) {
	e.observe(src.Site, 0, 0, elapsed, nil)
	for _, j := range jobs {
		e.release(j.sunum)
	}
}

// registerPlaced registers the placed units of a call that were not
// cancelled, in one catalog batch (they are past cancelling from then
// on). It returns each unit's registration error, and which units were
// cancelled.
func (e *Engine) registerPlaced(ctx context.Context, src Location, jobs []*job, units []PullUnit, res []PullResult) (regErr []error, cancelled []bool) {
	regErr, cancelled = make([]error, len(jobs)), make([]bool, len(jobs))
	var placed []Placed
	var placedIdx []int
	e.flightMu.Lock()
	for i, j := range jobs {
		f := e.flights[j.sunum]
		if f != nil && f.cancelled {
			cancelled[i] = true
			continue
		}
		if r := res[i]; r.Err == nil {
			if f != nil {
				f.state = flRegistering
			}
			placed = append(placed, Placed{LFN: LFN(j.sunum), PFN: units[i].Dest, Bytes: r.Bytes, Files: r.Files,
				SHA256: r.SHA256, Series: j.series, Source: src.Site})
			placedIdx = append(placedIdx, i)
		}
	}
	e.flightMu.Unlock()
	if len(placed) == 0 {
		return regErr, cancelled
	}
	errs, err := e.cfg.Registrar.Register(ctx, placed)
	for k, i := range placedIdx {
		switch {
		case err != nil:
			regErr[i] = fmt.Errorf("register: %w", err)
		case errs[k] != nil:
			regErr[i] = fmt.Errorf("register: %w", errs[k])
		}
	}
	return regErr, cancelled
}

// nextState is what becomes of job j after its pull from src with result
// r and registration error regErr: DONE, INVD (the authority does not
// hold it), BQUED for its next source (again: it is to be retried there),
// or FAIL. Each attempt is recorded.
func (e *Engine) nextState(src Location, j *job, r PullResult, regErr error, now time.Time) (fn func(*Record) *Record, again bool) {
	switch {
	case r.Err == nil && regErr == nil:
		return func(rec *Record) *Record {
			rec.addAttempt(Attempt{At: now, Source: src.Site})
			rec.State, rec.Source, rec.Bytes, rec.Files, rec.Done, rec.Streak = DONE, src.Site, r.Bytes, r.Files, now, 0
			rec.Reason = "pulled"
			if r.InPlace {
				rec.Reason = "found in place and verified"
			}
			return rec
		}, false
	case r.Err == nil:
		msg := regErr.Error()
		return func(rec *Record) *Record {
			rec.addAttempt(Attempt{At: now, Source: src.Site, Err: msg})
			return e.failed(rec, msg, now)
		}, false
	}
	class := classify(r.Err)
	msg := class.String() + ": " + r.Err.Error()
	j.errs = append(j.errs, src.Site+": "+msg)
	switch {
	case src.Site == j.auth && class == classNotFound:
		return func(rec *Record) *Record {
			rec.addAttempt(Attempt{At: now, Source: src.Site, Err: msg})
			rec.State, rec.Reason = INVD, "the authority does not hold it: "+r.Err.Error()
			return rec
		}, false
	case class != classLocal && j.next+1 < len(j.cands):
		j.next++
		nsrc := j.source().Site
		return func(rec *Record) *Record {
			rec.addAttempt(Attempt{At: now, Source: src.Site, Err: msg})
			rec.State, rec.Reason = BQUED, "waiting for "+nsrc+" after "+src.Site+" failed"
			return rec
		}, true
	}
	reason := j.failReason()
	return func(rec *Record) *Record {
		rec.addAttempt(Attempt{At: now, Source: src.Site, Err: msg})
		return e.failed(rec, reason, now)
	}, false
}

// finishCall writes the next state of each job of a call in one batch
// (none for a unit cancelled meanwhile: its record is gone), releases the
// jobs but those to retry, which it returns, and runs the on-done hook.
func (e *Engine) finishCall(ctx context.Context, jobs []*job, next map[uint64]func(*Record) *Record, retry []*job, now time.Time) []*job {
	ns := make([]uint64, len(jobs))
	for i, j := range jobs {
		ns[i] = j.sunum
	}
	hooked := map[uint64]bool{}
	out, err := e.store.update(ns, now, func(n uint64, r *Record) (*Record, mutation) {
		if r == nil || r.State != QUED || next[n] == nil {
			return r, keep
		}
		r = next[n](r)
		if r.State == DONE && e.cfg.OnDone != nil {
			hooked[n] = true
			return r, writeHook
		}
		return r, write
	})
	if err != nil {
		e.log.Error("mirror: write pulled", "error", err)
		for _, j := range jobs {
			e.release(j.sunum)
		}
		return nil
	}
	inRetry := make(map[uint64]bool, len(retry))
	for _, j := range retry {
		inRetry[j.sunum] = true
	}
	retry = retry[:0]
	var done []*Record
	for i, j := range jobs {
		if inRetry[j.sunum] && out[i] != nil && out[i].State == BQUED {
			retry = append(retry, j)
			continue
		}
		e.release(j.sunum)
		if hooked[j.sunum] && out[i] != nil && out[i].State == DONE {
			done = append(done, out[i])
		}
	}
	e.runHooks(ctx, done)
	return retry
}

// runHooks runs the on-done hook for records just made DONE with their
// hook marked pending, clearing each mark as soon as its hook returned (a
// kill then runs again at most the hook it cut). A hook's error is logged;
// the unit stays DONE and the hook is not run again. A stop leaves the
// marks of the hooks it cut or did not reach for the next start.
func (e *Engine) runHooks(ctx context.Context, recs []*Record) {
	if e.cfg.OnDone == nil {
		return
	}
	for _, r := range recs {
		if ctx.Err() != nil {
			return
		}
		if err := e.cfg.OnDone(ctx, r.Sunum, e.Dest(r.Sunum), r.Series); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("mirror: on-done hook failed", "sunum", r.Sunum, "error", err)
		}
		if err := e.store.hooksRan([]uint64{r.Sunum}); err != nil {
			e.log.Error("mirror: clear on-done mark", "sunum", r.Sunum, "error", err)
			return
		}
	}
}

// runPendingHooks runs the hooks that a stopped engine left pending (it
// was killed between a unit's DONE and its hook), a page at a time. With
// no hook configured, it clears the marks.
func (e *Engine) runPendingHooks(ctx context.Context) error {
	var after uint64
	total := 0
	for ctx.Err() == nil {
		ns, err := e.store.pendingHooks(after, 256)
		if err != nil || len(ns) == 0 {
			if total > 0 {
				e.log.Info("mirror: ran on-done hooks left pending by a stopped engine", "units", total)
			}
			return err
		}
		after = ns[len(ns)-1]
		if e.cfg.OnDone == nil {
			if err := e.store.hooksRan(ns); err != nil {
				return err
			}
			continue
		}
		recs, err := e.store.Get(ns)
		if err != nil {
			return err
		}
		var done []*Record
		var stale []uint64
		for i, r := range recs {
			if r != nil && r.State == DONE {
				done = append(done, r)
			} else {
				stale = append(stale, ns[i])
			}
		}
		if err := e.store.hooksRan(stale); err != nil {
			return err
		}
		total += len(done)
		e.runHooks(ctx, done)
	}
	return ctx.Err()
}
