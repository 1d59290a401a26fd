package catalog

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNameKey checks name validation and the key encoding: every pair of
// names encodes to a key that decodes back to the same pair, encodings keep
// the byte order of the names, and validation accepts exactly the names the
// contract allows.
func FuzzNameKey(f *testing.F) {
	seeds := [][2]string{
		{"123456789", "/SUM12/D123456789"},
		{"1", "12"},
		{"a\x00b", "a"},
		{"\x00", "\x00\x01"},
		{"\x00\xff", "\x00\x00"},
		{"", "x"},
		{"é", "\xff"},
		{"a/b/../c", "https://host/p?q=1"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		// Round trip of a pair key.
		k := pairKey(tagLFNMapping, a, b)
		da, db, err := decodePair(k)
		if err != nil || da != a || db != b {
			t.Fatalf("pair (%q, %q) decoded as (%q, %q), %v", a, b, da, db, err)
		}
		// Order is kept, and prefixes stay apart.
		ka, kb := appendName(nil, a), appendName(nil, b)
		if c1, c2 := strings.Compare(a, b), bytes.Compare(ka, kb); c1 != c2 {
			t.Fatalf("order of %q, %q is %d but keys order %d", a, b, c1, c2)
		}
		if a != b && (bytes.HasPrefix(ka, kb) || bytes.HasPrefix(kb, ka)) {
			t.Fatalf("encodings of %q and %q are prefixes of each other", a, b)
		}
		// A literal prefix's encoding prefixes the encoding of every name that
		// starts with it (wildcard scans depend on this).
		if len(a) <= len(b) && b[:len(a)] == a && !bytes.HasPrefix(kb, appendNamePrefix(nil, a)) {
			t.Fatalf("prefix %q of %q does not prefix its key", a, b)
		}
		// Validation accepts exactly 1..MaxNameLen bytes of UTF-8 without NUL.
		want := len(a) > 0 && len(a) <= MaxNameLen && utf8.ValidString(a) && !bytes.ContainsRune([]byte(a), 0)
		if got := ValidateName("lfn", a) == nil; got != want {
			t.Fatalf("ValidateName(%q) ok=%v, want %v", a, got, want)
		}
		// Decoding never panics on arbitrary bytes.
		_, _, _ = decodePair([]byte(a))
		_, _, _ = decodeName([]byte(b))
	})
}

// FuzzGlob checks that wildcard matching agrees with the literal-prefix scan
// bound and never panics.
func FuzzGlob(f *testing.F) {
	f.Add("10*", "1000")
	f.Add("*a?c*", "xxabc")
	f.Add(`x\*y`, "x*y")
	f.Add("??", "é")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g, err := compileGlob(pattern)
		if err != nil {
			return
		}
		if g.match(s) && len(s) >= len(g.prefix) && s[:len(g.prefix)] != g.prefix {
			t.Fatalf("%q matches %q but lacks the literal prefix %q", pattern, s, g.prefix)
		}
		if g.exact && g.match(s) != (s == g.prefix) {
			t.Fatalf("exact pattern %q and %q disagree", pattern, s)
		}
	})
}
