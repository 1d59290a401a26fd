package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/solar-archive/rls/catalog"
)

// ctxCalls are calls of every method that takes a context, each of which
// would change the catalog or read it if its context had not ended.
func ctxCalls() map[string]func(ctx context.Context, s catalog.Store) error {
	v := catalog.IntValue(2)
	noop := func(string) error { return nil }
	return map[string]func(ctx context.Context, s catalog.Store) error{
		"create":     func(ctx context.Context, s catalog.Store) error { _, err := s.Create(ctx, "new", "/p"); return err },
		"add":        func(ctx context.Context, s catalog.Store) error { _, err := s.Add(ctx, "1", "/q"); return err },
		"delete":     func(ctx context.Context, s catalog.Store) error { _, err := s.Delete(ctx, "1", "/1"); return err },
		"rename lfn": func(ctx context.Context, s catalog.Store) error { _, err := s.RenameLFN(ctx, "1", "one"); return err },
		"rename pfn": func(ctx context.Context, s catalog.Store) error { _, err := s.RenamePFN(ctx, "/1", "/one"); return err },
		"bulk create": func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.BulkWrite(ctx, catalog.OpCreate, []mapping{{LFN: "new", PFN: "/p"}})
			return err
		},
		"bulk rename": func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.BulkRename(ctx, catalog.LFN, []catalog.Rename{{Old: "1", New: "one"}})
			return err
		},
		"register": func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.RegisterUnits(ctx, []catalog.Unit{{LFN: "new", PFN: "/p", Attrs: []catalog.Attr{{Name: "n", Value: v}}}})
			return err
		},
		"define": func(ctx context.Context, s catalog.Store) error {
			return s.DefineAttr(ctx, catalog.AttrDef{Name: "m", Object: catalog.LFN, Type: catalog.TypeInt})
		},
		"undefine": func(ctx context.Context, s catalog.Store) error { return s.UndefineAttr(ctx, "n", catalog.LFN, true) },
		"set": func(ctx context.Context, s catalog.Store) error {
			return s.SetAttr(ctx, catalog.LFN, "1", "n", v, catalog.Upsert)
		},
		"remove": func(ctx context.Context, s catalog.Store) error { return s.RemoveAttr(ctx, catalog.LFN, "1", "n") },
		"bulk set": func(ctx context.Context, s catalog.Store) error {
			_, err := s.BulkSetAttrs(ctx, catalog.LFN, catalog.Upsert, []catalog.AttrWrite{{Object: "1", Attr: "n", Value: &v}})
			return err
		},
		"prune": func(ctx context.Context, s catalog.Store) error { return s.PruneChanges(ctx, 100) },
		"query": func(ctx context.Context, s catalog.Store) error { return s.QueryEach(ctx, catalog.LFN, "1", noop) },
		"bulk query": func(ctx context.Context, s catalog.Store) error {
			_, err := s.BulkQueryEach(ctx, catalog.LFN, []string{"1"}, func(int, string) error { return nil })
			return err
		},
		"bulk exists": func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.BulkExists(ctx, []mapping{{LFN: "1"}})
			return err
		},
		"wildcard": func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.Wildcard(ctx, catalog.WildcardQuery{Pattern: "*"})
			return err
		},
		"attr defs": func(ctx context.Context, s catalog.Store) error { _, err := s.AttrDefs(ctx, 0); return err },
		"bulk get": func(ctx context.Context, s catalog.Store) error {
			_, err := s.BulkAttrsEach(ctx, catalog.LFN, []string{"1"}, nil, func(int, catalog.Attr) error { return nil })
			return err
		},
		"search": func(ctx context.Context, s catalog.Store) error {
			_, _, err := s.SearchAttr(ctx, catalog.Search{Object: catalog.LFN, Attr: "n", Op: catalog.OpGE, Value: v})
			return err
		},
		"changes":      func(ctx context.Context, s catalog.Store) error { _, err := s.Changes(ctx, 1, 0); return err },
		"wait changes": func(ctx context.Context, s catalog.Store) error { return s.WaitChanges(ctx, 1) },
		"for each lfn": func(ctx context.Context, s catalog.Store) error { _, err := s.ForEachLFN(ctx, noop); return err },
		"stats":        func(ctx context.Context, s catalog.Store) error { _, err := s.Stats(ctx); return err },
	}
}

// testContextEnded checks that a call whose context has ended fails with
// the context's error (not an item's *Error), and changes nothing.
func testContextEnded(t *testing.T, s catalog.Store) {
	for i := 0; i < 3; i++ {
		create(t, s, fmt.Sprint(i), fmt.Sprint("/", i))
	}
	must(t, s.DefineAttr(t.Context(), catalog.AttrDef{Name: "n", Object: catalog.LFN, Type: catalog.TypeInt}))
	must(t, s.SetAttr(t.Context(), catalog.LFN, "1", "n", catalog.IntValue(1), catalog.Upsert))
	before := takeSnapshot(t, s)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel2()
	for name, call := range ctxCalls() {
		for _, c := range []struct {
			ctx  context.Context
			want error
		}{{canceled, context.Canceled}, {expired, context.DeadlineExceeded}} {
			err := call(c.ctx, s)
			var e *catalog.Error
			if !errors.Is(err, c.want) || errors.As(err, &e) {
				t.Errorf("%s with an ended context: %v, want %v (not an item's *Error)", name, err, c.want)
			}
		}
	}
	if after := takeSnapshot(t, s); !reflect.DeepEqual(after, before) {
		t.Fatalf("calls with an ended context changed the catalog:\nbefore %+v\n after %+v", before, after)
	}
}

// testContextEndsScans cancels a long scan from its own callback: it stops
// early with the context's error.
func testContextEndsScans(t *testing.T, s catalog.Store) {
	const n = 5000
	ms := make([]mapping, n)
	names := make([]string, n)
	for i := range ms {
		names[i] = fmt.Sprintf("scan-%05d-with-a-longer-name-than-a-sunum", i)
		ms[i] = mapping{LFN: names[i], PFN: "/one/shared/pfn"}
	}
	errs, _, err := s.BulkWrite(t.Context(), catalog.OpCreate, ms)
	must(t, err)
	must(t, errors.Join(errs...))
	must(t, s.DefineAttr(t.Context(), catalog.AttrDef{Name: "n", Object: catalog.LFN, Type: catalog.TypeInt}))
	one := catalog.IntValue(1)
	ws := make([]catalog.AttrWrite, n)
	for i := range ws {
		ws[i] = catalog.AttrWrite{Object: names[i], Attr: "n", Value: &one}
	}
	errs, err = s.BulkSetAttrs(t.Context(), catalog.LFN, catalog.Upsert, ws)
	must(t, err)
	must(t, errors.Join(errs...))

	scans := map[string]func(ctx context.Context, cb func()) error{
		"for each lfn": func(ctx context.Context, cb func()) error {
			_, err := s.ForEachLFN(ctx, func(string) error { cb(); return nil })
			return err
		},
		"query pfn": func(ctx context.Context, cb func()) error {
			return s.QueryEach(ctx, catalog.PFN, "/one/shared/pfn", func(string) error { cb(); return nil })
		},
		"bulk query": func(ctx context.Context, cb func()) error {
			_, err := s.BulkQueryEach(ctx, catalog.LFN, names, func(int, string) error { cb(); return nil })
			return err
		},
		"bulk get attributes": func(ctx context.Context, cb func()) error {
			_, err := s.BulkAttrsEach(ctx, catalog.LFN, names, nil, func(int, catalog.Attr) error { cb(); return nil })
			return err
		},
	}
	for name, scan := range scans {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := scan(ctx, func() {
			calls++
			cancel()
		})
		cancel()
		if !errors.Is(err, context.Canceled) || calls >= n {
			t.Errorf("%s cancelled at its first item: %v after %d of %d items, want the context's error, early", name, err, calls, n)
		}
	}
}
