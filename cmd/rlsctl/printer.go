package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// result is anything a command prints: JSON from its struct tags (the field
// names are part of the command line contract, see results.go), a table from
// writeTable.
type result interface {
	// writeTable writes the value as tab-separated cells, one row per line,
	// headed by a header row; the printer aligns them.
	writeTable(w io.Writer)
}

// printer writes results to stdout in the format chosen with -o. It is the
// only writer of command results. Not safe for concurrent use.
type printer struct {
	w    io.Writer
	json bool
}

func newPrinter(w io.Writer, format string) *printer {
	return &printer{w: w, json: format == "json"}
}

// print writes one result: one JSON document, or one aligned table.
func (p *printer) print(r result) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := newTabWriter(p.w)
	r.writeTable(tw)
	return tw.Flush()
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// row writes one table row of cells.
// Errors surface when the printer flushes its tabwriter.
func row(w io.Writer, cells ...string) {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(out, "\t"))
}

// cell quotes a value that would break a table (control characters such as
// tab or newline, or an empty string); other values are shown as they are.
func cell(s string) string {
	if s == "" {
		return `""`
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// stream prints a result list too long to hold in memory, item by item, and
// a summary at the end. In JSON it writes one document,
// {"results":[item,...],"summary":{...}}, one item per line; as a table, the
// rows under one header, aligned chunk by chunk, then the summary table.
// Not safe for concurrent use.
type stream struct {
	p      *printer
	header []string
	tw     *tabwriter.Writer
	buf    bytes.Buffer
	n      int
	err    error
}

// streamItem is one element of a stream: JSON from its struct tags, table
// rows from writeRows (without header).
type streamItem interface {
	writeRows(w io.Writer)
}

func (p *printer) stream(header ...string) *stream {
	s := &stream{p: p, header: header}
	if p.json {
		_, s.err = io.WriteString(p.w, "{\"results\":[")
	} else {
		s.tw = newTabWriter(p.w)
		row(s.tw, header...)
	}
	return s
}

// add prints one item. Table rows are buffered until flush.
func (s *stream) add(it streamItem) {
	if s.err != nil {
		return
	}
	if !s.p.json {
		it.writeRows(s.tw)
		return
	}
	s.buf.Reset()
	if s.n > 0 {
		s.buf.WriteByte(',')
	}
	s.buf.WriteByte('\n')
	enc := json.NewEncoder(&s.buf)
	enc.SetEscapeHTML(false)
	if s.err = enc.Encode(it); s.err != nil {
		return
	}
	s.buf.Truncate(s.buf.Len() - 1) // Encode's newline
	s.n++
	_, s.err = s.p.w.Write(s.buf.Bytes())
}

// flush writes buffered table rows; the columns of one flush are aligned.
func (s *stream) flush() {
	if s.err == nil && s.tw != nil {
		s.err = s.tw.Flush()
	}
}

// end closes the result list and prints the summary.
func (s *stream) end(summary result) error {
	if s.err != nil {
		return s.err
	}
	if !s.p.json {
		s.flush()
		if s.err != nil {
			return s.err
		}
		fmt.Fprintln(s.p.w)
		return s.p.print(summary)
	}
	b, err := json.Marshal(summary)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(s.p.w, "\n],\"summary\":%s}\n", b)
	return err
}
