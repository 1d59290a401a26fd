package api

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/index"
)

// AdminInfo is what the rls.v1.Admin service reports about the daemon.
type AdminInfo struct {
	Site    string
	Version string
	Roles   []string  // the roles this daemon runs, as configured
	Started time.Time // when the daemon started; Stats reports uptime from it
	// Catalog is the site's catalog when the lrc role runs, nil otherwise.
	// Stats includes its figures when it is set, and its storage figures
	// when it is also a catalog.StorageReporter.
	Catalog catalog.StatsReporter
	// Index is the site's index when the rli role runs, nil otherwise.
	Index *index.Index
	// Updater sends soft state to index targets on demand (Admin.Update);
	// nil when the daemon sends none.
	Updater Updater
}

// Updater sends soft state now, as index.Sender does: to the target at
// addr, or to all if addr is "", one Result per target. An unknown target
// is an error wrapping index.ErrUnknownTarget.
type Updater interface {
	UpdateNow(ctx context.Context, addr string) ([]index.Result, error)
}

// NewAdminServer returns the rls.v1.Admin service answering from info. The
// server keeps its own copy of info and is safe for concurrent use.
func NewAdminServer(info AdminInfo) rlsv1.AdminServer {
	info.Roles = slices.Clone(info.Roles)
	return &adminServer{info: info}
}

type adminServer struct {
	rlsv1.UnimplementedAdminServer
	info AdminInfo
}

func (s *adminServer) Ping(context.Context, *rlsv1.PingRequest) (*rlsv1.PingResponse, error) {
	return &rlsv1.PingResponse{
		Site:    s.info.Site,
		Version: s.info.Version,
		Roles:   slices.Clone(s.info.Roles),
		Time:    timestamppb.Now(),
	}, nil
}

func (s *adminServer) Stats(ctx context.Context, _ *rlsv1.StatsRequest) (*rlsv1.StatsResponse, error) {
	resp := &rlsv1.StatsResponse{
		Site:    s.info.Site,
		Version: s.info.Version,
		Roles:   slices.Clone(s.info.Roles),
		Uptime:  durationpb.New(time.Since(s.info.Started)),
	}
	if c := s.info.Catalog; c != nil {
		st, err := c.Stats(ctx)
		if err != nil {
			return nil, toStatusErr(err)
		}
		resp.Catalog = &rlsv1.CatalogStats{
			Lfns:          st.LFNs,
			Pfns:          st.PFNs,
			Mappings:      st.Mappings,
			Seq:           st.Seq,
			FirstSeq:      st.FirstSeq,
			AttributeDefs: st.AttrDefs,
		}
		if r, ok := c.(catalog.StorageReporter); ok {
			ss, err := r.StorageStats(ctx)
			if err != nil {
				return nil, toStatusErr(err)
			}
			resp.Catalog.DiskBytes = ss.DiskBytes
			resp.Catalog.CompactionDebtBytes = ss.CompactionDebtBytes
			resp.Catalog.CompactionsRunning = ss.CompactionsRunning
		}
	}
	if x := s.info.Index; x != nil {
		st := x.Stats()
		resp.Index = &rlsv1.IndexStats{
			Sites:        st.Sites,
			ListSites:    st.ListSites,
			BloomSites:   st.BloomSites,
			ExactEntries: st.ExactEntries,
			BloomBits:    st.BloomBits,
			BloomGroups:  st.BloomGroups,
		}
	}
	return resp, nil
}

// Update sends soft state now through the Updater. A target that failed is
// reported in its result, with error "CODE: message" (CODE the gRPC code
// name of the failure, UNAVAILABLE for an index that cannot be reached), so
// that clients can tell an unreachable index from a refusal.
func (s *adminServer) Update(ctx context.Context, req *rlsv1.UpdateNowRequest) (*rlsv1.UpdateNowResponse, error) {
	if s.info.Updater == nil {
		return nil, status.Error(codes.FailedPrecondition, "this daemon sends no soft state (no update-to or update-targets configured, or no lrc role)")
	}
	rs, err := s.info.Updater.UpdateNow(ctx, req.GetTarget())
	if err != nil {
		return nil, toStatusErr(err)
	}
	resp := &rlsv1.UpdateNowResponse{Results: make([]*rlsv1.TargetResult, len(rs))}
	for i, r := range rs {
		tr := &rlsv1.TargetResult{
			Target:     r.Target,
			Mode:       index.ModeProto(r.Mode),
			Generation: r.Generation,
			Entries:    r.Entries,
			Took:       durationpb.New(r.Took),
			Sites:      uint32(r.Sites),
		}
		if r.Err != nil {
			st := statusOf(r.Err)
			tr.Error = codeName(st.Code()) + ": " + r.Err.Error()
		}
		resp.Results[i] = tr
	}
	return resp, nil
}
