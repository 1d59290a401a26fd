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

// List returns a page of records in sunum order, and whether more follow.
func (e *Engine) List(q ListQuery) ([]*Record, bool, error) {
	if !q.State.valid() {
		return nil, false, fmt.Errorf("%w: list: state %v", ErrInvalid, q.State)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	var out []*Record
	var ferr error
	more := false
	err := e.store.byState(q.State, q.After, func(n uint64) bool {
		rs, err := e.store.Get([]uint64{n})
		if err != nil {
			ferr = err
			return false
		}
		if r := rs[0]; r != nil && r.State == q.State && (q.Series == "" || r.Series == q.Series) {
			if len(out) == limit {
				more = true
				return false
			}
			out = append(out, r)
		}
		return true
	})
	if err == nil {
		err = ferr
	}
	return out, more, err
}

// Retry queues sunums again now, with their backoff reset: FAIL, INVD and
// PNDG records (others are left as they are). With no sunums, it retries
// every record in state (FAIL or INVD). It returns the sunums queued.
func (e *Engine) Retry(sunums []uint64, state State) ([]uint64, error) {
	if len(sunums) == 0 {
		if state != FAIL && state != INVD {
			return nil, fmt.Errorf("%w: retry: state %v (want FAIL or INVD)", ErrInvalid, state)
		}
		if err := e.store.byState(state, 0, func(n uint64) bool {
			sunums = append(sunums, n)
			return true
		}); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	var done []uint64
	for chunk := range slices.Chunk(sunums, 4096) {
		_, err := e.store.update(chunk, now, func(n uint64, r *Record) (*Record, mutation) {
			if r == nil || (r.State != FAIL && r.State != INVD && r.State != PNDG) {
				return r, keep
			}
			r.State, r.Due, r.Streak, r.Reason = NQUE, now, 0, "retry requested after "+r.State.String()
			done = append(done, n)
			return r, write
		})
		if err != nil {
			return done, err
		}
	}
	for _, l := range e.lanes {
		l.poke()
	}
	return done, nil
}

// Cancel forgets sunums that are not DONE: their records go. A unit being
// pulled may still be placed and registered. It returns the sunums
// removed.
func (e *Engine) Cancel(sunums []uint64) ([]uint64, error) {
	var done []uint64
	_, err := e.store.update(sunums, time.Now(), func(n uint64, r *Record) (*Record, mutation) {
		if r == nil || r.State == DONE {
			return r, keep
		}
		done = append(done, n)
		return nil, remove
	})
	return done, err
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
// with the authority's catalog.
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
		c := Coverage{Series: s, States: map[string]int64{}}
		done := map[uint64]bool{}
		var ferr error
		if err := e.store.bySeries(s, func(n uint64) bool {
			rs, err := e.store.Get([]uint64{n})
			if err != nil {
				ferr = err
				return false
			}
			if r := rs[0]; r != nil {
				c.States[r.State.String()]++
				if r.State == DONE {
					done[n] = true
				}
			}
			return true
		}); err != nil || ferr != nil {
			return nil, cmpErr(err, ferr)
		}
		a := e.authority(s)
		if a == nil {
			c.Error = "no authority for this series"
			out = append(out, c)
			continue
		}
		units, err := a.Units(ctx, s)
		if err != nil {
			c.Error = err.Error()
			out = append(out, c)
			continue
		}
		c.Authority = int64(len(units))
		for _, n := range units {
			rs := &c.Missing
			if done[n] {
				rs = &c.Present
			}
			if k := len(*rs); k > 0 && (*rs)[k-1].Last+1 == n {
				(*rs)[k-1].Last = n
			} else {
				*rs = append(*rs, Range{n, n})
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
