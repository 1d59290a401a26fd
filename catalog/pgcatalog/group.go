package pgcatalog

import (
	"context"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// Group commit. Every write holds the meta row's lock until its COMMIT has
// reached the disk, so one transaction a write would bound a process to one
// durable write per fsync. Instead, single Create, Add and Delete calls of
// a process queue up while a transaction is in flight and the next
// transaction applies all of them, in arrival order, each with its own
// result and feed position, under one fsync. A call is acknowledged only
// after the transaction holding it committed; if it fails, every call in
// it gets the error and none was written. A call whose context ends while
// it waits for a transaction is dropped before the transaction starts,
// and once its transaction started it waits for the outcome, so that
// "failed because ctx ended" always means "not written".

// pendingOp is one queued single write.
type pendingOp struct {
	ctx  context.Context
	op   catalog.Op
	m    catalog.Mapping
	done chan opResult // buffered; receives once
}

type opResult struct {
	seq uint64
	err error
}

// groupTimeout bounds one group transaction.
const groupTimeout = time.Minute

// group queues a single write and waits for its outcome.
func (c *Catalog) group(ctx context.Context, op catalog.Op, m catalog.Mapping) (uint64, error) {
	if err := c.enter(ctx, op.String()); err != nil {
		return 0, err
	}
	p := &pendingOp{ctx: ctx, op: op, m: m, done: make(chan opResult, 1)}
	c.opsMu.Lock()
	if c.isClosed() {
		c.opsMu.Unlock()
		return 0, closedErr(op.String())
	}
	c.ops = append(c.ops, p)
	if !c.committing {
		c.committing = true
		c.wg.Add(1)
		go c.commitOps()
	}
	c.opsMu.Unlock()
	r := <-p.done
	return r.seq, r.err
}

// commitOps commits the queued writes, a group at a time, until none is
// left.
func (c *Catalog) commitOps() {
	defer c.wg.Done()
	for {
		c.opsMu.Lock()
		batch := c.ops
		c.ops = nil
		if len(batch) == 0 {
			c.committing = false
			c.opsMu.Unlock()
			return
		}
		c.opsMu.Unlock()
		c.commitGroup(batch)
	}
}

func (c *Catalog) commitGroup(batch []*pendingOp) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- opResult{err: err}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ops := make([]catalog.Op, len(live))
	ms := make([]catalog.Mapping, len(live))
	idx := make([]int, len(live))
	for k, p := range live {
		ops[k], ms[k], idx[k] = p.op, p.m, k
	}
	errs := make([]error, len(live))
	seqs := make([]uint64, len(live))
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	mw := (&mappingWrite{ops: ops, ms: ms, idx: idx, errs: errs, seqs: seqs}).prepare()
	_, err := c.writeReading(ctx, "write", mw.queueReads, mw.apply)
	for k, p := range live {
		switch {
		case err != nil:
			p.done <- opResult{err: err}
		case errs[k] != nil:
			p.done <- opResult{err: errs[k]}
		default:
			p.done <- opResult{seq: seqs[k]}
		}
	}
}
