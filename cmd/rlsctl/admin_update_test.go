package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/solar-archive/rls/api/rlsv1"
)

// Update answers as a daemon with targets rli:1 (fine), down:1 (unreachable)
// and bad:1 (refuses updates); "" asks for rli:1 only, to have a success.
func (f *fakeServer) Update(_ context.Context, r *rlsv1.UpdateNowRequest) (*rlsv1.UpdateNowResponse, error) {
	ok := &rlsv1.TargetResult{Target: "rli:1", Mode: rlsv1.UpdateMode_UPDATE_MODE_BLOOM, Generation: 7, Entries: 1000,
		Took: durationpb.New(250 * time.Millisecond), Sites: 1}
	switch r.GetTarget() {
	case "", "rli:1":
		return &rlsv1.UpdateNowResponse{Results: []*rlsv1.TargetResult{ok}}, nil
	case "down:1":
		return &rlsv1.UpdateNowResponse{Results: []*rlsv1.TargetResult{
			{Target: "down:1", Mode: rlsv1.UpdateMode_UPDATE_MODE_LIST, Error: "UNAVAILABLE: connection refused"}}}, nil
	case "bad:1":
		return &rlsv1.UpdateNowResponse{Results: []*rlsv1.TargetResult{ok,
			{Target: "bad:1", Mode: rlsv1.UpdateMode_UPDATE_MODE_LIST, Error: "INVALID_ARGUMENT: header.site"}}}, nil
	}
	return nil, status.Errorf(codes.NotFound, "unknown update target %q", r.GetTarget())
}

func TestCLIAdminUpdate(t *testing.T) {
	_, addr := startFake(t)
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, "", append([]string{"--server", addr}, args...)...)
	}
	code, out, errs := cli("admin", "update")
	if code != 0 || !strings.Contains(out, "TARGET") || !strings.Contains(out, "rli:1") || !strings.Contains(out, "bloom") ||
		!strings.Contains(out, "1000") || !strings.Contains(out, "250ms") {
		t.Errorf("update: exit %d, %q, %q", code, out, errs)
	}
	code, out, _ = cli("-o", "json", "admin", "update", "--target", "rli:1")
	want := `{"results":[{"target":"rli:1","mode":"bloom","generation":7,"entries":1000,"took_seconds":0.25,"error":""}]}`
	if code != 0 || !jsonEqual(decodeJSON(t, out), decodeJSON(t, want)) {
		t.Errorf("update json: exit %d, %q", code, out)
	}
	if code, out, errs := cli("admin", "update", "--target", "down:1"); code != 5 || !strings.Contains(out, "UNAVAILABLE: connection refused") ||
		!strings.Contains(errs, "1 of 1 index targets failed") {
		t.Errorf("update of a target that is down: exit %d, %q, %q", code, out, errs)
	}
	if code, out, errs := cli("admin", "update", "--target", "bad:1"); code != 1 || !strings.Contains(out, "INVALID_ARGUMENT") {
		t.Errorf("update of a target that refuses: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := cli("admin", "update", "--target", "nosuch:1"); code != 3 || !strings.Contains(errs, "NOT_FOUND") {
		t.Errorf("update of an unknown target: exit %d, %q", code, errs)
	}
}
