// Command rlsctl is the command line client of rlsd.
//
// main is the only place that exits the process; commands return errors,
// and exitCode (exit.go) turns an error into the documented exit status.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first interrupt cancels the running RPCs (bulk commands then print
	// how far they got); a second one, with the default handling restored,
	// kills the process even if it is blocked reading a terminal.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one rlsctl invocation and returns its exit status. It writes
// results to stdout and diagnostics to stderr, and never exits the process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand(stdin, stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	return reportError(stderr, cmd, err)
}
