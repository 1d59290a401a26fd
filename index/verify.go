package index

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Verified is a candidate after its site's catalog was asked.
type Verified struct {
	Candidate
	// Confirmed: the site's catalog holds the LFN, with these PFNs.
	Confirmed bool
	PFNs      []string
	// Err is set when the site could not be asked (unreachable, timed out,
	// failed): the candidate is unverified, neither confirmed nor refuted.
	Err error
}

// Verifier asks sites' catalogs whether they hold what the index says they
// may hold. It keeps one client per endpoint. It is safe for concurrent
// use.
type Verifier struct {
	// Parallel bounds the sites asked at once; default 16.
	Parallel int
	// Dialer connects to the sites' catalogs (required: without it, every
	// candidate is unverified). A SiteCatalog that is an io.Closer is
	// closed by Close.
	Dialer Dialer

	mu    sync.Mutex
	conns map[string]SiteCatalog
}

// DefaultVerifyTimeout is how long Verify waits for the sites unless told.
const DefaultVerifyTimeout = 5 * time.Second

func (v *Verifier) conn(endpoint string) (SiteCatalog, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.conns[endpoint]; ok {
		return c, nil
	}
	if v.Dialer == nil {
		return nil, errors.New("the verifier has no Dialer")
	}
	c, err := v.Dialer.Catalog(endpoint)
	if err != nil {
		return nil, err
	}
	if v.conns == nil {
		v.conns = make(map[string]SiteCatalog)
	}
	v.conns[endpoint] = c
	return c, nil
}

// Close closes the connections the verifier opened.
func (v *Verifier) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for ep, c := range v.conns {
		if cc, ok := c.(interface{ Close() error }); ok {
			cc.Close()
		}
		delete(v.conns, ep)
	}
	return nil
}

// Verify asks each candidate site, one bulk query per site and many sites
// at once, whether it holds the LFNs the index named it for, and waits at
// most timeout (or until ctx ends). For each LFN it returns the confirmed
// sites with their PFNs, and the sites that could not be asked, marked with
// Err; candidates whose catalog says no are dropped.
//
// charge, when not nil, bounds what Verify keeps of the sites' answers: it
// is called, from several goroutines at once, with the bytes of each PFN
// list an answer brings before Verify keeps it, and once it returns an
// error Verify stops asking and returns that error (the answers would not
// fit the caller's reply). Verify fails only that way.
func (v *Verifier) Verify(ctx context.Context, lfns []string, cands [][]Candidate, timeout time.Duration, charge func(bytes int) error) ([][]Verified, error) {
	if timeout <= 0 {
		timeout = DefaultVerifyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The first error of charge, which ends every ask.
	var (
		overOnce sync.Once
		over     error
	)
	if charge != nil {
		next := charge
		charge = func(n int) error {
			err := next(n)
			if err != nil {
				overOnce.Do(func() { over = err; cancel() })
			}
			return err
		}
	}

	type ask struct {
		endpoint string
		lfns     []string
		answers  map[string][]string // LFN -> PFNs, for LFNs it holds
		err      error
	}
	asks := map[string]*ask{}
	var order []*ask
	for i, cs := range cands {
		for _, c := range cs {
			a := asks[c.Endpoint]
			if a == nil {
				a = &ask{endpoint: c.Endpoint}
				asks[c.Endpoint] = a
				order = append(order, a)
			}
			if n := len(a.lfns); n == 0 || a.lfns[n-1] != lfns[i] {
				a.lfns = append(a.lfns, lfns[i])
			}
		}
	}
	parallel := v.Parallel
	if parallel <= 0 {
		parallel = 16
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, a := range order {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				a.err = ctx.Err()
				return
			}
			a.answers, a.err = v.query(ctx, a.endpoint, a.lfns, charge)
		})
	}
	wg.Wait()
	if over != nil {
		return nil, over
	}

	out := make([][]Verified, len(cands))
	for i, cs := range cands {
		for _, c := range cs {
			a := asks[c.Endpoint]
			switch pfns, ok := a.answers[lfns[i]]; {
			case a.err != nil:
				out[i] = append(out[i], Verified{Candidate: c, Err: a.err})
			case ok:
				out[i] = append(out[i], Verified{Candidate: c, Confirmed: true, PFNs: pfns})
			}
		}
	}
	return out, nil
}

// query asks one site's catalog for the PFNs of lfns, charging each PFN
// list it keeps.
func (v *Verifier) query(ctx context.Context, endpoint string, lfns []string, charge func(int) error) (map[string][]string, error) {
	c, err := v.conn(endpoint)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	return c.Lookup(ctx, lfns, charge)
}
