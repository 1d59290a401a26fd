package catalog

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ObjectType says whether an attribute belongs to LFNs or to PFNs.
type ObjectType uint8

const (
	LFN ObjectType = iota + 1
	PFN
)

func (o ObjectType) String() string {
	switch o {
	case LFN:
		return "lfn"
	case PFN:
		return "pfn"
	}
	return "object(" + strconv.Itoa(int(o)) + ")"
}

func (o ObjectType) valid() bool { return o == LFN || o == PFN }

// ValueType is the type of an attribute's values.
type ValueType uint8

const (
	TypeInt    ValueType = iota + 1 // int64
	TypeFloat                       // float64, not NaN
	TypeString                      // UTF-8, at most MaxStringValueLen bytes, no NUL
	TypeTime                        // a time between the years 1678 and 2262, nanosecond precision
)

// MaxStringValueLen is the longest string attribute value, in bytes.
const MaxStringValueLen = 4096

func (t ValueType) String() string {
	switch t {
	case TypeInt:
		return "int"
	case TypeFloat:
		return "float"
	case TypeString:
		return "string"
	case TypeTime:
		return "time"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

func (t ValueType) valid() bool { return t >= TypeInt && t <= TypeTime }

// Value is a typed attribute value. The field that matches Type holds it.
type Value struct {
	Type  ValueType
	Int   int64
	Float float64
	Str   string
	Time  time.Time
}

func IntValue(v int64) Value      { return Value{Type: TypeInt, Int: v} }
func FloatValue(v float64) Value  { return Value{Type: TypeFloat, Float: v} }
func StringValue(v string) Value  { return Value{Type: TypeString, Str: v} }
func TimeValue(v time.Time) Value { return Value{Type: TypeTime, Time: v} }

// ParseValue parses s as a value of type t: decimal integers, floats as
// strconv.ParseFloat reads them, strings as they are, and times as RFC 3339
// (with optional fractional seconds) or as Unix seconds.
func ParseValue(t ValueType, s string) (Value, error) {
	switch t {
	case TypeInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, errorf("parse int", s, ErrInvalid, "not a 64-bit integer")
		}
		return IntValue(n), nil
	case TypeFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Value{}, errorf("parse float", s, ErrInvalid, "not a number")
		}
		v := FloatValue(f)
		return v, v.Check()
	case TypeString:
		v := StringValue(s)
		return v, v.Check()
	case TypeTime:
		if tm, err := time.Parse(time.RFC3339Nano, s); err == nil {
			v := TimeValue(tm)
			return v, v.Check()
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			v := TimeValue(time.Unix(n, 0).UTC())
			return v, v.Check()
		}
		return Value{}, errorf("parse time", s, ErrInvalid, "want RFC 3339 (2006-01-02T15:04:05Z) or Unix seconds")
	}
	return Value{}, errorf("parse value", s, ErrInvalid, "unknown type "+t.String())
}

// String formats the value so that ParseValue reads it back.
func (v Value) String() string {
	switch v.Type {
	case TypeInt:
		return strconv.FormatInt(v.Int, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case TypeString:
		return v.Str
	case TypeTime:
		return v.Time.UTC().Format(time.RFC3339Nano)
	}
	return ""
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Check reports whether v can be stored: nil, or an *Error wrapping
// ErrInvalid with the reason (a NaN float; a string value longer than
// MaxStringValueLen, with a NUL byte or not UTF-8; a time outside the years
// 1678..2262; an unknown type). Every backend refuses such values alike.
func (v Value) Check() error {
	switch v.Type {
	case TypeInt:
	case TypeFloat:
		if math.IsNaN(v.Float) {
			return errorf("value", v.String(), ErrInvalid, "NaN is not a storable float")
		}
	case TypeString:
		if len(v.Str) > MaxStringValueLen {
			return errorf("value", v.Str, ErrInvalid, "string value is "+strconv.Itoa(len(v.Str))+" bytes, longer than "+strconv.Itoa(MaxStringValueLen))
		}
		if strings.IndexByte(v.Str, 0) >= 0 {
			return errorf("value", v.Str, ErrInvalid, "string value contains a NUL byte")
		}
		if !utf8.ValidString(v.Str) {
			return errorf("value", v.Str, ErrInvalid, "string value is not valid UTF-8")
		}
	case TypeTime:
		if v.Time.Before(minTime) || v.Time.After(maxTime) {
			return errorf("value", v.String(), ErrInvalid, "time outside the years 1678..2262")
		}
	default:
		return errorf("value", "", ErrInvalid, "unknown value type "+v.Type.String())
	}
	return nil
}

// appendOrdered appends an encoding of v whose byte order is the order of the
// values of its type: integers and times as sign-flipped big-endian, floats
// with the usual sign trick, strings as names.
func (v Value) appendOrdered(dst []byte) []byte {
	switch v.Type {
	case TypeInt:
		return binary.BigEndian.AppendUint64(dst, uint64(v.Int)^(1<<63))
	case TypeTime:
		return binary.BigEndian.AppendUint64(dst, uint64(v.Time.UnixNano())^(1<<63))
	case TypeFloat:
		f := v.Float
		if f == 0 {
			f = 0 // -0 and +0 are one value
		}
		bits := math.Float64bits(f)
		if bits&(1<<63) == 0 {
			bits ^= 1 << 63
		} else {
			bits = ^bits
		}
		return binary.BigEndian.AppendUint64(dst, bits)
	case TypeString:
		return appendName(dst, v.Str)
	}
	return dst
}

// decodeOrdered decodes a value of type t from the start of b and returns
// the rest.
func decodeOrdered(t ValueType, b []byte) (Value, []byte, error) {
	switch t {
	case TypeInt, TypeTime, TypeFloat:
		if len(b) < 8 {
			return Value{}, nil, errBadKey
		}
		u := binary.BigEndian.Uint64(b)
		switch t {
		case TypeInt:
			return IntValue(int64(u ^ (1 << 63))), b[8:], nil
		case TypeTime:
			return TimeValue(time.Unix(0, int64(u^(1<<63))).UTC()), b[8:], nil
		}
		if u&(1<<63) != 0 {
			u ^= 1 << 63
		} else {
			u = ^u
		}
		return FloatValue(math.Float64frombits(u)), b[8:], nil
	case TypeString:
		s, rest, err := decodeName(b)
		return StringValue(s), rest, err
	}
	return Value{}, nil, errBadKey
}
