package api

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/internal/secure"
	"github.com/solar-archive/rls/internal/securetest"
)

// Every method the server serves has a permission in the one table (or is
// open), so that none is refused by mistake, or served unchecked.
func TestEveryMethodHasAPermission(t *testing.T) {
	s, err := NewServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rlsv1.RegisterCatalogServer(s, rlsv1.UnimplementedCatalogServer{})
	rlsv1.RegisterIndexServer(s, rlsv1.UnimplementedIndexServer{})
	rlsv1.RegisterTransferServer(s, rlsv1.UnimplementedTransferServer{})
	rlsv1.RegisterAdminServer(s, rlsv1.UnimplementedAdminServer{})
	n := 0
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if _, _, ok := secure.MethodPermission(full); !ok {
				t.Errorf("%s has no permission in secure's method table", full)
			}
			n++
		}
	}
	if n < 30 {
		t.Fatalf("only %d methods registered", n)
	}
}

// A server's certificate is replaced by Store.Reload without a restart:
// a connection made before keeps working, a new one sees the new
// certificate.
func TestCertificateReload(t *testing.T) {
	pki := securetest.New(t, "test")
	a := pki.Issue(t, "jsoc")
	st, err := secure.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerOptions{TLS: st})
	if err != nil {
		t.Fatal(err)
	}
	rlsv1.RegisterAdminServer(s, NewAdminServer(AdminInfo{Site: "jsoc", Started: time.Now()}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })

	client := securetest.Dialer(t, pki.Issue(t, "admin"))
	ping := func(cc *grpc.ClientConn) string {
		t.Helper()
		var p peer.Peer
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := rlsv1.NewAdminClient(cc).Ping(ctx, &rlsv1.PingRequest{}, grpc.Peer(&p)); err != nil {
			t.Fatal(err)
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].Subject.CommonName
	}
	dial := func() *grpc.ClientConn {
		cc, err := client.Dial(lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	old := dial()
	if cn := ping(old); cn != "jsoc" {
		t.Fatalf("server certificate CN %q, want jsoc", cn)
	}
	// Rotate: the same file names get another certificate (here, another
	// CN, to tell them apart).
	b := pki.Issue(t, "jsoc-renewed")
	for _, f := range [][2]string{{b.Cert, a.Cert}, {b.Key, a.Key}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Reload(a); err != nil {
		t.Fatal(err)
	}
	if cn := ping(dial()); cn != "jsoc-renewed" {
		t.Fatalf("after reload, a new connection sees CN %q, want jsoc-renewed", cn)
	}
	if cn := ping(old); cn != "jsoc" {
		t.Fatalf("the connection made before the reload now sees %q: it was redialed", cn)
	}
	// A reload that cannot load keeps the current material.
	if err := st.Reload(secure.Files{Cert: a.Cert, Key: b.Cert, CA: a.CA}); err == nil {
		t.Fatal("Reload with a certificate as key succeeded")
	}
	if cn := ping(dial()); cn != "jsoc-renewed" {
		t.Fatalf("after a failed reload, CN %q", cn)
	}
}
