package transfer

// The pull's work: files split into pieces and batched into items, queued,
// and fetched by each source's workers.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// startQueue sets up the sources and the queue, verifies the files that
// need no bytes, and queues the rest of the running units' work.
func (p *puller) startQueue() {
	for i, peer := range p.o.Sources {
		p.sources = append(p.sources, &source{peer: peer, idx: i})
	}
	p.q = newQueue(p.sources)
	p.q.max = p.o.MaxFailures
	p.limit = newLimiter(p.o.RateLimit)
	var pieces []piece
	for _, u := range p.units {
		if u.state.Load() != unitRunning || u.m == nil {
			continue
		}
		var up []piece
		err := func() error {
			for _, f := range u.files {
				if f.verified {
					continue
				}
				if f.done.bytes() == f.e.Size {
					// Empty, or every byte written by an earlier run that died
					// before it verified the file: nothing to fetch, so verify
					// now (a bad file is queued again).
					if _, err := p.verify(f); err != nil {
						return err
					}
					continue
				}
				up = append(up, p.piecesOf(f)...)
			}
			return nil
		}()
		if err != nil {
			p.failUnit(u, err)
			continue
		}
		pieces = append(pieces, up...)
	}
	p.q.add(p.batch(pieces, nil)...)
}

// createFile makes f's staging file with its final size (sparse), keeping
// bytes already there.
func (p *puller) createFile(f *fileState) error {
	if fi, err := os.Lstat(f.path); err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(f.path); err != nil {
			return localErr(err)
		}
	}
	h, err := openBlocking(f.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return localErr(err)
	}
	err = h.Truncate(f.e.Size)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	return localErr(err)
}

// piecesOf splits what f still misses into pieces of at most RangeSize.
// Called with p.mu held, or before the workers start.
func (p *puller) piecesOf(f *fileState) []piece {
	var out []piece
	for _, x := range f.done.missing(f.e.Size) {
		if f.isolate {
			out = append(out, piece{f: f, off: x.off, len: x.end - x.off})
			continue
		}
		for off := x.off; off < x.end; off += p.o.RangeSize {
			out = append(out, piece{f: f, off: off, len: min(p.o.RangeSize, x.end-off)})
		}
	}
	return out
}

// batch groups pieces into items: whole files smaller than BatchBytes/8
// (and than RangeSize) travel together, up to BatchFiles files of
// BatchUnits units and min(BatchBytes, RangeSize) bytes per item; other
// pieces go alone.
func (p *puller) batch(pieces []piece, avoid map[*source]bool) []*item {
	var items []*item
	var cur *item
	var curBytes int64
	var curUnits int
	var lastUnit *unitPull
	limit := min(p.o.BatchBytes, p.o.RangeSize)
	newItem := func() *item {
		it := &item{avoid: map[*source]bool{}}
		for s := range avoid {
			it.avoid[s] = true
		}
		return it
	}
	for _, pc := range pieces {
		whole := pc.off == 0 && pc.len == pc.f.e.Size
		if !whole || pc.len >= p.o.BatchBytes/8 || pc.len >= limit {
			it := newItem()
			it.pieces = []piece{pc}
			items = append(items, it)
			continue
		}
		newUnit := cur == nil || pc.f.u != lastUnit && !slices.ContainsFunc(cur.pieces, func(x piece) bool { return x.f.u == pc.f.u })
		if cur == nil || len(cur.pieces) >= p.o.BatchFiles || curBytes+pc.len > limit || newUnit && curUnits >= p.o.BatchUnits {
			cur, curBytes, curUnits = newItem(), 0, 0
			items = append(items, cur)
			newUnit = true
		}
		cur.pieces = append(cur.pieces, pc)
		curBytes += pc.len
		if newUnit {
			curUnits++
		}
		lastUnit = pc.f.u
	}
	return items
}

// run fetches every queued item with Streams workers per source, and
// returns when all files are verified or the pull cannot finish.
func (p *puller) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { p.q.fail(ctx.Err()) })
	defer stop()
	var wg sync.WaitGroup
	for _, s := range p.sources {
		s.ctx, s.cancel = context.WithCancelCause(ctx)
		defer s.cancel(nil)
		for range p.o.Streams {
			wg.Go(func() { p.worker(ctx, s) })
		}
	}
	var mon sync.WaitGroup
	if len(p.sources) > 1 && p.o.SlowFactor > 0 {
		mon.Go(func() { p.monitorRates(ctx) })
	}
	wg.Wait()
	cancel()
	mon.Wait()
	return p.q.result()
}

func (p *puller) worker(ctx context.Context, s *source) {
	for {
		it := p.q.take(s)
		if it == nil {
			return
		}
		s.busy.Add(1)
		err := p.fetch(s.ctx, s, it)
		s.busy.Add(-1)
		if err == nil {
			p.q.finish(it, s)
			continue
		}
		var le *localError
		switch {
		case ctx.Err() != nil:
			p.q.fail(ctx.Err())
			return
		case errors.As(err, &le):
			p.q.fail(err)
			return
		case len(it.pieces) == 0:
			p.q.finish(it, s) // everything arrived before the error
		case s.ctx.Err() != nil:
			// Dropped for slowness: the rest goes to the others, and this
			// source's next take returns nil.
			p.q.requeue(it, s, nil)
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrRefused), errors.Is(err, ErrChanged), errors.Is(err, ErrInvalid):
			// This source cannot serve these files; others may.
			p.log.Warn("source cannot serve a range", "peer", s.peer.Name(), "error", err)
			it.avoid[s], it.lastErr = true, fmt.Errorf("%s: %w", s.peer.Name(), err)
			p.q.requeue(it, s, nil)
		default:
			p.log.Warn("source failed", "peer", s.peer.Name(), "error", err)
			failures := p.q.requeue(it, s, fmt.Errorf("%s: %w", s.peer.Name(), err))
			// Back off a little before the next try of this source.
			select {
			case <-time.After(time.Duration(failures) * 100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}
