package api

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/secure"
)

// NewIndexServer returns the rls.v1.Index service over x. Locate with verify
// asks the candidate sites' catalogs through v.
func NewIndexServer(x *index.Index, v *index.Verifier) rlsv1.IndexServer {
	return &indexServer{x: x, v: v}
}

type indexServer struct {
	rlsv1.UnimplementedIndexServer
	x *index.Index
	v *index.Verifier
}

// Update applies one soft-state update, if the caller may speak for the
// site its header names (secure.SpeakForContext), checked before the body
// is read: no site can overwrite another's state.
func (s *indexServer) Update(stream rlsv1.Index_UpdateServer) error {
	ctx := stream.Context()
	ack, err := s.x.ReceiveChecked(stream.Recv, func(h index.Header) error {
		return secure.SpeakForContext(ctx, h.Site)
	})
	if err != nil {
		return toStatusErr(err)
	}
	return stream.SendAndClose(&rlsv1.UpdateResponse{
		Generation: ack.Generation,
		Entries:    ack.Entries,
		Expires:    timestamppb.New(ack.Expires),
	})
}

func knowledgeProto(m index.Mode) rlsv1.Knowledge {
	switch m {
	case index.ModeList:
		return rlsv1.Knowledge_KNOWLEDGE_LIST
	case index.ModeBloom:
		return rlsv1.Knowledge_KNOWLEDGE_BLOOM
	case index.ModeDelta:
		return rlsv1.Knowledge_KNOWLEDGE_DELTA
	}
	return rlsv1.Knowledge_KNOWLEDGE_UNSPECIFIED
}

func candidateProto(c index.Candidate) *rlsv1.SiteCandidate {
	return &rlsv1.SiteCandidate{
		Site:     c.Site,
		Endpoint: c.Endpoint,
		KnownBy:  knowledgeProto(c.KnownBy),
		Updated:  timestamppb.New(c.Updated),
		Expires:  timestamppb.New(c.Expires),
		Via:      c.Via,
	}
}

func (s *indexServer) Locate(ctx context.Context, req *rlsv1.LocateRequest) (*rlsv1.LocateResponse, error) {
	lfns := req.GetLfns()
	if err := checkBulk("lfns", len(lfns)); err != nil {
		return nil, err
	}
	timeout := index.DefaultVerifyTimeout
	if d := req.GetVerifyTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return nil, invalidArg("verify_timeout", "%v is not a positive duration", d.AsDuration())
		}
		timeout = d.AsDuration()
	}
	cands, err := s.x.Locate(lfns)
	if err != nil {
		return nil, toStatusErr(err)
	}
	resp := &rlsv1.LocateResponse{Results: make([]*rlsv1.LocateResult, len(lfns))}
	if !req.GetVerify() {
		for i, cs := range cands {
			r := &rlsv1.LocateResult{Lfn: lfns[i]}
			for _, c := range cs {
				r.Sites = append(r.Sites, candidateProto(c))
			}
			resp.Results[i] = r
		}
		return resp, nil
	}
	// Leave a little of the caller's deadline to answer in.
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl)*9/10)
	}
	for i, vs := range s.v.Verify(ctx, lfns, cands, timeout) {
		r := &rlsv1.LocateResult{Lfn: lfns[i]}
		for _, v := range vs {
			c := candidateProto(v.Candidate)
			if v.Err != nil {
				c.Verification = rlsv1.Verification_VERIFICATION_UNVERIFIED
				c.Error = v.Err.Error()
			} else {
				c.Verification = rlsv1.Verification_VERIFICATION_CONFIRMED
				c.Pfns = v.PFNs
			}
			r.Sites = append(r.Sites, c)
		}
		resp.Results[i] = r
	}
	return resp, nil
}

func (s *indexServer) Sites(context.Context, *rlsv1.SitesRequest) (*rlsv1.SitesResponse, error) {
	resp := &rlsv1.SitesResponse{}
	for _, si := range s.x.Sites() {
		p := &rlsv1.SiteInfo{
			Site:       si.Site,
			Endpoint:   si.Endpoint,
			Mode:       index.ModeProto(si.Mode),
			Generation: si.Generation,
			Entries:    si.Entries,
			Updated:    timestamppb.New(si.Updated),
			Received:   timestamppb.New(si.Received),
			Expires:    timestamppb.New(si.Expires),
			Via:        si.Via,
			Deltas:     si.Deltas,

			FullGeneration: si.FullGeneration,
			Incarnation:    si.Incarnation,
		}
		if si.Mode == index.ModeBloom {
			p.Bloom = &rlsv1.BloomHeader{Version: si.Bloom.Version, M: si.Bloom.M, K: si.Bloom.K, Entries: si.Bloom.Entries}
		}
		resp.Sites = append(resp.Sites, p)
	}
	return resp, nil
}

func (s *indexServer) QueryWildcard(_ context.Context, req *rlsv1.IndexWildcardRequest) (*rlsv1.IndexWildcardResponse, error) {
	offset, limit, err := page(req.GetOffset(), uint64(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	ms, more, unsearched, err := s.x.Wildcard(req.GetPattern(), offset, limit)
	if err != nil {
		return nil, toStatusErr(err)
	}
	resp := &rlsv1.IndexWildcardResponse{More: more, UnsearchedSites: unsearched}
	for _, m := range ms {
		resp.Matches = append(resp.Matches, &rlsv1.IndexMatch{Lfn: m.LFN, Site: m.Site, Endpoint: m.Endpoint, KnownBy: knowledgeProto(m.KnownBy)})
	}
	return resp, nil
}
