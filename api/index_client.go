package api

// The index package's seams over gRPC: index defines Sink, SiteCatalog and
// Dialer; this file implements them, as TransferClient implements
// transfer.Peer.

import (
	"context"
	"encoding/binary"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/secure"
)

var (
	_ index.Sink        = (*IndexSink)(nil)
	_ index.SiteCatalog = (*siteCatalog)(nil)
	_ index.Dialer      = IndexDialer{}
)

// Chunk sizes of the updates an IndexSink sends. They stay well below what
// an index accepts (index.MaxChunkNames names, gRPC's default 4 MiB
// message).
const (
	sendChunkNames = 16 << 10 // names per list or delta chunk
	sendChunkBytes = 1 << 20  // name bytes per list or delta chunk, and bytes per Bloom chunk
)

// IndexDialer is index.Dialer over gRPC: it dials through d (nil:
// plaintext). What it returns holds its own connection, closed by Close.
type IndexDialer struct{ d *secure.Dialer }

// NewIndexDialer returns an index.Dialer that dials through d (nil:
// plaintext).
func NewIndexDialer(d *secure.Dialer) IndexDialer { return IndexDialer{d: d} }

// Index implements index.Dialer: an IndexSink to the index at addr.
func (x IndexDialer) Index(addr string) (index.Sink, error) {
	cc, err := x.d.Dial(addr)
	if err != nil {
		return nil, err
	}
	return &IndexSink{c: rlsv1.NewIndexClient(cc), cc: cc}, nil
}

// Catalog implements index.Dialer: the rls.v1.Catalog service at endpoint.
func (x IndexDialer) Catalog(endpoint string) (index.SiteCatalog, error) {
	cc, err := x.d.Dial(endpoint)
	if err != nil {
		return nil, err
	}
	return &siteCatalog{endpoint: endpoint, c: rlsv1.NewCatalogClient(cc), cc: cc}, nil
}

// IndexSink sends soft-state updates on the Update calls of an rls.v1.Index
// client: an index.Sink. It is safe for concurrent use.
type IndexSink struct {
	c  rlsv1.IndexClient
	cc *grpc.ClientConn // its own connection, if any
}

// NewIndexSink returns a Sink over c; Close leaves c's connection open.
func NewIndexSink(c rlsv1.IndexClient) *IndexSink { return &IndexSink{c: c} }

// Close closes the sink's own connection (none for NewIndexSink's).
func (s *IndexSink) Close() error {
	if s.cc == nil {
		return nil
	}
	return s.cc.Close()
}

// Send implements index.Sink on one Update stream: the header, then the
// body of its mode in chunks of at most 16,384 names or 1 MiB, then the
// index's answer. If the body does not match the header (a list with more
// or fewer names than it counts), the stream is cancelled rather than
// closed, so that the index never commits a partial update.
// FAILED_PRECONDITION (a delta on a base the index does not hold, a
// replay) is an error wrapping index.ErrOutOfSequence that keeps its
// status.
func (s *IndexSink) Send(ctx context.Context, u index.Update) (index.Ack, error) {
	if err := u.Check(); err != nil {
		return index.Ack{}, err
	}
	h := u.Header
	var body func(emit func(*rlsv1.UpdateRequest) error) error
	switch h.Mode {
	case index.ModeList:
		body = func(emit func(*rlsv1.UpdateRequest) error) error { return sendList(h, u, emit) }
	case index.ModeBloom:
		body = func(emit func(*rlsv1.UpdateRequest) error) error { return sendBloom(u.Words, emit) }
	case index.ModeDelta:
		body = func(emit func(*rlsv1.UpdateRequest) error) error { return sendDelta(u.Added, u.Removed, emit) }
	default:
		return index.Ack{}, fmt.Errorf("update: mode %v is not list, bloom or delta", h.Mode)
	}
	resp, err := s.send(ctx, h, body)
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition {
			return index.Ack{}, outOfSequence{status.Convert(err)}
		}
		return index.Ack{}, err
	}
	return index.Ack{Generation: resp.GetGeneration(), Entries: resp.GetEntries(), Expires: resp.GetExpires().AsTime()}, nil
}

// outOfSequence is an index's FAILED_PRECONDITION answer to an update: its
// message, its status, and errors.Is index.ErrOutOfSequence.
type outOfSequence struct{ st *status.Status }

func (e outOfSequence) Error() string              { return e.st.Message() }
func (e outOfSequence) Is(target error) bool       { return target == index.ErrOutOfSequence }
func (e outOfSequence) GRPCStatus() *status.Status { return e.st }

// send runs one Update stream: the header, the body that body emits, then
// the index's answer. If body fails, the stream is cancelled.
func (s *IndexSink) send(ctx context.Context, h index.Header, body func(emit func(*rlsv1.UpdateRequest) error) error) (*rlsv1.UpdateResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := s.c.Update(ctx)
	if err != nil {
		return nil, err
	}
	emit := func(r *rlsv1.UpdateRequest) error {
		if err := st.Send(r); err != nil {
			// The server ended the stream; its status comes from CloseAndRecv.
			if _, rerr := st.CloseAndRecv(); rerr != nil {
				return rerr
			}
			return fmt.Errorf("%v update: the index ended the stream before the update was sent (%w)", h.Mode, err)
		}
		return nil
	}
	if err := emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Header{Header: HeaderProto(h)}}); err != nil {
		return nil, err
	}
	if err := body(emit); err != nil {
		return nil, err
	}
	return st.CloseAndRecv()
}

func sendList(h index.Header, u index.Update, emit func(*rlsv1.UpdateRequest) error) error {
	var n uint64
	c := chunker{emit: func(names []string) error {
		return emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Lfns{Lfns: &rlsv1.LFNChunk{Lfns: names}}})
	}}
	if u.LFNs != nil {
		for lfn := range u.LFNs {
			if n++; n > h.Entries {
				return fmt.Errorf("list update: more names than the header's %d entries", h.Entries)
			}
			if err := c.add(lfn); err != nil {
				return err
			}
		}
	}
	if n != h.Entries {
		return fmt.Errorf("list update: %d names, but the header says %d entries", n, h.Entries)
	}
	return c.flush()
}

func sendBloom(words []uint64, emit func(*rlsv1.UpdateRequest) error) error {
	const perChunk = sendChunkBytes / 8
	for len(words) > 0 {
		n := min(len(words), perChunk)
		// A fresh buffer per chunk: gRPC may hold a sent message.
		b := make([]byte, 0, 8*n)
		for _, w := range words[:n] {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
		if err := emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Bloom{Bloom: &rlsv1.BloomChunk{Words: b}}}); err != nil {
			return err
		}
		words = words[n:]
	}
	return nil
}

func sendDelta(added, removed []string, emit func(*rlsv1.UpdateRequest) error) error {
	for len(added)+len(removed) > 0 {
		var ch rlsv1.DeltaChunk
		names, size := 0, 0
		for names < sendChunkNames && size < sendChunkBytes && len(added) > 0 {
			ch.Added = append(ch.Added, added[0])
			names, size, added = names+1, size+len(added[0]), added[1:]
		}
		for names < sendChunkNames && size < sendChunkBytes && len(removed) > 0 {
			ch.Removed = append(ch.Removed, removed[0])
			names, size, removed = names+1, size+len(removed[0]), removed[1:]
		}
		if err := emit(&rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Delta{Delta: &ch}}); err != nil {
			return err
		}
	}
	return nil
}

// chunker groups names into chunks of at most sendChunkNames names or
// sendChunkBytes bytes and hands each to emit, which owns it.
type chunker struct {
	emit  func([]string) error
	names []string
	size  int
}

func (c *chunker) add(name string) error {
	if len(c.names) >= sendChunkNames || (c.size+len(name) > sendChunkBytes && len(c.names) > 0) {
		if err := c.flush(); err != nil {
			return err
		}
	}
	c.names = append(c.names, name)
	c.size += len(name)
	return nil
}

func (c *chunker) flush() error {
	if len(c.names) == 0 {
		return nil
	}
	names := c.names
	c.names, c.size = make([]string, 0, len(names)), 0
	return c.emit(names)
}

// siteCatalog is a site's rls.v1.Catalog service as an index.SiteCatalog.
type siteCatalog struct {
	endpoint string
	c        rlsv1.CatalogClient
	cc       *grpc.ClientConn
}

func (s *siteCatalog) Close() error { return s.cc.Close() }

// Lookup implements index.SiteCatalog with BulkQuery calls of at most
// index.MaxChunkNames LFNs. The size it charges for a PFN list is the
// PFNs' bytes plus 4 each.
func (s *siteCatalog) Lookup(ctx context.Context, lfns []string, charge func(int) error) (map[string][]string, error) {
	answers := make(map[string][]string)
	for start := 0; start < len(lfns); start += index.MaxChunkNames {
		part := lfns[start:min(len(lfns), start+index.MaxChunkNames)]
		resp, err := s.c.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: part})
		if err != nil {
			return nil, fmt.Errorf("asking %s: %w", s.endpoint, err)
		}
		if len(resp.GetResults()) != len(part) {
			return nil, fmt.Errorf("asking %s: %d answers to %d LFNs", s.endpoint, len(resp.GetResults()), len(part))
		}
		for j, r := range resp.GetResults() {
			switch code := codes.Code(r.GetStatus().GetCode()); code {
			case codes.OK:
				if charge != nil {
					n := 0
					for _, pfn := range r.GetNames() {
						n += len(pfn) + 4
					}
					if err := charge(n); err != nil {
						return nil, err
					}
				}
				answers[part[j]] = r.GetNames()
			case codes.NotFound:
			default:
				return nil, fmt.Errorf("asking %s about %q: %v: %s", s.endpoint, part[j], code, r.GetStatus().GetMessage())
			}
		}
	}
	return answers, nil
}
