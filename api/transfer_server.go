package api

import (
	"context"
	"errors"
	"fmt"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/transfer"
)

// MaxReadRanges is the most ranges one Transfer.Read call may carry.
const MaxReadRanges = 4096

// NewTransferServer returns the rls.v1.Transfer service backed by src. It
// is as safe for concurrent use as src; it does not own src.
func NewTransferServer(src *transfer.Source) rlsv1.TransferServer {
	return &transferServer{src: src}
}

type transferServer struct {
	rlsv1.UnimplementedTransferServer
	src *transfer.Source
}

func (s *transferServer) Manifest(ctx context.Context, req *rlsv1.ManifestRequest) (*rlsv1.UnitManifest, error) {
	manifest := s.src.Manifest
	if req.GetFast() {
		manifest = s.src.FastManifest
	}
	m, err := manifest(ctx, req.GetPfn())
	if err != nil {
		return nil, transferStatus(err)
	}
	// The source bounds the manifests it lists (transfer.MaxManifestBytes);
	// the server's reply limits may be lower.
	b := newReplyBudget(ctx, "the unit has too many files to list in one reply")
	n := strSize(m.PFN)
	for i := range m.Entries {
		e := &m.Entries[i]
		n += msgSize(strSize(e.Path) + strSize(e.Version) + 2 + 10 + 6 + 2*10 + 2 + 34)
	}
	if err := b.charge(n, len(m.Entries)); err != nil {
		return nil, err
	}
	return ManifestToProto(m), nil
}

func (s *transferServer) Read(req *rlsv1.ReadRequest, stream grpc.ServerStreamingServer[rlsv1.Chunk]) error {
	rs := req.GetRanges()
	if len(rs) == 0 || len(rs) > MaxReadRanges {
		return invalidArg("ranges", "%d ranges; want 1 to %d", len(rs), MaxReadRanges)
	}
	ranges := make([]transfer.Range, len(rs))
	for i, r := range rs {
		if r.GetOffset() > math.MaxInt64 || r.GetLength() > math.MaxInt64 {
			return invalidArg(fmt.Sprintf("ranges[%d]", i), "offset or length too large")
		}
		if len(r.GetVersion()) > transfer.MaxVersionLen {
			return invalidArg(fmt.Sprintf("ranges[%d].version", i), "%d bytes; want at most %d", len(r.GetVersion()), transfer.MaxVersionLen)
		}
		ranges[i] = transfer.Range{PFN: r.GetPfn(), Path: r.GetPath(), Offset: int64(r.GetOffset()), Length: int64(r.GetLength()), Version: r.GetVersion()}
		switch sha := r.GetSha256(); len(sha) {
		case 0:
		case len(ranges[i].SHA256):
			copy(ranges[i].SHA256[:], sha)
			if ranges[i].SHA256.IsZero() {
				// Not a digest any file has, and inside the source it
				// would mean "no digest asked for".
				return invalidArg(fmt.Sprintf("ranges[%d].sha256", i), "all zero; leave it empty to ask for no digest")
			}
		default:
			return invalidArg(fmt.Sprintf("ranges[%d].sha256", i), "%d bytes; want 0 or 32", len(sha))
		}
	}
	// One message is reused: Send serializes it before it returns.
	msg := &rlsv1.Chunk{}
	err := s.src.Read(stream.Context(), ranges, func(i int, off int64, p []byte) error {
		msg.Range, msg.Offset, msg.Data = uint32(i), uint64(off), p
		return stream.Send(msg)
	})
	return transferStatus(err)
}

// transferStatus maps the transfer package's sentinels to gRPC codes, and
// anything else through statusOf: ErrNotFound → NOT_FOUND, ErrRefused →
// PERMISSION_DENIED, ErrInvalid → INVALID_ARGUMENT, ErrChanged →
// FAILED_PRECONDITION, ErrCorrupt → DATA_LOSS, ErrExists → ALREADY_EXISTS,
// ErrTimeout → DEADLINE_EXCEEDED, ErrUnavailable → UNAVAILABLE, ErrTooLarge
// → RESOURCE_EXHAUSTED.
// transferError is its inverse on the client side.
func transferStatus(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range transferCodes {
		if errors.Is(err, m.err) {
			return status.Error(m.code, err.Error())
		}
	}
	return toStatusErr(err)
}

var transferCodes = []struct {
	err  error
	code codes.Code
}{
	{transfer.ErrNotFound, codes.NotFound},
	{transfer.ErrRefused, codes.PermissionDenied},
	{transfer.ErrInvalid, codes.InvalidArgument},
	{transfer.ErrChanged, codes.FailedPrecondition},
	{transfer.ErrCorrupt, codes.DataLoss},
	{transfer.ErrExists, codes.AlreadyExists},
	{transfer.ErrTimeout, codes.DeadlineExceeded},
	{transfer.ErrUnavailable, codes.Unavailable},
	{transfer.ErrTooLarge, codes.ResourceExhausted},
}

// ManifestToProto converts a manifest for the wire.
func ManifestToProto(m *transfer.Manifest) *rlsv1.UnitManifest {
	out := &rlsv1.UnitManifest{Pfn: m.PFN, Entries: make([]*rlsv1.ManifestEntry, len(m.Entries))}
	for i := range m.Entries {
		e := &m.Entries[i]
		pe := &rlsv1.ManifestEntry{
			Path: e.Path, Dir: e.Dir, Size: uint64(e.Size), Mode: e.Mode, Mtime: timestamppb.New(e.MTime), Version: e.Version,
		}
		if !e.Dir && !e.SHA256.IsZero() {
			pe.Sha256 = e.SHA256[:]
		}
		out.TotalBytes += uint64(e.Size)
		out.Entries[i] = pe
	}
	return out
}

// ManifestFromProto converts a manifest from the wire and validates it
// (transfer.Manifest.Validate); every file must have its digest. Errors
// wrap transfer.ErrInvalid or transfer.ErrRefused.
func ManifestFromProto(pm *rlsv1.UnitManifest) (*transfer.Manifest, error) {
	return manifestFromProto(pm, true)
}

// manifestFromProto is ManifestFromProto; without digests, files may
// come without theirs (a fast listing), which then stay zero.
func manifestFromProto(pm *rlsv1.UnitManifest, digests bool) (*transfer.Manifest, error) {
	m := &transfer.Manifest{PFN: pm.GetPfn(), Entries: make([]transfer.Entry, len(pm.GetEntries()))}
	for i, pe := range pm.GetEntries() {
		e := &m.Entries[i]
		if pe.GetSize() > math.MaxInt64 {
			return nil, fmt.Errorf("manifest entry %d: %w: size %d too large", i, transfer.ErrInvalid, pe.GetSize())
		}
		*e = transfer.Entry{Path: pe.GetPath(), Dir: pe.GetDir(), Size: int64(pe.GetSize()), Mode: pe.GetMode(), Version: pe.GetVersion()}
		if pe.GetMtime() != nil {
			e.MTime = pe.GetMtime().AsTime()
		}
		switch sha := pe.GetSha256(); {
		case len(sha) == len(e.SHA256):
			copy(e.SHA256[:], sha)
		case len(sha) != 0 || !e.Dir && digests:
			return nil, fmt.Errorf("manifest entry %d (%q): %w: sha256 has %d bytes", i, e.Path, transfer.ErrInvalid, len(sha))
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
