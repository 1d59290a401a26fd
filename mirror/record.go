package mirror

import (
	"encoding/binary"
	"fmt"
	"time"
)

// MaxHistory is how many attempts a record keeps (the newest); Attempts
// counts them all.
const MaxHistory = 16

// Attempt is one try at pulling a unit from one source.
type Attempt struct {
	At     time.Time
	Source string // the source site (or authority address)
	Err    string // empty for success
}

// Record is the durable state of one sunum. A Record returned by the store
// is a copy: changing it changes nothing.
type Record struct {
	Sunum  uint64
	State  State
	Series string
	Lane   Lane
	// Reason says why the record is in its state (a FAIL's error, "no peer
	// holds it" for PNDG, …).
	Reason string
	// Attempts counts every attempt; History holds the last MaxHistory.
	Attempts uint32
	History  []Attempt
	// Streak counts the failed rounds since the last success or Retry: it
	// sets the backoff.
	Streak uint32
	// Source is the site the DONE copy came from ("local" if it was
	// present at intake).
	Source string
	Bytes  int64
	Files  int64
	// Enqueued is when the sunum was first accepted, Changed when its
	// state last changed, Done when it became DONE.
	Enqueued, Changed, Done time.Time
	// Due is when the scheduler takes a NQUE, FAIL or PNDG record (the
	// next retry or re-check); zero in other states.
	Due time.Time
}

// addAttempt appends a to the history, keeping the last MaxHistory.
func (r *Record) addAttempt(a Attempt) {
	r.Attempts++
	if len(r.History) >= MaxHistory {
		r.History = append(r.History[:0:0], r.History[len(r.History)-MaxHistory+1:]...)
	}
	r.History = append(r.History, a)
}

func (r *Record) clone() *Record {
	c := *r
	c.History = append([]Attempt(nil), r.History...)
	return &c
}

// recordVersion is the first byte of every encoded record.
const recordVersion = 1

// encode appends the record's binary form (version 1) to dst:
//
//	version(1) state(1) lane(1) uvarint(attempts, streak) varint(bytes, files)
//	time(enqueued, changed, done, due) string(series, reason, source)
//	uvarint(len(history)) { time(at) string(source, err) }...
//
// A time is a varint of Unix nanoseconds (0 for the zero time); a string
// is a uvarint length and the bytes. The sunum is the key.
func (r *Record) encode(dst []byte) []byte {
	dst = append(dst, recordVersion, byte(r.State), byte(r.Lane))
	dst = binary.AppendUvarint(dst, uint64(r.Attempts))
	dst = binary.AppendUvarint(dst, uint64(r.Streak))
	dst = binary.AppendVarint(dst, r.Bytes)
	dst = binary.AppendVarint(dst, r.Files)
	for _, t := range []time.Time{r.Enqueued, r.Changed, r.Done, r.Due} {
		dst = appendTime(dst, t)
	}
	for _, s := range []string{r.Series, r.Reason, r.Source} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.History)))
	for _, a := range r.History {
		dst = appendTime(dst, a.At)
		dst = appendString(dst, a.Source)
		dst = appendString(dst, a.Err)
	}
	return dst
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(dst, 0)
	}
	return binary.AppendVarint(dst, t.UnixNano())
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads a record's fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("mirror: corrupt record: %s", what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	ns := d.varint()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string longer than the record")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// decodeRecord parses what encode wrote; sunum is the key's.
func decodeRecord(sunum uint64, b []byte) (*Record, error) {
	d := &decoder{b: b}
	if v := d.byte(); d.err == nil && v != recordVersion {
		return nil, fmt.Errorf("mirror: record of sunum %d has version %d, want %d", sunum, v, recordVersion)
	}
	r := &Record{Sunum: sunum, State: State(d.byte()), Lane: Lane(d.byte())}
	attempts, streak := d.uvarint(), d.uvarint()
	r.Attempts, r.Streak = uint32(attempts), uint32(streak)
	if attempts > 1<<32-1 || streak > 1<<32-1 {
		d.fail("attempt count out of range")
	}
	r.Bytes, r.Files = d.varint(), d.varint()
	r.Enqueued, r.Changed, r.Done, r.Due = d.time(), d.time(), d.time(), d.time()
	r.Series, r.Reason, r.Source = d.string(), d.string(), d.string()
	n := d.uvarint()
	if n > MaxHistory {
		d.fail("history too long")
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.History = append(r.History, Attempt{At: d.time(), Source: d.string(), Err: d.string()})
	}
	switch {
	case d.err != nil:
	case !r.State.valid():
		d.fail("bad state")
	case r.Lane != LaneBulk && r.Lane != LaneUser:
		d.fail("bad lane")
	case len(d.b) != 0:
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w (sunum %d)", d.err, sunum)
	}
	return r, nil
}
