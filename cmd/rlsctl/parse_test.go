package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSplitLine(t *testing.T) {
	for _, tc := range []struct {
		raw, content string
		skip         bool
	}{
		{"", "", true},
		{"   \t ", "", true},
		{"# comment", "# comment", true},
		{"  # indented comment", "# indented comment", true},
		{"a b", "a b", false},
		{"  a\tb  ", "a\tb", false},
		{"a#b c", "a#b c", false},
	} {
		content, skip := splitLine(tc.raw)
		if content != tc.content || skip != tc.skip {
			t.Errorf("splitLine(%q) = %q, %v; want %q, %v", tc.raw, content, skip, tc.content, tc.skip)
		}
	}
}

func TestParseMappingLine(t *testing.T) {
	long := strings.Repeat("x", maxNameLen+1)
	for _, tc := range []struct {
		line, lfn, pfn string
		err            string // substring of the error; "" for success
	}{
		{line: "a b", lfn: "a", pfn: "b"},
		{line: "a    b", lfn: "a", pfn: "b"},
		{line: "a\tb", lfn: "a", pfn: "b"},
		{line: "a\t\t b", lfn: "a", pfn: "b"},
		{line: "my file\t/SUM1/D1/a b", lfn: "my file", pfn: "/SUM1/D1/a b"},
		{line: "123456789\thttps://example.org/x?y=1", lfn: "123456789", pfn: "https://example.org/x?y=1"},
		{line: "a", err: "found 1 field"},
		{line: "a b c", err: "found 3 field"},
		{line: "a\tb\tc", err: "found 3 field"},
		{line: "a\t", err: "found 1 field"},
		{line: "a\x00b c", err: "NUL byte"},
		{line: "a " + long, err: "more than 1024"},
		{line: "a \xff\xfe", err: "not valid UTF-8"},
	} {
		lfn, pfn, err := parseMappingLine(tc.line)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("parseMappingLine(%q): %v", tc.line, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseMappingLine(%q) = error %v; want one containing %q", tc.line, err, tc.err)
		case tc.err == "" && (lfn != tc.lfn || pfn != tc.pfn):
			t.Errorf("parseMappingLine(%q) = %q, %q; want %q, %q", tc.line, lfn, pfn, tc.lfn, tc.pfn)
		}
	}
}

func TestReadChunk(t *testing.T) {
	input := "# header\n" + // 1
		"a1 p1\n" + // 2
		"\n" + // 3
		"bad\n" + // 4
		"a2\tp2\r\n" + // 5 (CRLF)
		"a3 p3\n" + // 6
		"  # note\n" + // 7
		"a4 p4" // 8, no final newline
	src := newLineSource(strings.NewReader(input))
	parse := func(c *bulkChunk, content string) error {
		lfn, pfn, err := parseMappingLine(content)
		if err == nil {
			c.names = append(c.names, lfn+"="+pfn)
		}
		return err
	}

	c1 := src.readChunk(2, parse)
	if got, want := c1.names, []string{"a1=p1", "a2=p2"}; !equal(got, want) {
		t.Fatalf("chunk 1 items %q, want %q", got, want)
	}
	if got, want := c1.lines, []uint64{2, 5}; !equalU(got, want) {
		t.Errorf("chunk 1 lines %v, want %v", got, want)
	}
	if len(c1.malformed) != 1 || c1.malformed[0].line != 4 {
		t.Errorf("chunk 1 malformed %+v, want line 4", c1.malformed)
	}
	if c1.nread != 5 || c1.pos != int64(strings.Index(input, "a3")) {
		t.Errorf("chunk 1 ends at line %d byte %d", c1.nread, c1.pos)
	}

	c2 := src.readChunk(2, parse)
	if got, want := c2.lines, []uint64{6, 8}; !equalU(got, want) {
		t.Errorf("chunk 2 lines %v, want %v", got, want)
	}
	if c2.pos != int64(len(input)) {
		t.Errorf("chunk 2 ends at byte %d, want %d", c2.pos, len(input))
	}
	if c3 := src.readChunk(2, parse); c3 != nil {
		t.Errorf("chunk 3 = %+v, want nil at end of input", c3)
	}
	if err := src.err(); err != nil {
		t.Error(err)
	}
}

// TestReadChunkBOM: a byte order mark at the start of the input is
// skipped, so that it does not become part of the first LFN; elsewhere it
// is part of the line.
func TestReadChunkBOM(t *testing.T) {
	for _, c := range []struct {
		input string
		want  []string
	}{
		{"\uFEFF123 /SUM1/D123\n124 /SUM1/D124\n", []string{"123=/SUM1/D123", "124=/SUM1/D124"}},
		{"\uFEFF# comment\n123 /SUM1/D123\n", []string{"123=/SUM1/D123"}},
		{"123 /SUM1/D123\n\uFEFF124 /SUM1/D124\n", []string{"123=/SUM1/D123", "\uFEFF124=/SUM1/D124"}},
	} {
		src := newLineSource(strings.NewReader(c.input))
		c1 := src.readChunk(10, func(ch *bulkChunk, raw string) error {
			lfn, pfn, err := parseMappingLine(raw)
			if err == nil {
				ch.names = append(ch.names, lfn+"="+pfn)
			}
			return err
		})
		if c1 == nil || !equal(c1.names, c.want) || len(c1.malformed) != 0 {
			t.Errorf("%q: read %+v, want items %q", c.input, c1, c.want)
		}
		if c1 != nil && c1.pos != int64(len(c.input)) {
			t.Errorf("%q: chunk ends at byte %d, want %d", c.input, c1.pos, len(c.input))
		}
	}
}

func TestReadChunkLineTooLong(t *testing.T) {
	src := newLineSource(strings.NewReader("a b\n" + strings.Repeat("x", maxLineLen+10) + "\n"))
	parse := func(c *bulkChunk, content string) error { return nil }
	for src.readChunk(10, parse) != nil {
	}
	err := src.err()
	if err == nil || classify(err) != exitUsage || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v (exit %d), want a usage error naming line 2", err, classify(err))
	}
}

// FuzzParseMappingLine checks that the bulk input parser never panics and
// only accepts names the server could accept.
func FuzzParseMappingLine(f *testing.F) {
	for _, s := range []string{"a b", "a\tb", "a\t\tb c", "a", "", "a\x00 b", "\xff b", " a  b ", "0\t\v\v\v\v0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// The scanner hands the parser one line at a time.
		raw, _, _ = strings.Cut(raw, "\n")
		content, skip := splitLine(raw)
		if skip {
			return
		}
		lfn, pfn, err := parseMappingLine(content)
		if err != nil {
			return
		}
		for _, n := range []string{lfn, pfn} {
			if n == "" || len(n) > maxNameLen || !utf8.ValidString(n) || strings.ContainsAny(n, "\x00\t\n") {
				t.Fatalf("parseMappingLine(%q) accepted bad name %q", content, n)
			}
			if n != strings.TrimSpace(n) {
				t.Fatalf("parseMappingLine(%q) kept surrounding space in %q", content, n)
			}
		}
	})
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

func equalU(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
