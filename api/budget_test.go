package api

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/transfer"
)

// heapAllocs is the bytes this process has allocated on the heap so far.
func heapAllocs() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}

// loadWidePFNs gives LFN lfn n PFNs of about 1 KB each.
func loadWidePFNs(t *testing.T, e *testEnv, lfn string, n int) {
	t.Helper()
	req := &rlsv1.BulkWriteRequest{Op: rlsv1.WriteOp_WRITE_OP_ADD}
	for i := range n {
		req.Mappings = append(req.Mappings, &rlsv1.Mapping{Lfn: lfn, Pfn: fmt.Sprintf("/SUM%03d/%s", i, strings.Repeat("p", 1000))})
	}
	if _, err := e.catalog.Create(ctxT(t), mr(lfn, "/SUM/first")); err != nil {
		t.Fatal(err)
	}
	resp, err := e.catalog.BulkWrite(ctxT(t), req)
	if err != nil || resp.GetFailed() != 0 {
		t.Fatalf("BulkWrite: %v, %v", resp, err)
	}
}

// TestGreedyBulkQuery: a BulkQuery of a few KiB that repeats an LFN with
// 100 PFNs of 1 KB 20,000 times (a 2 GB answer) fails with
// RESOURCE_EXHAUSTED naming the limit, and the server allocates a bounded
// amount on the way (it used to build the whole answer first).
func TestGreedyBulkQuery(t *testing.T) {
	e := newTestEnv(t)
	loadWidePFNs(t, e, "1", 100)
	names := make([]string, 20_000)
	for i := range names {
		names[i] = "1"
	}
	runtime.GC()
	before := heapAllocs()
	_, err := e.catalog.BulkQuery(ctxT(t), &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: names})
	allocated := heapAllocs() - before
	wantCode(t, "greedy BulkQuery", err, codes.ResourceExhausted, "64 MiB (max_reply_bytes)", "fewer names")
	t.Logf("allocated %d MB during the call", allocated>>20)
	if allocated > 200<<20 {
		t.Errorf("the call allocated %d MB; want at most 200 MB", allocated>>20)
	}
	// The server still serves, and a modest request is answered.
	resp, err := e.catalog.BulkQuery(ctxT(t), &rlsv1.BulkQueryRequest{Type: rlsv1.ObjectType_OBJECT_TYPE_LFN, Names: names[:10]})
	if err != nil || len(resp.GetResults()) != 10 || len(resp.GetResults()[9].GetNames()) != 101 {
		t.Fatalf("modest BulkQuery: %d results, %v", len(resp.GetResults()), err)
	}
	if !strings.Contains(e.logs.String(), "RESOURCE_EXHAUSTED") && !strings.Contains(e.logs.String(), "ResourceExhausted") {
		t.Errorf("the refusal was not logged:\n%s", e.logs.String())
	}
}

// TestReplyBudgets: with small reply limits, every reply path stops at
// them: whole answers fail with RESOURCE_EXHAUSTED naming the limit, and
// pages end early with more set.
func TestReplyBudgets(t *testing.T) {
	x, err := index.Open(t.TempDir(), &index.Options{Site: "rli", NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	v := &index.Verifier{Dialer: NewIndexDialer(nil)}
	defer v.Close()
	e := newTestEnvOpts(t, ServerOptions{MaxReplyBytes: 50_000, MaxReplyItems: 1000},
		func(s *Server) { rlsv1.RegisterIndexServer(s, NewIndexServer(x, v, nil)) })
	loadWidePFNs(t, e, "1", 60) // 61 PFNs, 60 KB
	// The site the index's verify asks, with the default limits.
	site := newTestEnv(t)
	loadWidePFNs(t, site, "1", 60)
	ctx := ctxT(t)
	lfn := rlsv1.ObjectType_OBJECT_TYPE_LFN

	_, err = e.catalog.QueryLFN(ctx, &rlsv1.NameRequest{Name: "1"})
	wantCode(t, "QueryLFN", err, codes.ResourceExhausted, "50000 bytes (max_reply_bytes)", "QueryWildcard")
	_, err = e.catalog.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: lfn, Names: []string{"1"}})
	wantCode(t, "BulkQuery", err, codes.ResourceExhausted, "max_reply_bytes")
	many := make([]string, 1001)
	for i := range many {
		many[i] = "nope"
	}
	_, err = e.catalog.BulkQuery(ctx, &rlsv1.BulkQueryRequest{Type: lfn, Names: many})
	wantCode(t, "BulkQuery of 1001 names", err, codes.ResourceExhausted, "1000 items (max_reply_items)")

	// A wildcard page ends before 20,000 bytes, and says there is more.
	w, err := e.catalog.QueryWildcard(ctx, &rlsv1.WildcardRequest{Pattern: "1"})
	if err != nil || !w.GetMore() || len(w.GetMappings()) == 0 || len(w.GetMappings()) >= 50 {
		t.Fatalf("wildcard: %d mappings, more %v, %v", len(w.GetMappings()), w.GetMore(), err)
	}
	// Paging by the page's length reaches every mapping.
	seen := len(w.GetMappings())
	for w.GetMore() {
		if w, err = e.catalog.QueryWildcard(ctx, &rlsv1.WildcardRequest{Pattern: "1", Offset: uint64(seen)}); err != nil {
			t.Fatal(err)
		}
		seen += len(w.GetMappings())
	}
	if seen != 61 {
		t.Errorf("paged through %d mappings, want 61", seen)
	}

	// Attributes: a string value of 4 KB on each of 12 PFNs.
	if _, err := e.catalog.DefineAttribute(ctx, &rlsv1.DefineAttributeRequest{Def: &rlsv1.AttributeDef{
		Name: "note", Object: rlsv1.ObjectType_OBJECT_TYPE_PFN, Type: rlsv1.ValueType_VALUE_TYPE_STRING}}); err != nil {
		t.Fatal(err)
	}
	var pfns []string
	for i := range 12 {
		pfn := fmt.Sprintf("/SUM%03d/%s", i, strings.Repeat("p", 1000))
		pfns = append(pfns, pfn)
		if _, err := e.catalog.SetAttribute(ctx, &rlsv1.SetAttributeRequest{Object: rlsv1.ObjectType_OBJECT_TYPE_PFN,
			ObjectName: pfn, Name: "note", Value: strV(strings.Repeat("n", 4000))}); err != nil {
			t.Fatal(err)
		}
	}
	sr, err := e.catalog.SearchAttribute(ctx, &rlsv1.SearchAttributeRequest{Object: rlsv1.ObjectType_OBJECT_TYPE_PFN,
		Name: "note", Op: rlsv1.SearchOp_SEARCH_OP_EQ, Value: strV(strings.Repeat("n", 4000))})
	if err != nil || !sr.GetMore() || len(sr.GetHits()) == 0 || len(sr.GetHits()) >= 12 {
		t.Fatalf("search: %d hits, more %v, %v", len(sr.GetHits()), sr.GetMore(), err)
	}
	_, err = e.catalog.BulkGetAttributes(ctx, &rlsv1.BulkGetAttributesRequest{Object: rlsv1.ObjectType_OBJECT_TYPE_PFN, ObjectNames: pfns})
	wantCode(t, "BulkGetAttributes", err, codes.ResourceExhausted, "max_reply_bytes")

	// Locate: 600 LFNs, each with one site, are more items than the reply
	// may hold; with verify, the site's answer (61 KB of PFNs) is more
	// than the index may keep.
	resp, err := rlsv1.NewIndexClient(e.conn).Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*rlsv1.UpdateRequest{
		{Body: &rlsv1.UpdateRequest_Header{Header: &rlsv1.UpdateHeader{Site: "jsoc", Endpoint: site.conn.Target(),
			Mode: rlsv1.UpdateMode_UPDATE_MODE_LIST, Generation: 1, Entries: 1, Validity: durationpb.New(time.Hour)}}},
		{Body: &rlsv1.UpdateRequest_Lfns{Lfns: &rlsv1.LFNChunk{Lfns: []string{"1"}}}},
	} {
		if err := resp.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := resp.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	ix := rlsv1.NewIndexClient(e.conn)
	for i := range many {
		many[i] = "1"
	}
	_, err = ix.Locate(ctx, &rlsv1.LocateRequest{Lfns: many[:600]})
	wantCode(t, "Locate", err, codes.ResourceExhausted, "max_reply_items", "fewer LFNs")
	_, err = ix.Locate(ctx, &rlsv1.LocateRequest{Lfns: []string{"1"}, Verify: true})
	wantCode(t, "Locate with verify", err, codes.ResourceExhausted, "max_reply_bytes")
	if l, err := ix.Locate(ctx, &rlsv1.LocateRequest{Lfns: many[:10]}); err != nil || len(l.GetResults()[9].GetSites()) != 1 {
		t.Fatalf("Locate of 10: %v, %v", l, err)
	}
}

// TestManifestBudget: a manifest reply past the reply limit fails with
// RESOURCE_EXHAUSTED naming the limit.
func TestManifestBudget(t *testing.T) {
	root := t.TempDir()
	unit := filepath.Join(root, "D1")
	if err := os.MkdirAll(unit, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := os.WriteFile(filepath.Join(unit, fmt.Sprintf("file%03d-%s", i, strings.Repeat("n", 100))), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := transferSource(t, root)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnvOpts(t, ServerOptions{MaxReplyBytes: 20_000}, func(s *Server) { rlsv1.RegisterTransferServer(s, NewTransferServer(src)) })
	tc := rlsv1.NewTransferClient(e.conn)
	_, err = tc.Manifest(ctxT(t), &rlsv1.ManifestRequest{Pfn: unit})
	wantCode(t, "Manifest", err, codes.ResourceExhausted, "20000 bytes (max_reply_bytes)")
	_, err = tc.Manifest(ctxT(t), &rlsv1.ManifestRequest{Pfn: unit, Fast: true})
	wantCode(t, "fast Manifest", err, codes.ResourceExhausted, "max_reply_bytes")
}

// transferSource is a Source exporting root, closed when the test ends.
func transferSource(t *testing.T, root string) (*transfer.Source, error) {
	src, err := transfer.NewSource([]string{root}, nil)
	if err == nil {
		t.Cleanup(func() { src.Close() })
	}
	return src, err
}
