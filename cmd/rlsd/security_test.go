package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/solar-archive/rls/api"
	"github.com/solar-archive/rls/api/rlsv1"
	"github.com/solar-archive/rls/index"
	"github.com/solar-archive/rls/internal/rlsdtest"
	"github.com/solar-archive/rls/internal/secure"
	"github.com/solar-archive/rls/internal/securetest"
)

// mtlsSite is a running rlsd serving mutual TLS, with the PKI of its test.
type mtlsSite struct {
	p      *rlsdtest.Proc
	pki    *securetest.PKI
	config string // the configuration file, rewritten to test reloads
	unit   string // a storage unit under the export root, holding file "a"
}

// startMTLS starts an rlsd (roles lrc, rli, transfer) named jsoc with TLS
// and client certificates required, and the configuration file yaml (its
// acl: and other keys).
func startMTLS(t *testing.T, yaml string) *mtlsSite {
	t.Helper()
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	pki := securetest.New(t, "test")
	srv := pki.Issue(t, "jsoc")
	admin := pki.Issue(t, "admin")
	root := t.TempDir()
	unit := filepath.Join(root, "D1")
	if err := os.Mkdir(unit, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unit, "a"), []byte("sunum bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "rlsd.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := rlsdtest.StartDialer(t, rlsd, "rls.v1.Catalog", securetest.Dialer(t, admin),
		"--site", "jsoc", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--roles", "lrc,rli,transfer", "--export-root", root, "--no-sync", "--config", cfg,
		"--tls-cert", srv.Cert, "--tls-key", srv.Key, "--tls-client-ca", srv.CA)
	return &mtlsSite{p: p, pki: pki, config: cfg, unit: unit}
}

func catalogClient(t *testing.T, d *secure.Dialer, addr string) rlsv1.CatalogClient {
	t.Helper()
	cc, err := d.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return rlsv1.NewCatalogClient(cc)
}

func create(cl rlsv1.CatalogClient, lfn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := cl.Create(ctx, &rlsv1.MappingRequest{Lfn: lfn, Pfn: "/SUM1/D" + lfn})
	return err
}

// httpGet fetches path from the site's HTTP listener as the identity of f
// (zero: no client certificate) and returns the status code.
func (s *mtlsSite) httpGet(t *testing.T, f secure.Files, path string) int {
	t.Helper()
	st, err := secure.Load(secure.Files{Cert: f.Cert, Key: f.Key, CA: s.pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: st.HTTPClientConfig()}, Timeout: 20 * time.Second}
	resp, err := c.Get("https://" + s.p.HTTPAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

const readerACL = `
acl:
  - identity: "CN=reader,O=rls"
    permissions: [lrc_read, rli_read]
  - identity: "CN=admin,O=rls"
    permissions: [all]
  - identity: "nso"          # a DNS SAN
    permissions: [rli_update]
  - identity: "CN=mid,O=rls"
    permissions: [rli_update]
    speak_for: "leaf-.*"
`

func TestMutualTLS(t *testing.T) {
	s := startMTLS(t, readerACL)
	admin := securetest.Dialer(t, s.pki.Issue(t, "admin"))
	if err := create(catalogClient(t, admin, s.p.Addr), "1"); err != nil {
		t.Fatalf("admin Create: %v", err)
	}
	other := securetest.New(t, "other")
	for name, d := range map[string]*secure.Dialer{
		"no client certificate":               securetest.Dialer(t, secure.Files{CA: s.pki.CAFile}),
		"a certificate from another CA":       securetest.Dialer(t, secure.Files{Cert: other.Issue(t, "admin").Cert, Key: filepath.Join(other.Dir, "admin-key.pem"), CA: s.pki.CAFile}),
		"plaintext":                           nil,
		"a client that does not trust the CA": securetest.Dialer(t, other.Issue(t, "admin")),
	} {
		err := create(catalogClient(t, d, s.p.Addr), "2")
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("%s: Create = %v, want UNAVAILABLE (handshake refused)", name, err)
		}
	}
	// HTTP: a certificate from another CA fails the handshake.
	st, _ := secure.Load(secure.Files{Cert: other.Issue(t, "x").Cert, Key: filepath.Join(other.Dir, "x-key.pem"), CA: s.pki.CAFile})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: st.HTTPClientConfig()}, Timeout: 20 * time.Second}
	if resp, err := c.Get("https://" + s.p.HTTPAddr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /metrics with another CA's certificate: %s, want a handshake error", resp.Status)
	}
}

func TestReadOnlyIdentity(t *testing.T) {
	s := startMTLS(t, readerACL)
	reader := s.pki.Issue(t, "reader")
	admin := s.pki.Issue(t, "admin")
	rc := catalogClient(t, securetest.Dialer(t, reader), s.p.Addr)
	from := s.p.LogLen()
	if err := create(rc, "1"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("reader Create = %v, want PERMISSION_DENIED", err)
	}
	line := s.p.WaitLog(t, from, regexp.MustCompile(`permission denied`), 20*time.Second)
	for _, want := range []string{"CN=reader,O=rls", "/rls.v1.Catalog/Create", "acl[0]"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q does not name %q", line, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := rc.QueryLFN(ctx, &rlsv1.NameRequest{Name: "1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("reader QueryLFN = %v, want NOT_FOUND (allowed, nothing there)", err)
	}
	// HTTP: the transfer routes and /metrics are refused to the reader,
	// served to admin; /healthz is open even without a certificate.
	q := "?pfn=" + url.QueryEscape(s.unit)
	for _, c := range []struct {
		who  secure.Files
		path string
		want int
	}{
		{reader, "/v1/transfer/manifest" + q, http.StatusForbidden},
		{reader, "/v1/transfer/file" + q + "&path=a", http.StatusForbidden},
		{reader, "/metrics", http.StatusForbidden},
		{secure.Files{}, "/v1/transfer/manifest" + q, http.StatusForbidden},
		{admin, "/v1/transfer/manifest" + q, http.StatusOK},
		{admin, "/v1/transfer/file" + q + "&path=a", http.StatusOK},
		{admin, "/metrics", http.StatusOK},
		{secure.Files{}, "/healthz", http.StatusOK},
	} {
		if got := s.httpGet(t, c.who, c.path); got != c.want {
			t.Errorf("GET %s as %s: %d, want %d", c.path, filepath.Base(c.who.Cert), got, c.want)
		}
	}
}

func indexClient(t *testing.T, d *secure.Dialer, addr string) rlsv1.IndexClient {
	t.Helper()
	cc, err := d.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return rlsv1.NewIndexClient(cc)
}

func sendList(cl rlsv1.IndexClient, site string, gen uint64, inc []byte, via []string, lfns ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := index.Header{Site: site, Endpoint: "127.0.0.1:1", Mode: index.ModeList, Generation: gen, Validity: time.Hour,
		Entries: uint64(len(lfns)), Incarnation: inc, Via: via}
	_, err := api.NewIndexSink(cl).Send(ctx, index.ListUpdate(h, slices.Values(lfns)))
	return err
}

func TestSpeakForAndReplay(t *testing.T) {
	s := startMTLS(t, readerACL)
	nso := indexClient(t, securetest.Dialer(t, s.pki.Issue(t, "nso")), s.p.Addr)
	mid := indexClient(t, securetest.Dialer(t, s.pki.Issue(t, "mid")), s.p.Addr)
	reader := indexClient(t, securetest.Dialer(t, s.pki.Issue(t, "reader")), s.p.Addr)
	inc := []byte("0123456789abcdef")
	for _, c := range []struct {
		name string
		cl   rlsv1.IndexClient
		site string
		gen  uint64
		via  []string
		want codes.Code
	}{
		{"nso for itself", nso, "nso", 5, nil, codes.OK},
		{"nso in jsoc's name", nso, "jsoc", 9, nil, codes.PermissionDenied},
		{"a reader for itself", reader, "reader", 1, nil, codes.PermissionDenied},
		{"nso replays an older update", nso, "nso", 4, nil, codes.FailedPrecondition},
		{"nso refreshes the same generation", nso, "nso", 5, nil, codes.OK},
		{"mid forwards a leaf site", mid, "leaf-1", 3, []string{"mid"}, codes.OK},
		{"mid forwards nso", mid, "nso", 6, []string{"mid"}, codes.PermissionDenied},
	} {
		err := sendList(c.cl, c.site, c.gen, inc, c.via, "lfn-"+c.site)
		if status.Code(err) != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if c.want == codes.FailedPrecondition && !strings.Contains(status.Convert(err).Message(), "replay") {
			t.Errorf("%s: %v does not say replay", c.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := reader.Locate(ctx, &rlsv1.LocateRequest{Lfns: []string{"lfn-nso", "lfn-jsoc", "lfn-leaf-1"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range resp.GetResults() {
		got = append(got, len(r.GetSites()))
	}
	if !slices.Equal(got, []int{1, 0, 1}) {
		t.Fatalf("sites per LFN %v, want [1 0 1]", got)
	}
}

func TestSIGHUPReloadsACL(t *testing.T) {
	s := startMTLS(t, `
acl:
  - identity: "CN=user,O=rls"
    permissions: [lrc_read]
  - identity: "CN=admin,O=rls"
    permissions: [all]
`)
	user := catalogClient(t, securetest.Dialer(t, s.pki.Issue(t, "user")), s.p.Addr)
	if err := create(user, "1"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("before reload: Create = %v, want PERMISSION_DENIED", err)
	}
	reload := func(yaml string, want *regexp.Regexp) {
		t.Helper()
		if err := os.WriteFile(s.config, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		from := s.p.LogLen()
		if err := s.p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		s.p.WaitLog(t, from, want, 20*time.Second)
	}
	reloaded := regexp.MustCompile(`config reloaded`)
	reload(`
acl:
  - identity: "CN=user,O=rls"
    permissions: [lrc_read, lrc_update]
`, reloaded)
	// The same connection, now allowed: nothing was redialed or restarted.
	if err := create(user, "1"); err != nil {
		t.Fatalf("after reload: Create = %v", err)
	}
	// A bad configuration is refused, and the running one stays.
	refused := regexp.MustCompile(`config reload refused.*(acl\[0\].*unknown permission "lrc_write"|lrc_write)`)
	reload(`
acl:
  - identity: "CN=user,O=rls"
    permissions: [lrc_write]
`, refused)
	if err := create(user, "2"); err != nil {
		t.Fatalf("after a refused reload: Create = %v, want the old ACL", err)
	}
	reload("acl: [{identity: \"(\", permissions: [all]}]\n", regexp.MustCompile(`config reload refused.*identity`))
	reload("acl: 3\n", regexp.MustCompile(`config reload refused`))
	if err := create(user, "3"); err != nil {
		t.Fatalf("after refused reloads: Create = %v, want the old ACL", err)
	}
	if s.p.Stop(20*time.Second) != 0 {
		t.Fatalf("rlsd did not stop cleanly:\n%s", s.p.Log())
	}
}

// Without TLS and without an ACL, rlsd serves loopback callers only: the
// same daemon, listening on every interface, refuses a call that comes in
// on another of the machine's addresses.
func TestDefaultLoopbackOnly(t *testing.T) {
	ip := nonLoopbackIP(t)
	rlsd := rlsdtest.Build(t, "github.com/solar-archive/rls/cmd/rlsd")
	p := rlsdtest.Start(t, rlsd, "rls.v1.Catalog", "--site", "jsoc", "--data", t.TempDir(), "--listen", "0.0.0.0:0", "--no-sync")
	_, port, _ := net.SplitHostPort(p.Addr)
	if err := create(catalogClient(t, nil, "127.0.0.1:"+port), "1"); err != nil {
		t.Fatalf("from loopback: %v", err)
	}
	err := create(catalogClient(t, nil, net.JoinHostPort(ip.String(), port)), "2")
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("from %s: %v, want PERMISSION_DENIED", ip, err)
	}
}

// nonLoopbackIP returns an address of this machine that is not loopback,
// or skips the test.
func nonLoopbackIP(t *testing.T) net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Skip("no non-loopback IPv4 address on this machine")
	return nil
}

func TestConfigSecurity(t *testing.T) {
	pki := securetest.New(t, "test")
	f := pki.Issue(t, "jsoc")
	file := writeFile(t, `
site: jsoc
data: /d
tls-key: `+f.Key+`
acl:
  - identity: "CN=nso,O=rls"
    permissions: [rli_update]
    speak_for: "nso-.*"
`)
	c, err := resolveArgs([]string{"--config", file, "--tls-client-ca", f.CA}, map[string]string{"RLSD_TLS_CERT": f.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if c.tlsFiles() != f || len(c.ACL) != 1 || c.ACL[0].SpeakFor != "nso-.*" {
		t.Fatalf("resolved %+v, ACL %+v", c.tlsFiles(), c.ACL)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", f.Cert}, "tls-cert and tls-key go together"},
		{[]string{"--tls-cert", f.Cert, "--tls-key", f.Cert}, "tls:"},
		{[]string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-client-ca", f.Key}, "no PEM certificate"},
	} {
		_, err := resolveArgs(append([]string{"--site", "s", "--data", "/d"}, tc.args...), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	bad := writeFile(t, "site: s\ndata: /d\nacl: [{identity: x, permissions: [write]}]\n")
	if _, err := resolveArgs([]string{"--config", bad}, nil); err == nil || !strings.Contains(err.Error(), `acl[0]`) {
		t.Errorf("bad acl: %v", err)
	}
}
