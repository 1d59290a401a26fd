package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/mirror"
)

// mirrorChunk is the most sunums of one Mirror call (the server's bound).
const mirrorChunk = api.MaxMirrorSunums

// newMirrorCommand is the "mirror" group: the mirror role of one rlsd.
func newMirrorCommand(g *globalOptions) *cobra.Command {
	c := groupCommand("mirror", "Ask a site to hold storage units, and follow them",
		newMirrorEnqueueCommand(g),
		newMirrorStatusCommand(g),
		newMirrorListCommand(g),
		newMirrorRetryCommand(g),
		newMirrorCancelCommand(g),
		newMirrorWaitCommand(g),
		newMirrorCoverageCommand(g),
		newMirrorSourcesCommand(g),
	)
	c.Long = `The mirror commands talk to an rlsd running the mirror role (--server).

A sunum is given in canonical decimal form (digits, no sign, no leading
zero). A sunum moves through the states
  NQUE  accepted        REDY  sources located   BQUED  waiting for a worker
  QUED  being pulled    DONE  placed, verified and registered here
  FAIL  will be retried PNDG  tier 2: no peer holds it yet
  INVD  the authority has no such sunum (retry re-queues it)`
	return c
}

// parseSunums parses canonical decimal sunums; the first bad one is a
// usage error naming it (and nothing is sent).
func parseSunums(args []string) ([]uint64, error) {
	out := make([]uint64, len(args))
	for i, a := range args {
		n, err := mirror.ParseSunum(a)
		if err != nil {
			return nil, usageErrorf("%s", strings.TrimPrefix(err.Error(), "mirror: invalid: "))
		}
		out[i] = n
	}
	return out, nil
}

func parseMirrorState(s string, allowed ...string) (rlsv1.MirrorState, error) {
	st, err := mirror.ParseState(strings.ToUpper(s))
	if err != nil || (len(allowed) > 0 && !slices.Contains(allowed, st.String())) {
		want := "NQUE REDY BQUED QUED DONE FAIL PNDG INVD"
		if len(allowed) > 0 {
			want = strings.Join(allowed, " or ")
		}
		return 0, usageErrorf("--state %q: want %s", s, want)
	}
	return api.MirrorStateToProto(st), nil
}

// --- enqueue

type mirrorEnqueueOptions struct {
	series   string
	priority enumFlag
	file     string
}

const enqueueDesc = `Enqueue asks the site to hold the given sunums (and those read from -f FILE,
one per line: "SUNUM" or "SUNUM SERIES"; blank lines and lines starting
with '#' are skipped; - reads stdin). Each is recorded durably before the
command returns; a sunum already known is not queued twice, and one queued
in bulk moves to the user lane when enqueued with --priority user.

Every sunum is checked first: a sunum that is not canonical decimal is
named (with its line) and nothing is enqueued (exit 2).`

func newMirrorEnqueueCommand(g *globalOptions) *cobra.Command {
	o := &mirrorEnqueueOptions{priority: newEnumFlag("bulk", "bulk", "user")}
	cmd := &cobra.Command{
		Use:   "enqueue SUNUM... [--series S] [--priority user|bulk] [-f FILE]",
		Short: "Ask the site to hold storage units",
		Long:  enqueueDesc,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMirrorEnqueue(cmd.Context(), g, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.series, "series", "", "series of the sunums (picks the authority by mirror-routes)")
	f.Var(&o.priority, "priority", "lane: "+o.priority.choices()+" (user requests never wait behind bulk)")
	f.StringVarP(&o.file, "file", "f", "", "also read sunums from FILE, - for stdin")
	return cmd
}

func runMirrorEnqueue(ctx context.Context, g *globalOptions, o *mirrorEnqueueOptions, args []string) error {
	if len(args) == 0 && o.file == "" {
		return usageErrorf("no sunums: give them as arguments or with -f FILE")
	}
	var items []*rlsv1.MirrorEnqueueItem
	for _, a := range args {
		n, err := mirror.ParseSunum(a)
		if err != nil {
			return usageErrorf("%s", strings.TrimPrefix(err.Error(), "mirror: invalid: "))
		}
		items = append(items, &rlsv1.MirrorEnqueueItem{Sunum: n, Series: o.series})
	}
	if o.file != "" {
		more, err := readSunumFile(g, o.file, o.series)
		if err != nil {
			return err
		}
		items = append(items, more...)
	}
	prio := rlsv1.MirrorPriority_MIRROR_PRIORITY_BULK
	if o.priority.String() == "user" {
		prio = rlsv1.MirrorPriority_MIRROR_PRIORITY_USER
	}
	res := enqueueResult{Priority: o.priority.String()}
	err := g.withConn(func(c *conn) error {
		for chunk := range slices.Chunk(items, mirrorChunk) {
			rctx, cancel := g.rpcContext(ctx)
			resp, err := c.mirror.Enqueue(rctx, &rlsv1.MirrorEnqueueRequest{Items: chunk, Priority: prio})
			cancel()
			if err != nil {
				if res.Accepted > 0 {
					return fmt.Errorf("after %d sunums were enqueued: %w", res.Accepted, err)
				}
				return err
			}
			res.Accepted += resp.GetAccepted()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return g.printer().print(res)
}

// readSunumFile reads "SUNUM [SERIES]" lines; series is the default
// series. A bad line is a usage error naming it.
func readSunumFile(g *globalOptions, name, series string) ([]*rlsv1.MirrorEnqueueItem, error) {
	r, _, closeIn, err := openInput(g, name)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	src := newLineSource(r)
	var out []*rlsv1.MirrorEnqueueItem
	for {
		raw, ok := src.next()
		if !ok {
			break
		}
		content, skip := splitLine(raw)
		if skip {
			continue
		}
		fields := strings.Fields(content)
		if len(fields) > 2 {
			return nil, usageErrorf("%s line %d: want \"SUNUM [SERIES]\", found %d fields", name, src.line, len(fields))
		}
		n, err := mirror.ParseSunum(fields[0])
		if err != nil {
			return nil, usageErrorf("%s line %d: %s", name, src.line, strings.TrimPrefix(err.Error(), "mirror: invalid: "))
		}
		it := &rlsv1.MirrorEnqueueItem{Sunum: n, Series: series}
		if len(fields) == 2 {
			it.Series = fields[1]
		}
		out = append(out, it)
	}
	if err := src.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// enqueueResult is {"accepted":N,"priority":"bulk"}.
type enqueueResult struct {
	Accepted uint64 `json:"accepted"`
	Priority string `json:"priority"`
}

func (r enqueueResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "enqueued %d sunums (%s)\n", r.Accepted, r.Priority)
}

// --- status

func newMirrorStatusCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status SUNUM...",
		Short: "Show sunums' states, reasons, sources, sizes, timings and attempts",
		Long: `Status shows each sunum's record: state, reason, attempts, source, bytes,
timings, and its attempt history (the last 16: time, source, error).
Exit status 3 if a sunum is not known to the mirror (the message names it).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sunums, err := parseSunums(args)
			if err != nil {
				return err
			}
			var res recordsResult
			err = g.withConn(func(c *conn) error {
				for chunk := range slices.Chunk(sunums, mirrorChunk) {
					rctx, cancel := g.rpcContext(cmd.Context())
					resp, err := c.mirror.Status(rctx, &rlsv1.MirrorStatusRequest{Sunums: chunk})
					cancel()
					if err != nil {
						return err
					}
					res.add(resp.GetRecords())
				}
				return nil
			})
			if err != nil {
				return err
			}
			res.history = true
			return g.printer().print(res)
		},
	}
}

// mirrorRecord is one sunum's record as rlsctl prints it.
type mirrorRecord struct {
	Sunum    string          `json:"sunum"` // canonical decimal, like the LFN
	State    string          `json:"state"`
	Series   string          `json:"series"`
	Priority string          `json:"priority"`
	Reason   string          `json:"reason"`
	Attempts uint32          `json:"attempts"`
	Source   string          `json:"source"`
	Bytes    int64           `json:"bytes"`
	Files    int64           `json:"files"`
	Enqueued *time.Time      `json:"enqueued,omitempty"`
	Changed  *time.Time      `json:"changed,omitempty"`
	Done     *time.Time      `json:"done,omitempty"`
	Due      *time.Time      `json:"due,omitempty"`
	History  []mirrorAttempt `json:"history"`
}

type mirrorAttempt struct {
	At     *time.Time `json:"at,omitempty"`
	Source string     `json:"source"`
	Error  string     `json:"error,omitempty"`
}

func tsOf(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime().Local()
	return &v
}

func recordOf(p *rlsv1.MirrorRecord) mirrorRecord {
	r := mirrorRecord{
		Sunum: strconv.FormatUint(p.GetSunum(), 10), State: api.MirrorStateName(p.GetState()), Series: p.GetSeries(),
		Priority: "bulk", Reason: p.GetReason(), Attempts: p.GetAttempts(), Source: p.GetSource(),
		Bytes: p.GetBytes(), Files: p.GetFiles(),
		Enqueued: tsOf(p.GetEnqueued()), Changed: tsOf(p.GetChanged()), Done: tsOf(p.GetDone()), Due: tsOf(p.GetDue()),
		History: []mirrorAttempt{},
	}
	if p.GetPriority() == rlsv1.MirrorPriority_MIRROR_PRIORITY_USER {
		r.Priority = "user"
	}
	for _, a := range p.GetHistory() {
		r.History = append(r.History, mirrorAttempt{At: tsOf(a.GetAt()), Source: a.GetSource(), Error: a.GetError()})
	}
	return r
}

// recordsResult is {"records":[...]}; its table shows one row per sunum
// and, with history, the attempts under it.
type recordsResult struct {
	Records []mirrorRecord `json:"records"`
	history bool
}

func (r *recordsResult) add(ps []*rlsv1.MirrorRecord) {
	for _, p := range ps {
		r.Records = append(r.Records, recordOf(p))
	}
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func (r recordsResult) writeTable(w io.Writer) {
	row(w, "SUNUM", "STATE", "SERIES", "ATTEMPTS", "SOURCE", "BYTES", "FILES", "ENQUEUED", "DONE", "DUE", "REASON")
	for _, rec := range r.Records {
		row(w, rec.Sunum, rec.State, dash(rec.Series), strconv.FormatUint(uint64(rec.Attempts), 10), dash(rec.Source),
			strconv.FormatInt(rec.Bytes, 10), strconv.FormatInt(rec.Files, 10), fmtTime(rec.Enqueued), fmtTime(rec.Done),
			fmtTime(rec.Due), dash(rec.Reason))
		if !r.history {
			continue
		}
		for _, a := range rec.History {
			outcome := "ok"
			if a.Error != "" {
				outcome = a.Error
			}
			// Cells left empty under the record's columns (row would
			// quote them).
			fmt.Fprintf(w, "  attempt\t%s\t\t\t%s\t\t\t\t\t\t%s\n", fmtTime(a.At), cell(a.Source), cell(outcome))
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// --- list

type mirrorListOptions struct {
	state, series string
	limit         int
}

func newMirrorListCommand(g *globalOptions) *cobra.Command {
	o := &mirrorListOptions{}
	cmd := &cobra.Command{
		Use:   "list --state S [--series S] [--limit N]",
		Short: "List the sunums in a state, in sunum order",
		Long: `List prints the records in state --state (of --series only, if given), in
sunum order, fetched page by page, as a stream: in JSON
{"results":[record,...],"summary":{"records":N}}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseMirrorState(o.state)
			if err != nil {
				return err
			}
			if o.limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			out := g.printer().stream("SUNUM", "STATE", "SERIES", "ATTEMPTS", "SOURCE", "BYTES", "CHANGED", "REASON")
			var n int
			err = g.withConn(func(c *conn) error {
				after := uint64(0)
				for {
					page := uint32(api.DefaultMirrorPage)
					if o.limit > 0 {
						page = uint32(min(o.limit-n, api.DefaultMirrorPage))
					}
					rctx, cancel := g.rpcContext(cmd.Context())
					resp, err := c.mirror.List(rctx, &rlsv1.MirrorListRequest{State: st, Series: o.series, After: after, Limit: page})
					cancel()
					if err != nil {
						return err
					}
					for _, p := range resp.GetRecords() {
						out.add(listItem(recordOf(p)))
						after = p.GetSunum()
						n++
					}
					out.flush()
					if !resp.GetMore() || len(resp.GetRecords()) == 0 || (o.limit > 0 && n >= o.limit) {
						return nil
					}
				}
			})
			if err != nil {
				return err
			}
			return out.end(listSummary{Records: n})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.state, "state", "", "state: NQUE REDY BQUED QUED DONE FAIL PNDG INVD (required)")
	f.StringVar(&o.series, "series", "", "only this series")
	f.IntVar(&o.limit, "limit", 0, "at most this many records (0: all)")
	_ = cmd.MarkFlagRequired("state")
	return cmd
}

type listItem mirrorRecord

func (r listItem) writeRows(w io.Writer) {
	row(w, r.Sunum, r.State, dash(r.Series), strconv.FormatUint(uint64(r.Attempts), 10), dash(r.Source),
		strconv.FormatInt(r.Bytes, 10), fmtTime(r.Changed), dash(r.Reason))
}

type listSummary struct {
	Records int `json:"records"`
}

func (s listSummary) writeTable(w io.Writer) { fmt.Fprintf(w, "%d records\n", s.Records) }

// --- retry and cancel

type mirrorRetryOptions struct{ state string }

func newMirrorRetryCommand(g *globalOptions) *cobra.Command {
	o := &mirrorRetryOptions{}
	cmd := &cobra.Command{
		Use:   "retry SUNUM...|--state FAIL|INVD",
		Short: "Queue FAIL, INVD or PNDG sunums again now",
		Long: `Retry queues the given sunums again now, with their backoff reset, if they
are FAIL, INVD or PNDG (others are left as they are), or every sunum in
--state FAIL or INVD. It prints the sunums queued again.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 0) == (o.state == "") {
				return usageErrorf("give sunums or --state, not both")
			}
			res := sunumsResult{Verb: "queued again", Sunums: []string{}}
			if o.state != "" {
				st, err := parseMirrorState(o.state, "FAIL", "INVD")
				if err != nil {
					return err
				}
				err = g.withConn(func(c *conn) error {
					rctx, cancel := g.rpcContext(cmd.Context())
					defer cancel()
					resp, err := c.mirror.Retry(rctx, &rlsv1.MirrorRetryRequest{State: st})
					if err != nil {
						return err
					}
					res.addAll(resp.GetSunums())
					res.Count = resp.GetCount()
					return nil
				})
				if err != nil {
					return err
				}
				return g.printer().print(res)
			}
			return runSunumsCall(cmd.Context(), g, args, &res, &res, func(ctx context.Context, c *conn, chunk []uint64) ([]uint64, error) {
				resp, err := c.mirror.Retry(ctx, &rlsv1.MirrorRetryRequest{Sunums: chunk})
				return resp.GetSunums(), err
			})
		},
	}
	cmd.Flags().StringVar(&o.state, "state", "", "retry every sunum in this state: FAIL or INVD")
	return cmd
}

func newMirrorCancelCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel SUNUM...",
		Short: "Forget sunums that are not DONE",
		Long: `Cancel forgets the given sunums unless they are DONE; it prints those
forgotten. A unit being pulled is taken back: it is not placed if it was
not yet, and it is not registered. It prints apart the units a pull had
already placed (their directories stay in the mirror store, not
registered; a later request finds them in place, verifies and registers
them) and the sunums not cancelled (DONE, or placed and being
registered).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res := cancelResult{sunumsResult: sunumsResult{Verb: "cancelled", Sunums: []string{}}, Placed: []string{}, Kept: []string{}}
			return runSunumsCall(cmd.Context(), g, args, &res.sunumsResult, &res, func(ctx context.Context, c *conn, chunk []uint64) ([]uint64, error) {
				resp, err := c.mirror.Cancel(ctx, &rlsv1.MirrorCancelRequest{Sunums: chunk})
				res.Placed = appendSunums(res.Placed, resp.GetPlaced())
				res.Kept = appendSunums(res.Kept, resp.GetKept())
				return resp.GetSunums(), err
			})
		},
	}
}

// cancelResult is sunumsResult plus the sunums whose units a pull had
// placed before the cancel took effect, and those not cancelled.
type cancelResult struct {
	sunumsResult
	Placed []string `json:"placed"`
	Kept   []string `json:"kept"`
}

func (r cancelResult) writeTable(w io.Writer) {
	r.sunumsResult.writeTable(w)
	if len(r.Placed) > 0 {
		fmt.Fprintf(w, "of which %d placed before the cancel took effect (left in the store, not registered):\n", len(r.Placed))
		for _, s := range r.Placed {
			fmt.Fprintln(w, s)
		}
	}
	if len(r.Kept) > 0 {
		fmt.Fprintf(w, "not cancelled, %d DONE or being registered:\n", len(r.Kept))
		for _, s := range r.Kept {
			fmt.Fprintln(w, s)
		}
	}
}

func appendSunums(out []string, ns []uint64) []string {
	for _, n := range ns {
		out = append(out, strconv.FormatUint(n, 10))
	}
	return out
}

// runSunumsCall parses args, calls call chunk by chunk, adds the sunums it
// returned to res and prints out (res, or a result that holds it).
func runSunumsCall(ctx context.Context, g *globalOptions, args []string, res *sunumsResult, out result,
	call func(context.Context, *conn, []uint64) ([]uint64, error)) error {
	sunums, err := parseSunums(args)
	if err != nil {
		return err
	}
	err = g.withConn(func(c *conn) error {
		for chunk := range slices.Chunk(sunums, mirrorChunk) {
			rctx, cancel := g.rpcContext(ctx)
			done, err := call(rctx, c, chunk)
			cancel()
			if err != nil {
				return err
			}
			res.addAll(done)
			res.Count += uint64(len(done))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return g.printer().print(out)
}

// sunumsResult is {"count":N,"sunums":["1","2"]}.
type sunumsResult struct {
	Count  uint64   `json:"count"`
	Sunums []string `json:"sunums"`
	Verb   string   `json:"-"`
}

func (r *sunumsResult) addAll(ns []uint64) {
	for _, n := range ns {
		r.Sunums = append(r.Sunums, strconv.FormatUint(n, 10))
	}
}

func (r sunumsResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "%s %d sunums\n", r.Verb, r.Count)
	for _, s := range r.Sunums {
		fmt.Fprintln(w, s)
	}
}

// --- wait

const waitDesc = `Wait waits until every given sunum is DONE or INVD, then prints their
records. Without --timeout it waits as long as it takes; with it, at most
that long in all (it then prints where they stand).

Exit status: 0 when every sunum is DONE; 3 when every sunum is DONE or INVD
and some are INVD (or a sunum is not known to the mirror); 5 when --timeout
passed first; 2 for a bad sunum.`

// waitPoll is how long one Wait call lasts at most; the command calls
// again until its own deadline.
const waitPoll = 30 * time.Second

func newMirrorWaitCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "wait SUNUM... [--timeout D]",
		Short: "Wait until sunums are DONE or INVD; exit 0 only if all are DONE",
		Long:  waitDesc,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sunums, err := parseSunums(args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if f := cmd.Flag("timeout"); f != nil && f.Changed {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, g.timeout)
				defer cancel()
			}
			res, complete, err := runMirrorWait(ctx, g, sunums)
			if err != nil {
				return err
			}
			if perr := g.printer().print(res); perr != nil {
				return perr
			}
			invd := 0
			for _, r := range res.Records {
				if r.State == "INVD" {
					invd++
				}
			}
			switch {
			case !complete:
				return &exitError{code: exitUnavailable, err: fmt.Errorf("timed out after %v: not every sunum is DONE or INVD", g.timeout)}
			case invd > 0:
				return &exitError{code: exitNotFound, err: fmt.Errorf("%d of %d sunums are INVD (the authority has no such sunum)", invd, len(res.Records))}
			}
			return nil
		},
	}
}

// runMirrorWait waits chunk by chunk until every sunum is final or ctx
// ends; complete reports the former.
func runMirrorWait(ctx context.Context, g *globalOptions, sunums []uint64) (res recordsResult, complete bool, err error) {
	err = g.withConn(func(c *conn) error {
		for chunk := range slices.Chunk(sunums, mirrorChunk) {
			for {
				wait := waitPoll
				if dl, ok := ctx.Deadline(); ok {
					wait = min(wait, time.Until(dl))
				}
				if wait <= 0 {
					wait = time.Millisecond
				}
				// The call's deadline leaves the server room to answer.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait+g.timeout)
				resp, err := c.mirror.Wait(rctx, &rlsv1.MirrorWaitRequest{Sunums: chunk, Timeout: durationpb.New(wait)})
				cancel()
				if err != nil {
					return err
				}
				if resp.GetComplete() || ctx.Err() != nil {
					res.add(resp.GetRecords())
					if !resp.GetComplete() {
						return nil
					}
					break
				}
			}
		}
		complete = true
		return nil
	})
	return res, complete, err
}
