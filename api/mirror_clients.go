package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
	"github.com/solar-archive/rls/internal/secure"
	"github.com/solar-archive/rls/mirror"
	"github.com/solar-archive/rls/transfer"
)

// The mirror's seams over gRPC and over the own catalog: mirror defines
// the interfaces, this file implements them, as TransferClient implements
// transfer.Peer.

var (
	_ mirror.Locator   = (*IndexLocator)(nil)
	_ mirror.Authority = (*CatalogAuthority)(nil)
	_ mirror.Registrar = (*CatalogRegistrar)(nil)
)

// locateChunk is the most LFNs of one Locate call (the service takes up to
// 100,000).
const locateChunk = 10_000

// IndexLocator asks RLIs, in order until one answers, to Locate with
// verify. It is safe for concurrent use.
type IndexLocator struct {
	addrs   []string
	conns   []*grpc.ClientConn
	clients []rlsv1.IndexClient
	// VerifyTimeout bounds the index's wait for the sites' catalogs;
	// default 5 s.
	VerifyTimeout time.Duration
}

// DialIndexLocator creates clients for the RLIs at addrs (HOST:PORT),
// dialed with d (nil: plaintext). It does not connect: the first call does.
func DialIndexLocator(addrs []string, d *secure.Dialer) (*IndexLocator, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: no index address", mirror.ErrInvalid)
	}
	l := &IndexLocator{addrs: addrs}
	for _, a := range addrs {
		cc, err := d.Dial(a, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize)))
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("%w: index %s: %v", mirror.ErrInvalid, a, err)
		}
		l.conns = append(l.conns, cc)
		l.clients = append(l.clients, rlsv1.NewIndexClient(cc))
	}
	return l, nil
}

// Close closes the connections.
func (l *IndexLocator) Close() error {
	for _, cc := range l.conns {
		_ = cc.Close()
	}
	return nil
}

// Locate implements mirror.Locator: only sites whose catalog confirmed an
// LFN are returned, with their first PFN.
func (l *IndexLocator) Locate(ctx context.Context, lfns []string) ([][]mirror.Location, error) {
	out := make([][]mirror.Location, 0, len(lfns))
	vt := l.VerifyTimeout
	if vt <= 0 {
		vt = 5 * time.Second
	}
	for chunk := range slices.Chunk(lfns, locateChunk) {
		req := &rlsv1.LocateRequest{Lfns: chunk, Verify: true, VerifyTimeout: durationpb.New(vt)}
		var resp *rlsv1.LocateResponse
		var err error
		for i, c := range l.clients {
			if resp, err = c.Locate(ctx, req); err == nil {
				break
			}
			err = fmt.Errorf("index %s: %w", l.addrs[i], transferError(err))
		}
		if err != nil {
			return nil, err
		}
		if len(resp.GetResults()) != len(chunk) {
			return nil, fmt.Errorf("%w: index answered %d of %d LFNs", transfer.ErrInvalid, len(resp.GetResults()), len(chunk))
		}
		for _, r := range resp.GetResults() {
			var locs []mirror.Location
			for _, s := range r.GetSites() {
				if s.GetVerification() != rlsv1.Verification_VERIFICATION_CONFIRMED || len(s.GetPfns()) == 0 {
					continue
				}
				locs = append(locs, mirror.Location{Source: mirror.Source{Site: s.GetSite(), Endpoint: s.GetEndpoint()}, PFN: s.GetPfns()[0]})
			}
			out = append(out, locs)
		}
	}
	return out, nil
}

// CatalogAuthority is an authoritative site reached through its Catalog
// service (for "does this sunum exist" and coverage) and its Transfer
// service (for pulls, at the same address).
type CatalogAuthority struct {
	src mirror.Source
	cc  *grpc.ClientConn
	c   rlsv1.CatalogClient
}

// DialAuthority creates a client for the authority at addr, named site in
// logs and in the records of units pulled from it (addr if empty), dialed
// with d (nil: plaintext).
func DialAuthority(site, addr string, d *secure.Dialer) (*CatalogAuthority, error) {
	cc, err := d.Dial(addr, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize)))
	if err != nil {
		return nil, fmt.Errorf("%w: authority %s: %v", mirror.ErrInvalid, addr, err)
	}
	if site == "" {
		site = addr
	}
	return &CatalogAuthority{src: mirror.Source{Site: site, Endpoint: addr}, cc: cc, c: rlsv1.NewCatalogClient(cc)}, nil
}

// Close closes the connection.
func (a *CatalogAuthority) Close() error { return a.cc.Close() }

// Source implements mirror.Authority.
func (a *CatalogAuthority) Source() mirror.Source { return a.src }

// Lookup implements mirror.Authority: NOT_FOUND from the authority's
// catalog is its definitive "no such LFN" (""); any other failure is an
// error, never a "no".
func (a *CatalogAuthority) Lookup(ctx context.Context, lfns []string) ([]string, error) {
	out := make([]string, 0, len(lfns))
	for chunk := range slices.Chunk(lfns, locateChunk) {
		resp, err := a.c.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: chunk})
		if err != nil {
			return nil, fmt.Errorf("authority %s: %w", a.src.Site, transferError(err))
		}
		if len(resp.GetResults()) != len(chunk) {
			return nil, fmt.Errorf("%w: authority answered %d of %d LFNs", transfer.ErrInvalid, len(resp.GetResults()), len(chunk))
		}
		for _, r := range resp.GetResults() {
			switch c := codes.Code(r.GetStatus().GetCode()); {
			case c == codes.OK && len(r.GetNames()) > 0:
				out = append(out, r.GetNames()[0])
			case c == codes.NotFound || c == codes.OK:
				out = append(out, "")
			default:
				return nil, fmt.Errorf("authority %s: %s: %s", a.src.Site, r.GetName(), status.New(c, r.GetStatus().GetMessage()).Err())
			}
		}
	}
	return out, nil
}

// Units implements mirror.Authority: the LFNs whose series attribute is
// series, as sunums (names that are not canonical sunums are skipped).
func (a *CatalogAuthority) Units(ctx context.Context, series string) ([]uint64, error) {
	var out []uint64
	const page = 10_000
	for off := uint64(0); ; off += page {
		resp, err := a.c.SearchAttribute(ctx, &rlsv1.SearchAttributeRequest{
			Object: rlsv1.ObjectType_OBJECT_TYPE_LFN, Name: "series", Op: rlsv1.SearchOp_SEARCH_OP_EQ,
			Value: &rlsv1.Value{V: &rlsv1.Value_String_{String_: series}}, Offset: off, Limit: page})
		if status.Code(err) == codes.NotFound {
			return nil, nil // no series attribute defined: no units
		}
		if err != nil {
			return nil, fmt.Errorf("authority %s: %w", a.src.Site, transferError(err))
		}
		for _, h := range resp.GetHits() {
			if n, err := mirror.ParseSunum(h.GetObjectName()); err == nil {
				out = append(out, n)
			}
		}
		if !resp.GetMore() {
			break
		}
	}
	slices.Sort(out)
	return out, nil
}

// CatalogRegistrar registers placed units in the site's own catalog.
type CatalogRegistrar struct{ Catalog RegistrarCatalog }

// RegistrarCatalog is what CatalogRegistrar needs of a catalog backend.
type RegistrarCatalog interface {
	catalog.UnitRegisterer
	catalog.Querier
	BulkAttrsEach(ctx context.Context, obj catalog.ObjectType, objects, attrs []string, fn func(i int, a catalog.Attr) error) (errs []error, err error)
}

// Register implements mirror.Registrar with one catalog.RegisterUnits.
func (r CatalogRegistrar) Register(ctx context.Context, units []mirror.Placed) ([]error, error) {
	us := make([]catalog.Unit, len(units))
	for i, u := range units {
		us[i] = catalog.Unit{LFN: u.LFN, PFN: u.PFN, Attrs: []catalog.Attr{
			{Name: "files", Value: catalog.IntValue(u.Files)},
			{Name: "series", Value: catalog.StringValue(u.Series)},
			{Name: "sha256", Value: catalog.StringValue(u.SHA256)},
			{Name: "size", Value: catalog.IntValue(u.Bytes)},
			{Name: "source", Value: catalog.StringValue(u.Source)},
		}}
		if u.Series == "" {
			us[i].Attrs = slices.Delete(us[i].Attrs, 1, 2)
		}
	}
	errs, _, err := r.Catalog.RegisterUnits(ctx, us)
	return errs, err
}

// Registered implements mirror.Registrar: BulkExists, then the unit
// attributes of those mapped.
func (r CatalogRegistrar) Registered(ctx context.Context, lfns, pfns []string) ([]*mirror.Placed, error) {
	ms := make([]catalog.Mapping, len(lfns))
	for i := range lfns {
		ms[i] = catalog.Mapping{LFN: lfns[i], PFN: pfns[i]}
	}
	ok, errs, err := r.Catalog.BulkExists(ctx, ms)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]*mirror.Placed, len(lfns))
	var names []string
	var at []int
	for i := range lfns {
		if ok[i] {
			out[i] = &mirror.Placed{LFN: lfns[i], PFN: pfns[i]}
			names, at = append(names, lfns[i]), append(at, i)
		}
	}
	if len(names) == 0 {
		return out, nil
	}
	_, err = r.Catalog.BulkAttrsEach(ctx, catalog.LFN, names, []string{"files", "series", "sha256", "size", "source"},
		func(k int, a catalog.Attr) error {
			p := out[at[k]]
			switch a.Name {
			case "files":
				p.Files = a.Value.Int
			case "size":
				p.Bytes = a.Value.Int
			case "series":
				p.Series = a.Value.Str
			case "sha256":
				p.SHA256 = a.Value.Str
			case "source":
				p.Source = a.Value.Str
			}
			return nil
		})
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return nil, err
	}
	return out, nil
}

// NewTransferPuller returns a mirror.TransferPuller that pulls units over
// the Transfer service, dialing each source with d (nil: plaintext), one
// connection per source address, kept for reuse. It is safe for concurrent
// use.
func NewTransferPuller(opts transfer.PullOptions, d *secure.Dialer) *mirror.TransferPuller {
	return &mirror.TransferPuller{
		Options: opts,
		Dial: func(addr string) (transfer.Peer, error) {
			return DialTransfer(addr, d)
		},
	}
}
