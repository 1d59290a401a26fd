// Package secure is rls's one seam for security: the TLS material a process
// presents and trusts (Store, reloadable), the Dialer that every outgoing
// gRPC call goes through, and the Authorizer that every incoming call, gRPC
// or HTTP, is checked by (identities from client certificates, permissions
// from ordered ACL rules, and which sites an identity may speak for).
//
// Everything here is safe for concurrent use, and everything that can
// change at run time (certificates, trusted CAs, ACL rules) is swapped
// atomically, so that a reload applies to the next handshake or call
// without dropping connections or calls in flight.
package secure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
)

// Files names the PEM files of a TLS identity: a certificate (chain) and
// its private key, and the CA certificates to trust for the other side. The
// zero value means no TLS.
type Files struct {
	Cert string // certificate chain, leaf first
	Key  string // the certificate's private key
	// CA holds the CA certificates that sign the peers: on a server, the
	// client certificates it accepts (mutual TLS); on a client, the server
	// certificates it trusts (default: the system's roots).
	CA string
}

// Enabled reports whether any file is set, that is whether TLS is wanted.
func (f Files) Enabled() bool { return f != Files{} }

// material is one loaded set of Files.
type material struct {
	files Files
	cert  *tls.Certificate // nil: none
	cas   *x509.CertPool   // nil: none given
	// leaf is cert's parsed leaf, for identity and expiry messages.
	leaf *x509.Certificate
}

func load(f Files) (*material, error) {
	m := &material{files: f}
	switch {
	case f.Cert != "" && f.Key != "":
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("certificate %s, key %s: %w", f.Cert, f.Key, err)
		}
		m.cert, m.leaf = &c, c.Leaf
	case f.Cert != "":
		return nil, fmt.Errorf("certificate %s given without its key", f.Cert)
	case f.Key != "":
		return nil, fmt.Errorf("key %s given without its certificate", f.Key)
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		m.cas = x509.NewCertPool()
		if !m.cas.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", f.CA)
		}
	}
	return m, nil
}

// Store holds the TLS material of a process, loaded from Files, and makes
// TLS configurations that read it at each handshake, so that Reload applies
// to new connections at once and leaves established ones alone. A nil
// *Store is valid and means plaintext. It is safe for concurrent use.
type Store struct {
	cur atomic.Pointer[material]
}

// Load reads f. It returns nil, nil when f is the zero Files (plaintext).
func Load(f Files) (*Store, error) {
	if !f.Enabled() {
		return nil, nil
	}
	m, err := load(f)
	if err != nil {
		return nil, err
	}
	s := &Store{}
	s.cur.Store(m)
	return s, nil
}

// ErrRestartNeeded is returned by Reload for a change that only a restart
// applies: turning TLS on or off, or giving or taking away the client CA of
// a server (whether client certificates are required).
var ErrRestartNeeded = errors.New("needs a restart")

// Reload reads f and, if it loads, makes it the material of every
// handshake from now on. On error the old material stays. Reload of a nil
// Store succeeds only for the zero Files.
func (s *Store) Reload(f Files) error {
	if s == nil {
		if f.Enabled() {
			return fmt.Errorf("turning TLS on %w", ErrRestartNeeded)
		}
		return nil
	}
	if !f.Enabled() {
		return fmt.Errorf("turning TLS off %w", ErrRestartNeeded)
	}
	old := s.cur.Load()
	if (old.files.CA == "") != (f.CA == "") || (old.files.Cert == "") != (f.Cert == "") {
		return fmt.Errorf("adding or removing the CA or the certificate %w", ErrRestartNeeded)
	}
	m, err := load(f)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// Files returns the files of the current material (zero for a nil Store).
func (s *Store) Files() Files {
	if s == nil {
		return Files{}
	}
	return s.cur.Load().files
}

// MutualTLS reports whether s serves with client certificates required: it
// has a certificate and a CA to verify clients with.
func (s *Store) MutualTLS() bool {
	if s == nil {
		return false
	}
	m := s.cur.Load()
	return m.cert != nil && m.cas != nil
}

// Leaf returns the current certificate's leaf, nil if none.
func (s *Store) Leaf() *x509.Certificate {
	if s == nil {
		return nil
	}
	return s.cur.Load().leaf
}

// serverConfig is the configuration of one server handshake. Clients must
// present a certificate signed by the CA when verify is
// tls.RequireAndVerifyClientCert; with tls.VerifyClientCertIfGiven one they
// present must be.
func (m *material) serverConfig(verify tls.ClientAuthType, protos []string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: protos}
	if m.cert != nil {
		c.Certificates = []tls.Certificate{*m.cert}
	}
	if m.cas != nil {
		c.ClientCAs, c.ClientAuth = m.cas, verify
	}
	return c
}

// clientConfig is the configuration of one client handshake to serverName.
func (m *material) clientConfig(serverName string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, RootCAs: m.cas}
	if m.cert != nil {
		c.Certificates = []tls.Certificate{*m.cert}
	}
	return c
}

// HTTPServerConfig returns the TLS configuration of an HTTP listener, or
// nil for a nil Store (plaintext). Client certificates are verified when
// given but not required, so that /healthz stays reachable for probes; the
// Authorizer treats a client without one as anonymous.
func (s *Store) HTTPServerConfig() *tls.Config {
	if s == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().serverConfig(tls.VerifyClientCertIfGiven, []string{"h2", "http/1.1"}), nil
		},
	}
}

// HTTPClientConfig returns the TLS configuration of an HTTP client, or nil
// for a nil Store. The certificate presented is the one current at each
// handshake; the trusted CAs are those current when HTTPClientConfig is
// called (make a new client after a reload to trust a new CA).
func (s *Store) HTTPClientConfig() *tls.Config {
	if s == nil {
		return nil
	}
	m := s.cur.Load()
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    m.cas,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if m := s.cur.Load(); m.cert != nil {
				return m.cert, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	return c
}

// GRPCCredentials returns transport credentials for gRPC clients and
// servers that read the current material at every handshake. A server
// requires a client certificate signed by the CA when the Store has one.
// nil for a nil Store.
func (s *Store) GRPCCredentials() credentials.TransportCredentials {
	if s == nil {
		return nil
	}
	return &reloadingCreds{s: s}
}

// reloadingCreds delegate each handshake to grpc's TLS credentials made
// from the material current at that moment.
type reloadingCreds struct {
	s        *Store
	override string
}

func (c *reloadingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	name := c.override
	if name == "" {
		name = authority
		if h, _, err := net.SplitHostPort(authority); err == nil {
			name = h
		}
	}
	return credentials.NewTLS(c.s.cur.Load().clientConfig(name)).ClientHandshake(ctx, authority, raw)
}

func (c *reloadingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.s.cur.Load().serverConfig(tls.RequireAndVerifyClientCert, nil)).ServerHandshake(raw)
}

func (c *reloadingCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *reloadingCreds) Clone() credentials.TransportCredentials {
	cp := *c
	return &cp
}

// OverrideServerName implements credentials.TransportCredentials
// (deprecated there; grpc.WithAuthority is the way to set the name).
func (c *reloadingCreds) OverrideServerName(name string) error {
	c.override = name
	return nil
}
