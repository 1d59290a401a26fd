package api

import (
	"slices"
	"testing"
	"time"

	"github.com/solar-archive/rls/api/rlsv1"
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
