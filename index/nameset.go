package index

import (
	"bytes"
	"errors"
	"hash/maphash"
	"math/bits"
	"slices"
	"sort"
	"strings"
)

// nameSet is an immutable set of names: one site's full LFN list. The names
// sit end to end in one arena, sorted, so the set costs a few bytes per name
// beyond the names themselves (no per-name allocation, no pointers for the
// GC to chase), and a range of it can be read in order (wildcards, and
// forwarding to a parent index). An open-addressing table of name numbers
// answers membership in one or two probes.
type nameSet struct {
	arena []byte
	ends  []uint32 // ends[i] is where name i ends; it starts at ends[i-1] (0 for i = 0)
	table []uint32 // name number + 1, or 0 for an empty slot; len is a power of two
}

var nameSeed = maphash.MakeSeed()

// maxArena is the most name bytes one set holds (offsets are uint32).
const maxArena = 1<<32 - 1

var errArenaFull = errors.New("list holds more than 4 GiB of names")

// nameSetBuilder collects names in any order, with duplicates.
type nameSetBuilder struct {
	arena  []byte
	ends   []uint32
	sorted bool   // every name so far is greater than the previous one
	prev   string // the last name added
}

func newNameSetBuilder() *nameSetBuilder { return &nameSetBuilder{sorted: true} }

func (b *nameSetBuilder) add(name string) error {
	if len(b.arena)+len(name) > maxArena {
		return errArenaFull
	}
	if b.sorted && len(b.ends) > 0 && name <= b.prev {
		b.sorted = false
	}
	b.prev = name
	b.arena = append(b.arena, name...)
	b.ends = append(b.ends, uint32(len(b.arena)))
	return nil
}

// build sorts (if needed), drops duplicates and indexes the names.
func (b *nameSetBuilder) build() *nameSet {
	s := &nameSet{arena: b.arena, ends: b.ends}
	if !b.sorted {
		s = s.sortedCopy()
	}
	s.arena = slices.Clip(s.arena)
	s.ends = slices.Clip(s.ends)
	s.index()
	return s
}

// sortedCopy returns the set's names sorted, without duplicates, in a new
// arena.
func (s *nameSet) sortedCopy() *nameSet {
	order := make([]uint32, len(s.ends))
	for i := range order {
		order[i] = uint32(i)
	}
	sort.Slice(order, func(a, b int) bool { return bytes.Compare(s.bytes(int(order[a])), s.bytes(int(order[b]))) < 0 })
	out := &nameSet{arena: make([]byte, 0, len(s.arena)), ends: make([]uint32, 0, len(s.ends))}
	var prev []byte
	for i, o := range order {
		name := s.bytes(int(o))
		if i > 0 && bytes.Equal(name, prev) {
			continue
		}
		out.arena = append(out.arena, name...)
		out.ends = append(out.ends, uint32(len(out.arena)))
		prev = name
	}
	return out
}

func (s *nameSet) index() {
	size := 1 << bits.Len(uint(len(s.ends))*2) // load factor at most 1/2
	s.table = make([]uint32, max(size, 8))
	mask := uint64(len(s.table) - 1)
	for i := range s.ends {
		h := maphash.Bytes(nameSeed, s.bytes(i)) & mask
		for s.table[h] != 0 {
			h = (h + 1) & mask
		}
		s.table[h] = uint32(i) + 1
	}
}

func (s *nameSet) len() int { return len(s.ends) }

func (s *nameSet) bytes(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.arena[start:s.ends[i]]
}

func (s *nameSet) name(i int) string { return string(s.bytes(i)) }

func (s *nameSet) has(name string) bool {
	if s == nil || len(s.ends) == 0 {
		return false
	}
	mask := uint64(len(s.table) - 1)
	for h := maphash.String(nameSeed, name) & mask; ; h = (h + 1) & mask {
		n := s.table[h]
		if n == 0 {
			return false
		}
		if string(s.bytes(int(n-1))) == name {
			return true
		}
	}
}

// from returns the number of the first name >= prefix.
func (s *nameSet) from(prefix string) int {
	return sort.Search(len(s.ends), func(i int) bool { return string(s.bytes(i)) >= prefix })
}

// rangePrefix calls fn for every name that starts with prefix, in order,
// until fn returns false.
func (s *nameSet) rangePrefix(prefix string, fn func(name string) bool) {
	if s == nil {
		return
	}
	for i := s.from(prefix); i < len(s.ends); i++ {
		name := s.name(i)
		if !strings.HasPrefix(name, prefix) || !fn(name) {
			return
		}
	}
}

// size is the memory the set holds, in bytes.
func (s *nameSet) size() int {
	if s == nil {
		return 0
	}
	return cap(s.arena) + 4*cap(s.ends) + 4*cap(s.table)
}
