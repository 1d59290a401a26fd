package index

// The snapshot's site records: this package's own encoding, versioned, and
// the reader of the format before it, to migrate.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Snapshot formats. The key keyFormat holds the format of the snapshot
// (a uvarint); a snapshot without it is format 0.
//
//   - Format 0: a site record ('m') is a protobuf message of the shape of
//     the public API's rls.v1.SiteInfo. Open reads it only to migrate.
//   - Format 1: a site record is this package's encoding (encodeSite).
//
// The data ('d') and delta ('x') records are the same in both.
const (
	formatLegacy  = 0
	formatCurrent = 1
)

var keyFormat = []byte{'v'}

// errCorrupt is the error (wrapped) of a site record that does not decode.
var errCorrupt = errors.New("corrupt site record")

// encodeSite encodes s's header (everything but its names, filter and
// overlay) in format 1:
//
//	string site, string endpoint       (uvarint length, bytes)
//	byte mode                          (list 1, bloom 2)
//	uvarint generation, full generation, entries, deltas
//	time updated, received, expires    (varint Unix seconds, uvarint nanoseconds)
//	uvarint count of via, each a string
//	string incarnation
//	bloom mode: uvarint version, m, k, entries
func encodeSite(s *site) []byte {
	b := make([]byte, 0, 64+len(s.name)+len(s.endpoint)+len(s.incarnation))
	b = appendString(b, s.name)
	b = appendString(b, s.endpoint)
	b = append(b, byte(s.mode))
	for _, v := range []uint64{s.gen, s.base, s.entries, s.deltas} {
		b = binary.AppendUvarint(b, v)
	}
	for _, t := range []time.Time{s.updated, s.received, s.expires} {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	b = binary.AppendUvarint(b, uint64(len(s.via)))
	for _, v := range s.via {
		b = appendString(b, v)
	}
	b = appendString(b, string(s.incarnation))
	if s.mode == ModeBloom {
		for _, v := range []uint64{uint64(s.bloom.Version), s.bloom.M, uint64(s.bloom.K), s.bloom.Entries} {
			b = binary.AppendUvarint(b, v)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeSite decodes a site record of format 1. The site's mode is list or
// bloom; its names, filter and overlay are left for the caller to load.
func decodeSite(b []byte) (*site, error) {
	r := reader{b: b}
	s := &site{name: r.string(), endpoint: r.string(), mode: Mode(r.byte())}
	s.gen, s.base, s.entries, s.deltas = r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
	s.updated, s.received, s.expires = r.time(), r.time(), r.time()
	if n := r.uvarint(); n <= MaxVia {
		for range n {
			s.via = append(s.via, r.string())
		}
	} else {
		r.fail()
	}
	if inc := r.string(); inc != "" {
		s.incarnation = []byte(inc)
	}
	if s.mode == ModeBloom {
		v, m, k, n := r.uvarint(), r.uvarint(), r.uvarint(), r.uvarint()
		if v > 1<<32-1 || k > 1<<32-1 {
			r.fail()
		}
		s.bloom = BloomParams{Version: uint32(v), M: m, K: uint32(k), Entries: n}
	}
	if r.err || len(r.b) != 0 {
		return nil, errCorrupt
	}
	if s.mode != ModeList && s.mode != ModeBloom {
		return nil, fmt.Errorf("%w: mode %v", errCorrupt, s.mode)
	}
	return s, nil
}

// reader consumes a record; after the first error, it returns zero values
// and err stays set.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) fail() { r.err, r.b = true, nil }

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) time() time.Time {
	sec, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return time.Time{}
	}
	r.b = r.b[n:]
	nsec := r.uvarint()
	if nsec >= 1e9 {
		r.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// decodeLegacySite decodes a site record of format 0: a protobuf message
// of rls.v1.SiteInfo's shape, read field by field (this package does not
// depend on the API's generated types):
//
//	1 site, 2 endpoint (string); 3 mode (enum: list 1, bloom 2);
//	4 generation, 5 entries (uint64); 6 updated, 7 received, 8 expires
//	(google.protobuf.Timestamp: 1 seconds, 2 nanos); 9 via (repeated
//	string); 10 bloom (BloomHeader: 1 version, 2 m, 3 k, 4 entries);
//	11 deltas, 12 full_generation (uint64); 13 incarnation (bytes)
//
// Unknown fields are skipped, as protobuf does.
func decodeLegacySite(b []byte) (*site, error) {
	s := &site{}
	var ts [3]time.Time
	err := forFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch {
		case typ == protowire.BytesType && num == 1:
			s.name = string(v)
		case typ == protowire.BytesType && num == 2:
			s.endpoint = string(v)
		case typ == protowire.VarintType && num == 3:
			s.mode = Mode(min(x, 255))
		case typ == protowire.VarintType && num == 4:
			s.gen = x
		case typ == protowire.VarintType && num == 5:
			s.entries = x
		case typ == protowire.BytesType && num >= 6 && num <= 8:
			ts[num-6], err = decodeLegacyTime(v)
		case typ == protowire.BytesType && num == 9:
			s.via = append(s.via, string(v))
		case typ == protowire.BytesType && num == 10:
			s.bloom, err = decodeLegacyBloom(v)
		case typ == protowire.VarintType && num == 11:
			s.deltas = x
		case typ == protowire.VarintType && num == 12:
			s.base = x
		case typ == protowire.BytesType && num == 13:
			if len(v) > 0 {
				s.incarnation = append([]byte(nil), v...)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.updated, s.received, s.expires = ts[0], ts[1], ts[2]
	if len(s.via) > MaxVia {
		return nil, fmt.Errorf("%w: %d hops in via", errCorrupt, len(s.via))
	}
	if s.mode != ModeList && s.mode != ModeBloom {
		return nil, fmt.Errorf("%w: mode %v", errCorrupt, s.mode)
	}
	if s.mode == ModeList {
		s.bloom = BloomParams{}
	}
	return s, nil
}

// forFields calls fn with each field of a protobuf message: its number,
// wire type, and value (v for bytes, x for varints).
func forFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errCorrupt
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errCorrupt
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// decodeLegacyTime decodes a google.protobuf.Timestamp as AsTime does.
func decodeLegacyTime(b []byte) (time.Time, error) {
	var sec, nsec int64
	err := forFields(b, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if typ == protowire.VarintType && num == 1 {
			sec = int64(x)
		} else if typ == protowire.VarintType && num == 2 {
			nsec = int64(int32(x))
		}
		return nil
	})
	return time.Unix(sec, nsec).UTC(), err
}

func decodeLegacyBloom(b []byte) (BloomParams, error) {
	var p BloomParams
	err := forFields(b, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if typ != protowire.VarintType {
			return nil
		}
		switch num {
		case 1:
			p.Version = uint32(x)
		case 2:
			p.M = x
		case 3:
			p.K = uint32(x)
		case 4:
			p.Entries = x
		}
		return nil
	})
	return p, err
}
