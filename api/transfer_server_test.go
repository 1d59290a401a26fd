package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/transfer"
	"github.com/solar-archive/rls/transfer/peertest"
)

// transferEnv serves a Source of a unit D1 (sub/f, 3 MiB) over a real
// gRPC server on loopback.
func transferEnv(t *testing.T) (root string, src *transfer.Source, c *TransferClient) {
	t.Helper()
	root = t.TempDir()
	unit := filepath.Join(root, "D1", "sub")
	if err := os.MkdirAll(unit, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unit, "f"), bytes.Repeat([]byte("x"), 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	src, c = serveTransfer(t, root)
	return root, src, c
}

// serveTransfer serves a Source of root over a real gRPC server on
// loopback, and dials it.
func serveTransfer(t *testing.T, root string) (*transfer.Source, *TransferClient) {
	t.Helper()
	src, err := transfer.NewSource([]string{root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	srv, err := NewServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rlsv1.RegisterTransferServer(srv, NewTransferServer(src))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c, err := DialTransfer(lis.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return src, c
}

// TestTransferClientPeer: the gRPC client, against a real server, passes
// the same Peer conformance suite as a Source in the process.
func TestTransferClientPeer(t *testing.T) {
	peertest.Run(t, func(t *testing.T, root string) transfer.Peer {
		_, c := serveTransfer(t, root)
		return c
	})
}

// TestTransferService: what the Peer conformance suite cannot send, since
// the client never does: malformed requests, straight on the wire, are
// INVALID_ARGUMENT.
func TestTransferService(t *testing.T) {
	root, _, c := transferEnv(t)
	ctx := context.Background()
	pfn := filepath.Join(root, "D1")
	// Malformed requests, straight on the wire.
	raw := rlsv1.NewTransferClient(c.cc)
	for _, req := range []*rlsv1.ReadRequest{
		{},
		{Ranges: []*rlsv1.FileRange{{Pfn: pfn, Path: "sub/f", Length: 1, Sha256: []byte{1, 2}}}},
		// An all-zero digest: no file has it, and the source took it for
		// "no digest asked for".
		{Ranges: []*rlsv1.FileRange{{Pfn: pfn, Path: "sub/f", Length: 1, Sha256: make([]byte, 32)}}},
	} {
		stream, err := raw.Read(ctx, req)
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("read %v: %v, want INVALID_ARGUMENT", req, err)
		}
	}
}

func TestManifestFromProto(t *testing.T) {
	sha := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name    string
		entries []*rlsv1.ManifestEntry
		want    error
	}{
		{"ok", []*rlsv1.ManifestEntry{{Path: "d", Dir: true}, {Path: "d/f", Size: 1, Sha256: sha}}, nil},
		{"short digest", []*rlsv1.ManifestEntry{{Path: "f", Sha256: sha[:5]}}, transfer.ErrInvalid},
		{"file without digest", []*rlsv1.ManifestEntry{{Path: "f"}}, transfer.ErrInvalid},
		{"escape", []*rlsv1.ManifestEntry{{Path: "../f", Sha256: sha}}, transfer.ErrRefused},
		{"absolute", []*rlsv1.ManifestEntry{{Path: "/f", Sha256: sha}}, transfer.ErrRefused},
		{"duplicate", []*rlsv1.ManifestEntry{{Path: "f", Sha256: sha}, {Path: "f", Sha256: sha}}, transfer.ErrInvalid},
		{"orphan", []*rlsv1.ManifestEntry{{Path: "d/f", Sha256: sha}}, transfer.ErrInvalid},
		{"huge", []*rlsv1.ManifestEntry{{Path: "f", Size: 1 << 63, Sha256: sha}}, transfer.ErrInvalid},
	} {
		_, err := ManifestFromProto(&rlsv1.UnitManifest{Pfn: "/x/D1", Entries: tc.entries})
		if (tc.want == nil) != (err == nil) || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestTransferFastManifest(t *testing.T) {
	root, src, c := transferEnv(t)
	ctx := context.Background()
	pfn := filepath.Join(root, "D1")
	fast, err := c.FastManifest(ctx, pfn)
	if err != nil {
		t.Fatal(err)
	}
	f := fast.Entries[1]
	if len(fast.Entries) != 2 || f.Path != "sub/f" || !f.SHA256.IsZero() || f.Version == "" {
		t.Fatalf("fast listing over gRPC %+v", fast)
	}
	// The full manifest has the digest of the version listed.
	m, err := c.Manifest(ctx, pfn)
	if err != nil {
		t.Fatal(err)
	}
	if e := m.Entries[1]; e.Version != f.Version || e.SHA256.IsZero() {
		t.Errorf("manifest entry %+v after the fast listing %+v", e, f)
	}
	if st := src.Stats(); st.FilesHashed != 1 {
		t.Errorf("hashed %d files, want the one file once", st.FilesHashed)
	}
	// ManifestFromProto (the manifest-first path) still insists on digests.
	pm, err := rlsv1.NewTransferClient(c.cc).Manifest(ctx, &rlsv1.ManifestRequest{Pfn: pfn, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ManifestFromProto(pm); !errors.Is(err, transfer.ErrInvalid) {
		t.Errorf("ManifestFromProto of a fast listing: %v, want ErrInvalid", err)
	}
	// And over HTTP: ?fast=true.
	mux := http.NewServeMux()
	NewTransferHTTPHandler(mux, src, slog.Default())
	for q, want := range map[string]int{"&fast=true": http.StatusOK, "&fast=maybe": http.StatusBadRequest} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/transfer/manifest?pfn="+url.QueryEscape(pfn)+q, nil))
		if rec.Code != want {
			t.Errorf("GET manifest%s: %d %s, want %d", q, rec.Code, rec.Body, want)
		}
		if want == http.StatusOK && (strings.Contains(rec.Body.String(), "sha256") || !strings.Contains(rec.Body.String(), `"version"`)) {
			t.Errorf("fast manifest over HTTP:\n%s", rec.Body)
		}
	}
}

// TestTransferLongNames: a PFN or path with a component longer than
// NAME_MAX is INVALID_ARGUMENT (HTTP 400) naming the limit, and the
// error quotes only the start of a huge one.
func TestTransferLongNames(t *testing.T) {
	root, src, c := transferEnv(t)
	ctx := context.Background()
	raw := rlsv1.NewTransferClient(c.cc)
	long := filepath.Join(root, strings.Repeat("D", 300))
	huge := filepath.Join(root, strings.Repeat("D", 1<<20))
	for _, pfn := range []string{long, huge, filepath.Join(root, "D1", strings.Repeat("x", 256), "y")} {
		_, err := raw.Manifest(ctx, &rlsv1.ManifestRequest{Pfn: pfn})
		if s := status.Convert(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), "_MAX") || len(s.Message()) > 512 {
			t.Errorf("Manifest of a PFN of %d bytes: %v, %d-byte message %.600q; want INVALID_ARGUMENT naming NAME_MAX or PATH_MAX in at most 512 bytes",
				len(pfn), s.Code(), len(s.Message()), s.Message())
		}
	}
	stream, err := raw.Read(ctx, &rlsv1.ReadRequest{Ranges: []*rlsv1.FileRange{{Pfn: filepath.Join(root, "D1"), Path: "sub/" + strings.Repeat("f", 1<<20), Length: 1}}})
	if err == nil {
		_, err = stream.Recv()
	}
	if s := status.Convert(err); s.Code() != codes.InvalidArgument || !strings.Contains(s.Message(), "PATH_MAX") || len(s.Message()) > 512 {
		t.Errorf("Read of a path of 1 MiB: %v, %d-byte message; want INVALID_ARGUMENT naming PATH_MAX in at most 512 bytes", s.Code(), len(s.Message()))
	}

	mux := http.NewServeMux()
	NewTransferHTTPHandler(mux, src, slog.Default())
	for _, pfn := range []string{long, huge} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/transfer/manifest?pfn="+url.QueryEscape(pfn), nil))
		if rec.Code != http.StatusBadRequest || rec.Body.Len() > 512 {
			t.Errorf("GET manifest of a PFN of %d bytes: %d, %d-byte body; want 400 in at most 512 bytes", len(pfn), rec.Code, rec.Body.Len())
		}
	}
}

// TestTransferHTTPZeroDigest: as over gRPC, an all-zero sha256 on the file
// route is refused, not taken for "no digest".
func TestTransferHTTPZeroDigest(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "D1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "D1", "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := transfer.NewSource([]string{root}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mux := http.NewServeMux()
	NewTransferHTTPHandler(mux, src, slog.Default())
	get := func(query string) int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/transfer/file?pfn="+url.QueryEscape(filepath.Join(root, "D1"))+"&path=f"+query, nil))
		return rec.Code
	}
	if code := get(""); code != http.StatusOK {
		t.Fatalf("GET without a digest: %d", code)
	}
	if code := get("&sha256=" + strings.Repeat("0", 64)); code != http.StatusBadRequest {
		t.Errorf("GET with a zero digest: %d, want 400", code)
	}
}
