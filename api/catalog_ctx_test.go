package api

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/catalog"
)

// TestCatalogServerPassesContext calls every rls.v1.Catalog handler with a
// context that has ended: each hands it to the catalog, which refuses the
// call, so the client gets CANCELLED (or DEADLINE_EXCEEDED) and nothing is
// written.
func TestCatalogServerPassesContext(t *testing.T) {
	cat, err := catalog.Open(t.TempDir(), &catalog.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	ctx := t.Context()
	if _, err := cat.Create(ctx, "1", "/1"); err != nil {
		t.Fatal(err)
	}
	if err := cat.DefineAttr(ctx, catalog.AttrDef{Name: "n", Object: catalog.LFN, Type: catalog.TypeInt}); err != nil {
		t.Fatal(err)
	}
	before, err := cat.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewCatalogServer(cat)
	lfn := rlsv1.ObjectType_OBJECT_TYPE_LFN
	one := &rlsv1.Value{V: &rlsv1.Value_Int{Int: 1}}
	m := &rlsv1.MappingRequest{Lfn: "2", Pfn: "/2"}
	calls := map[string]func(ctx context.Context) error{
		"Create": func(ctx context.Context) error { _, err := srv.Create(ctx, m); return err },
		"Add": func(ctx context.Context) error {
			_, err := srv.Add(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/2"})
			return err
		},
		"Delete": func(ctx context.Context) error {
			_, err := srv.Delete(ctx, &rlsv1.MappingRequest{Lfn: "1", Pfn: "/1"})
			return err
		},
		"Exists": func(ctx context.Context) error { _, err := srv.Exists(ctx, &rlsv1.ExistsRequest{Lfn: "1"}); return err },
		"QueryLFN": func(ctx context.Context) error {
			_, err := srv.QueryLFN(ctx, &rlsv1.NameRequest{Name: "1"})
			return err
		},
		"QueryPFN": func(ctx context.Context) error {
			_, err := srv.QueryPFN(ctx, &rlsv1.NameRequest{Name: "/1"})
			return err
		},
		"Wildcard": func(ctx context.Context) error {
			_, err := srv.QueryWildcard(ctx, &rlsv1.WildcardRequest{Pattern: "*"})
			return err
		},
		"RenameLFN": func(ctx context.Context) error {
			_, err := srv.RenameLFN(ctx, &rlsv1.RenameRequest{OldName: "1", NewName: "x"})
			return err
		},
		"RenamePFN": func(ctx context.Context) error {
			_, err := srv.RenamePFN(ctx, &rlsv1.RenameRequest{OldName: "/1", NewName: "/x"})
			return err
		},
		"BulkWrite": func(ctx context.Context) error {
			_, err := srv.BulkWrite(ctx, &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_CREATE, Mappings: []*rlsv1.Mapping{{Lfn: "2", Pfn: "/2"}}})
			return err
		},
		"BulkRename": func(ctx context.Context) error {
			_, err := srv.BulkRename(ctx, &rlsv1.BulkRenameRequest{Type: lfn, Renames: []*rlsv1.RenameRequest{{OldName: "1", NewName: "x"}}})
			return err
		},
		"BulkQuery": func(ctx context.Context) error {
			_, err := srv.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: lfn, Names: []string{"1"}})
			return err
		},
		"BulkExists": func(ctx context.Context) error {
			_, err := srv.BulkExists(ctx, &rlsv1.BulkExistsRequest{Items: []*rlsv1.ExistsRequest{{Lfn: "1"}}})
			return err
		},
		"DefineAttribute": func(ctx context.Context) error {
			_, err := srv.DefineAttribute(ctx, &rlsv1.DefineAttributeRequest{Def: &rlsv1.AttributeDef{Name: "m", Object: lfn, Type: rlsv1.ValueType_VALUE_TYPE_INT}})
			return err
		},
		"UndefineAttribute": func(ctx context.Context) error {
			_, err := srv.UndefineAttribute(ctx, &rlsv1.UndefineAttributeRequest{Name: "n", Object: lfn})
			return err
		},
		"ListAttributes": func(ctx context.Context) error {
			_, err := srv.ListAttributes(ctx, &rlsv1.ListAttributesRequest{})
			return err
		},
		"SetAttribute": func(ctx context.Context) error {
			_, err := srv.SetAttribute(ctx, &rlsv1.SetAttributeRequest{Object: lfn, ObjectName: "1", Name: "n", Value: one, Mode: rlsv1.SetMode_SET_MODE_UPSERT})
			return err
		},
		"RemoveAttribute": func(ctx context.Context) error {
			_, err := srv.RemoveAttribute(ctx, &rlsv1.RemoveAttributeRequest{Object: lfn, ObjectName: "1", Name: "n"})
			return err
		},
		"GetAttributes": func(ctx context.Context) error {
			_, err := srv.GetAttributes(ctx, &rlsv1.GetAttributesRequest{Object: lfn, ObjectName: "1"})
			return err
		},
		"SearchAttribute": func(ctx context.Context) error {
			_, err := srv.SearchAttribute(ctx, &rlsv1.SearchAttributeRequest{Object: lfn, Name: "n", Op: rlsv1.SearchOp_SEARCH_OP_GE, Value: one})
			return err
		},
		"BulkSetAttributes": func(ctx context.Context) error {
			_, err := srv.BulkSetAttributes(ctx, &rlsv1.BulkSetAttributesRequest{Object: lfn, Mode: rlsv1.SetMode_SET_MODE_UPSERT,
				Writes: []*rlsv1.AttributeWrite{{ObjectName: "1", Name: "n", Value: one}}})
			return err
		},
		"BulkGetAttributes": func(ctx context.Context) error {
			_, err := srv.BulkGetAttributes(ctx, &rlsv1.BulkGetAttributesRequest{Object: lfn, ObjectNames: []string{"1"}})
			return err
		},
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	for name, call := range calls {
		if code := status.Code(call(canceled)); code != codes.Canceled {
			t.Errorf("%s with a cancelled context: %v, want CANCELLED", name, code)
		}
		if code := status.Code(call(expired)); code != codes.DeadlineExceeded {
			t.Errorf("%s past its deadline: %v, want DEADLINE_EXCEEDED", name, code)
		}
	}
	after, err := cat.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("calls whose context had ended changed the catalog: %+v, was %+v", after, before)
	}
	// The same calls with a live context succeed, so the failures above
	// came from the context and not from the requests.
	for _, name := range []string{"Exists", "QueryLFN", "Wildcard", "BulkQuery", "ListAttributes", "SetAttribute", "GetAttributes", "Create"} {
		if err := calls[name](ctx); err != nil {
			t.Errorf("%s with a live context: %v", name, err)
		}
	}
}
