package api

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
)

// TestIndexService runs the Index service with the test env's catalog as
// the one site (jsoc) it indexes, so that verify has a real catalog to ask.
func TestIndexService(t *testing.T) {
	x, err := index.Open(t.TempDir(), &index.Options{Site: "rli", NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	v := &index.Verifier{Dialer: NewIndexDialer(nil)}
	defer x.Close()
	defer v.Close()
	e := newTestEnv(t, func(s *Server) { rlsv1.RegisterIndexServer(s, NewIndexServer(x, v, nil)) })
	ix := rlsv1.NewIndexClient(e.conn)
	if _, err := e.catalog.Create(ctxT(t), mr("1", "/SUM1/D1")); err != nil {
		t.Fatal(err)
	}

	send := func(h *rlsv1.UpdateHeader, body ...*rlsv1.UpdateRequest) (*rlsv1.UpdateResponse, error) {
		st, err := ix.Update(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		msgs := append([]*rlsv1.UpdateRequest{{Body: &rlsv1.UpdateRequest_Header{Header: h}}}, body...)
		for _, m := range msgs {
			if err := st.Send(m); err != nil {
				break // the server ended the stream; CloseAndRecv has its status
			}
		}
		return st.CloseAndRecv()
	}
	endpoint := e.conn.Target()
	hdr := func(mode rlsv1.UpdateMode, gen, base, entries uint64) *rlsv1.UpdateHeader {
		return &rlsv1.UpdateHeader{Site: "jsoc", Endpoint: endpoint, Mode: mode, Generation: gen, BaseGeneration: base,
			Entries: entries, Validity: durationpb.New(time.Hour)}
	}
	lfns := func(names ...string) *rlsv1.UpdateRequest {
		return &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Lfns{Lfns: &rlsv1.LFNChunk{Lfns: names}}}
	}
	resp, err := send(hdr(rlsv1.UpdateMode_UPDATE_MODE_LIST, 5, 0, 2), lfns("1", "2"))
	if err != nil || resp.GetGeneration() != 5 || resp.GetEntries() != 2 {
		t.Fatalf("list update: %v, %v", resp, err)
	}
	_, err = send(hdr(rlsv1.UpdateMode_UPDATE_MODE_LIST, 6, 0, 3), lfns("1", "2"))
	wantCode(t, "short list", err, codes.InvalidArgument, "header.entries says 3")
	_, err = send(hdr(rlsv1.UpdateMode_UPDATE_MODE_DELTA, 9, 7, 0))
	wantCode(t, "delta on the wrong base", err, codes.FailedPrecondition, "generation 5")
	h := hdr(rlsv1.UpdateMode_UPDATE_MODE_BLOOM, 6, 0, 0)
	h.Bloom = &rlsv1.BloomHeader{Version: 7, M: 1024, K: 7}
	_, err = send(h)
	wantCode(t, "unknown Bloom version", err, codes.InvalidArgument, "bloom.version 7")

	// Locate: "2" is in the list but not in the catalog; verify drops it.
	loc, err := ix.Locate(ctxT(t), &rlsv1.LocateRequest{Lfns: []string{"1", "2", "3"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := loc.GetResults(); len(r[0].GetSites()) != 1 || len(r[1].GetSites()) != 1 || len(r[2].GetSites()) != 0 ||
		r[0].GetSites()[0].GetKnownBy() != rlsv1.Knowledge_KNOWLEDGE_LIST || r[0].GetSites()[0].GetEndpoint() != endpoint {
		t.Fatalf("Locate = %v", loc)
	}
	loc, err = ix.Locate(ctxT(t), &rlsv1.LocateRequest{Lfns: []string{"1", "2"}, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := loc.GetResults(); len(r[0].GetSites()) != 1 || len(r[1].GetSites()) != 0 ||
		r[0].GetSites()[0].GetVerification() != rlsv1.Verification_VERIFICATION_CONFIRMED ||
		len(r[0].GetSites()[0].GetPfns()) != 1 || r[0].GetSites()[0].GetPfns()[0] != "/SUM1/D1" {
		t.Fatalf("verified Locate = %v", loc)
	}
	_, err = ix.Locate(ctxT(t), &rlsv1.LocateRequest{Lfns: []string{""}})
	wantCode(t, "empty LFN", err, codes.InvalidArgument, "lfns[0]")
	_, err = ix.Locate(ctxT(t), &rlsv1.LocateRequest{Lfns: make([]string, 100_001)})
	wantCode(t, "too many LFNs", err, codes.InvalidArgument, "lfns")
	_, err = ix.Locate(ctxT(t), &rlsv1.LocateRequest{Lfns: []string{"1"}, Verify: true, VerifyTimeout: durationpb.New(-time.Second)})
	wantCode(t, "negative verify timeout", err, codes.InvalidArgument, "verify_timeout")

	sites, err := ix.Sites(ctxT(t), &rlsv1.SitesRequest{})
	if err != nil || len(sites.GetSites()) != 1 || sites.GetSites()[0].GetEntries() != 2 {
		t.Fatalf("Sites = %v, %v", sites, err)
	}
	wc, err := ix.QueryWildcard(ctxT(t), &rlsv1.IndexWildcardRequest{Pattern: "*"})
	if err != nil || len(wc.GetMatches()) != 2 {
		t.Fatalf("QueryWildcard = %v, %v", wc, err)
	}
	_, err = ix.QueryWildcard(ctxT(t), &rlsv1.IndexWildcardRequest{Pattern: "a\x00"})
	wantCode(t, "NUL in a pattern", err, codes.InvalidArgument, "NUL")

	reg := prometheus.NewRegistry()
	reg.MustRegister(NewIndexCollector(x))
	if n, err := testutil.GatherAndCount(reg, "rls_index_exact_entries", "rls_index_site_expires_seconds"); err != nil || n != 2 {
		t.Fatalf("index metrics: %d series, %v", n, err)
	}
	const want = `
# HELP rls_index_exact_entries (site, LFN) pairs the index holds exactly (lists and deltas).
# TYPE rls_index_exact_entries gauge
rls_index_exact_entries 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rls_index_exact_entries"); err != nil {
		t.Fatal(err)
	}
}

// TestIndexUpdateLimits checks the limits a peer meets on Index/Update: a
// stream that goes silent (before its header, or between chunks) is cut off
// after the idle timeout, and a new site beyond the index's cap is refused
// with RESOURCE_EXHAUSTED; neither changes what the index holds.
func TestIndexUpdateLimits(t *testing.T) {
	x, err := index.Open(t.TempDir(), &index.Options{Site: "rli", NoSync: true, MaxSites: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	v := &index.Verifier{Dialer: NewIndexDialer(nil)}
	defer v.Close()
	const idle = 100 * time.Millisecond
	e := newTestEnv(t, func(s *Server) {
		rlsv1.RegisterIndexServer(s, NewIndexServer(x, v, &IndexServerOptions{UpdateIdleTimeout: idle}))
	})
	ix := rlsv1.NewIndexClient(e.conn)
	hdr := func(site string, entries uint64) *rlsv1.UpdateRequest {
		return &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Header{Header: &rlsv1.UpdateHeader{
			Site: site, Endpoint: site + ":7600", Mode: rlsv1.UpdateMode_UPDATE_MODE_LIST, Generation: 1,
			Entries: entries, Validity: durationpb.New(time.Hour)}}}
	}
	lfns := func(names ...string) *rlsv1.UpdateRequest {
		return &rlsv1.UpdateRequest{Body: &rlsv1.UpdateRequest_Lfns{Lfns: &rlsv1.LFNChunk{Lfns: names}}}
	}
	// stall sends msgs and then nothing, without closing its side, and
	// returns the status the server ends the stream with. The client's
	// own deadline (ctxT, 10 s) only guards the test against a hang.
	stall := func(msgs ...*rlsv1.UpdateRequest) error {
		st, err := ix.Update(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := st.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		return st.RecvMsg(new(rlsv1.UpdateResponse))
	}
	wantCode(t, "silent stream", stall(), codes.DeadlineExceeded, "nothing received for 100ms")
	wantCode(t, "stalled after a chunk", stall(hdr("nso", 3), lfns("1", "2")), codes.DeadlineExceeded, "nothing received")
	if n := len(x.Sites()); n != 0 {
		t.Fatalf("a stalled update changed the index: %d sites", n)
	}

	send := func(msgs ...*rlsv1.UpdateRequest) error {
		st, err := ix.Update(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := st.Send(m); err != nil {
				break // the server ended the stream; CloseAndRecv has its status
			}
		}
		_, err = st.CloseAndRecv()
		return err
	}
	wantCode(t, "first site", send(hdr("nso", 1), lfns("1")), codes.OK)
	wantCode(t, "a site beyond the cap", send(hdr("sao", 1), lfns("1")), codes.ResourceExhausted, `new site "sao"`)
	wantCode(t, "the site held", send(hdr("nso", 2), lfns("1", "2")), codes.OK)
	if s := x.Sites(); len(s) != 1 || s[0].Site != "nso" || s[0].Entries != 2 {
		t.Fatalf("Sites = %+v", s)
	}
}
