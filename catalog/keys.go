package catalog

import (
	"encoding/binary"
	"errors"
)

// Key layout. Every key starts with a one-byte table tag; name components are
// escaped and terminated (appendName) so that keys keep names with shared
// prefixes, and names holding any bytes, apart, and sort as the names do.
//
//	'L' name(lfn)                            → uvarint(#PFNs)         LFN record
//	'P' name(pfn)                            → uvarint(#LFNs)         PFN record
//	'l' name(lfn) name(pfn)                  → ""                     mapping, by LFN
//	'p' name(pfn) name(lfn)                  → ""                     mapping, by PFN
//	'D' obj name(attr)                       → type                   attribute definition
//	'a' obj name(object) name(attr)          → type ordered(value)    attribute value
//	'i' obj name(attr) ordered(value) name(object) → ""               attribute index
//	'f' be64(seq)                            → change record          change feed
//	'\x00' "state"                           → uvarint(seq, #lfns, #pfns, #mappings)
//	'\x00' "incarnation"                     → 16 random bytes, written once
const (
	tagMeta       = 0x00
	tagLFN        = 'L'
	tagPFN        = 'P'
	tagLFNMapping = 'l'
	tagPFNMapping = 'p'
	tagAttrDef    = 'D'
	tagAttrValue  = 'a'
	tagAttrIndex  = 'i'
	tagFeed       = 'f'
)

var (
	stateKey       = []byte("\x00state")
	incarnationKey = []byte("\x00incarnation")
)

// appendName appends the order-preserving encoding of s: each 0x00 byte
// becomes 0x00 0xFF, and the name ends with 0x00 0x01. For any strings a < b,
// appendName(a) < appendName(b), and no encoding is a prefix of another.
func appendName(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 {
			dst = append(dst, 0x00, 0xFF)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, 0x00, 0x01)
}

// appendNamePrefix appends the encoding of s without the terminator: every
// name that starts with s encodes to a key that starts with it.
func appendNamePrefix(dst []byte, s string) []byte {
	n := appendName(dst, s)
	return n[:len(n)-2]
}

var errBadKey = errors.New("catalog: malformed key")

// decodeName decodes one name at the start of b and returns it and the rest.
func decodeName(b []byte) (string, []byte, error) {
	// Fast path: no escaped NUL before the terminator.
	for i := 0; i+1 < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		switch b[i+1] {
		case 0x01:
			return string(b[:i]), b[i+2:], nil
		case 0xFF:
			return decodeNameSlow(b)
		default:
			return "", nil, errBadKey
		}
	}
	return "", nil, errBadKey
}

func decodeNameSlow(b []byte) (string, []byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 == len(b) {
			break
		}
		switch b[i+1] {
		case 0x01:
			return string(out), b[i+2:], nil
		case 0xFF:
			out = append(out, 0)
			i++
		default:
			return "", nil, errBadKey
		}
	}
	return "", nil, errBadKey
}

func nameKey(tag byte, name string) []byte {
	return appendName(append(make([]byte, 0, len(name)+3), tag), name)
}

func pairKey(tag byte, a, b string) []byte {
	k := make([]byte, 0, len(a)+len(b)+5)
	k = append(k, tag)
	k = appendName(k, a)
	return appendName(k, b)
}

// decodePair decodes a key made by pairKey (the tag byte included).
func decodePair(k []byte) (a, b string, err error) {
	if len(k) == 0 {
		return "", "", errBadKey
	}
	a, rest, err := decodeName(k[1:])
	if err != nil {
		return "", "", err
	}
	b, rest, err = decodeName(rest)
	if err != nil || len(rest) != 0 {
		return "", "", errBadKey
	}
	return a, b, nil
}

func feedKey(seq uint64) []byte {
	var k [9]byte
	k[0] = tagFeed
	binary.BigEndian.PutUint64(k[1:], seq)
	return k[:]
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xFF).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
