package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/rlsdtest"
)

// vmHWM is the peak resident set size of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/PID/status")
	return 0
}

// TestGreedyBulkQueryProcess: a real rlsd asked, in a request of about
// 100 KB, for an LFN with 100 PFNs of 1 KB 20,000 times (a 2 GB answer)
// refuses with RESOURCE_EXHAUSTED, its peak RSS stays far below what the
// answer would take (it went past 2 GB and was OOM-killed), and it goes on
// serving.
func TestGreedyBulkQueryProcess(t *testing.T) {
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog",
		"--site", "jsoc", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--no-sync")
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cat := rlsv1.NewCatalogClient(conn)
	if _, err := cat.Create(ctx, &rlsv1.MappingRequest{Lfn: "123456789", Pfn: "/SUM/first"}); err != nil {
		t.Fatal(err)
	}
	add := &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_ADD}
	for i := range 99 {
		add.Mappings = append(add.Mappings, &rlsv1.Mapping{Lfn: "123456789", Pfn: fmt.Sprintf("/SUM%03d/%s", i, strings.Repeat("p", 1000))})
	}
	if resp, err := cat.BulkWrite(ctx, add); err != nil || resp.GetFailed() != 0 {
		t.Fatalf("BulkWrite: %v, %v", resp, err)
	}
	before := vmHWM(t, p.Pid())

	names := make([]string, 20_000)
	for i := range names {
		names[i] = "123456789"
	}
	_, err = cat.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: names})
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || !strings.Contains(s.Message(), "max_reply_bytes") {
		t.Fatalf("greedy BulkQuery: %v %q, want RESOURCE_EXHAUSTED naming max_reply_bytes", s.Code(), s.Message())
	}
	after := vmHWM(t, p.Pid())
	t.Logf("rlsd peak RSS %d MB before the call, %d MB after", before>>20, after>>20)
	if after > 600<<20 {
		t.Errorf("rlsd peak RSS reached %d MB; want at most 600 MB", after>>20)
	}

	// Still serving.
	resp, err := cat.QueryLFN(ctx, &rlsv1.NameRequest{Name: "123456789"})
	if err != nil || len(resp.GetNames()) != 100 {
		t.Fatalf("QueryLFN after the greedy call: %d names, %v", len(resp.GetNames()), err)
	}
}
