package api

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/secure"
)

// DefaultUpdateIdleTimeout is how long an Index/Update stream may stay
// silent, before its first message or between two, unless configured
// otherwise. A sender streams a whole update at once, chunks following each
// other in milliseconds; half a minute of silence is a stalled or hostile
// peer holding a stream (and its site's memory) open.
const DefaultUpdateIdleTimeout = 30 * time.Second

// IndexServerOptions configure NewIndexServer.
type IndexServerOptions struct {
	// UpdateIdleTimeout cuts off an Update stream that sends nothing for
	// this long (DEADLINE_EXCEEDED); the update is not applied. Default
	// DefaultUpdateIdleTimeout.
	UpdateIdleTimeout time.Duration
}

// NewIndexServer returns the rls.v1.Index service over x. Locate with verify
// asks the candidate sites' catalogs through v. opts may be nil.
func NewIndexServer(x *index.Index, v *index.Verifier, opts *IndexServerOptions) rlsv1.IndexServer {
	s := &indexServer{x: x, v: v, idle: DefaultUpdateIdleTimeout}
	if opts != nil && opts.UpdateIdleTimeout > 0 {
		s.idle = opts.UpdateIdleTimeout
	}
	return s
}

type indexServer struct {
	rlsv1.UnimplementedIndexServer
	x    *index.Index
	v    *index.Verifier
	idle time.Duration
}

// Update applies one soft-state update, if the caller may speak for the
// site its header names (secure.SpeakForContext), checked before the body
// is read: no site can overwrite another's state.
func (s *indexServer) Update(stream rlsv1.Index_UpdateServer) error {
	r := newIdleReceiver(stream, s.idle)
	defer r.stop()
	ctx := stream.Context()
	ack, err := ReceiveUpdate(s.x, r.recv, func(h index.Header) error {
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

// idleReceiver receives an Update stream's messages with a limit on the
// silence before each. grpc-go cannot interrupt a server stream's Recv but
// by the handler returning, so one goroutine per stream (the pump) calls
// Recv and hands each message over; recv waits for it or for the timeout.
// The pump ends when the stream does (the handler returned: Recv fails) or
// when stop is called, whichever comes later; it touches nothing but the
// stream and its channel. Not safe for concurrent use.
type idleReceiver struct {
	idle  time.Duration
	msgs  chan recvResult
	done  chan struct{}
	timer *time.Timer
}

type recvResult struct {
	m   *rlsv1.UpdateRequest
	err error
}

func newIdleReceiver(stream rlsv1.Index_UpdateServer, idle time.Duration) *idleReceiver {
	r := &idleReceiver{idle: idle, msgs: make(chan recvResult), done: make(chan struct{}), timer: time.NewTimer(idle)}
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case r.msgs <- recvResult{m, err}:
			case <-r.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// recv returns the next message, io.EOF at the end of the stream, or a
// DEADLINE_EXCEEDED status if none came within the idle timeout.
func (r *idleReceiver) recv() (*rlsv1.UpdateRequest, error) {
	r.timer.Reset(r.idle)
	select {
	case res := <-r.msgs:
		return res.m, res.err
	case <-r.timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded,
			"update: nothing received for %v (index-update-idle-timeout); the update is dropped", r.idle)
	}
}

func (r *idleReceiver) stop() {
	r.timer.Stop()
	close(r.done)
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
	// One budget for the reply: the candidates are charged as they are
	// located, and with verify the PFNs as they are put in the reply.
	b := newReplyBudget(ctx, "ask for fewer LFNs a call")
	resp := &rlsv1.LocateResponse{Results: make([]*rlsv1.LocateResult, len(lfns))}
	var cands [][]index.Candidate // with verify, for the verifier
	if req.GetVerify() {
		cands = make([][]index.Candidate, len(lfns))
	}
	err := s.x.LocateEach(lfns, func(i int, cs []index.Candidate) error {
		n := msgSize(strSize(lfns[i]))
		for _, c := range cs {
			n += candidateSize(c)
		}
		if err := b.charge(n, 1+len(cs)); err != nil {
			return err
		}
		if cands != nil {
			if len(cs) > 0 {
				cands[i] = slices.Clone(cs)
			}
			return nil
		}
		r := &rlsv1.LocateResult{Lfn: lfns[i], Sites: make([]*rlsv1.SiteCandidate, 0, len(cs))}
		for _, c := range cs {
			r.Sites = append(r.Sites, candidateProto(c))
		}
		resp.Results[i] = r
		return nil
	})
	if err != nil {
		return nil, toStatusErr(err)
	}
	if !req.GetVerify() {
		return resp, nil
	}
	// Leave a little of the caller's deadline to answer in.
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl)*9/10)
	}
	// What the sites answer is bounded on its own: an LFN the request
	// repeats has its PFNs once in the answers, and once per repeat in the
	// reply.
	answers := newReplyBudget(ctx, "ask for fewer LFNs a call")
	verified, err := s.v.Verify(ctx, lfns, cands, timeout, func(n int) error { return answers.charge(n, 0) })
	if err != nil {
		return nil, toStatusErr(err)
	}
	for i, vs := range verified {
		r := &rlsv1.LocateResult{Lfn: lfns[i]}
		for _, v := range vs {
			c := candidateProto(v.Candidate)
			if v.Err != nil {
				c.Verification = rlsv1.Verification_VERIFICATION_UNVERIFIED
				c.Error = v.Err.Error()
				if err := b.charge(strSize(c.Error), 0); err != nil {
					return nil, err
				}
			} else {
				c.Verification = rlsv1.Verification_VERIFICATION_CONFIRMED
				n := 0
				for _, pfn := range v.PFNs {
					n += strSize(pfn)
				}
				if err := b.charge(n, len(v.PFNs)); err != nil {
					return nil, err
				}
				c.Pfns = v.PFNs
			}
			r.Sites = append(r.Sites, c)
		}
		resp.Results[i] = r
	}
	return resp, nil
}

// candidateSize is the most a SiteCandidate takes in a reply, without PFNs
// and error.
func candidateSize(c index.Candidate) int {
	n := strSize(c.Site) + strSize(c.Endpoint) + 2*16 + 2 + 2
	for _, v := range c.Via {
		n += strSize(v)
	}
	return msgSize(n)
}

func (s *indexServer) Sites(context.Context, *rlsv1.SitesRequest) (*rlsv1.SitesResponse, error) {
	resp := &rlsv1.SitesResponse{}
	for _, si := range s.x.Sites() {
		p := &rlsv1.SiteInfo{
			Site:       si.Site,
			Endpoint:   si.Endpoint,
			Mode:       modeProto(si.Mode),
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
			p.Bloom = bloomProto(si.Bloom)
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
