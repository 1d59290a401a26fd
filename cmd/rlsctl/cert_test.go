package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/solar-archive/rls/internal/secure"
)

func TestCertCommands(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "", "cert", "ca", "--dir", dir); code != 0 {
		t.Fatalf("cert ca: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "", "-o", "json", "cert", "issue", "nso", "--dir", dir, "--dns", "nso.example")
	if code != 0 {
		t.Fatalf("cert issue: exit %d: %s", code, stderr)
	}
	var r certResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if r.Subject != "CN=nso,O=rls" || !slices.Equal(r.DNSNames, []string{"nso", "nso.example"}) || !slices.Equal(r.IPs, []string{"127.0.0.1", "::1"}) {
		t.Fatalf("issued %+v", r)
	}
	// The certificate verifies against the CA, as a client and as a server
	// for 127.0.0.1, and its key is private.
	b, err := os.ReadFile(r.Cert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for %v: %v", usage, err)
		}
	}
	if fi, err := os.Stat(r.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if _, err := secure.Load(secure.Files{Cert: r.Cert, Key: r.Key, CA: filepath.Join(dir, "ca.pem")}); err != nil {
		t.Errorf("the files do not load: %v", err)
	}
	// Without a CA, issue is a usage error.
	if code, _, _ := runCLI(t, "", "cert", "issue", "x", "--dir", t.TempDir()); code != 2 {
		t.Errorf("issue without a CA: exit %d, want 2", code)
	}
}
