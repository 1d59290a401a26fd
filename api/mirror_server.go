package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/mirror"
)

// Bounds of the Mirror service's calls (see mirror.proto).
const (
	// MaxMirrorSunums is the most sunums (or enqueue items) of one call.
	MaxMirrorSunums = 10_000
	// MaxMirrorPage is the largest List page; DefaultMirrorPage the default.
	MaxMirrorPage     = 10_000
	DefaultMirrorPage = 1_000
	// maxRetryListed is the most sunums a Retry by state lists.
	maxRetryListed = 100_000
	// maxCoverageRanges caps each of a series' present and missing ranges.
	maxCoverageRanges = 10_000
	// DefaultMirrorWait and MaxMirrorWait bound one Wait call.
	DefaultMirrorWait = 30 * time.Second
	MaxMirrorWait     = 5 * time.Minute
)

// NewMirrorServer returns the rls.v1.Mirror service over e. It is safe for
// concurrent use; it does not own e.
func NewMirrorServer(e *mirror.Engine) rlsv1.MirrorServer {
	return &mirrorServer{e: e}
}

type mirrorServer struct {
	rlsv1.UnimplementedMirrorServer
	e *mirror.Engine
}

func checkSunums(field string, n int, allowEmpty bool) error {
	switch {
	case n == 0 && !allowEmpty:
		return invalidArg(field, "no sunums")
	case n > MaxMirrorSunums:
		return invalidArg(field, "%d sunums; want at most %d per call", n, MaxMirrorSunums)
	}
	return nil
}

func (s *mirrorServer) Enqueue(ctx context.Context, req *rlsv1.MirrorEnqueueRequest) (*rlsv1.MirrorEnqueueResponse, error) {
	items := req.GetItems()
	if err := checkSunums("items", len(items), false); err != nil {
		return nil, err
	}
	lane, err := laneOf(req.GetPriority())
	if err != nil {
		return nil, err
	}
	reqs := make([]mirror.Request, len(items))
	for i, it := range items {
		if len(it.GetSeries()) > 1024 || strings.IndexByte(it.GetSeries(), 0) >= 0 {
			return nil, invalidArg(fmt.Sprintf("items[%d].series", i), "longer than 1024 bytes or holds a NUL")
		}
		reqs[i] = mirror.Request{Sunum: it.GetSunum(), Series: it.GetSeries(), Priority: lane}
	}
	if err := s.e.Accept(ctx, reqs); err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.MirrorEnqueueResponse{Accepted: uint64(len(reqs))}, nil
}

func laneOf(p rlsv1.MirrorPriority) (mirror.Lane, error) {
	switch p {
	case rlsv1.MirrorPriority_MIRROR_PRIORITY_UNSPECIFIED, rlsv1.MirrorPriority_MIRROR_PRIORITY_BULK:
		return mirror.LaneBulk, nil
	case rlsv1.MirrorPriority_MIRROR_PRIORITY_USER:
		return mirror.LaneUser, nil
	}
	return 0, invalidArg("priority", "unknown priority %d", p)
}

func (s *mirrorServer) Status(_ context.Context, req *rlsv1.MirrorStatusRequest) (*rlsv1.MirrorStatusResponse, error) {
	if err := checkSunums("sunums", len(req.GetSunums()), false); err != nil {
		return nil, err
	}
	rs, err := s.e.Status(req.GetSunums())
	if err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.MirrorStatusResponse{Records: recordsToProto(rs)}, nil
}

func (s *mirrorServer) List(_ context.Context, req *rlsv1.MirrorListRequest) (*rlsv1.MirrorListResponse, error) {
	st, err := stateOf("state", req.GetState())
	if err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	switch {
	case limit == 0:
		limit = DefaultMirrorPage
	case limit > MaxMirrorPage:
		return nil, invalidArg("limit", "%d; want at most %d", limit, MaxMirrorPage)
	}
	rs, more, err := s.e.List(mirror.ListQuery{State: st, Series: req.GetSeries(), After: req.GetAfter(), Limit: limit})
	if err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.MirrorListResponse{Records: recordsToProto(rs), More: more}, nil
}

func (s *mirrorServer) Retry(_ context.Context, req *rlsv1.MirrorRetryRequest) (*rlsv1.MirrorRetryResponse, error) {
	if err := checkSunums("sunums", len(req.GetSunums()), true); err != nil {
		return nil, err
	}
	var st mirror.State
	switch {
	case len(req.GetSunums()) > 0 && req.GetState() != rlsv1.MirrorState_MIRROR_STATE_UNSPECIFIED:
		return nil, invalidArg("state", "give sunums or a state, not both")
	case len(req.GetSunums()) == 0:
		var err error
		if st, err = stateOf("state", req.GetState()); err != nil {
			return nil, err
		}
		if st != mirror.FAIL && st != mirror.INVD {
			return nil, invalidArg("state", "%v; want FAIL or INVD", st)
		}
	}
	done, err := s.e.Retry(req.GetSunums(), st)
	if err != nil {
		return nil, toStatusErr(err)
	}
	resp := &rlsv1.MirrorRetryResponse{Count: uint64(len(done))}
	resp.Sunums = done[:min(len(done), maxRetryListed)]
	return resp, nil
}

func (s *mirrorServer) Cancel(_ context.Context, req *rlsv1.MirrorCancelRequest) (*rlsv1.MirrorCancelResponse, error) {
	if err := checkSunums("sunums", len(req.GetSunums()), false); err != nil {
		return nil, err
	}
	res, err := s.e.Cancel(req.GetSunums())
	if err != nil {
		return nil, toStatusErr(err)
	}
	forgotten := append(slices.Clone(res.Cancelled), res.Placed...)
	slices.Sort(forgotten)
	return &rlsv1.MirrorCancelResponse{Sunums: forgotten, Placed: res.Placed, Kept: res.Kept}, nil
}

func (s *mirrorServer) Wait(ctx context.Context, req *rlsv1.MirrorWaitRequest) (*rlsv1.MirrorWaitResponse, error) {
	if err := checkSunums("sunums", len(req.GetSunums()), false); err != nil {
		return nil, err
	}
	d := DefaultMirrorWait
	if t := req.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() <= 0 {
			return nil, invalidArg("timeout", "want a positive duration")
		}
		d = min(t.AsDuration(), MaxMirrorWait)
	}
	// Answer a little before the caller's deadline, so that the caller
	// gets the records rather than DEADLINE_EXCEEDED.
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)*9/10)
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	rs, err := s.e.Wait(wctx, req.GetSunums())
	complete := err == nil
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// The wait's own timeout: report where they stand.
		rs, err = s.e.Status(req.GetSunums())
	}
	if err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.MirrorWaitResponse{Records: recordsToProto(rs), Complete: complete}, nil
}

func (s *mirrorServer) Coverage(ctx context.Context, req *rlsv1.MirrorCoverageRequest) (*rlsv1.MirrorCoverageResponse, error) {
	cs, err := s.e.Coverage(ctx, req.GetSeries())
	if err != nil {
		return nil, toStatusErr(err)
	}
	resp := &rlsv1.MirrorCoverageResponse{}
	for _, c := range cs {
		sc := &rlsv1.SeriesCoverage{Series: c.Series, States: c.States, Authority: c.Authority, Error: c.Error}
		sc.Present, sc.Truncated = rangesToProto(c.Present)
		var t bool
		sc.Missing, t = rangesToProto(c.Missing)
		sc.Truncated = sc.Truncated || t
		resp.Series = append(resp.Series, sc)
	}
	return resp, nil
}

func rangesToProto(rs []mirror.Range) ([]*rlsv1.SunumRange, bool) {
	n := min(len(rs), maxCoverageRanges)
	out := make([]*rlsv1.SunumRange, n)
	for i, r := range rs[:n] {
		out[i] = &rlsv1.SunumRange{First: r.First, Last: r.Last}
	}
	return out, len(rs) > n
}

func (s *mirrorServer) Sources(context.Context, *rlsv1.MirrorSourcesRequest) (*rlsv1.MirrorSourcesResponse, error) {
	resp := &rlsv1.MirrorSourcesResponse{}
	for _, si := range s.e.Sources() {
		resp.Sources = append(resp.Sources, &rlsv1.MirrorSource{
			Site: si.Site, Units: si.Units, Bytes: si.Bytes, Throughput: si.Throughput, FailureRate: si.FailureRate,
			Failures: si.Failures, Corrupt: si.Corrupt, Concurrency: int64(si.Concurrency), Active: int64(si.Active),
			Pulls: si.Pulls,
		})
	}
	return resp, nil
}

// stateOf converts a request's state; UNSPECIFIED and unknown values are
// INVALID_ARGUMENT naming field.
func stateOf(field string, s rlsv1.MirrorState) (mirror.State, error) {
	if s <= rlsv1.MirrorState_MIRROR_STATE_UNSPECIFIED || s > rlsv1.MirrorState_MIRROR_STATE_INVD {
		return 0, invalidArg(field, "want one of NQUE REDY BQUED QUED DONE FAIL PNDG INVD")
	}
	// The proto's numbers are mirror's (NQUE = 1 ... INVD = 8).
	return mirror.State(s), nil
}

// MirrorStateToProto converts a state.
func MirrorStateToProto(s mirror.State) rlsv1.MirrorState { return rlsv1.MirrorState(s) }

// MirrorStateName is a proto state's JMD name ("DONE"), or "" for
// UNSPECIFIED.
func MirrorStateName(s rlsv1.MirrorState) string {
	if s == rlsv1.MirrorState_MIRROR_STATE_UNSPECIFIED {
		return ""
	}
	return strings.TrimPrefix(s.String(), "MIRROR_STATE_")
}

func recordsToProto(rs []*mirror.Record) []*rlsv1.MirrorRecord {
	out := make([]*rlsv1.MirrorRecord, len(rs))
	for i, r := range rs {
		out[i] = recordToProto(r)
	}
	return out
}

func recordToProto(r *mirror.Record) *rlsv1.MirrorRecord {
	p := &rlsv1.MirrorRecord{
		Sunum: r.Sunum, State: MirrorStateToProto(r.State), Series: r.Series, Reason: r.Reason,
		Attempts: r.Attempts, Source: r.Source, Bytes: r.Bytes, Files: r.Files,
		Enqueued: ts(r.Enqueued), Changed: ts(r.Changed), Done: ts(r.Done), Due: ts(r.Due),
		Priority: rlsv1.MirrorPriority_MIRROR_PRIORITY_BULK,
	}
	if r.Lane == mirror.LaneUser {
		p.Priority = rlsv1.MirrorPriority_MIRROR_PRIORITY_USER
	}
	for _, a := range r.History {
		p.History = append(p.History, &rlsv1.MirrorAttempt{At: ts(a.At), Source: a.Source, Error: a.Err})
	}
	return p
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
