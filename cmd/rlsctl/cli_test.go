package main

// Tests of whole commands against an in-process fake of the rls.v1 services
// on loopback. The fake keeps just enough state to check what rlsctl sends,
// in what order and how it reports the answers; the real server is exercised
// by integration_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
)

type fakeServer struct {
	rlsv1.UnimplementedCatalogServer
	rlsv1.UnimplementedAdminServer

	mu       sync.Mutex
	mappings map[string][]string // lfn -> pfns
	seq      uint64
	attrs    map[string]*rlsv1.Value
	chunks   []int // sizes of BulkWrite/BulkQuery requests, in arrival order

	inFlight, maxInFlight atomic.Int32
	// hold and applied, when set, are called by BulkWrite before it
	// applies a request (outside mu) and after.
	hold, applied func(r *rlsv1.BulkWriteRequest)
}

func startFake(t *testing.T) (*fakeServer, string) {
	t.Helper()
	f := &fakeServer{mappings: map[string][]string{}, attrs: map[string]*rlsv1.Value{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	rlsv1.RegisterCatalogServer(s, f)
	rlsv1.RegisterAdminServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return f, lis.Addr().String()
}

// write applies one mapping write under f.mu and returns its status.
func (f *fakeServer) write(op rlsv1.WriteOp, lfn, pfn string) codes.Code {
	pfns, ok := f.mappings[lfn]
	switch op {
	case rlsv1.WriteOp_WRITE_OP_CREATE:
		if ok {
			return codes.AlreadyExists
		}
	case rlsv1.WriteOp_WRITE_OP_ADD:
		if !ok {
			return codes.NotFound
		}
		if slices.Contains(pfns, pfn) {
			return codes.AlreadyExists
		}
	case rlsv1.WriteOp_WRITE_OP_DELETE:
		i := slices.Index(pfns, pfn)
		if i < 0 {
			return codes.NotFound
		}
		if pfns = slices.Delete(pfns, i, i+1); len(pfns) == 0 {
			delete(f.mappings, lfn)
		} else {
			f.mappings[lfn] = pfns
		}
		f.seq++
		return codes.OK
	}
	f.mappings[lfn] = append(pfns, pfn)
	f.seq++
	return codes.OK
}

func (f *fakeServer) Create(_ context.Context, r *rlsv1.MappingRequest) (*rlsv1.WriteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.write(rlsv1.WriteOp_WRITE_OP_CREATE, r.Lfn, r.Pfn); c != codes.OK {
		return nil, status.Errorf(c, "create %q: %v", r.Lfn, c)
	}
	return &rlsv1.WriteResponse{Seq: f.seq}, nil
}

func (f *fakeServer) Exists(_ context.Context, r *rlsv1.ExistsRequest) (*rlsv1.ExistsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pfns, ok := f.mappings[r.Lfn]
	if r.Pfn != "" {
		ok = ok && slices.Contains(pfns, r.Pfn)
	}
	return &rlsv1.ExistsResponse{Exists: ok}, nil
}

func (f *fakeServer) QueryLFN(_ context.Context, r *rlsv1.NameRequest) (*rlsv1.NamesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pfns, ok := f.mappings[r.Name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "lfn %q: not found", r.Name)
	}
	return &rlsv1.NamesResponse{Names: slices.Sorted(slices.Values(pfns))}, nil
}

// track counts concurrent bulk requests.
func (f *fakeServer) track(n int) func() {
	cur := f.inFlight.Add(1)
	for {
		m := f.maxInFlight.Load()
		if cur <= m || f.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	f.mu.Lock()
	f.chunks = append(f.chunks, n)
	f.mu.Unlock()
	return func() { f.inFlight.Add(-1) }
}

func (f *fakeServer) BulkWrite(_ context.Context, r *rlsv1.BulkWriteRequest) (*rlsv1.BulkResponse, error) {
	defer f.track(len(r.Mappings))()
	if f.hold != nil {
		f.hold(r)
	}
	if f.applied != nil {
		defer f.applied(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &rlsv1.BulkResponse{}
	for _, m := range r.Mappings {
		st := &rlsv1.Status{Code: int32(f.write(r.Op, m.Lfn, m.Pfn))}
		if st.Code != 0 {
			st.Message = fmt.Sprintf("%s -> %s: %v", m.Lfn, m.Pfn, codes.Code(st.Code))
			resp.Failed++
		}
		resp.Results = append(resp.Results, st)
	}
	resp.Seq = f.seq
	return resp, nil
}

func (f *fakeServer) BulkQuery(_ context.Context, r *rlsv1.BulkQueryRequest) (*rlsv1.BulkQueryResponse, error) {
	defer f.track(len(r.Names))()
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &rlsv1.BulkQueryResponse{}
	for _, n := range r.Names {
		qr := &rlsv1.QueryResult{Name: n, Status: &rlsv1.Status{}}
		if pfns, ok := f.mappings[n]; ok {
			qr.Names = slices.Sorted(slices.Values(pfns))
		} else {
			qr.Status = &rlsv1.Status{Code: int32(codes.NotFound), Message: "not found"}
		}
		resp.Results = append(resp.Results, qr)
	}
	return resp, nil
}

func (f *fakeServer) ListAttributes(context.Context, *rlsv1.ListAttributesRequest) (*rlsv1.ListAttributesResponse, error) {
	return &rlsv1.ListAttributesResponse{Defs: []*rlsv1.AttributeDef{
		{Name: "size", Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, Type: rlsv1.ValueType_VALUE_TYPE_INT},
		{Name: "obs", Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, Type: rlsv1.ValueType_VALUE_TYPE_TIME},
	}}, nil
}

func (f *fakeServer) SetAttribute(_ context.Context, r *rlsv1.SetAttributeRequest) (*rlsv1.WriteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attrs[r.ObjectName+"/"+r.Name] = r.Value
	return &rlsv1.WriteResponse{}, nil
}

func (f *fakeServer) Ping(ctx context.Context, _ *rlsv1.PingRequest) (*rlsv1.PingResponse, error) {
	if md, _ := ctx.Deadline(); !md.IsZero() {
		// Answer slowly enough for a short --timeout to expire.
		<-ctx.Done()
	}
	return &rlsv1.PingResponse{Site: "fake"}, nil
}

func TestCLISingleCommands(t *testing.T) {
	_, addr := startFake(t)
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, "", append([]string{"--server", addr}, args...)...)
	}

	if code, out, errs := cli("lrc", "create", "a", "/p1"); code != 0 || out != "created a -> /p1 (seq 1)\n" {
		t.Errorf("create: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := cli("lrc", "create", "a", "/p2"); code != 4 || !strings.Contains(errs, "ALREADY_EXISTS") {
		t.Errorf("create again: exit %d, %q", code, errs)
	}
	if code, out, _ := cli("-o", "json", "lrc", "exists", "a", "/p1"); code != 0 || !strings.Contains(out, `"exists": true`) {
		t.Errorf("exists: exit %d, %q", code, out)
	}
	if code, out, errs := cli("lrc", "exists", "b"); code != 3 || out != "lfn b does not exist\n" || errs != "" {
		t.Errorf("exists b: exit %d, %q, %q", code, out, errs)
	}
	if code, out, _ := cli("-o", "json", "lrc", "query", "lfn", "a"); code != 0 || !jsonEqual(decodeJSON(t, out), decodeJSON(t, `[{"lfn":"a","pfns":["/p1"]}]`)) {
		t.Errorf("query a: exit %d, %q", code, out)
	}
	code, out, errs := cli("-o", "json", "lrc", "query", "lfn", "a", "zz")
	if code != 3 || !strings.Contains(errs, `"zz"`) ||
		!jsonEqual(decodeJSON(t, out), decodeJSON(t, `[{"lfn":"a","pfns":["/p1"]},{"lfn":"zz","error":{"code":"NOT_FOUND","message":"not found"}}]`)) {
		t.Errorf("query a zz: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := cli("lrc", "attr", "set", "a", "size", "12x", "--object", "lfn"); code != 2 || !strings.Contains(errs, `"size" (int)`) {
		t.Errorf("attr set bad int: exit %d, %q", code, errs)
	}
	if code, _, errs := cli("lrc", "attr", "set", "a", "nosuch", "1", "--object", "lfn"); code != 3 {
		t.Errorf("attr set undefined: exit %d, %q", code, errs)
	}
	if code, out, errs := cli("lrc", "attr", "set", "a", "obs", "2026-01-02T15:04:05Z", "--object", "lfn"); code != 0 || !strings.Contains(out, "2026-01-02T15:04:05Z") {
		t.Errorf("attr set time: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := cli("--timeout", "100ms", "admin", "ping"); code != 5 || !strings.Contains(errs, "timed out") {
		t.Errorf("slow ping: exit %d, %q", code, errs)
	}
}

func TestCLIBulk(t *testing.T) {
	f, addr := startFake(t)
	dir := t.TempDir()

	// 25 good lines with comments, blanks and one malformed line among them.
	var in strings.Builder
	in.WriteString("# lfn\tpfn\n")
	for i := range 25 {
		if i == 7 {
			in.WriteString("just-one-field\n")
		}
		if i == 12 {
			in.WriteString("\n")
		}
		fmt.Fprintf(&in, "lfn%02d\t/SUM1/D%02d\n", i, i)
	}
	file := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(file, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runCLI(t, "", "--server", addr, "-o", "json", "lrc", "bulk", "create", "-f", file, "--chunk", "4", "--inflight", "1")
	if code != 2 || !strings.Contains(errs, "line 9: MALFORMED") {
		t.Fatalf("bulk create with a malformed line: exit %d, stderr %q", code, errs)
	}
	var sum bulkSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if sum.Items != 26 || sum.OK != 25 || sum.Failed != 1 || sum.Malformed != 1 || sum.Seq != 25 {
		t.Errorf("summary %+v", sum)
	}
	if got := f.maxInFlight.Load(); got != 1 {
		t.Errorf("%d chunks in flight at once, want 1", got)
	}
	if want := []int{4, 4, 4, 4, 4, 4, 1}; !slices.Equal(f.chunks, want) {
		t.Errorf("chunk sizes %v, want %v", f.chunks, want)
	}
	// Order across chunks is kept: the server saw lfn00..lfn24 in order.
	f.mu.Lock()
	n := len(f.mappings)
	f.mu.Unlock()
	if n != 25 {
		t.Errorf("server holds %d mappings, want 25", n)
	}

	// Again from stdin: every item already exists, so exit 4, and each
	// failure names its input line.
	good := strings.Replace(in.String(), "just-one-field\n", "", 1)
	code, out, errs = runCLI(t, good, "--server", addr, "lrc", "bulk", "create", "--chunk", "10")
	if code != 4 || !strings.Contains(errs, "line 2: lfn00 /SUM1/D00: ALREADY_EXISTS") ||
		!strings.Contains(errs, "line 27: lfn24 /SUM1/D24: ALREADY_EXISTS") || !strings.Contains(out, "ITEMS") {
		t.Errorf("bulk create again: exit %d\nstdout %q\nstderr %q", code, out, errs)
	}

	// Mixed failures: exit 1.
	code, _, _ = runCLI(t, "lfn00 /SUM1/D00\nnew /x\nnew /x\nnothere /y\n", "--server", addr, "lrc", "bulk", "add")
	if code != 1 {
		t.Errorf("bulk add mixed: exit %d, want 1", code)
	}

	// Query keeps input order and line numbers across chunks.
	code, out, errs = runCLI(t, "lfn03\nmissing\n# c\nlfn01\nlfn24\n", "--server", addr, "-o", "json", "lrc", "bulk", "query", "--chunk", "2")
	if code != 3 || !strings.Contains(errs, "line 2: missing: NOT_FOUND") {
		t.Errorf("bulk query: exit %d, stderr %q", code, errs)
	}
	var q struct {
		Results []queryItem `json:"results"`
		Summary bulkSummary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		t.Fatalf("bulk query output %q: %v", out, err)
	}
	var got []string
	for _, r := range q.Results {
		got = append(got, fmt.Sprintf("%d:%s:%v:%v", r.Line, r.LFN, r.PFNs, r.Error != nil))
	}
	want := []string{"1:lfn03:[/SUM1/D03]:false", "2:missing:[]:true", "4:lfn01:[/SUM1/D01]:false", "5:lfn24:[/SUM1/D24]:false"}
	if !slices.Equal(got, want) {
		t.Errorf("bulk query results %q, want %q", got, want)
	}
	if q.Summary.Items != 4 || q.Summary.Failed != 1 || q.Summary.FailuresByCode["NOT_FOUND"] != 1 {
		t.Errorf("bulk query summary %+v", q.Summary)
	}
}

// TestCLIBulkInflight sends chunks of two with several in flight, where
// the server holds the first chunk until the second was applied: failures
// are still printed in input order, and the third chunk, which names the
// first chunk's LFN x, is sent only once the first is done (were it sent
// before, the server would apply it first and x would fail on line 1
// instead of line 5).
func TestCLIBulkInflight(t *testing.T) {
	f, addr := startFake(t)
	if code, _, errs := runCLI(t, "dup /p\ndup2 /p\n", "--server", addr, "lrc", "bulk", "create"); code != 0 {
		t.Fatalf("setup: exit %d, %s", code, errs)
	}
	secondDone, thirdDone := make(chan struct{}), make(chan struct{})
	var once2, once3 sync.Once
	overlapped := false // the second chunk was applied while the first was held
	f.hold = func(r *rlsv1.BulkWriteRequest) {
		if r.Mappings[0].Lfn == "x" && r.Mappings[0].Pfn == "/p1" {
			// The first chunk: wait for the second, sent meanwhile, then
			// let the third overtake it, if it was sent.
			select {
			case <-secondDone:
				overlapped = true
			case <-time.After(5 * time.Second):
			}
			select {
			case <-thirdDone:
			case <-time.After(time.Second):
			}
		}
	}
	f.applied = func(r *rlsv1.BulkWriteRequest) {
		switch m := r.Mappings[0]; {
		case m.Lfn == "a1":
			once2.Do(func() { close(secondDone) })
		case m.Lfn == "x" && m.Pfn == "/p2":
			once3.Do(func() { close(thirdDone) })
		}
	}
	in := "x /p1\ndup2 /p\na1 /p\ndup /p\nx /p2\nc1 /p\n"
	code, _, errs := runCLI(t, in, "--server", addr, "lrc", "bulk", "create", "--chunk", "2", "--inflight", "4")
	if code != 4 {
		t.Fatalf("exit %d, want 4; stderr %q", code, errs)
	}
	var lines []string
	for l := range strings.Lines(errs) {
		if strings.Contains(l, "ALREADY_EXISTS") {
			lines = append(lines, strings.Fields(l)[2])
		}
	}
	if want := []string{"2:", "4:", "5:"}; !slices.Equal(lines, want) {
		t.Fatalf("failures on lines %v, want %v (in input order); stderr %q", lines, want, errs)
	}
	if !overlapped {
		t.Fatal("the second chunk was not sent while the first was in flight")
	}
}

func TestCLIBulkFailureCap(t *testing.T) {
	_, addr := startFake(t)
	var in strings.Builder
	for i := range maxShownFailure + 30 {
		fmt.Fprintf(&in, "x%d\n", i) // one field: malformed
	}
	code, _, errs := runCLI(t, in.String(), "--server", addr, "lrc", "bulk", "delete")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if n := strings.Count(errs, "MALFORMED"); n != maxShownFailure {
		t.Errorf("%d failures shown, want %d", n, maxShownFailure)
	}
	if !strings.Contains(errs, "and 30 more failures not shown") || !strings.Contains(errs, "130 of 130 items failed") {
		t.Errorf("stderr tail: %q", errs[max(0, len(errs)-200):])
	}
}
