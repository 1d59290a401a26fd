package secure_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/secure"
)

func policy(t *testing.T, rules []secure.Rule, mtls bool) *secure.Policy {
	t.Helper()
	p, err := secure.NewPolicy(rules, mtls)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func remote(ip string) secure.Peer {
	return secure.Peer{Addr: ip + ":4000", Loopback: net.ParseIP(ip).IsLoopback()}
}

// Without TLS and without ACLs, only loopback callers get in, over gRPC
// (unary and streams) and HTTP alike.
func TestDefaultIsLoopbackOnly(t *testing.T) {
	var logs bytes.Buffer
	a := secure.NewAuthorizer(policy(t, nil, false), slog.New(slog.NewTextHandler(&logs, nil)))
	unary := a.UnaryInterceptor()
	stream := a.StreamInterceptor()
	call := func(ip string) (unaryErr, streamErr error) {
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}})
		_, unaryErr = unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: rlsv1.Catalog_BulkWrite_FullMethodName},
			func(context.Context, any) (any, error) { return nil, nil })
		streamErr = stream(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: rlsv1.Index_Update_FullMethodName},
			func(any, grpc.ServerStream) error { return nil })
		return
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		if u, s := call(ip); u != nil || s != nil {
			t.Errorf("from %s: %v, %v; want allowed", ip, u, s)
		}
	}
	for _, ip := range []string{"192.0.2.7", "2001:db8::1"} {
		u, s := call(ip)
		if status.Code(u) != codes.PermissionDenied || status.Code(s) != codes.PermissionDenied {
			t.Errorf("from %s: %v, %v; want PERMISSION_DENIED", ip, u, s)
		}
	}
	if !strings.Contains(logs.String(), "identity=anonymous") || !strings.Contains(logs.String(), "BulkWrite") {
		t.Errorf("log does not name the identity and method:\n%s", logs.String())
	}

	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	for _, c := range []struct {
		addr, path string
		want       int
	}{
		{"127.0.0.1:5", "/v1/transfer/file", 200},
		{"192.0.2.7:5", "/v1/transfer/file", 403},
		{"192.0.2.7:5", "/metrics", 403},
		{"192.0.2.7:5", "/", 403},
		{"192.0.2.7:5", "/healthz", 200},
	} {
		r := httptest.NewRequest("GET", c.path, nil)
		r.RemoteAddr = c.addr
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("GET %s from %s: %d, want %d", c.path, c.addr, w.Code, c.want)
		}
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func TestRules(t *testing.T) {
	p := policy(t, []secure.Rule{
		{Identity: "CN=ro,O=rls", Permissions: []secure.Permission{secure.LRCRead}},
		{Identity: "spiffe://rls/site/.*", Permissions: []secure.Permission{secure.RLIUpdate}, SpeakFor: "leaf-.*"},
		{Identity: "CN=.*,O=rls", Permissions: []secure.Permission{secure.All}},
		{Identity: "anonymous", Permissions: []secure.Permission{"none"}},
	}, true)
	a := secure.NewAuthorizer(p, slog.New(slog.DiscardHandler))
	ro := secure.Peer{Subject: "CN=ro,O=rls", CommonName: "ro"}
	nso := secure.Peer{Subject: "CN=nso,O=rls", CommonName: "nso", DNSNames: []string{"nso.example"}}
	uri := secure.Peer{Subject: "CN=mid,O=other", CommonName: "mid", URIs: []string{"spiffe://rls/site/mid"}}
	for _, c := range []struct {
		who    secure.Peer
		method string
		ok     bool
	}{
		{ro, rlsv1.Catalog_QueryLFN_FullMethodName, true},
		{ro, rlsv1.Catalog_Create_FullMethodName, false}, // first match wins, not the catch-all below
		{nso, rlsv1.Catalog_Create_FullMethodName, true},
		{nso, "/rls.v1.Mirror/Enqueue", true},
		{uri, rlsv1.Index_Update_FullMethodName, true},
		{uri, rlsv1.Index_Locate_FullMethodName, false},
		{remote("127.0.0.1"), rlsv1.Catalog_QueryLFN_FullMethodName, false}, // rules given: no loopback default
		{remote("127.0.0.1"), "/grpc.health.v1.Health/Check", true},
		{nso, "/rls.v1.Unknown/Call", false},
		{secure.Peer{Subject: "CN=ro,O=rls-evil", CommonName: "ro"}, rlsv1.Catalog_QueryLFN_FullMethodName, false}, // patterns are anchored
		{secure.Peer{Subject: "CN=x,O=rls"}, rlsv1.Catalog_QueryLFN_FullMethodName, true},                          // the catch-all
	} {
		err := a.AllowMethod(c.who, c.method)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, secure.ErrDenied) {
			t.Errorf("%s calling %s: %v, want allowed %v", c.who, c.method, err, c.ok)
		}
	}
	for _, c := range []struct {
		who  secure.Peer
		site string
		ok   bool
	}{
		{nso, "nso", true},
		{nso, "nso.example", true}, // a DNS SAN
		{nso, "jsoc", false},
		{uri, "leaf-3", true}, // speak_for
		{uri, "mid", true},    // its CN
		{uri, "jsoc", false},
		{ro, "ro", false}, // no rli_update
	} {
		if err := a.SpeakFor(c.who, c.site); (err == nil) != c.ok {
			t.Errorf("%s speaking for %s: %v, want allowed %v", c.who, c.site, err, c.ok)
		}
	}
	// The mutual-TLS default: any verified identity, for its own name only.
	a.SetPolicy(policy(t, nil, true))
	if err := a.AllowMethod(nso, rlsv1.Catalog_Create_FullMethodName); err != nil {
		t.Error(err)
	}
	if err := a.AllowMethod(remote("127.0.0.1"), rlsv1.Catalog_QueryLFN_FullMethodName); err == nil {
		t.Error("mutual TLS default: an anonymous loopback caller is allowed")
	}
	if a.SpeakFor(nso, "nso") != nil || a.SpeakFor(nso, "jsoc") == nil {
		t.Error("mutual TLS default: speak-for is not the identity's own name")
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, c := range []struct {
		rule secure.Rule
		want string
	}{
		{secure.Rule{Permissions: []secure.Permission{secure.All}}, "missing identity"},
		{secure.Rule{Identity: "(", Permissions: []secure.Permission{secure.All}}, "identity"},
		{secure.Rule{Identity: "x"}, "no permissions"},
		{secure.Rule{Identity: "x", Permissions: []secure.Permission{"lrc_write"}}, `unknown permission "lrc_write"`},
		{secure.Rule{Identity: "x", Permissions: []secure.Permission{secure.All}, SpeakFor: "["}, "speak_for"},
	} {
		_, err := secure.NewPolicy([]secure.Rule{{Identity: "ok", Permissions: []secure.Permission{secure.All}}, c.rule}, true)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "acl[1]") {
			t.Errorf("%+v: %v, want an error naming acl[1] and %q", c.rule, err, c.want)
		}
	}
}

// Refusals of one identity and method are logged once a minute, with the
// count of those left out.
func TestDenialLogIsRateLimited(t *testing.T) {
	var logs bytes.Buffer
	a := secure.NewAuthorizer(policy(t, nil, true), slog.New(slog.NewTextHandler(&logs, nil)))
	for range 100 {
		_ = a.AllowMethod(remote("192.0.2.1"), rlsv1.Catalog_Create_FullMethodName)
	}
	_ = a.AllowMethod(remote("192.0.2.1"), rlsv1.Catalog_Delete_FullMethodName)
	if n := strings.Count(logs.String(), "permission denied"); n != 2 {
		t.Fatalf("%d log lines for 101 refusals of 2 methods, want 2:\n%s", n, logs.String())
	}
}
