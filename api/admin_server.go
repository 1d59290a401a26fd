package api

import (
	"context"
	"slices"
	"time"

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
	// Stats includes its figures when it is set.
	Catalog *catalog.Catalog
	// Index is the site's index when the rli role runs, nil otherwise.
	Index *index.Index
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

func (s *adminServer) Stats(context.Context, *rlsv1.StatsRequest) (*rlsv1.StatsResponse, error) {
	resp := &rlsv1.StatsResponse{
		Site:    s.info.Site,
		Version: s.info.Version,
		Roles:   slices.Clone(s.info.Roles),
		Uptime:  durationpb.New(time.Since(s.info.Started)),
	}
	if c := s.info.Catalog; c != nil {
		st := c.Stats()
		resp.Catalog = &rlsv1.CatalogStats{
			Lfns:                st.LFNs,
			Pfns:                st.PFNs,
			Mappings:            st.Mappings,
			Seq:                 st.Seq,
			FirstSeq:            st.FirstSeq,
			AttributeDefs:       st.AttrDefs,
			DiskBytes:           st.DiskBytes,
			CompactionDebtBytes: st.CompactionDebtBytes,
			CompactionsRunning:  st.CompactionsRunning,
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
