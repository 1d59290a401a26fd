package main

// Integration test with real processes: it builds rlsd and rlsctl, starts
// rlsd on a loopback port of its choosing, waits on the gRPC health service,
// and checks rlsctl's output and exit statuses, 0 to 5.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/solar-archive/rls/internal/rlsdtest"
)

func TestIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts rlsd")
	}
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	rlsctl := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsctl")
	addr := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", "--site", "test",
		"--data", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0", "--roles", "lrc").Addr

	type res struct {
		code           int
		stdout, stderr string
	}
	run := func(stdin string, args ...string) res {
		t.Helper()
		cmd := exec.Command(rlsctl, args...)
		cmd.Env = append(os.Environ(), "RLS_SERVER="+addr)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("rlsctl %q: %v", args, err)
		}
		return res{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
	}
	seen := map[int]bool{}
	expect := func(r res, code int, stdout, stderr string, args ...string) {
		t.Helper()
		seen[r.code] = true
		if r.code != code || !strings.Contains(r.stdout, stdout) || !strings.Contains(r.stderr, stderr) {
			t.Errorf("rlsctl %q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				args, r.code, r.stdout, r.stderr, code, stdout, stderr)
		}
	}
	check := func(code int, stdout, stderr string, args ...string) res {
		t.Helper()
		r := run("", args...)
		expect(r, code, stdout, stderr, args...)
		return r
	}

	check(0, "test", "", "admin", "ping")
	check(0, "created 100 -> /SUM1/D100", "", "lrc", "create", "100", "/SUM1/D100")
	check(4, "", "ALREADY_EXISTS", "lrc", "create", "100", "/SUM2/D100")
	check(0, "added", "", "lrc", "add", "100", "/SUM2/D100")
	check(0, "/SUM1/D100", "", "lrc", "query", "lfn", "100")
	check(3, "", "NOT_FOUND", "lrc", "query", "lfn", "999")
	check(0, "exists", "", "lrc", "exists", "100", "/SUM2/D100")
	check(3, "does not exist", "", "lrc", "exists", "--pfn", "/nowhere")
	check(2, "", "accepts 2 arg(s)", "lrc", "create", "only-one")
	check(2, "", "lfn is empty", "lrc", "create", "", "/p")
	check(3, "", "NOT_FOUND", "lrc", "attr", "undefine", "nosuch", "--object", "lfn")

	// Attributes: define, set by type, search.
	check(0, "defined", "", "lrc", "attr", "define", "size", "--object", "lfn", "--type", "int")
	check(0, "set size", "", "lrc", "attr", "set", "100", "size", "4096", "--object", "lfn")
	check(2, "", "(int)", "lrc", "attr", "set", "100", "size", "big", "--object", "lfn")
	check(1, "", "FAILED_PRECONDITION", "lrc", "attr", "undefine", "size", "--object", "lfn")
	r := check(0, "", "", "-o", "json", "lrc", "attr", "search", "size", ">=", "1000", "--object", "lfn")
	var hits searchResult
	if err := json.Unmarshal([]byte(r.stdout), &hits); err != nil || len(hits.Hits) != 1 || hits.Hits[0].ObjectName != "100" {
		t.Errorf("attr search: %v %q", err, r.stdout)
	}

	// Bulk: 1,000 new mappings plus one that exists and one malformed line,
	// in chunks of 128.
	var in strings.Builder
	in.WriteString("# sunum\tpath\n100\t/SUM1/D100\nmalformed-line\n")
	for i := range 1000 {
		fmt.Fprintf(&in, "%d\t/SUM%d/D%d\n", 200000+i, i%4, 200000+i)
	}
	file := filepath.Join(t.TempDir(), "bulk.txt")
	if err := os.WriteFile(file, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r = check(1, "", "line 2: 100 /SUM1/D100: ALREADY_EXISTS", "-o", "json", "lrc", "bulk", "create", "-f", file, "--chunk", "128")
	if !strings.Contains(r.stderr, "line 3: MALFORMED") {
		t.Errorf("bulk create stderr %q lacks the malformed line", r.stderr)
	}
	var sum bulkSummary
	if err := json.Unmarshal([]byte(r.stdout), &sum); err != nil || sum.Items != 1002 || sum.OK != 1000 || sum.Failed != 2 {
		t.Errorf("bulk summary %+v (%v) from %q", sum, err, r.stdout)
	}
	r = run("200000\n200999\n404\n", "-o", "json", "lrc", "bulk", "query")
	expect(r, 3, `"lfn":"200999"`, "line 3: 404: NOT_FOUND", "bulk query")

	// Stats: JSON integers at the top level.
	r = check(0, "", "", "-o", "json", "admin", "stats")
	var stats map[string]any
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.UseNumber()
	if err := dec.Decode(&stats); err != nil {
		t.Fatalf("stats JSON %q: %v", r.stdout, err)
	}
	for key, want := range map[string]string{"lfns": "1001", "pfns": "1002", "mappings": "1002"} {
		if n, ok := stats[key].(json.Number); !ok || n.String() != want {
			t.Errorf("stats %s = %#v, want %s", key, stats[key], want)
		}
	}

	// Unreachable: a port nothing listens on.
	check(5, "", "server unavailable", "--server", closedPort(t), "admin", "ping")

	for _, code := range []int{0, 1, 2, 3, 4, 5} {
		if !seen[code] {
			t.Errorf("exit status %d never seen", code)
		}
	}
}
