package api

import (
	"context"
	"fmt"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
)

// NewCatalogServer returns the rls.v1.Catalog service backed by cat. The
// server holds no state of its own: every call goes straight to cat, so it is
// as safe for concurrent use, and as durable, as the catalog. It does not own
// cat; the caller closes it after the gRPC server has stopped.
//
// Requests are checked at this edge before the catalog sees them: enums must
// be set (UNSPECIFIED object types and ops are INVALID_ARGUMENT naming the
// field), a bulk call carries at most 100,000 items, and wildcard and
// attribute searches return 10,000 results unless asked for another limit, and
// never more than 100,000.
//
// Every reply is bounded while it is built, by the server's reply limits
// (ServerOptions.MaxReplyBytes and MaxReplyItems): a query whose answer
// would pass them (one LFN with very many PFNs, or a bulk query repeating
// such an LFN) fails with RESOURCE_EXHAUSTED naming the limit, and a page
// of a wildcard or attribute search ends early, with more set.
//
// Every call passes its context to the catalog, so a client's deadline or
// cancellation ends the catalog's work too.
func NewCatalogServer(cat CatalogService) rlsv1.CatalogServer {
	return &catalogServer{cat: cat}
}

// CatalogService is what the rls.v1.Catalog service needs of a catalog
// backend (catalog.Store without the change feed, registration and stats).
type CatalogService interface {
	catalog.MappingWriter
	catalog.Querier
	catalog.Attributes
}

type catalogServer struct {
	rlsv1.UnimplementedCatalogServer
	cat CatalogService
}

func writeResponse(seq uint64, err error) (*rlsv1.WriteResponse, error) {
	if err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.WriteResponse{Seq: seq}, nil
}

func namesResponse(names []string, err error) (*rlsv1.NamesResponse, error) {
	if err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.NamesResponse{Names: names}, nil
}

func (s *catalogServer) Create(ctx context.Context, req *rlsv1.MappingRequest) (*rlsv1.WriteResponse, error) {
	return writeResponse(s.cat.Create(ctx, req.GetLfn(), req.GetPfn()))
}

func (s *catalogServer) Add(ctx context.Context, req *rlsv1.MappingRequest) (*rlsv1.WriteResponse, error) {
	return writeResponse(s.cat.Add(ctx, req.GetLfn(), req.GetPfn()))
}

func (s *catalogServer) Delete(ctx context.Context, req *rlsv1.MappingRequest) (*rlsv1.WriteResponse, error) {
	return writeResponse(s.cat.Delete(ctx, req.GetLfn(), req.GetPfn()))
}

func (s *catalogServer) Exists(ctx context.Context, req *rlsv1.ExistsRequest) (*rlsv1.ExistsResponse, error) {
	lfn, pfn := req.GetLfn(), req.GetPfn()
	if lfn == "" && pfn == "" {
		return nil, invalidArg("lfn", "lfn or pfn (or both) required")
	}
	ok, errs, err := s.cat.BulkExists(ctx, []catalog.Mapping{{LFN: lfn, PFN: pfn}})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.ExistsResponse{Exists: ok[0]}, nil
}

func (s *catalogServer) QueryLFN(ctx context.Context, req *rlsv1.NameRequest) (*rlsv1.NamesResponse, error) {
	return s.query(ctx, catalog.LFN, req.GetName())
}

func (s *catalogServer) QueryPFN(ctx context.Context, req *rlsv1.NameRequest) (*rlsv1.NamesResponse, error) {
	return s.query(ctx, catalog.PFN, req.GetName())
}

func (s *catalogServer) query(ctx context.Context, obj catalog.ObjectType, name string) (*rlsv1.NamesResponse, error) {
	b := newReplyBudget(ctx, "list them a page at a time with QueryWildcard")
	var out []string
	err := s.cat.QueryEach(ctx, obj, name, func(other string) error {
		if err := b.charge(strSize(other), 1); err != nil {
			return err
		}
		out = append(out, other)
		return nil
	})
	return namesResponse(out, err)
}

func (s *catalogServer) QueryWildcard(ctx context.Context, req *rlsv1.WildcardRequest) (*rlsv1.WildcardResponse, error) {
	b := newReplyBudget(ctx, "ask for a smaller limit")
	offset, limit, err := b.page(req.GetOffset(), req.GetLimit())
	if err != nil {
		return nil, err
	}
	ms, more, err := s.cat.Wildcard(ctx, catalog.WildcardQuery{
		Pattern: req.GetPattern(), PFN: req.GetPfn(), Offset: offset, Limit: limit,
		MaxBytes: b.pageBytes(),
	})
	if err != nil {
		return nil, toStatusErr(err)
	}
	out := make([]*rlsv1.Mapping, len(ms))
	for i, m := range ms {
		// At most 12 bytes beyond the names; the catalog's page bound
		// counts 16.
		if err := b.charge(msgSize(strSize(m.LFN)+strSize(m.PFN)), 1); err != nil {
			return nil, err
		}
		out[i] = &rlsv1.Mapping{Lfn: m.LFN, Pfn: m.PFN}
	}
	return &rlsv1.WildcardResponse{Mappings: out, More: more}, nil
}

func (s *catalogServer) RenameLFN(ctx context.Context, req *rlsv1.RenameRequest) (*rlsv1.WriteResponse, error) {
	return writeResponse(s.cat.RenameLFN(ctx, req.GetOldName(), req.GetNewName()))
}

func (s *catalogServer) RenamePFN(ctx context.Context, req *rlsv1.RenameRequest) (*rlsv1.WriteResponse, error) {
	return writeResponse(s.cat.RenamePFN(ctx, req.GetOldName(), req.GetNewName()))
}

// bulkResponse builds the answer of a bulk write: OK with one Status per
// item, unless the call as a whole failed (callErr).
func bulkResponse(errs []error, seq uint64, callErr error) (*rlsv1.BulkResponse, error) {
	if callErr != nil {
		return nil, toStatusErr(callErr)
	}
	results, failed := bulkStatuses(errs)
	return &rlsv1.BulkResponse{Results: results, Failed: failed, Seq: seq}, nil
}

func (s *catalogServer) BulkWrite(ctx context.Context, req *rlsv1.BulkWriteRequest) (*rlsv1.BulkResponse, error) {
	op, err := writeOp("op", req.GetOp())
	if err != nil {
		return nil, err
	}
	if err := checkBulk("mappings", len(req.GetMappings())); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, toStatusErr(err)
	}
	ms := make([]catalog.Mapping, len(req.GetMappings()))
	for i, m := range req.GetMappings() {
		ms[i] = catalog.Mapping{LFN: m.GetLfn(), PFN: m.GetPfn()}
	}
	return bulkResponse(s.cat.BulkWrite(ctx, op, ms))
}

func (s *catalogServer) BulkRename(ctx context.Context, req *rlsv1.BulkRenameRequest) (*rlsv1.BulkResponse, error) {
	t, err := objectType("type", req.GetType())
	if err != nil {
		return nil, err
	}
	if err := checkBulk("renames", len(req.GetRenames())); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, toStatusErr(err)
	}
	rs := make([]catalog.Rename, len(req.GetRenames()))
	for i, r := range req.GetRenames() {
		rs[i] = catalog.Rename{Old: r.GetOldName(), New: r.GetNewName()}
	}
	return bulkResponse(s.cat.BulkRename(ctx, t, rs))
}

func (s *catalogServer) BulkQuery(ctx context.Context, req *rlsv1.BulkQueryRequest) (*rlsv1.BulkQueryResponse, error) {
	t, err := objectType("type", req.GetType())
	if err != nil {
		return nil, err
	}
	if err := checkBulk("names", len(req.GetNames())); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, toStatusErr(err)
	}
	names := req.GetNames()
	b := newReplyBudget(ctx, "ask for fewer names a call")
	out := make([]*rlsv1.QueryResult, len(names))
	for i, name := range names {
		if err := b.charge(msgSize(strSize(name)+statusOverhead), 1); err != nil {
			return nil, err
		}
		out[i] = &rlsv1.QueryResult{Name: name}
	}
	errs, err := s.cat.BulkQueryEach(ctx, t, names, func(i int, other string) error {
		if err := b.charge(strSize(other), 1); err != nil {
			return err
		}
		out[i].Names = append(out[i].Names, other)
		return nil
	})
	if err != nil {
		return nil, toStatusErr(err)
	}
	for i, r := range out {
		if r.Status = itemStatus(errs[i]); r.Status.Message != "" {
			if err := b.charge(len(r.Status.Message), 0); err != nil {
				return nil, err
			}
		}
	}
	return &rlsv1.BulkQueryResponse{Results: out}, nil
}

func (s *catalogServer) BulkExists(ctx context.Context, req *rlsv1.BulkExistsRequest) (*rlsv1.BulkExistsResponse, error) {
	if err := checkBulk("items", len(req.GetItems())); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, toStatusErr(err)
	}
	items := make([]catalog.Mapping, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = catalog.Mapping{LFN: it.GetLfn(), PFN: it.GetPfn()}
	}
	exists, errs, err := s.cat.BulkExists(ctx, items)
	if err != nil {
		return nil, toStatusErr(err)
	}
	results, _ := bulkStatuses(errs)
	return &rlsv1.BulkExistsResponse{Results: results, Exists: exists}, nil
}

func (s *catalogServer) DefineAttribute(ctx context.Context, req *rlsv1.DefineAttributeRequest) (*rlsv1.WriteResponse, error) {
	d := req.GetDef()
	if d == nil {
		return nil, invalidArg("def", "missing attribute definition")
	}
	obj, err := objectType("def.object", d.GetObject())
	if err != nil {
		return nil, err
	}
	vt, err := valueType("def.type", d.GetType())
	if err != nil {
		return nil, err
	}
	return writeResponse(0, s.cat.DefineAttr(ctx, catalog.AttrDef{Name: d.GetName(), Object: obj, Type: vt}))
}

func (s *catalogServer) UndefineAttribute(ctx context.Context, req *rlsv1.UndefineAttributeRequest) (*rlsv1.WriteResponse, error) {
	obj, err := objectType("object", req.GetObject())
	if err != nil {
		return nil, err
	}
	return writeResponse(0, s.cat.UndefineAttr(ctx, req.GetName(), obj, req.GetClearValues()))
}

// ListAttributes lists the definitions for one object type, or for LFNs then
// PFNs when the request leaves the type UNSPECIFIED.
func (s *catalogServer) ListAttributes(ctx context.Context, req *rlsv1.ListAttributesRequest) (*rlsv1.ListAttributesResponse, error) {
	objs := []catalog.ObjectType{catalog.LFN, catalog.PFN}
	if req.GetObject() != rlsv1.ObjectType_OBJECT_TYPE_UNSPECIFIED {
		obj, err := objectType("object", req.GetObject())
		if err != nil {
			return nil, err
		}
		objs = []catalog.ObjectType{obj}
	}
	var defs []*rlsv1.AttributeDef
	for _, obj := range objs {
		ds, err := s.cat.AttrDefs(ctx, obj)
		if err != nil {
			return nil, toStatusErr(err)
		}
		for _, d := range ds {
			defs = append(defs, attrDefProto(d))
		}
	}
	return &rlsv1.ListAttributesResponse{Defs: defs}, nil
}

func (s *catalogServer) SetAttribute(ctx context.Context, req *rlsv1.SetAttributeRequest) (*rlsv1.WriteResponse, error) {
	obj, err := objectType("object", req.GetObject())
	if err != nil {
		return nil, err
	}
	mode, err := setMode("mode", req.GetMode())
	if err != nil {
		return nil, err
	}
	v, err := value("value", req.GetValue())
	if err != nil {
		return nil, err
	}
	return writeResponse(0, s.cat.SetAttr(ctx, obj, req.GetObjectName(), req.GetName(), v, mode))
}

func (s *catalogServer) RemoveAttribute(ctx context.Context, req *rlsv1.RemoveAttributeRequest) (*rlsv1.WriteResponse, error) {
	obj, err := objectType("object", req.GetObject())
	if err != nil {
		return nil, err
	}
	return writeResponse(0, s.cat.RemoveAttr(ctx, obj, req.GetObjectName(), req.GetName()))
}

func (s *catalogServer) GetAttributes(ctx context.Context, req *rlsv1.GetAttributesRequest) (*rlsv1.GetAttributesResponse, error) {
	obj, err := objectType("object", req.GetObject())
	if err != nil {
		return nil, err
	}
	// The reply is bounded: one object holds at most one value (of at most
	// catalog.MaxStringValueLen bytes) per defined attribute.
	var as []catalog.Attr
	errs, err := s.cat.BulkAttrsEach(ctx, obj, []string{req.GetObjectName()}, req.GetNames(), func(_ int, a catalog.Attr) error {
		as = append(as, a)
		return nil
	})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return nil, toStatusErr(err)
	}
	return &rlsv1.GetAttributesResponse{Attributes: attrsProto(as)}, nil
}

// hitOverhead is the most a SearchHit takes on the wire beyond the bytes
// of its object name and string value; the catalog's page bound counts 48.
const hitOverhead = 2 + 3 + 2 + 3 + 2 + 3 + 24

// SearchAttribute needs value for every op and value2 only for BETWEEN.
func (s *catalogServer) SearchAttribute(ctx context.Context, req *rlsv1.SearchAttributeRequest) (*rlsv1.SearchAttributeResponse, error) {
	obj, err := objectType("object", req.GetObject())
	if err != nil {
		return nil, err
	}
	op, err := searchOp("op", req.GetOp())
	if err != nil {
		return nil, err
	}
	v, err := value("value", req.GetValue())
	if err != nil {
		return nil, err
	}
	var v2 catalog.Value
	if op == catalog.OpBetween {
		if v2, err = value("value2", req.GetValue2()); err != nil {
			return nil, err
		}
	}
	b := newReplyBudget(ctx, "ask for a smaller limit")
	offset, limit, err := b.page(req.GetOffset(), req.GetLimit())
	if err != nil {
		return nil, err
	}
	hits, more, err := s.cat.SearchAttr(ctx, catalog.Search{
		Object: obj, Attr: req.GetName(), Op: op, Value: v, Value2: v2, Offset: offset, Limit: limit,
		MaxBytes: b.pageBytes(),
	})
	if err != nil {
		return nil, toStatusErr(err)
	}
	out := make([]*rlsv1.SearchHit, len(hits))
	for i, h := range hits {
		if err := b.charge(len(h.Name)+len(h.Value.Str)+hitOverhead, 1); err != nil {
			return nil, err
		}
		out[i] = &rlsv1.SearchHit{ObjectName: h.Name, Value: valueProto(h.Value)}
	}
	return &rlsv1.SearchAttributeResponse{Hits: out, More: more}, nil
}

// BulkSetAttributes refuses the whole call, naming the item, when a write
// carries a malformed value (such as an invalid Timestamp): that is a broken
// request rather than an item the catalog could judge. Everything else is
// reported per item.
func (s *catalogServer) BulkSetAttributes(ctx context.Context, req *rlsv1.BulkSetAttributesRequest) (*rlsv1.BulkResponse, error) {
	obj, err := objectType("object", req.GetObject())
	if err != nil {
		return nil, err
	}
	mode, err := setMode("mode", req.GetMode())
	if err != nil {
		return nil, err
	}
	if err := checkBulk("writes", len(req.GetWrites())); err != nil {
		return nil, err
	}
	ws := make([]catalog.AttrWrite, len(req.GetWrites()))
	for i, w := range req.GetWrites() {
		ws[i] = catalog.AttrWrite{Object: w.GetObjectName(), Attr: w.GetName()}
		if w.GetValue() != nil {
			v, err := value(fmt.Sprintf("writes[%d].value", i), w.GetValue())
			if err != nil {
				return nil, err
			}
			ws[i].Value = &v
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, toStatusErr(err)
	}
	errs, err := s.cat.BulkSetAttrs(ctx, obj, mode, ws)
	return bulkResponse(errs, 0, err)
}

func (s *catalogServer) BulkGetAttributes(ctx context.Context, req *rlsv1.BulkGetAttributesRequest) (*rlsv1.BulkGetAttributesResponse, error) {
	obj, err := objectType("object", req.GetObject())
	if err != nil {
		return nil, err
	}
	if err := checkBulk("object_names", len(req.GetObjectNames())); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, toStatusErr(err)
	}
	names := req.GetObjectNames()
	b := newReplyBudget(ctx, "ask for fewer objects a call")
	out := make([]*rlsv1.ObjectAttributes, len(names))
	for i, name := range names {
		if err := b.charge(msgSize(strSize(name)+statusOverhead), 1); err != nil {
			return nil, err
		}
		out[i] = &rlsv1.ObjectAttributes{ObjectName: name}
	}
	errs, err := s.cat.BulkAttrsEach(ctx, obj, names, req.GetNames(), func(i int, a catalog.Attr) error {
		if err := b.charge(strSize(a.Name)+len(a.Value.Str)+hitOverhead, 1); err != nil {
			return err
		}
		out[i].Attributes = append(out[i].Attributes, attrProto(a))
		return nil
	})
	if err != nil {
		return nil, toStatusErr(err)
	}
	for i, r := range out {
		if r.Status = itemStatus(errs[i]); r.Status.Message != "" {
			if err := b.charge(len(r.Status.Message), 0); err != nil {
				return nil, err
			}
		}
	}
	return &rlsv1.BulkGetAttributesResponse{Results: out}, nil
}
