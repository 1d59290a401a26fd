package catalog

import (
	"errors"
	"strconv"

	"github.com/solar-archive/rls/internal/failstop"
)

// Sentinel errors. Every error about an item wraps one of these in an *Error
// that names the operation, the item and the reason; match them with
// errors.Is.
var (
	// ErrNotFound: the LFN, PFN, mapping, attribute definition or attribute
	// value does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the LFN (for Create), mapping, name (for renames) or
	// attribute definition or value already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the input is malformed (a bad name, value or pattern).
	ErrInvalid = errors.New("invalid argument")
	// ErrPrecondition: the operation cannot be done in the current state,
	// such as undefining an attribute that still has values.
	ErrPrecondition = errors.New("failed precondition")
	// ErrClosed: the catalog has been closed.
	ErrClosed = errors.New("catalog closed")
	// ErrUnavailable: the backend's server (a shared database) cannot be
	// reached now; the call may be retried. Nothing of a write that failed
	// with it was acknowledged. Like ErrFailed it concerns the store, not an
	// item, and is not wrapped in an *Error. The Pebble catalog never
	// returns it.
	ErrUnavailable = errors.New("catalog unavailable")
	// ErrFailed: the catalog stopped after a storage error (a full disk, a
	// failed write or sync) and serves nothing more; see Catalog.Err. It is
	// not wrapped in an *Error: it concerns the store, not an item.
	ErrFailed = failstop.ErrFailed
)

// Error describes the failure of one operation on one item.
type Error struct {
	Op     string // the operation: "create", "query lfn", "set attribute", ...
	Item   string // the item concerned, quoted in messages
	Reason string // optional detail, such as "contains a NUL byte at offset 3"
	Err    error  // one of the sentinel errors
}

func (e *Error) Error() string {
	s := e.Op
	if e.Item != "" {
		s += " " + quote(e.Item)
	}
	s += ": " + e.Err.Error()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// quote quotes s for a message, cutting very long names so that an error
// about a 1 MiB name does not become a 1 MiB message.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return strconv.Quote(s)
}

func errorf(op, item string, err error, reason string) error {
	return &Error{Op: op, Item: item, Err: err, Reason: reason}
}
