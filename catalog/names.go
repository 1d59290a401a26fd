package catalog

import (
	"strconv"
	"unicode/utf8"
)

// MaxNameLen is the longest LFN or PFN, in bytes.
const MaxNameLen = 1024

// ValidateName reports whether name is a valid LFN or PFN: 1..MaxNameLen bytes
// of valid UTF-8 without NUL. kind ("lfn", "pfn") only labels the error, an
// *Error wrapping ErrInvalid that names the item and the reason.
func ValidateName(kind, name string) error {
	if reason := nameProblem(name); reason != "" {
		return &Error{Op: "validate " + kind, Item: name, Err: ErrInvalid, Reason: reason}
	}
	return nil
}

func nameProblem(name string) string {
	switch {
	case len(name) == 0:
		return "empty name"
	case len(name) > MaxNameLen:
		return "name is " + strconv.Itoa(len(name)) + " bytes, longer than " + strconv.Itoa(MaxNameLen)
	}
	for i := 0; i < len(name); {
		c := name[i]
		if c == 0 {
			return "contains a NUL byte at offset " + strconv.Itoa(i)
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(name[i:])
		if r == utf8.RuneError && size == 1 {
			return "invalid UTF-8 at offset " + strconv.Itoa(i)
		}
		i += size
	}
	return ""
}

// checkName validates a name for operation op, returning an error naming the
// operation and item.
func checkName(op, kind, name string) error {
	if reason := nameProblem(name); reason != "" {
		return errorf(op, name, ErrInvalid, kind+": "+reason)
	}
	return nil
}

// glob is a compiled wildcard pattern: '*' matches any run of bytes, '?' one
// UTF-8 character, and '\' makes the next character literal.
type glob struct {
	prefix string // the literal bytes before the first wildcard
	toks   []globTok
	exact  bool // no wildcard at all: the pattern is prefix
}

type globTok struct {
	kind byte // 'l' literal, '*' star, '?' any char
	lit  string
}

const maxPatternLen = 4 * MaxNameLen

func compileGlob(p string) (*glob, error) {
	if p == "" {
		return nil, errorf("wildcard", p, ErrInvalid, "empty pattern")
	}
	if len(p) > maxPatternLen {
		return nil, errorf("wildcard", p, ErrInvalid, "pattern longer than "+strconv.Itoa(maxPatternLen)+" bytes")
	}
	if !utf8.ValidString(p) {
		return nil, errorf("wildcard", p, ErrInvalid, "pattern is not valid UTF-8")
	}
	g := &glob{}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			g.toks = append(g.toks, globTok{kind: 'l', lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case 0:
			return nil, errorf("wildcard", p, ErrInvalid, "pattern contains a NUL byte at offset "+strconv.Itoa(i))
		case '\\':
			if i+1 == len(p) {
				return nil, errorf("wildcard", p, ErrInvalid, "pattern ends in an escape '\\'")
			}
			i++
			lit = append(lit, p[i])
		case '*', '?':
			flush()
			// Consecutive stars are one star.
			if c == '*' && len(g.toks) > 0 && g.toks[len(g.toks)-1].kind == '*' {
				continue
			}
			g.toks = append(g.toks, globTok{kind: c})
		default:
			lit = append(lit, c)
		}
	}
	flush()
	if len(g.toks) > 0 && g.toks[0].kind == 'l' {
		g.prefix = g.toks[0].lit
	}
	g.exact = len(g.toks) <= 1 && (len(g.toks) == 0 || g.toks[0].kind == 'l')
	return g, nil
}

// match reports whether s matches the whole pattern. It runs in
// O(len(s) × len(toks)) at worst, with the usual single-backtrack strategy for
// stars.
func (g *glob) match(s string) bool {
	toks := g.toks
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for {
		if ti < len(toks) {
			t := toks[ti]
			switch t.kind {
			case '*':
				starTi, starSi = ti, si
				ti++
				continue
			case '?':
				if si < len(s) {
					_, size := utf8.DecodeRuneInString(s[si:])
					si += size
					ti++
					continue
				}
			case 'l':
				if len(s)-si >= len(t.lit) && s[si:si+len(t.lit)] == t.lit {
					si += len(t.lit)
					ti++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		// Mismatch: let the last star swallow one more character.
		if starTi < 0 || starSi >= len(s) {
			return false
		}
		_, size := utf8.DecodeRuneInString(s[starSi:])
		starSi += size
		ti, si = starTi+1, starSi
	}
}

// Pattern is a compiled wildcard pattern, as Wildcard takes: '*' matches any
// run of characters, '?' any one character, and '\' makes the next byte a
// literal. Other packages use it to select LFNs (the index's partitions).
type Pattern struct {
	src string
	g   *glob
}

// CompilePattern checks and compiles a pattern. It fails, with ErrInvalid,
// on an empty or oversized pattern, invalid UTF-8, a NUL byte or a trailing
// escape.
func CompilePattern(p string) (*Pattern, error) {
	g, err := compileGlob(p)
	if err != nil {
		return nil, err
	}
	return &Pattern{src: p, g: g}, nil
}

// Match reports whether name matches the whole pattern.
func (p *Pattern) Match(name string) bool { return p.g.match(name) }

// Prefix returns the literal text every match starts with ("" if the
// pattern starts with a wildcard).
func (p *Pattern) Prefix() string { return p.g.prefix }

// String returns the pattern as given.
func (p *Pattern) String() string { return p.src }
