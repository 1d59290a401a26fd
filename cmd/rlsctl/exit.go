package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api"
)

// Exit statuses. They are part of the command line contract (scripts rely on
// them) and are listed in the root command's help; change them only with it.
const (
	exitOK          = 0 // success
	exitFailure     = 1 // any other failure (FAILED_PRECONDITION, INTERNAL, ...)
	exitUsage       = 2 // bad usage or invalid input (INVALID_ARGUMENT)
	exitNotFound    = 3 // NOT_FOUND; also "exists" answering no
	exitExists      = 4 // ALREADY_EXISTS
	exitUnavailable = 5 // server unreachable or timed out (UNAVAILABLE, DEADLINE_EXCEEDED)
	exitDenied      = 6 // PERMISSION_DENIED, UNAUTHENTICATED
)

const exitCodesHelp = `Exit status:
  0  success
  1  other failure (for example FAILED_PRECONDITION, INTERNAL, mixed bulk failures)
  2  bad usage or invalid input (unknown command or flag, wrong arguments,
     malformed bulk lines, INVALID_ARGUMENT from the server)
  3  not found (NOT_FOUND; "lrc exists" answering no)
  4  already exists (ALREADY_EXISTS)
  5  server unreachable or timed out (UNAVAILABLE, DEADLINE_EXCEEDED)
  6  permission denied (PERMISSION_DENIED, UNAUTHENTICATED)
Bulk commands exit with the status of their failed items when all failed the
same way, and 1 when the failures are mixed.`

// exitCodeForGRPC is the one mapping from gRPC status codes to exit statuses.
func exitCodeForGRPC(c codes.Code) int {
	switch c {
	case codes.OK:
		return exitOK
	case codes.InvalidArgument:
		return exitUsage
	case codes.NotFound:
		return exitNotFound
	case codes.AlreadyExists:
		return exitExists
	case codes.Unavailable, codes.DeadlineExceeded:
		return exitUnavailable
	case codes.PermissionDenied, codes.Unauthenticated:
		return exitDenied
	default:
		return exitFailure
	}
}

// exitError is an error that carries its exit status. Every error a command
// returns leaves RunE as an *exitError (see wrapRunE); errors that do not are
// cobra's own usage errors.
type exitError struct {
	code int
	err  error
	// quiet suppresses the message on stderr when the command already said
	// everything on stdout (for example "lrc exists" answering no).
	quiet bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports bad input found by the client; it exits with status 2.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// classify returns the exit status for an error returned from a command's
// RunE: an *exitError keeps its status, a gRPC status error is mapped by
// exitCodeForGRPC, a context error by its kind, anything else is 1.
func classify(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if st, ok := status.FromError(err); ok {
		return exitCodeForGRPC(st.Code())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return exitUnavailable
	}
	return exitFailure
}

// describe turns an error into the one line printed on stderr. gRPC errors
// print their code name and message rather than grpc-go's "rpc error: ..."
// wrapping, which scripts and people read more easily.
func describe(err error) string {
	if st, ok := status.FromError(err); ok {
		msg := st.Message()
		switch st.Code() {
		case codes.Unavailable:
			return "server unavailable: " + msg
		case codes.DeadlineExceeded:
			return "timed out: " + msg
		}
		return fmt.Sprintf("%s: %s", api.CodeName(st.Code()), msg)
	}
	return err.Error()
}

// wrapRunE walks the command tree and wraps every RunE so that its error
// becomes an *exitError with its status decided by classify. After that, any
// error Execute returns that is not an *exitError came from cobra itself
// (unknown command or flag, argument count, missing required flag), and
// reportError gives it status 2.
func wrapRunE(c *cobra.Command) {
	if orig := c.RunE; orig != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := orig(cmd, args)
			if err == nil {
				return nil
			}
			var ee *exitError
			if errors.As(err, &ee) {
				return err
			}
			return &exitError{code: classify(err), err: err}
		}
	}
	for _, sub := range c.Commands() {
		wrapRunE(sub)
	}
}

// reportError prints err on stderr and returns its exit status.
func reportError(stderr io.Writer, cmd *cobra.Command, err error) int {
	var ee *exitError
	if !errors.As(err, &ee) {
		// Cobra rejected the command line before any RunE ran.
		fmt.Fprintf(stderr, "rlsctl: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	if !ee.quiet && ee.err != nil {
		fmt.Fprintf(stderr, "rlsctl: %s\n", describe(ee.err))
	}
	return ee.code
}

// failureTally counts per-item failures by exit status, so that a command
// with many items can exit with their common status, or 1 when they differ.
// Not safe for concurrent use.
type failureTally struct {
	byCode map[string]uint64 // by code name, for the JSON summary
	exit   int               // common exit status so far; -1 when mixed
	total  uint64
}

func (t *failureTally) add(codeName string, exit int) {
	if t.byCode == nil {
		t.byCode = make(map[string]uint64)
	}
	t.byCode[codeName]++
	switch {
	case t.total == 0:
		t.exit = exit
	case t.exit != exit:
		t.exit = -1
	}
	t.total++
}

// addGRPC counts a failure reported as a google.rpc.Code value.
func (t *failureTally) addGRPC(c codes.Code) { t.add(api.CodeName(c), exitCodeForGRPC(c)) }

// addMalformed counts an input line rejected by the client.
func (t *failureTally) addMalformed() { t.add("MALFORMED", exitUsage) }

// exitStatus is 0 with no failures, the common status of all failures, or 1.
func (t *failureTally) exitStatus() int {
	switch {
	case t.total == 0:
		return exitOK
	case t.exit < 0:
		return exitFailure
	default:
		return t.exit
	}
}
