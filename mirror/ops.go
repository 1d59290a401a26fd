package mirror

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Status returns the records of sunums; ErrNotFound (naming the first) if
// one is not known.
func (e *Engine) Status(sunums []uint64) ([]*Record, error) {
	rs, err := e.store.Get(sunums)
	if err != nil {
		return nil, err
	}
	for i, r := range rs {
		if r == nil {
			return nil, fmt.Errorf("%w: %d", ErrNotFound, sunums[i])
		}
	}
	return rs, nil
}

// ListQuery selects records for List: those in State (required), of
// Series if set, with sunums greater than After, at most Limit (default
// 1000).
type ListQuery struct {
	State  State
	Series string
	After  uint64
	Limit  int
}

// List returns a page of records in sunum order, and whether more follow:
// one pass over the state's index and the records, holding at most the
// page, however many records the store holds.
func (e *Engine) List(q ListQuery) ([]*Record, bool, error) {
	if !q.State.valid() {
		return nil, false, fmt.Errorf("%w: list: state %v", ErrInvalid, q.State)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	if q.After == ^uint64(0) {
		return nil, false, nil
	}
	var start []byte
	if q.After > 0 {
		start = stateKey(q.State, q.After+1)
	}
	var out []*Record
	var ferr error
	more := false
	err := e.store.scanJoin([]byte{tagState, byte(q.State)}, start, func(n uint64, v []byte) bool {
		// Records of other series are skipped without being decoded.
		if st, ok := recordState(v); !ok || st != q.State {
			return true
		}
		if q.Series != "" {
			if s, ok := recordSeries(v); !ok || string(s) != q.Series {
				return true
			}
		}
		if len(out) == limit {
			more = true
			return false
		}
		r, err := decodeRecord(n, v)
		if err != nil {
			ferr = err
			return false
		}
		out = append(out, r)
		return true
	})
	return out, more, cmpErr(err, ferr)
}

// Retry queues sunums again now, with their backoff reset: FAIL, INVD and
// PNDG records (others are left as they are). With no sunums, it retries
// every record in state (FAIL or INVD), a page at a time. It returns the
// sunums queued.
func (e *Engine) Retry(sunums []uint64, state State) ([]uint64, error) {
	if len(sunums) == 0 && state != FAIL && state != INVD {
		return nil, fmt.Errorf("%w: retry: state %v (want FAIL or INVD)", ErrInvalid, state)
	}
	defer func() {
		for _, l := range e.lanes {
			l.poke()
		}
	}()
	now := time.Now()
	var done []uint64
	retry := func(chunk []uint64) error {
		_, err := e.store.update(chunk, now, func(n uint64, r *Record) (*Record, mutation) {
			if r == nil || (r.State != FAIL && r.State != INVD && r.State != PNDG) {
				return r, keep
			}
			r.State, r.Due, r.Streak, r.Reason = NQUE, now, 0, "retry requested after "+r.State.String()
			done = append(done, n)
			return r, write
		})
		return err
	}
	if len(sunums) > 0 {
		for chunk := range slices.Chunk(sunums, retryPage) {
			if err := retry(chunk); err != nil {
				return done, err
			}
		}
		return done, nil
	}
	// Records leave the state as they are retried: each page is read from
	// the start of what is left.
	for {
		page := make([]uint64, 0, retryPage)
		if err := e.store.byState(state, 0, func(n uint64) bool {
			page = append(page, n)
			return len(page) < retryPage
		}); err != nil {
			return done, err
		}
		if len(page) == 0 {
			return done, nil
		}
		if err := retry(page); err != nil {
			return done, err
		}
	}
}

// retryPage is the most records one write of Retry changes.
const retryPage = 4096

// CancelResult is what Cancel did with the sunums it was given (those the
// store does not know are in none of its lists).
type CancelResult struct {
	// Cancelled are forgotten: their records are gone, and no pull placed
	// or registered their units.
	Cancelled []uint64
	// Placed are forgotten too, but a pull had placed their units before
	// the cancel took effect: each unit's directory stays in the store,
	// not registered (a later request for it finds it in place, verifies
	// it and registers it, without pulling it again).
	Placed []uint64
	// Kept are not cancelled: DONE, or placed and being registered (they
	// become DONE unless the registration fails).
	Kept []uint64
}

// Cancel forgets sunums that are not DONE (see CancelResult). A unit being
// pulled is taken back: it is not placed if it was not yet (a call whose
// units are all cancelled stops at once), and in any case not registered,
// unless its registration had begun. Cancel never leaves a unit registered
// without a record.
func (e *Engine) Cancel(sunums []uint64) (CancelResult, error) {
	e.cancelMu.Lock()
	defer e.cancelMu.Unlock()
	kept, placed := map[uint64]bool{}, map[uint64]bool{}
	e.flightMu.Lock()
	for _, n := range sunums {
		f := e.flights[n]
		if f == nil || f.cancelled {
			continue
		}
		if f.state == flRegistering {
			kept[n] = true
			continue
		}
		placed[n] = f.state == flPlaced
		f.cancelled = true
		if f.call.live--; f.call.live == 0 {
			f.call.cancel()
		}
	}
	e.flightMu.Unlock()
	var res CancelResult
	_, err := e.store.update(sunums, time.Now(), func(n uint64, r *Record) (*Record, mutation) {
		switch {
		case r == nil:
			return r, keep
		case r.State == DONE || kept[n]:
			res.Kept = append(res.Kept, n)
			return r, keep
		case placed[n]:
			res.Placed = append(res.Placed, n)
		default:
			res.Cancelled = append(res.Cancelled, n)
		}
		return nil, remove
	})
	return res, err
}

// Wait blocks until every sunum is DONE or INVD, or ctx ends, and returns
// their records. ErrNotFound if one is not known (or is cancelled).
func (e *Engine) Wait(ctx context.Context, sunums []uint64) ([]*Record, error) {
	var rs []*Record
	err := e.store.wait(ctx, func() (bool, error) {
		var err error
		if rs, err = e.Status(sunums); err != nil {
			return false, err
		}
		for _, r := range rs {
			if r.State != DONE && r.State != INVD {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && rs != nil {
		return rs, err
	}
	return rs, err
}

// Range is an inclusive range of sunums.
type Range struct {
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// Coverage compares what this site holds of a series with what its
// authority's catalog holds.
type Coverage struct {
	Series string           `json:"series"`
	States map[string]int64 `json:"states"` // records per state
	// Authority counts the units the authority holds; Present are the
	// ranges of those DONE here, Missing of the others.
	Authority int64   `json:"authority"`
	Present   []Range `json:"present"`
	Missing   []Range `json:"missing"`
	// Error is set if the authority could not be asked.
	Error string `json:"error,omitempty"`
}

// Coverage reports, for series (every series the store knows if empty),
// the records per state and the sunum ranges present and missing compared
// with the authority's catalog. Each series is one pass over its index and
// the records, merged with the authority's sorted list: nothing per
// record is held but the ranges.
func (e *Engine) Coverage(ctx context.Context, series string) ([]Coverage, error) {
	names := []string{series}
	if series == "" {
		var err error
		if names, err = e.store.series(); err != nil {
			return nil, err
		}
	}
	var out []Coverage
	for _, s := range names {
		c, err := e.coverage(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// coverage is Coverage of one series.
func (e *Engine) coverage(ctx context.Context, series string) (Coverage, error) {
	c := Coverage{Series: series, States: map[string]int64{}}
	var units []uint64 // the authority's, sorted
	switch a := e.authority(series); a {
	case nil:
		c.Error = "no authority for this series"
	default:
		var err error
		if units, err = a.Units(ctx, series); err != nil {
			c.Error, units = err.Error(), nil
		}
		c.Authority = int64(len(units))
	}
	add := func(n uint64, present bool) {
		rs := &c.Missing
		if present {
			rs = &c.Present
		}
		if k := len(*rs); k > 0 && (*rs)[k-1].Last+1 == n {
			(*rs)[k-1].Last = n
		} else {
			*rs = append(*rs, Range{n, n})
		}
	}
	i := 0 // the authority's next unit
	var counts [INVD + 1]int64
	err := e.store.scanJoin(seriesPrefix(series), nil, func(n uint64, v []byte) bool {
		st, ok := recordState(v)
		if !ok {
			return true
		}
		counts[st]++
		for ; i < len(units) && units[i] < n; i++ {
			add(units[i], false)
		}
		if i < len(units) && units[i] == n {
			add(n, st == DONE)
			i++
		}
		return true
	})
	if err != nil {
		return c, err
	}
	for ; i < len(units); i++ {
		add(units[i], false)
	}
	for _, st := range States {
		if counts[st] > 0 {
			c.States[st.String()] = counts[st]
		}
	}
	return c, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
