package catalog

// THIS FILE IS A TEMPORARY STUB FOR PARALLEL WORK; the real implementation
// replaces it.

import (
	"errors"
	"log/slog"
	"time"
)

// Sentinel errors. Every error returned by the catalog that concerns an item
// wraps one of these (match with errors.Is) inside an *Error naming the item.
var (
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrInvalid      = errors.New("invalid argument")
	ErrPrecondition = errors.New("failed precondition")
	ErrClosed       = errors.New("catalog closed")
)

// Error describes the failure of one operation on one item.
type Error struct {
	Op     string // "create", "add", "query lfn", ...
	Item   string // the name (or "lfn -> pfn") concerned
	Reason string // optional detail ("contains a NUL byte at offset 3")
	Err    error  // one of the sentinels
}

func (e *Error) Error() string { return "" }
func (e *Error) Unwrap() error { return e.Err }

type Options struct {
	NoSync       bool
	CacheSize    int64
	MemTableSize uint64
	Logger       *slog.Logger
}

type Catalog struct{}

func Open(dir string, opts *Options) (*Catalog, error) { return nil, nil }
func (c *Catalog) Close() error                        { return nil }

type Mapping struct{ LFN, PFN string }

func (c *Catalog) Create(lfn, pfn string) (uint64, error)    { return 0, nil }
func (c *Catalog) Add(lfn, pfn string) (uint64, error)       { return 0, nil }
func (c *Catalog) Delete(lfn, pfn string) (uint64, error)    { return 0, nil }
func (c *Catalog) RenameLFN(old, new string) (uint64, error) { return 0, nil }
func (c *Catalog) RenamePFN(old, new string) (uint64, error) { return 0, nil }
func (c *Catalog) LFNExists(lfn string) (bool, error)        { return false, nil }
func (c *Catalog) PFNExists(pfn string) (bool, error)        { return false, nil }
func (c *Catalog) MappingExists(lfn, pfn string) (bool, error) {
	return false, nil
}
func (c *Catalog) QueryLFN(lfn string) ([]string, error) { return nil, nil }
func (c *Catalog) QueryPFN(pfn string) ([]string, error) { return nil, nil }

type WildcardQuery struct {
	Pattern       string
	PFN           bool
	Offset, Limit int
}

func (c *Catalog) Wildcard(q WildcardQuery) ([]Mapping, bool, error) { return nil, false, nil }

type Op uint8

const (
	OpCreate Op = iota + 1
	OpAdd
	OpDelete
)

type ObjectType uint8

const (
	LFN ObjectType = iota + 1
	PFN
)

type Rename struct{ Old, New string }

func (c *Catalog) BulkWrite(op Op, ms []Mapping) ([]error, uint64, error) { return nil, 0, nil }
func (c *Catalog) BulkRename(t ObjectType, rs []Rename) ([]error, uint64, error) {
	return nil, 0, nil
}
func (c *Catalog) BulkQuery(t ObjectType, names []string) ([][]string, []error) { return nil, nil }
func (c *Catalog) BulkExists(items []Mapping) ([]bool, []error)                 { return nil, nil }

type ValueType uint8

const (
	TypeInt ValueType = iota + 1
	TypeFloat
	TypeString
	TypeTime
)

type Value struct {
	Type  ValueType
	Int   int64
	Float float64
	Str   string
	Time  time.Time
}

func IntValue(v int64) Value                          { return Value{Type: TypeInt, Int: v} }
func FloatValue(v float64) Value                      { return Value{Type: TypeFloat, Float: v} }
func StringValue(v string) Value                      { return Value{Type: TypeString, Str: v} }
func TimeValue(v time.Time) Value                     { return Value{Type: TypeTime, Time: v} }
func ParseValue(t ValueType, s string) (Value, error) { return Value{}, nil }
func (v Value) String() string                        { return "" }

type AttrDef struct {
	Name   string
	Object ObjectType
	Type   ValueType
}

type SetMode uint8

const (
	Upsert SetMode = iota
	AddOnly
	ModifyOnly
)

type Attr struct {
	Name  string
	Value Value
}

type SearchOp uint8

const (
	OpEQ SearchOp = iota + 1
	OpNE
	OpLT
	OpLE
	OpGT
	OpGE
	OpBetween
	OpLike
)

type Search struct {
	Object        ObjectType
	Attr          string
	Op            SearchOp
	Value, Value2 Value
	Offset, Limit int
}

type Hit struct {
	Name  string
	Value Value
}

type AttrWrite struct {
	Object string // object name
	Attr   string
	Value  *Value // nil removes
}

func (c *Catalog) DefineAttr(d AttrDef) error                                       { return nil }
func (c *Catalog) UndefineAttr(name string, obj ObjectType, clearValues bool) error { return nil }
func (c *Catalog) AttrDefs(obj ObjectType) ([]AttrDef, error)                       { return nil, nil }
func (c *Catalog) SetAttr(obj ObjectType, name, attr string, v Value, mode SetMode) error {
	return nil
}
func (c *Catalog) RemoveAttr(obj ObjectType, name, attr string) error { return nil }
func (c *Catalog) Attrs(obj ObjectType, name string, attrs ...string) ([]Attr, error) {
	return nil, nil
}
func (c *Catalog) SearchAttr(s Search) ([]Hit, bool, error) { return nil, false, nil }
func (c *Catalog) BulkSetAttrs(obj ObjectType, mode SetMode, ws []AttrWrite) ([]error, error) {
	return nil, nil
}
func (c *Catalog) BulkAttrs(obj ObjectType, names []string, attrs []string) ([][]Attr, []error) {
	return nil, nil
}

type ChangeKind uint8

const (
	ChangeCreate ChangeKind = iota + 1
	ChangeAdd
	ChangeDelete
	ChangeRenameLFN
	ChangeRenamePFN
)

type Change struct {
	Seq        uint64
	Kind       ChangeKind
	LFN, PFN   string
	Old        string
	LFNAdded   bool
	LFNRemoved bool
	Time       time.Time
}

func (c *Catalog) Changes(from uint64, limit int) ([]Change, error)     { return nil, nil }
func (c *Catalog) LastSeq() uint64                                      { return 0 }
func (c *Catalog) FirstSeq() uint64                                     { return 0 }
func (c *Catalog) Notify() <-chan struct{}                              { return nil }
func (c *Catalog) PruneChanges(before uint64) error                     { return nil }
func (c *Catalog) ForEachLFN(fn func(lfn string) error) (uint64, error) { return 0, nil }

type Stats struct {
	LFNs, PFNs, Mappings, Seq, FirstSeq, AttrDefs, DiskBytes uint64
}

func (c *Catalog) Stats() Stats { return Stats{} }

// MaxNameLen is the longest LFN or PFN, in bytes.
const MaxNameLen = 1024

func ValidateName(kind, name string) error { return nil }
