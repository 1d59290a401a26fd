package api

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/solar-archive/rls/api/rlsv1"
)

// TestCatalogScenarios runs the scenarios in testdata/catalog, each file
// against a new catalog behind a real gRPC server. A command is a method
// of rls.v1.Catalog and its input the request in protobuf text format;
// the output is the response (see render) or "error CODE: message".
// Commands run in order, each seeing the effects of the ones before.
//
//	Create
//	lfn: "1" pfn: "/a"
//	----
//	seq: 1
//
// grow=FIELD:N repeats the last element of the request's repeated FIELD
// until it has N, for requests too large to write out. Run with -rewrite
// to write the outputs after a deliberate change, and read the diff.
func TestCatalogScenarios(t *testing.T) {
	catalogSvc := rlsv1.File_rls_v1_catalog_proto.Services().ByName("Catalog")
	datadriven.Walk(t, "testdata/catalog", func(t *testing.T, path string) {
		e := newTestEnv(t)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			md := catalogSvc.Methods().ByName(protoreflect.Name(d.Cmd))
			if md == nil || md.IsStreamingClient() || md.IsStreamingServer() {
				d.Fatalf(t, "%s is no unary method of %s", d.Cmd, catalogSvc.FullName())
			}
			req, resp := newMessage(t, md.Input()), newMessage(t, md.Output())
			if err := prototext.Unmarshal([]byte(d.Input), req); err != nil {
				d.Fatalf(t, "request: %v", err)
			}
			for _, a := range d.CmdArgs {
				if a.Key != "grow" {
					d.Fatalf(t, "unknown argument %s", a.Key)
				}
				grow(t, d, req, a.Vals)
			}
			method := fmt.Sprintf("/%s/%s", catalogSvc.FullName(), md.Name())
			out := ""
			if err := e.conn.Invoke(ctxT(t), method, req, resp); err != nil {
				s := status.Convert(err)
				out = fmt.Sprintf("error %s: %s\n", CodeName(s.Code()), s.Message())
			} else {
				out = render(normalize(resp))
			}
			// protobuf's own errors, which some messages quote, put a
			// no-break space after "proto:" at random, on purpose.
			return strings.ReplaceAll(out, "\u00a0", " ")
		})
	})
}

func newMessage(t *testing.T, md protoreflect.MessageDescriptor) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// grow handles grow=FIELD:N.
func grow(t *testing.T, d *datadriven.TestData, req proto.Message, vals []string) {
	field, n, ok := strings.Cut(strings.Join(vals, ","), ":")
	count, err := strconv.Atoi(n)
	fd := req.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(field))
	if !ok || err != nil || fd == nil || !fd.IsList() {
		d.Fatalf(t, "grow=%s: want a repeated field of the request and a count", strings.Join(vals, ","))
	}
	l := req.ProtoReflect().Mutable(fd).List()
	if l.Len() == 0 {
		d.Fatalf(t, "grow=%s: the request has no %s to repeat", strings.Join(vals, ","), field)
	}
	for last := l.Get(l.Len() - 1); l.Len() < count; {
		l.Append(last)
	}
}

// normalize sorts the parts of a response whose order the contract leaves
// open (attribute definitions and attributes), so that outputs compare.
func normalize(m proto.Message) proto.Message {
	switch m := m.(type) {
	case *rlsv1.ListAttributesResponse:
		slices.SortFunc(m.Defs, func(a, b *rlsv1.AttributeDef) int {
			return cmp.Or(cmp.Compare(a.Object, b.Object), cmp.Compare(a.Name, b.Name))
		})
	case *rlsv1.GetAttributesResponse:
		slices.SortFunc(m.Attributes, func(a, b *rlsv1.Attribute) int { return cmp.Compare(a.Name, b.Name) })
	}
	return m
}

// render prints a response one top-level field (or element of a repeated
// one) per line, in field-number order, nested messages in braces: like
// the text format, but stable (prototext adds random spaces on purpose).
// Top-level scalars print even when zero ("exists: false"). A Status
// prints as its code name and quoted message, a Timestamp in RFC 3339. A
// response without fields prints as {}.
func render(m proto.Message) string {
	var b strings.Builder
	eachField(m.ProtoReflect(), true, func(name string, v string) { fmt.Fprintf(&b, "%s: %s\n", name, v) })
	if b.Len() == 0 {
		return "{}\n"
	}
	return b.String()
}

// eachField calls f with the name and rendered value of every populated
// field of m, once per element of a repeated field; with zeros, also of
// every scalar field without presence.
func eachField(m protoreflect.Message, zeros bool, f func(name, value string)) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		scalar := !fd.IsList() && !fd.IsMap() && fd.Message() == nil && !fd.HasPresence()
		if !m.Has(fd) && (!zeros || !scalar) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			panic("render: no map fields in rls.v1.Catalog responses")
		case fd.IsList():
			for j := range v.List().Len() {
				f(string(fd.Name()), renderValue(fd, v.List().Get(j)))
			}
		default:
			f(string(fd.Name()), renderValue(fd, v))
		}
	}
}

func renderValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return strconv.Quote(v.String())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch m := v.Message().Interface().(type) {
		case *rlsv1.Status:
			if m.GetMessage() == "" {
				return CodeName(codes.Code(m.GetCode()))
			}
			return CodeName(codes.Code(m.GetCode())) + " " + strconv.Quote(m.GetMessage())
		case *timestamppb.Timestamp:
			return m.AsTime().Format(time.RFC3339Nano)
		}
		var parts []string
		eachField(v.Message(), false, func(name, value string) { parts = append(parts, name+": "+value) })
		return "{" + strings.Join(parts, " ") + "}"
	}
	return v.String()
}

// Shorthands for the other tests of this package.

func mr(lfn, pfn string) *rlsv1.MappingRequest { return &rlsv1.MappingRequest{Lfn: lfn, Pfn: pfn} }
func strV(s string) *rlsv1.Value               { return &rlsv1.Value{V: &rlsv1.Value_String_{String_: s}} }
