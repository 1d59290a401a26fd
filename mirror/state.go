package mirror

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// State is a sunum's mirroring state (the JMD's).
type State uint8

// The states. Their numbers are part of the store's format.
const (
	NQUE  State = iota + 1 // accepted, waiting for the scheduler
	REDY                   // candidate sources located
	BQUED                  // in a lane's batcher, waiting for a worker
	QUED                   // being pulled
	DONE                   // placed, verified and registered
	FAIL                   // retriable failure; due again at Record.Due
	PNDG                   // tier 2: waiting for upstream; due again at Record.Due
	INVD                   // the authority does not hold it
)

// States lists the states in their numeric order.
var States = []State{NQUE, REDY, BQUED, QUED, DONE, FAIL, PNDG, INVD}

var stateNames = [...]string{NQUE: "NQUE", REDY: "REDY", BQUED: "BQUED", QUED: "QUED",
	DONE: "DONE", FAIL: "FAIL", PNDG: "PNDG", INVD: "INVD"}

func (s State) String() string {
	if s.valid() {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

func (s State) valid() bool { return s >= NQUE && s <= INVD }

// scheduled reports whether records in state s wait in the due index for
// the scheduler to claim them.
func (s State) scheduled() bool { return s == NQUE || s == FAIL || s == PNDG }

// ParseState parses a state name such as "FAIL".
func ParseState(name string) (State, error) {
	for _, s := range States {
		if stateNames[s] == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown state %q (want one of NQUE REDY BQUED QUED DONE FAIL PNDG INVD)", ErrInvalid, name)
}

// Lane is a request's priority: user requests have their own workers and
// never wait behind the bulk backlog.
type Lane uint8

const (
	LaneBulk Lane = iota // the default
	LaneUser
)

// Lanes lists the lanes, user first.
var Lanes = []Lane{LaneUser, LaneBulk}

func (l Lane) String() string {
	switch l {
	case LaneBulk:
		return "bulk"
	case LaneUser:
		return "user"
	}
	return "lane(" + strconv.Itoa(int(l)) + ")"
}

// ParseLane parses "user" or "bulk".
func ParseLane(s string) (Lane, error) {
	switch s {
	case "bulk", "":
		return LaneBulk, nil
	case "user":
		return LaneUser, nil
	}
	return 0, fmt.Errorf("%w: unknown priority %q (want user or bulk)", ErrInvalid, s)
}

// Request asks that the site hold a sunum. It is what an intake hands to
// Accept.
type Request struct {
	Sunum    uint64
	Series   string
	Priority Lane
}

// Acceptor is what an intake needs: Accept records the requests durably
// (they survive kill -9 once it returns nil) and idempotently (a sunum
// already known is not queued twice). An intake may delete its source rows
// once Accept returned nil for them, and may hand the same rows again after
// a crash.
type Acceptor interface {
	Accept(ctx context.Context, reqs []Request) error
}

// Sentinel errors; match them with errors.Is.
var (
	ErrInvalid  = errors.New("mirror: invalid")
	ErrNotFound = errors.New("mirror: no such sunum")
	ErrClosed   = errors.New("mirror: closed")
	// ErrCancelled: a unit taken back by Cancel.
	ErrCancelled = errors.New("mirror: cancelled")
)

// ParseSunum parses a sunum in canonical decimal form: digits only, no
// sign, no spaces, no leading zero (except "0" itself), at most 2^64-1.
func ParseSunum(s string) (uint64, error) {
	switch {
	case s == "":
		return 0, fmt.Errorf("%w: sunum: empty", ErrInvalid)
	case len(s) > 1 && s[0] == '0':
		return 0, fmt.Errorf("%w: sunum %q: leading zero (want canonical decimal)", ErrInvalid, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: sunum %q: %q at offset %d is not a decimal digit", ErrInvalid, s, s[i], i)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: sunum %q: larger than 18446744073709551615", ErrInvalid, s)
	}
	return n, nil
}

// LFN is the catalog name of a sunum: its canonical decimal form.
func LFN(sunum uint64) string { return strconv.FormatUint(sunum, 10) }
