package secure

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CertRequest describes a certificate to make with MakeCA or Issue. Keys
// are ECDSA P-256.
type CertRequest struct {
	// CommonName and Organization make the subject ("CN=nso,O=rls").
	CommonName   string
	Organization string
	// DNSNames, IPs and URIs are subject alternative names.
	DNSNames []string
	IPs      []net.IP
	URIs     []*url.URL
	// Validity is how long the certificate is valid from now (default one
	// year; ten for a CA).
	Validity time.Duration
}

func (r CertRequest) template(isCA bool) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	v := r.Validity
	if v <= 0 {
		v = 365 * 24 * time.Hour
		if isCA {
			v *= 10
		}
	}
	t := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.CommonName},
		NotBefore:    time.Now().Add(-time.Hour), // tolerate clock skew between sites
		NotAfter:     time.Now().Add(v),
		DNSNames:     r.DNSNames,
		IPAddresses:  r.IPs,
		URIs:         r.URIs,
	}
	if r.Organization != "" {
		t.Subject.Organization = []string{r.Organization}
	}
	if isCA {
		t.IsCA, t.BasicConstraintsValid = true, true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		t.KeyUsage = x509.KeyUsageDigitalSignature
		// Sites are servers and, when they call other sites, clients.
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return t, nil
}

// PEM is a certificate and its private key, PEM-encoded.
type PEM struct {
	Cert, Key []byte
}

// MakeCA makes a self-signed CA certificate and key.
func MakeCA(r CertRequest) (PEM, error) {
	if r.CommonName == "" {
		return PEM{}, errors.New("a CA needs a common name")
	}
	t, err := r.template(true)
	if err != nil {
		return PEM{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, t, t, &key.PublicKey, key)
	if err != nil {
		return PEM{}, err
	}
	return encode(der, key)
}

// Issue makes a certificate signed by ca (as made by MakeCA), usable as a
// TLS server and client certificate.
func Issue(ca PEM, r CertRequest) (PEM, error) {
	if r.CommonName == "" && len(r.DNSNames) == 0 && len(r.URIs) == 0 {
		return PEM{}, errors.New("a certificate needs a common name or a subject alternative name")
	}
	caCert, caKey, err := ca.parse()
	if err != nil {
		return PEM{}, fmt.Errorf("CA: %w", err)
	}
	if !caCert.IsCA {
		return PEM{}, errors.New("CA: the certificate is not a CA's")
	}
	t, err := r.template(false)
	if err != nil {
		return PEM{}, err
	}
	if t.NotAfter.After(caCert.NotAfter) {
		t.NotAfter = caCert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, t, caCert, &key.PublicKey, caKey)
	if err != nil {
		return PEM{}, err
	}
	return encode(der, key)
}

func encode(der []byte, key *ecdsa.PrivateKey) (PEM, error) {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return PEM{}, err
	}
	return PEM{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}, nil
}

func (p PEM) parse() (*x509.Certificate, any, error) {
	cb, _ := pem.Decode(p.Cert)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(p.Key)
	if kb == nil {
		return nil, nil, errors.New("no PEM private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		if k, err2 := x509.ParseECPrivateKey(kb.Bytes); err2 == nil {
			return cert, k, nil
		}
		return nil, nil, err
	}
	return cert, key, nil
}

// ReadPEM reads a certificate and its key from files.
func ReadPEM(certFile, keyFile string) (PEM, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return PEM{}, err
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return PEM{}, err
	}
	return PEM{Cert: c, Key: k}, nil
}

// Write writes the certificate to certFile (mode 0644) and the key to
// keyFile (mode 0600), each replaced whole (written to a temporary file
// and renamed), so that a process reloading them never reads half.
func (p PEM) Write(certFile, keyFile string) error {
	if err := writeAtomic(keyFile, p.Key, 0o600); err != nil {
		return err
	}
	return writeAtomic(certFile, p.Cert, 0o644)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// SiteRequest is the request rlsctl cert issue makes for a site or user
// name: subject CN=name,O=org, the DNS SAN name, and the loopback addresses
// 127.0.0.1 and ::1 as IP SANs, so that sites on one machine (tests, the
// demo) verify each other by the addresses they dial.
func SiteRequest(name, org string) CertRequest {
	return CertRequest{
		CommonName: name, Organization: org,
		DNSNames: []string{name},
		IPs:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
}
