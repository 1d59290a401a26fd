package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/inflight"
)

const (
	defaultChunk    = 10000
	maxLineLen      = 1 << 20 // bytes; a valid line is at most ~2 KiB
	maxShownFailure = 100     // failures printed on stderr before only counting them
	maxInflight     = 64      // requests in flight at once
)

// newLRCBulkCommand is the "lrc bulk" group: many items read from a file.
func newLRCBulkCommand(g *globalOptions) *cobra.Command {
	return groupCommand("bulk", "Create, add, delete or query many mappings read from a file",
		newBulkWriteCommand(g, "create", rlsv1.WriteOp_WRITE_OP_CREATE),
		newBulkWriteCommand(g, "add", rlsv1.WriteOp_WRITE_OP_ADD),
		newBulkWriteCommand(g, "delete", rlsv1.WriteOp_WRITE_OP_DELETE),
		newBulkQueryCommand(g),
	)
}

type bulkOptions struct {
	file     string
	chunk    int
	inflight int
	pfn      bool // query only
}

func (o *bulkOptions) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.file, "file", "f", "-", "input file, - for stdin")
	cmd.Flags().IntVar(&o.chunk, "chunk", defaultChunk, "items per request")
	cmd.Flags().IntVar(&o.inflight, "inflight", inflight.DefaultK, "requests in flight at once (chunks sharing an LFN go one after the other)")
}

const bulkInputHelp = `
Input is read line by line and sent in chunks of --chunk items, up to
--inflight chunks in flight while the next is read, so the file may be of
any size. Items take effect as if the chunks went one after the other: a
chunk that names an LFN also named by a chunk in flight waits for that one,
and results are printed in input order. Blank lines
and lines starting with '#' are skipped. Malformed lines and failed items are
reported on stderr with their line numbers (the first 100, then a count),
and a summary is printed at the end. The command exits 0 if every item
succeeded, otherwise with the exit status shared by all failures (for
example 4 when every failure is ALREADY_EXISTS, 2 for malformed lines), or 1
when they differ. A progress bar is shown when stderr is a terminal.`

func newBulkWriteCommand(g *globalOptions, op string, wop rlsv1.WriteOp) *cobra.Command {
	o := &bulkOptions{}
	cmd := &cobra.Command{
		Use:   op + " [-f FILE|-] [--chunk N] [--inflight K]",
		Short: fmt.Sprintf("Bulk %s mappings, one \"LFN PFN\" per line", op),
		Long: fmt.Sprintf(`Bulk %s mappings read from FILE (or stdin), one mapping per line:
an LFN and a PFN separated by tabs or, in lines without a tab, by spaces.
Use tabs when names contain spaces.
`, op) + bulkInputHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBulk(cmd.Context(), g, o, op, func(b *bulkRun) error {
				return b.write(wop)
			})
		},
	}
	o.bind(cmd)
	return cmd
}

func newBulkQueryCommand(g *globalOptions) *cobra.Command {
	o := &bulkOptions{}
	cmd := &cobra.Command{
		Use:   "query [-f FILE|-] [--chunk N] [--inflight K] [--pfn]",
		Short: "Bulk query LFNs (or PFNs with --pfn), one name per line",
		Long: `Bulk query names read from FILE (or stdin), one LFN (or PFN, with --pfn)
per line; surrounding spaces are trimmed. The mappings found are printed in
input order; in JSON as {"results":[{"line":N,"lfn":...,"pfns":[...]},...],
"summary":{...}}, where names that failed carry "error" instead of the list.
` + bulkInputHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBulk(cmd.Context(), g, o, "query", func(b *bulkRun) error {
				return b.query()
			})
		},
	}
	o.bind(cmd)
	cmd.Flags().BoolVar(&o.pfn, "pfn", false, "the names are PFNs")
	return cmd
}

// splitLine trims a raw input line and says whether to skip it (blank, or a
// '#' comment).
func splitLine(raw string) (content string, skip bool) {
	content = strings.TrimSpace(raw)
	return content, content == "" || content[0] == '#'
}

// parseMappingLine parses "LFN PFN". The fields are separated by runs of
// tabs when the line has a tab (so names may contain spaces), else by runs of
// spaces; there must be exactly two, each a valid name.
func parseMappingLine(content string) (lfn, pfn string, err error) {
	var fields []string
	if strings.ContainsRune(content, '\t') {
		for f := range strings.SplitSeq(content, "\t") {
			if f = strings.TrimSpace(f); f != "" {
				fields = append(fields, f)
			}
		}
	} else {
		fields = strings.Fields(content)
	}
	if len(fields) != 2 {
		return "", "", fmt.Errorf("want \"LFN PFN\" separated by tabs or spaces, found %d field(s)", len(fields))
	}
	if err := checkName("lfn", fields[0]); err != nil {
		return "", "", err
	}
	if err := checkName("pfn", fields[1]); err != nil {
		return "", "", err
	}
	return fields[0], fields[1], nil
}

// bulkChunk is one request's worth of items with their input line numbers.
type bulkChunk struct {
	lines     []uint64
	mappings  []*rlsv1.Mapping // write
	names     []string         // query
	malformed []lineFailure    // lines rejected by the client, in order
	// pos and nread are the input bytes and lines consumed up to the end of
	// this chunk, for the progress bar.
	pos   int64
	nread uint64
}

func (c *bulkChunk) len() int { return len(c.lines) }

type lineFailure struct {
	line uint64
	msg  string
}

// lineSource reads input lines with their numbers and byte positions. A
// UTF-8 byte order mark at the start of the input (as some editors write)
// is skipped, not made part of the first line. Not safe for concurrent use.
type lineSource struct {
	sc   *bufio.Scanner
	line uint64
	pos  int64
	done bool
}

func newLineSource(r io.Reader) *lineSource {
	s := &lineSource{sc: bufio.NewScanner(r)}
	s.sc.Buffer(make([]byte, 64<<10), maxLineLen)
	s.sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		adv, tok, err := bufio.ScanLines(data, atEOF)
		s.pos += int64(adv)
		return adv, tok, err
	})
	return s
}

func (s *lineSource) next() (string, bool) {
	// The end of input or an error is final, whatever a further Scan would
	// say (after ErrTooLong it can return the rest of the line).
	if s.done || !s.sc.Scan() {
		s.done = true
		return "", false
	}
	s.line++
	if s.line == 1 {
		return strings.TrimPrefix(s.sc.Text(), utf8BOM), true
	}
	return s.sc.Text(), true
}

// utf8BOM is U+FEFF encoded in UTF-8.
const utf8BOM = "\uFEFF"

func (s *lineSource) err() error {
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return usageErrorf("line %d: longer than %d bytes", s.line+1, maxLineLen)
		}
		return fmt.Errorf("reading input after line %d: %w", s.line, err)
	}
	return nil
}

// readChunk reads up to n items; parse turns a line's content into the
// chunk's next item or reports it malformed. It returns nil at the end of
// the input.
func (s *lineSource) readChunk(n int, parse func(c *bulkChunk, content string) error) *bulkChunk {
	c := &bulkChunk{}
	for c.len() < n {
		raw, ok := s.next()
		if !ok {
			break
		}
		content, skip := splitLine(raw)
		if skip {
			continue
		}
		if err := parse(c, content); err != nil {
			c.malformed = append(c.malformed, lineFailure{line: s.line, msg: err.Error()})
			continue
		}
		c.lines = append(c.lines, s.line)
	}
	c.pos, c.nread = s.pos, s.line
	if c.len() == 0 && len(c.malformed) == 0 {
		return nil
	}
	return c
}

// bulkRun is the state of one bulk command. The summary, tally, progress
// and output are used by the goroutine that handles answers in input
// order only; the reading goroutine touches the lineSource.
type bulkRun struct {
	g     *globalOptions
	opts  *bulkOptions
	conn  *conn
	ctx   context.Context
	src   *lineSource
	out   *stream // query only
	sum   bulkSummary
	tally failureTally
	shown int
	prog  *progress
	start time.Time
}

// runBulk opens the input and the connection, runs body, and prints the
// summary whatever happened, so that an aborted run says how far it got.
func runBulk(ctx context.Context, g *globalOptions, o *bulkOptions, op string, body func(*bulkRun) error) error {
	if o.chunk < 1 {
		return usageErrorf("--chunk must be at least 1, got %d", o.chunk)
	}
	if o.inflight < 1 || o.inflight > maxInflight {
		return usageErrorf("--inflight must be between 1 and %d, got %d", maxInflight, o.inflight)
	}
	in, size, closeIn, err := openInput(g, o.file)
	if err != nil {
		return err
	}
	defer closeIn()
	c, err := g.dial()
	if err != nil {
		return err
	}
	defer c.Close()

	b := &bulkRun{g: g, opts: o, conn: c, ctx: ctx, src: newLineSource(in), start: time.Now()}
	b.sum.Op = op
	b.prog = newProgress(g.stderr, size, op)
	err = body(b)
	b.prog.finish()

	elapsed := time.Since(b.start)
	b.sum.ElapsedSeconds = elapsed.Seconds()
	if s := elapsed.Seconds(); s > 0 {
		b.sum.RatePerSecond = float64(b.sum.Items) / s
	}
	b.sum.Failed = b.tally.total
	b.sum.OK = b.sum.Items - b.sum.Failed
	b.sum.FailuresByCode = b.tally.byCode
	if b.shown < int(b.tally.total) {
		fmt.Fprintf(g.stderr, "rlsctl: ... and %d more failures not shown\n", int(b.tally.total)-b.shown)
	}
	var perr error
	if b.out != nil {
		perr = b.out.end(b.sum)
	} else {
		perr = g.printer().print(b.sum)
	}
	switch {
	case err != nil:
		return err
	case perr != nil:
		return perr
	case b.tally.total > 0:
		return &exitError{code: b.tally.exitStatus(),
			err: fmt.Errorf("%d of %d items failed", b.tally.total, b.sum.Items)}
	}
	return nil
}

// openInput opens name ("-" for stdin) and reports its size when it is a
// regular file (else -1).
func openInput(g *globalOptions, name string) (io.Reader, int64, func(), error) {
	if name == "-" || name == "" {
		size := int64(-1)
		if f, ok := g.stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				size = st.Size()
			}
			if isTerminal(f) {
				fmt.Fprintln(g.stderr, "rlsctl: reading items from the terminal; end with Ctrl-D")
			}
		}
		return g.stdin, size, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, nil, usageErrorf("input: %v", err)
	}
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, func() { f.Close() }, nil
}

// runChunks reads chunks in the calling goroutine and sends them with up
// to --inflight in flight (internal/inflight): a chunk that names an LFN
// of a chunk still in flight (keys) waits for it, so that every item sees
// the effects of the items before it, as when chunks go one at a time.
// Each chunk's answer is handed to handle in input order, after its items
// were sent under one --timeout; then its malformed lines are reported and
// the summary and progress advance. The first failure stops the sending;
// chunks already in flight are waited for.
func runChunks[R any](b *bulkRun, parse func(*bulkChunk, string) error, keys func(*bulkChunk) []string,
	send func(context.Context, *bulkChunk) (R, error), handle func(*bulkChunk, R) error) error {
	var readErr error
	next := func() (inflight.Chunk[*bulkChunk], bool) {
		c := b.src.readChunk(b.opts.chunk, parse)
		if c == nil {
			readErr = b.src.err()
			return inflight.Chunk[*bulkChunk]{}, false
		}
		return inflight.Chunk[*bulkChunk]{Items: c, Keys: keys(c)}, true
	}
	notConfirmed := func(c *bulkChunk, err error) error {
		return &exitError{code: classify(err), err: fmt.Errorf("chunk of lines %d-%d not confirmed: %s",
			c.lines[0], c.lines[c.len()-1], describe(err))}
	}
	sendChunk := func(ctx context.Context, c *bulkChunk) (R, error) {
		var r R
		if c.len() == 0 {
			return r, nil
		}
		rctx, cancel := b.g.rpcContext(ctx)
		defer cancel()
		r, err := send(rctx, c)
		if err != nil {
			return r, notConfirmed(c, err)
		}
		return r, nil
	}
	done := func(c *bulkChunk, r R) error {
		if c.len() > 0 {
			if err := handle(c, r); err != nil {
				return notConfirmed(c, err)
			}
		}
		b.chunkDone(c)
		return nil
	}
	if err := inflight.Run(b.ctx, b.opts.inflight, next, sendChunk, done); err != nil {
		return err
	}
	if readErr == nil && b.ctx.Err() != nil {
		readErr = b.ctx.Err()
	}
	return readErr
}

// chunkDone reports the chunk's malformed lines (after its item failures;
// both are in line order within their kind), and advances the summary and
// progress.
func (b *bulkRun) chunkDone(c *bulkChunk) {
	for _, m := range c.malformed {
		b.sum.Items++
		b.sum.Malformed++
		b.tally.addMalformed()
		b.showFailure(m.line, "", "MALFORMED", m.msg)
	}
	b.sum.Items += uint64(c.len())
	b.prog.update(c.pos, c.nread, b.sum.Items, time.Since(b.start))
	if b.out != nil {
		b.out.flush()
	}
}

// itemFailed records the failure of the chunk's item i.
func (b *bulkRun) itemFailed(c *bulkChunk, i int, item string, st *rlsv1.Status) {
	code := codes.Code(st.GetCode())
	b.tally.addGRPC(code)
	b.showFailure(c.lines[i], item, api.CodeName(code), st.GetMessage())
}

func (b *bulkRun) showFailure(line uint64, item, code, msg string) {
	if b.shown >= maxShownFailure {
		return
	}
	b.shown++
	b.prog.clear()
	if item != "" {
		fmt.Fprintf(b.g.stderr, "rlsctl: line %d: %s: %s: %s\n", line, item, code, msg)
	} else {
		fmt.Fprintf(b.g.stderr, "rlsctl: line %d: %s: %s\n", line, code, msg)
	}
}

func (b *bulkRun) write(op rlsv1.WriteOp) error {
	parse := func(c *bulkChunk, content string) error {
		lfn, pfn, err := parseMappingLine(content)
		if err != nil {
			return err
		}
		c.mappings = append(c.mappings, &rlsv1.Mapping{Lfn: lfn, Pfn: pfn})
		return nil
	}
	lfns := func(c *bulkChunk) []string {
		keys := make([]string, len(c.mappings))
		for i, m := range c.mappings {
			keys[i] = m.GetLfn()
		}
		return keys
	}
	send := func(ctx context.Context, c *bulkChunk) (*rlsv1.BulkResponse, error) {
		return b.conn.catalog.BulkWrite(ctx, &rlsv1.BulkWriteRequest{Op: op, Mappings: c.mappings})
	}
	handle := func(c *bulkChunk, resp *rlsv1.BulkResponse) error {
		if len(resp.GetResults()) != c.len() {
			return fmt.Errorf("server answered %d results for %d items", len(resp.GetResults()), c.len())
		}
		for i, st := range resp.GetResults() {
			if codes.Code(st.GetCode()) != codes.OK {
				m := c.mappings[i]
				b.itemFailed(c, i, cell(m.GetLfn())+" "+cell(m.GetPfn()), st)
			}
		}
		b.sum.Seq = max(b.sum.Seq, resp.GetSeq())
		return nil
	}
	return runChunks(b, parse, lfns, send, handle)
}

func (b *bulkRun) query() error {
	byPFN := b.opts.pfn
	kind := "lfn"
	typ := rlsv1.ObjectType_OBJECT_TYPE_LFN
	if byPFN {
		kind, typ = "pfn", rlsv1.ObjectType_OBJECT_TYPE_PFN
	}
	b.out = b.g.printer().stream(queryHeader(byPFN)...)
	parse := func(c *bulkChunk, content string) error {
		if err := checkName(kind, content); err != nil {
			return err
		}
		c.names = append(c.names, content)
		return nil
	}
	send := func(ctx context.Context, c *bulkChunk) (*rlsv1.BulkQueryResponse, error) {
		return b.conn.catalog.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: typ, Names: c.names})
	}
	handle := func(c *bulkChunk, resp *rlsv1.BulkQueryResponse) error {
		if len(resp.GetResults()) != c.len() {
			return fmt.Errorf("server answered %d results for %d names", len(resp.GetResults()), c.len())
		}
		for i, r := range resp.GetResults() {
			var it queryItem
			if code := codes.Code(r.GetStatus().GetCode()); code != codes.OK {
				b.itemFailed(c, i, cell(c.names[i]), r.GetStatus())
				it = newQueryFailure(byPFN, c.names[i], code, r.GetStatus().GetMessage())
			} else {
				it = newQueryItem(byPFN, c.names[i], r.GetNames())
			}
			it.Line = c.lines[i]
			b.out.add(it)
		}
		return nil
	}
	noKeys := func(*bulkChunk) []string { return nil } // queries change nothing
	return runChunks(b, parse, noKeys, send, handle)
}
