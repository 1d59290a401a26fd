package api

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
)

// step is one call in a scenario; the steps of a scenario run in order
// against one catalog, each seeing the effects of the ones before.
type step struct {
	name string
	call func(context.Context, rlsv1.CatalogClient) (proto.Message, error)
	code codes.Code // the call's status code
	msg  []string   // substrings of the error message (when code is not OK)
	want proto.Message
}

func runSteps(t *testing.T, steps []step) {
	t.Helper()
	e := newTestEnv(t)
	for _, s := range steps {
		resp, err := s.call(ctxT(t), e.catalog)
		wantCode(t, s.name, err, s.code, s.msg...)
		if s.want != nil && !proto.Equal(normalize(resp), s.want) {
			t.Fatalf("%s:\ngot  %v\nwant %v", s.name, prototext.Format(resp), prototext.Format(s.want))
		}
	}
}

// normalize sorts the parts of a response whose order the contract leaves
// open (attribute definitions and attributes), and drops the messages of bulk
// item statuses (TestBulkMessages checks those), so that tests can compare.
func normalize(m proto.Message) proto.Message {
	dropMessages := func(sts ...*rlsv1.Status) {
		for _, s := range sts {
			s.Message = ""
		}
	}
	switch m := m.(type) {
	case *rlsv1.BulkResponse:
		dropMessages(m.Results...)
	case *rlsv1.BulkExistsResponse:
		dropMessages(m.Results...)
	case *rlsv1.BulkQueryResponse:
		for _, r := range m.Results {
			dropMessages(r.Status)
		}
	case *rlsv1.BulkGetAttributesResponse:
		for _, r := range m.Results {
			dropMessages(r.Status)
		}
	case *rlsv1.ListAttributesResponse:
		slices.SortFunc(m.Defs, func(a, b *rlsv1.AttributeDef) int {
			return cmp.Or(cmp.Compare(a.Object, b.Object), cmp.Compare(a.Name, b.Name))
		})
	case *rlsv1.GetAttributesResponse:
		slices.SortFunc(m.Attributes, func(a, b *rlsv1.Attribute) int { return cmp.Compare(a.Name, b.Name) })
	}
	return m
}

// Shorthands for building calls and values.

func mr(lfn, pfn string) *rlsv1.MappingRequest { return &rlsv1.MappingRequest{Lfn: lfn, Pfn: pfn} }
func seq(n uint64) *rlsv1.WriteResponse        { return &rlsv1.WriteResponse{Seq: n} }
func names(ns ...string) *rlsv1.NamesResponse  { return &rlsv1.NamesResponse{Names: ns} }
func exists(b bool) *rlsv1.ExistsResponse      { return &rlsv1.ExistsResponse{Exists: b} }
func mapping(lfn, pfn string) *rlsv1.Mapping   { return &rlsv1.Mapping{Lfn: lfn, Pfn: pfn} }
func intV(n int64) *rlsv1.Value                { return &rlsv1.Value{V: &rlsv1.Value_Int{Int: n}} }
func strV(s string) *rlsv1.Value               { return &rlsv1.Value{V: &rlsv1.Value_String_{String_: s}} }
func timeV(t time.Time) *rlsv1.Value {
	return &rlsv1.Value{V: &rlsv1.Value_Time{Time: timestamppb.New(t)}}
}
func st(c codes.Code) *rlsv1.Status { return &rlsv1.Status{Code: int32(c)} }

const (
	lfnT = rlsv1.ObjectType_OBJECT_TYPE_LFN
	pfnT = rlsv1.ObjectType_OBJECT_TYPE_PFN
)

func TestMappings(t *testing.T) {
	create := func(l, p string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.Create(ctx, mr(l, p))
		}
	}
	add := func(l, p string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) { return c.Add(ctx, mr(l, p)) }
	}
	del := func(l, p string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.Delete(ctx, mr(l, p))
		}
	}
	qlfn := func(n string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.QueryLFN(ctx, &rlsv1.NameRequest{Name: n})
		}
	}
	qpfn := func(n string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.QueryPFN(ctx, &rlsv1.NameRequest{Name: n})
		}
	}
	ex := func(l, p string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.Exists(ctx, &rlsv1.ExistsRequest{Lfn: l, Pfn: p})
		}
	}
	wild := func(r *rlsv1.WildcardRequest) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.QueryWildcard(ctx, r)
		}
	}
	renL := func(o, n string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.RenameLFN(ctx, &rlsv1.RenameRequest{OldName: o, NewName: n})
		}
	}
	renP := func(o, n string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.RenamePFN(ctx, &rlsv1.RenameRequest{OldName: o, NewName: n})
		}
	}
	runSteps(t, []step{
		{name: "create", call: create("1", "/a"), want: seq(1)},
		{name: "create existing lfn", call: create("1", "/b"), code: codes.AlreadyExists, msg: []string{`"1"`}},
		{name: "create empty lfn", call: create("", "/b"), code: codes.InvalidArgument},
		{name: "create lfn with NUL", call: create("a\x00b", "/b"), code: codes.InvalidArgument},
		{name: "add", call: add("1", "/b"), want: seq(2)},
		{name: "add existing mapping", call: add("1", "/b"), code: codes.AlreadyExists, msg: []string{`"1`, `/b`}},
		{name: "add to missing lfn", call: add("2", "/c"), code: codes.NotFound, msg: []string{`"2`}},
		{name: "query lfn", call: qlfn("1"), want: names("/a", "/b")},
		{name: "query missing lfn", call: qlfn("2"), code: codes.NotFound, msg: []string{`"2"`}},
		{name: "query pfn", call: qpfn("/a"), want: names("1")},
		{name: "query missing pfn", call: qpfn("/nope"), code: codes.NotFound, msg: []string{"/nope"}},
		{name: "exists lfn", call: ex("1", ""), want: exists(true)},
		{name: "exists missing lfn", call: ex("2", ""), want: exists(false)},
		{name: "exists pfn", call: ex("", "/b"), want: exists(true)},
		{name: "exists mapping", call: ex("1", "/a"), want: exists(true)},
		{name: "exists missing mapping", call: ex("1", "/c"), want: exists(false)},
		{name: "exists nothing", call: ex("", ""), code: codes.InvalidArgument, msg: []string{"lfn"}},
		{name: "wildcard all", call: wild(&rlsv1.WildcardRequest{Pattern: "*"}),
			want: &rlsv1.WildcardResponse{Mappings: []*rlsv1.Mapping{mapping("1", "/a"), mapping("1", "/b")}}},
		{name: "wildcard first page", call: wild(&rlsv1.WildcardRequest{Pattern: "*", Limit: 1}),
			want: &rlsv1.WildcardResponse{Mappings: []*rlsv1.Mapping{mapping("1", "/a")}, More: true}},
		{name: "wildcard second page", call: wild(&rlsv1.WildcardRequest{Pattern: "*", Offset: 1, Limit: 1}),
			want: &rlsv1.WildcardResponse{Mappings: []*rlsv1.Mapping{mapping("1", "/b")}}},
		{name: "wildcard on pfns", call: wild(&rlsv1.WildcardRequest{Pattern: "/?", Pfn: true, Limit: 1 << 40}),
			want: &rlsv1.WildcardResponse{Mappings: []*rlsv1.Mapping{mapping("1", "/a"), mapping("1", "/b")}}},
		{name: "wildcard no match", call: wild(&rlsv1.WildcardRequest{Pattern: "9*"}), want: &rlsv1.WildcardResponse{}},
		{name: "wildcard huge offset", call: wild(&rlsv1.WildcardRequest{Pattern: "*", Offset: 1 << 63}),
			code: codes.InvalidArgument, msg: []string{"offset"}},
		{name: "rename lfn", call: renL("1", "10"), want: seq(3)},
		{name: "old lfn gone", call: qlfn("1"), code: codes.NotFound},
		{name: "new lfn has the mappings", call: qlfn("10"), want: names("/a", "/b")},
		{name: "rename missing lfn", call: renL("1", "11"), code: codes.NotFound, msg: []string{`"1"`}},
		{name: "create other", call: create("20", "/c"), want: seq(4)},
		{name: "rename lfn onto existing", call: renL("10", "20"), code: codes.AlreadyExists},
		{name: "rename pfn", call: renP("/a", "/z"), want: seq(5)},
		{name: "renamed pfn", call: qlfn("10"), want: names("/b", "/z")},
		{name: "delete", call: del("10", "/b"), want: seq(6)},
		{name: "delete again", call: del("10", "/b"), code: codes.NotFound},
		{name: "pfn gone with its last lfn", call: qpfn("/b"), code: codes.NotFound},
		{name: "delete last mapping", call: del("10", "/z"), want: seq(7)},
		{name: "lfn gone with its last pfn", call: qlfn("10"), code: codes.NotFound},
		{name: "lfn does not exist", call: ex("10", ""), want: exists(false)},
		{name: "create again after delete", call: create("10", "/a"), want: seq(8)},
	})
}

func TestAttributes(t *testing.T) {
	t0 := time.Date(2010, 5, 1, 12, 0, 0, 500, time.UTC)
	def := func(name string, obj rlsv1.ObjectType, vt rlsv1.ValueType) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.DefineAttribute(ctx, &rlsv1.DefineAttributeRequest{Def: &rlsv1.AttributeDef{Name: name, Object: obj, Type: vt}})
		}
	}
	set := func(r *rlsv1.SetAttributeRequest) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) { return c.SetAttribute(ctx, r) }
	}
	get := func(obj rlsv1.ObjectType, name string, attrs ...string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.GetAttributes(ctx, &rlsv1.GetAttributesRequest{Object: obj, ObjectName: name, Names: attrs})
		}
	}
	list := func(obj rlsv1.ObjectType) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.ListAttributes(ctx, &rlsv1.ListAttributesRequest{Object: obj})
		}
	}
	search := func(r *rlsv1.SearchAttributeRequest) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.SearchAttribute(ctx, r)
		}
	}
	remove := func(obj rlsv1.ObjectType, name, attr string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.RemoveAttribute(ctx, &rlsv1.RemoveAttributeRequest{Object: obj, ObjectName: name, Name: attr})
		}
	}
	undef := func(name string, obj rlsv1.ObjectType, clear bool) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.UndefineAttribute(ctx, &rlsv1.UndefineAttributeRequest{Name: name, Object: obj, ClearValues: clear})
		}
	}
	create := func(l, p string) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.Create(ctx, mr(l, p))
		}
	}
	attr := func(name string, vt rlsv1.ValueType, v *rlsv1.Value) *rlsv1.Attribute {
		return &rlsv1.Attribute{Name: name, Type: vt, Value: v}
	}
	const (
		tInt  = rlsv1.ValueType_VALUE_TYPE_INT
		tStr  = rlsv1.ValueType_VALUE_TYPE_STRING
		tTime = rlsv1.ValueType_VALUE_TYPE_TIME
	)
	ok := &rlsv1.WriteResponse{}
	runSteps(t, []step{
		{name: "define size", call: def("size", lfnT, tInt), want: ok},
		{name: "define obs", call: def("obs", lfnT, tTime), want: ok},
		{name: "define checksum", call: def("checksum", pfnT, tStr), want: ok},
		{name: "define again", call: def("size", lfnT, tInt), code: codes.AlreadyExists, msg: []string{"size"}},
		{name: "define without object", call: def("x", 0, tInt), code: codes.InvalidArgument, msg: []string{"def.object"}},
		{name: "define without type", call: def("x", lfnT, 0), code: codes.InvalidArgument, msg: []string{"def.type"}},
		{name: "define unknown type", call: def("x", lfnT, 99), code: codes.InvalidArgument, msg: []string{"def.type"}},
		{name: "define nothing", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.DefineAttribute(ctx, &rlsv1.DefineAttributeRequest{})
		}, code: codes.InvalidArgument, msg: []string{"def"}},
		{name: "list all", call: list(0), want: &rlsv1.ListAttributesResponse{Defs: []*rlsv1.AttributeDef{
			{Name: "obs", Object: lfnT, Type: tTime}, {Name: "size", Object: lfnT, Type: tInt}, {Name: "checksum", Object: pfnT, Type: tStr},
		}}},
		{name: "list pfn", call: list(pfnT), want: &rlsv1.ListAttributesResponse{Defs: []*rlsv1.AttributeDef{{Name: "checksum", Object: pfnT, Type: tStr}}}},
		{name: "create 100", call: create("100", "/p1"), want: seq(1)},
		{name: "create 200", call: create("200", "/p2"), want: seq(2)},
		{name: "set size", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "size", Value: intV(42)}), want: ok},
		{name: "set upsert", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "size", Value: intV(43), Mode: rlsv1.SetMode_SET_MODE_UPSERT}), want: ok},
		{name: "set add existing", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "size", Value: intV(1), Mode: rlsv1.SetMode_SET_MODE_ADD}),
			code: codes.AlreadyExists},
		{name: "set modify missing", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "200", Name: "size", Value: intV(1), Mode: rlsv1.SetMode_SET_MODE_MODIFY}),
			code: codes.NotFound},
		{name: "set add", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "200", Name: "size", Value: intV(7), Mode: rlsv1.SetMode_SET_MODE_ADD}), want: ok},
		{name: "set on missing object", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "999", Name: "size", Value: intV(1)}),
			code: codes.NotFound, msg: []string{"999"}},
		{name: "set undefined attribute", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "nope", Value: intV(1)}),
			code: codes.NotFound, msg: []string{"nope"}},
		{name: "set wrong type", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "size", Value: strV("big")}),
			code: codes.InvalidArgument},
		{name: "set without value", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "size"}),
			code: codes.InvalidArgument, msg: []string{"value"}},
		{name: "set invalid timestamp", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "obs",
			Value: &rlsv1.Value{V: &rlsv1.Value_Time{Time: &timestamppb.Timestamp{Nanos: -1}}}}),
			code: codes.InvalidArgument, msg: []string{"value"}},
		{name: "set without object type", call: set(&rlsv1.SetAttributeRequest{ObjectName: "100", Name: "size", Value: intV(1)}),
			code: codes.InvalidArgument, msg: []string{"object"}},
		{name: "set unknown mode", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "size", Value: intV(1), Mode: 99}),
			code: codes.InvalidArgument, msg: []string{"mode"}},
		{name: "set time", call: set(&rlsv1.SetAttributeRequest{Object: lfnT, ObjectName: "100", Name: "obs", Value: timeV(t0)}), want: ok},
		{name: "set pfn attribute", call: set(&rlsv1.SetAttributeRequest{Object: pfnT, ObjectName: "/p1", Name: "checksum", Value: strV("md5:abc")}), want: ok},
		{name: "get all", call: get(lfnT, "100"), want: &rlsv1.GetAttributesResponse{Attributes: []*rlsv1.Attribute{
			attr("obs", tTime, timeV(t0)), attr("size", tInt, intV(43)),
		}}},
		{name: "get named", call: get(lfnT, "100", "size"), want: &rlsv1.GetAttributesResponse{Attributes: []*rlsv1.Attribute{attr("size", tInt, intV(43))}}},
		{name: "get pfn", call: get(pfnT, "/p1"), want: &rlsv1.GetAttributesResponse{Attributes: []*rlsv1.Attribute{attr("checksum", tStr, strV("md5:abc"))}}},
		{name: "get missing object", call: get(lfnT, "999"), code: codes.NotFound},
		{name: "get without object type", call: get(0, "100"), code: codes.InvalidArgument, msg: []string{"object"}},
		{name: "search gt", call: search(&rlsv1.SearchAttributeRequest{Object: lfnT, Name: "size", Op: rlsv1.SearchOp_SEARCH_OP_GT, Value: intV(10)}),
			want: &rlsv1.SearchAttributeResponse{Hits: []*rlsv1.SearchHit{{ObjectName: "100", Value: intV(43)}}}},
		{name: "search between, ordered by value", call: search(&rlsv1.SearchAttributeRequest{Object: lfnT, Name: "size", Op: rlsv1.SearchOp_SEARCH_OP_BETWEEN, Value: intV(0), Value2: intV(100)}),
			want: &rlsv1.SearchAttributeResponse{Hits: []*rlsv1.SearchHit{{ObjectName: "200", Value: intV(7)}, {ObjectName: "100", Value: intV(43)}}}},
		{name: "search limit", call: search(&rlsv1.SearchAttributeRequest{Object: lfnT, Name: "size", Op: rlsv1.SearchOp_SEARCH_OP_GE, Value: intV(0), Limit: 1}),
			want: &rlsv1.SearchAttributeResponse{Hits: []*rlsv1.SearchHit{{ObjectName: "200", Value: intV(7)}}, More: true}},
		{name: "search time", call: search(&rlsv1.SearchAttributeRequest{Object: lfnT, Name: "obs", Op: rlsv1.SearchOp_SEARCH_OP_EQ, Value: timeV(t0)}),
			want: &rlsv1.SearchAttributeResponse{Hits: []*rlsv1.SearchHit{{ObjectName: "100", Value: timeV(t0)}}}},
		{name: "search like", call: search(&rlsv1.SearchAttributeRequest{Object: pfnT, Name: "checksum", Op: rlsv1.SearchOp_SEARCH_OP_LIKE, Value: strV("md5:*")}),
			want: &rlsv1.SearchAttributeResponse{Hits: []*rlsv1.SearchHit{{ObjectName: "/p1", Value: strV("md5:abc")}}}},
		{name: "search between without value2", call: search(&rlsv1.SearchAttributeRequest{Object: lfnT, Name: "size", Op: rlsv1.SearchOp_SEARCH_OP_BETWEEN, Value: intV(0)}),
			code: codes.InvalidArgument, msg: []string{"value2"}},
		{name: "search without op", call: search(&rlsv1.SearchAttributeRequest{Object: lfnT, Name: "size", Value: intV(0)}),
			code: codes.InvalidArgument, msg: []string{"op"}},
		{name: "search without value", call: search(&rlsv1.SearchAttributeRequest{Object: lfnT, Name: "size", Op: rlsv1.SearchOp_SEARCH_OP_EQ}),
			code: codes.InvalidArgument, msg: []string{"value"}},
		{name: "remove", call: remove(lfnT, "100", "size"), want: ok},
		{name: "remove again", call: remove(lfnT, "100", "size"), code: codes.NotFound},
		{name: "removed", call: get(lfnT, "100"), want: &rlsv1.GetAttributesResponse{Attributes: []*rlsv1.Attribute{attr("obs", tTime, timeV(t0))}}},
		{name: "undefine with values", call: undef("obs", lfnT, false), code: codes.FailedPrecondition, msg: []string{"obs"}},
		{name: "undefine clearing values", call: undef("obs", lfnT, true), want: ok},
		{name: "undefine missing", call: undef("obs", lfnT, true), code: codes.NotFound},
		{name: "undefine without object type", call: undef("size", 0, true), code: codes.InvalidArgument, msg: []string{"object"}},
		{name: "list lfn after undefine", call: list(lfnT), want: &rlsv1.ListAttributesResponse{Defs: []*rlsv1.AttributeDef{{Name: "size", Object: lfnT, Type: tInt}}}},
	})
}

func TestBulk(t *testing.T) {
	bw := func(op rlsv1.WriteOp, ms ...*rlsv1.Mapping) func(context.Context, rlsv1.CatalogClient) (proto.Message, error) {
		return func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkWrite(ctx, &rlsv1.BulkWriteRequest{Op: op, Mappings: ms})
		}
	}
	const (
		create = rlsv1.WriteOp_WRITE_OP_CREATE
		add    = rlsv1.WriteOp_WRITE_OP_ADD
		del    = rlsv1.WriteOp_WRITE_OP_DELETE
	)
	tooMany := make([]*rlsv1.Mapping, maxBulkItems+1)
	for i := range tooMany {
		tooMany[i] = mapping("x", "/x")
	}
	runSteps(t, []step{
		{name: "bulk create", call: bw(create, mapping("1", "/a"), mapping("2", "/b"), mapping("1", "/c"), mapping("", "/d")),
			want: &rlsv1.BulkResponse{Results: []*rlsv1.Status{st(codes.OK), st(codes.OK), st(codes.AlreadyExists), st(codes.InvalidArgument)}, Failed: 2, Seq: 2}},
		{name: "bulk add sees earlier items", call: bw(add, mapping("1", "/c"), mapping("3", "/x"), mapping("1", "/c")),
			want: &rlsv1.BulkResponse{Results: []*rlsv1.Status{st(codes.OK), st(codes.NotFound), st(codes.AlreadyExists)}, Failed: 2, Seq: 3}},
		{name: "bulk delete", call: bw(del, mapping("2", "/b"), mapping("2", "/b")),
			want: &rlsv1.BulkResponse{Results: []*rlsv1.Status{st(codes.OK), st(codes.NotFound)}, Failed: 1, Seq: 4}},
		{name: "bulk write without op", call: bw(0, mapping("9", "/9")), code: codes.InvalidArgument, msg: []string{"op"}},
		{name: "bulk write unknown op", call: bw(42, mapping("9", "/9")), code: codes.InvalidArgument, msg: []string{"op"}},
		{name: "bulk write too many", call: bw(create, tooMany...), code: codes.InvalidArgument, msg: []string{"mappings", "100000"}},
		{name: "nothing written by refused calls", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.Exists(ctx, &rlsv1.ExistsRequest{Lfn: "9"})
		}, want: exists(false)},
		{name: "bulk query", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: lfnT, Names: []string{"1", "2", ""}})
		}, want: &rlsv1.BulkQueryResponse{Results: []*rlsv1.QueryResult{
			{Name: "1", Status: st(codes.OK), Names: []string{"/a", "/c"}},
			{Name: "2", Status: st(codes.NotFound)},
			{Name: "", Status: st(codes.InvalidArgument)},
		}}},
		{name: "bulk query pfn", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: pfnT, Names: []string{"/c"}})
		}, want: &rlsv1.BulkQueryResponse{Results: []*rlsv1.QueryResult{{Name: "/c", Status: st(codes.OK), Names: []string{"1"}}}}},
		{name: "bulk query without type", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Names: []string{"1"}})
		}, code: codes.InvalidArgument, msg: []string{"type"}},
		{name: "bulk exists", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkExists(ctx, &rlsv1.BulkExistsRequest{Items: []*rlsv1.ExistsRequest{{Lfn: "1"}, {Lfn: "2"}, {Lfn: "1", Pfn: "/a"}, {Pfn: "/zz"}}})
		}, want: &rlsv1.BulkExistsResponse{
			Results: []*rlsv1.Status{st(codes.OK), st(codes.OK), st(codes.OK), st(codes.OK)},
			Exists:  []bool{true, false, true, false},
		}},
		{name: "bulk rename", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkRename(ctx, &rlsv1.BulkRenameRequest{Type: lfnT, Renames: []*rlsv1.RenameRequest{{OldName: "1", NewName: "10"}, {OldName: "5", NewName: "50"}}})
		}, want: &rlsv1.BulkResponse{Results: []*rlsv1.Status{st(codes.OK), st(codes.NotFound)}, Failed: 1, Seq: 5}},
		{name: "bulk rename without type", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkRename(ctx, &rlsv1.BulkRenameRequest{Renames: []*rlsv1.RenameRequest{{OldName: "10", NewName: "1"}}})
		}, code: codes.InvalidArgument, msg: []string{"type"}},
		{name: "define size", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.DefineAttribute(ctx, &rlsv1.DefineAttributeRequest{Def: &rlsv1.AttributeDef{Name: "size", Object: lfnT, Type: rlsv1.ValueType_VALUE_TYPE_INT}})
		}, want: &rlsv1.WriteResponse{}},
		{name: "bulk set", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkSetAttributes(ctx, &rlsv1.BulkSetAttributesRequest{Object: lfnT, Writes: []*rlsv1.AttributeWrite{
				{ObjectName: "10", Name: "size", Value: intV(1)},
				{ObjectName: "nope", Name: "size", Value: intV(2)},
				{ObjectName: "10", Name: "bogus", Value: intV(3)},
			}})
		}, want: &rlsv1.BulkResponse{Results: []*rlsv1.Status{st(codes.OK), st(codes.NotFound), st(codes.NotFound)}, Failed: 2}},
		{name: "bulk set add mode", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkSetAttributes(ctx, &rlsv1.BulkSetAttributesRequest{Object: lfnT, Mode: rlsv1.SetMode_SET_MODE_ADD, Writes: []*rlsv1.AttributeWrite{
				{ObjectName: "10", Name: "size", Value: intV(5)},
			}})
		}, want: &rlsv1.BulkResponse{Results: []*rlsv1.Status{st(codes.AlreadyExists)}, Failed: 1}},
		{name: "bulk get", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkGetAttributes(ctx, &rlsv1.BulkGetAttributesRequest{Object: lfnT, ObjectNames: []string{"10", "nope"}})
		}, want: &rlsv1.BulkGetAttributesResponse{Results: []*rlsv1.ObjectAttributes{
			{ObjectName: "10", Status: st(codes.OK), Attributes: []*rlsv1.Attribute{{Name: "size", Type: rlsv1.ValueType_VALUE_TYPE_INT, Value: intV(1)}}},
			{ObjectName: "nope", Status: st(codes.NotFound)},
		}}},
		{name: "bulk remove", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkSetAttributes(ctx, &rlsv1.BulkSetAttributesRequest{Object: lfnT, Writes: []*rlsv1.AttributeWrite{{ObjectName: "10", Name: "size"}}})
		}, want: &rlsv1.BulkResponse{Results: []*rlsv1.Status{st(codes.OK)}}},
		{name: "bulk set bad timestamp", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkSetAttributes(ctx, &rlsv1.BulkSetAttributesRequest{Object: lfnT, Writes: []*rlsv1.AttributeWrite{
				{ObjectName: "10", Name: "size", Value: intV(1)},
				{ObjectName: "10", Name: "size", Value: &rlsv1.Value{V: &rlsv1.Value_Time{Time: &timestamppb.Timestamp{Seconds: 1 << 62}}}},
			}})
		}, code: codes.InvalidArgument, msg: []string{"writes[1].value"}},
		{name: "bulk get without type", call: func(ctx context.Context, c rlsv1.CatalogClient) (proto.Message, error) {
			return c.BulkGetAttributes(ctx, &rlsv1.BulkGetAttributesRequest{ObjectNames: []string{"10"}})
		}, code: codes.InvalidArgument, msg: []string{"object"}},
	})
}

// TestBulkMessages checks that an item's Status carries the catalog's
// message, which names the item.
func TestBulkMessages(t *testing.T) {
	e := newTestEnv(t)
	resp, err := e.catalog.BulkWrite(ctxT(t), &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_ADD, Mappings: []*rlsv1.Mapping{mapping("sunum-42", "/a")}})
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.GetResults()[0]; r.GetCode() != int32(codes.NotFound) || !strings.Contains(r.GetMessage(), "sunum-42") {
		t.Errorf("result = %v, want NOT_FOUND naming sunum-42", r)
	}
}
