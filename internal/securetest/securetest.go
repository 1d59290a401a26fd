// Package securetest makes CAs and certificates on disk for tests of
// mutual TLS.
package securetest

import (
	"path/filepath"
	"testing"

	"github.com/solar-archive/rls/internal/secure"
)

// PKI is a CA whose files are in Dir.
type PKI struct {
	Dir    string
	CA     secure.PEM
	CAFile string
}

// New makes a CA named name (its files DIR/name-ca.pem and key) in a
// temporary directory of t.
func New(t testing.TB, name string) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir()}
	var err error
	if p.CA, err = secure.MakeCA(secure.CertRequest{CommonName: name, Organization: "rls"}); err != nil {
		t.Fatal(err)
	}
	p.CAFile = filepath.Join(p.Dir, name+"-ca.pem")
	if err := p.CA.Write(p.CAFile, filepath.Join(p.Dir, name+"-ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue makes a certificate for name as rlsctl cert issue does (subject
// CN=name,O=rls, DNS name, loopback IPs) and returns the files of it with
// the CA's, ready for secure.Load.
func (p *PKI) Issue(t testing.TB, name string) secure.Files {
	t.Helper()
	c, err := secure.Issue(p.CA, secure.SiteRequest(name, "rls"))
	if err != nil {
		t.Fatal(err)
	}
	f := secure.Files{Cert: filepath.Join(p.Dir, name+".pem"), Key: filepath.Join(p.Dir, name+"-key.pem"), CA: p.CAFile}
	if err := c.Write(f.Cert, f.Key); err != nil {
		t.Fatal(err)
	}
	return f
}

// Dialer returns a Dialer presenting f.
func Dialer(t testing.TB, f secure.Files) *secure.Dialer {
	t.Helper()
	st, err := secure.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return secure.NewDialer(st)
}
