package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
)

func TestAdmin(t *testing.T) {
	e := newTestEnv(t)
	ctx := ctxT(t)
	before := time.Now()
	ping, err := e.admin.Ping(ctx, &rlsv1.PingRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if ping.GetSite() != "jsoc" || ping.GetVersion() != "v0.0.0-test" || !slices.Equal(ping.GetRoles(), []string{"lrc"}) {
		t.Errorf("Ping = %v", ping)
	}
	if pt := ping.GetTime().AsTime(); pt.Before(before.Add(-time.Second)) || pt.After(time.Now().Add(time.Second)) {
		t.Errorf("Ping time %v, want about %v", pt, before)
	}

	for _, m := range []*rlsv1.MappingRequest{mr("1", "/a"), mr("2", "/a")} {
		if _, err := e.catalog.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := e.admin.Stats(ctx, &rlsv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.GetSite() != "jsoc" || stats.GetUptime().AsDuration() <= 0 {
		t.Errorf("Stats = %v", stats)
	}
	c := stats.GetCatalog()
	if c.GetLfns() != 2 || c.GetPfns() != 1 || c.GetMappings() != 2 || c.GetSeq() != 2 {
		t.Errorf("Stats.catalog = %v, want 2 lfns, 1 pfn, 2 mappings, seq 2", c)
	}
}

func TestAdminWithoutCatalog(t *testing.T) {
	s := NewAdminServer(AdminInfo{Site: "rli-only", Roles: []string{"rli"}, Started: time.Now()})
	stats, err := s.Stats(t.Context(), &rlsv1.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.GetCatalog() != nil {
		t.Errorf("Stats without the lrc role reports a catalog: %v", stats.GetCatalog())
	}
}

// fakeUpdater answers UpdateNow with fixed results, or ErrUnknownTarget for
// a target other than "rli:1".
type fakeUpdater struct{ results []index.Result }

func (f fakeUpdater) UpdateNow(_ context.Context, target string) ([]index.Result, error) {
	if target != "" && target != "rli:1" {
		return nil, fmt.Errorf("%w %q", index.ErrUnknownTarget, target)
	}
	return f.results, nil
}

func TestAdminUpdate(t *testing.T) {
	s := NewAdminServer(AdminInfo{Site: "jsoc", Started: time.Now()})
	if _, err := s.Update(t.Context(), &rlsv1.UpdateNowRequest{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Update without an updater: %v, want FAILED_PRECONDITION", err)
	}
	down := fmt.Errorf("list update to rli:2: %w", status.Error(codes.Unavailable, "connection refused"))
	s = NewAdminServer(AdminInfo{Site: "jsoc", Started: time.Now(), Updater: fakeUpdater{[]index.Result{
		{Target: "rli:1", Mode: index.ModeBloom, Generation: 7, Entries: 3, Took: time.Second, Sites: 1},
		{Target: "rli:2", Mode: index.ModeList, Err: down},
	}}})
	resp, err := s.Update(t.Context(), &rlsv1.UpdateNowRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rs := resp.GetResults()
	if len(rs) != 2 || rs[0].GetTarget() != "rli:1" || rs[0].GetMode() != rlsv1.UpdateMode_UPDATE_MODE_BLOOM || rs[0].GetGeneration() != 7 ||
		rs[0].GetEntries() != 3 || rs[0].GetTook().AsDuration() != time.Second || rs[0].GetError() != "" || rs[0].GetSites() != 1 {
		t.Fatalf("results = %v", rs)
	}
	if e := rs[1].GetError(); !strings.HasPrefix(e, "UNAVAILABLE: ") || !strings.Contains(e, "connection refused") {
		t.Errorf("failed target's error %q, want UNAVAILABLE: ...connection refused", e)
	}
	if _, err := s.Update(t.Context(), &rlsv1.UpdateNowRequest{Target: "rli:9"}); status.Code(err) != codes.NotFound {
		t.Errorf("Update of an unknown target: %v, want NOT_FOUND", err)
	}
}
