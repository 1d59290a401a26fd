package mirror

import (
	"bytes"
	"encoding/binary"
	"time"
)

// Keys of the store. Every record has one 'r' key, one 's' key (its state)
// and, if it has a series, one 'x' key; a record in a scheduled state (NQUE,
// FAIL, PNDG) also has one 'q' key, ordered by lane and due time, which is
// what the scheduler reads: it never scans the whole queue. A DONE record
// whose on-done hook has yet to run has an 'h' key, written in the batch
// that makes it DONE and deleted once the hook ran: a kill in between
// runs the hook again at the next start (at least once).
//
//	'r' sunum(8)                  → record
//	'q' lane(1) due(8) sunum(8)   → ∅
//	's' state(1) sunum(8)         → ∅
//	'x' series 0x00 sunum(8)      → ∅
//	'h' sunum(8)                  → ∅
//
// Integers are big-endian, due times Unix nanoseconds (0 for none).
const (
	tagRecord = 'r'
	tagDue    = 'q'
	tagState  = 's'
	tagSeries = 'x'
	tagHook   = 'h'
)

func hookKey(sunum uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagHook}, sunum)
}

func recordKey(sunum uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagRecord}, sunum)
}

func dueKey(l Lane, due time.Time, sunum uint64) []byte {
	var ns uint64
	if !due.IsZero() && due.UnixNano() > 0 {
		ns = uint64(due.UnixNano())
	}
	k := binary.BigEndian.AppendUint64([]byte{tagDue, byte(l)}, ns)
	return binary.BigEndian.AppendUint64(k, sunum)
}

func stateKey(s State, sunum uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagState, byte(s)}, sunum)
}

func seriesPrefix(series string) []byte {
	return append(append([]byte{tagSeries}, series...), 0)
}

func seriesKey(series string, sunum uint64) []byte {
	return binary.BigEndian.AppendUint64(seriesPrefix(series), sunum)
}

// indexKeys are the secondary keys of a record.
func (r *Record) indexKeys() [][]byte {
	ks := [][]byte{stateKey(r.State, r.Sunum)}
	if r.State.scheduled() {
		ks = append(ks, dueKey(r.Lane, r.Due, r.Sunum))
	}
	if r.Series != "" {
		ks = append(ks, seriesKey(r.Series, r.Sunum))
	}
	return ks
}

// prefixEnd is the least key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // no bound
}

// recordState is the state of an encoded record, read without decoding
// the rest of it.
func recordState(v []byte) (State, bool) {
	if len(v) < 2 || v[0] != recordVersion || !State(v[1]).valid() {
		return 0, false
	}
	return State(v[1]), true
}

// recordSeries returns the series of an encoded record (a part of v),
// read without decoding the rest of it.
func recordSeries(v []byte) ([]byte, bool) {
	if len(v) < 3 || v[0] != recordVersion {
		return nil, false
	}
	b := v[3:]
	for range 8 { // attempts, streak, bytes, files, 4 times: a varint's length is read as a uvarint's
		_, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, false
		}
		b = b[n:]
	}
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, false
	}
	return b[n : n+int(l)], true
}
