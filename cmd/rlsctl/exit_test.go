package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestExitCodeForGRPC(t *testing.T) {
	for c, want := range map[codes.Code]int{
		codes.OK:                 0,
		codes.Unknown:            1,
		codes.Internal:           1,
		codes.FailedPrecondition: 1,
		codes.PermissionDenied:   6,
		codes.Unauthenticated:    6,
		codes.Canceled:           1,
		codes.InvalidArgument:    2,
		codes.NotFound:           3,
		codes.AlreadyExists:      4,
		codes.Unavailable:        5,
		codes.DeadlineExceeded:   5,
	} {
		if got := exitCodeForGRPC(c); got != want {
			t.Errorf("exitCodeForGRPC(%v) = %d, want %d", c, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{status.Error(codes.NotFound, "no such lfn"), 3},
		{fmt.Errorf("chunk: %w", status.Error(codes.AlreadyExists, "x")), 4},
		{context.DeadlineExceeded, 5},
		{usageErrorf("bad"), 2},
		{&exitError{code: 3, quiet: true}, 3},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestFailureTally(t *testing.T) {
	var none failureTally
	if got := none.exitStatus(); got != 0 {
		t.Errorf("no failures: exit %d, want 0", got)
	}
	var same failureTally
	same.addGRPC(codes.AlreadyExists)
	same.addGRPC(codes.AlreadyExists)
	if got := same.exitStatus(); got != 4 {
		t.Errorf("all ALREADY_EXISTS: exit %d, want 4", got)
	}
	var malformed failureTally
	malformed.addMalformed()
	malformed.addGRPC(codes.InvalidArgument) // also exit 2
	if got := malformed.exitStatus(); got != 2 {
		t.Errorf("malformed and INVALID_ARGUMENT: exit %d, want 2", got)
	}
	var mixed failureTally
	mixed.addGRPC(codes.NotFound)
	mixed.addGRPC(codes.AlreadyExists)
	mixed.addGRPC(codes.NotFound)
	if got := mixed.exitStatus(); got != 1 {
		t.Errorf("mixed: exit %d, want 1", got)
	}
	if mixed.byCode["NOT_FOUND"] != 2 || mixed.byCode["ALREADY_EXISTS"] != 1 || mixed.total != 3 {
		t.Errorf("mixed counts %v total %d", mixed.byCode, mixed.total)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// runCLI runs rlsctl in-process and returns its exit status and output.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// TestUsageAndUnreachable checks exit statuses that need no server: cobra's
// usage errors and the client's own checks give 2, an unreachable server 5.
func TestUsageAndUnreachable(t *testing.T) {
	dead := closedPort(t)
	for _, tc := range []struct {
		args []string
		want int
		msg  string // substring of stderr
	}{
		{[]string{"--help"}, 0, ""},
		{[]string{"version", "-o", "json"}, 0, ""},
		{[]string{"completion", "bash"}, 0, ""},
		{[]string{"completion", "tcsh"}, 2, "invalid argument"},
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"lrc", "bogus"}, 2, "unknown command"},
		{[]string{"lrc", "create", "a"}, 2, "accepts 2 arg(s)"},
		{[]string{"lrc", "create", "a", "b", "c"}, 2, "accepts 2 arg(s)"},
		{[]string{"lrc", "create", "--nope", "a", "b"}, 2, "unknown flag"},
		{[]string{"-o", "yaml", "admin", "ping"}, 2, "must be one of table|json"},
		{[]string{"lrc", "attr", "define", "x", "--type", "int"}, 2, `"object" not set`},
		{[]string{"lrc", "attr", "define", "x", "--object", "sunum", "--type", "int"}, 2, "must be one of lfn|pfn"},
		{[]string{"lrc", "attr", "search", "x", "~", "1", "--object", "lfn"}, 2, "unknown operator"},
		{[]string{"lrc", "create", "", "p"}, 2, "lfn is empty"},
		{[]string{"lrc", "create", "a\x00b", "p"}, 2, "NUL byte"},
		{[]string{"lrc", "add", "a", strings.Repeat("p", 1025)}, 2, "more than 1024"},
		{[]string{"lrc", "query", "lfn", "ok", ""}, 2, "lfn is empty"},
		{[]string{"lrc", "exists"}, 2, "exists takes"},
		{[]string{"lrc", "bulk", "create", "--chunk", "0"}, 2, "--chunk"},
		{[]string{"lrc", "bulk", "create", "--inflight", "0"}, 2, "--inflight must be between 1 and 64"},
		{[]string{"lrc", "bulk", "query", "--inflight", "65"}, 2, "--inflight must be between 1 and 64"},
		{[]string{"lrc", "bulk", "create", "-f", "/nonexistent/file"}, 2, "no such file"},
		{[]string{"--timeout", "0s", "admin", "ping"}, 2, "--timeout"},
		{[]string{"--server", dead, "admin", "ping"}, 5, "server unavailable"},
		{[]string{"--server", dead, "lrc", "create", "a", "b"}, 5, "server unavailable"},
	} {
		code, _, stderr := runCLI(t, "", tc.args...)
		if code != tc.want || !strings.Contains(stderr, tc.msg) {
			t.Errorf("rlsctl %q: exit %d, stderr %q; want exit %d, stderr containing %q", tc.args, code, stderr, tc.want, tc.msg)
		}
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	_, out, _ := runCLI(t, "", "--help")
	for _, s := range []string{"Exit status:", "3  not found", "5  server unreachable"} {
		if !strings.Contains(out, s) {
			t.Errorf("rlsctl --help lacks %q", s)
		}
	}
}
