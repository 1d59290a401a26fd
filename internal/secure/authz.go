package secure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Peer is who is calling: the verified client certificate's names, or
// anonymous, and whether the call comes from a loopback address.
type Peer struct {
	// Subject is the certificate's subject in RFC 2253 form
	// ("CN=nso,O=rls"); empty for an anonymous peer.
	Subject string
	// CommonName is the subject's CN.
	CommonName string
	// DNSNames and URIs are the certificate's subject alternative names.
	DNSNames, URIs []string
	// Loopback is true when the peer's address is a loopback address.
	Loopback bool
	// Addr is the peer's address, for messages.
	Addr string
}

// Anonymous reports whether the peer presented no verified certificate.
func (p Peer) Anonymous() bool { return p.Subject == "" && len(p.DNSNames) == 0 && len(p.URIs) == 0 }

// Identities returns the names ACL rules are matched against: the subject
// and each SAN, or "anonymous".
func (p Peer) Identities() []string {
	if p.Anonymous() {
		return []string{Anonymous}
	}
	ids := make([]string, 0, 1+len(p.DNSNames)+len(p.URIs))
	if p.Subject != "" {
		ids = append(ids, p.Subject)
	}
	ids = append(ids, p.DNSNames...)
	return append(ids, p.URIs...)
}

// String is the peer's main identity, for logs.
func (p Peer) String() string { return p.Identities()[0] }

// peerFromCert makes a Peer of a verified leaf certificate (nil: anonymous).
func peerFromCert(leaf *x509.Certificate, addr net.Addr) Peer {
	p := Peer{}
	if addr != nil {
		p.Addr = addr.String()
		p.Loopback = isLoopback(addr)
	}
	if leaf == nil {
		return p
	}
	p.Subject = leaf.Subject.String()
	p.CommonName = leaf.Subject.CommonName
	p.DNSNames = slices.Clone(leaf.DNSNames)
	for _, u := range leaf.URIs {
		p.URIs = append(p.URIs, u.String())
	}
	return p
}

func isLoopback(a net.Addr) bool {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return false
		}
		ip = net.ParseIP(host)
	}
	return ip != nil && ip.IsLoopback()
}

// verifiedLeaf returns the leaf of the first verified chain, nil if the
// peer sent no certificate or it was not verified.
func verifiedLeaf(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

// GRPCPeer returns the Peer of a gRPC call's context.
func GRPCPeer(ctx context.Context) Peer {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return Peer{}
	}
	var leaf *x509.Certificate
	if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
		leaf = verifiedLeaf(&ti.State)
	}
	return peerFromCert(leaf, pr.Addr)
}

// HTTPPeer returns the Peer of an HTTP request.
func HTTPPeer(r *http.Request) Peer {
	var addr net.Addr
	if ap, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		addr = ap
	}
	return peerFromCert(verifiedLeaf(r.TLS), addr)
}

// ErrDenied is the error of a refused call; the API layer maps it to
// PERMISSION_DENIED (HTTP 403).
var ErrDenied = errors.New("permission denied")

// Authorizer decides, by the current Policy, whether a peer may call a
// method and which sites it may speak for. Refusals are logged (identity,
// method and rule), at most once a minute for each identity and method,
// with a count of those left out. It is safe for concurrent use; SetPolicy
// applies to the calls that start after it.
type Authorizer struct {
	policy atomic.Pointer[Policy]
	log    *slog.Logger

	mu     sync.Mutex
	logged map[string]*denials // guarded by mu
}

type denials struct {
	last       time.Time
	suppressed int
}

// denyLogEvery is how often a refusal of the same identity and method is
// logged.
const denyLogEvery = time.Minute

// NewAuthorizer returns an authorizer with policy p. log may be nil
// (slog.Default()).
func NewAuthorizer(p *Policy, log *slog.Logger) *Authorizer {
	if log == nil {
		log = slog.Default()
	}
	a := &Authorizer{log: log, logged: map[string]*denials{}}
	a.policy.Store(p)
	return a
}

// SetPolicy makes p the policy of every check from now on.
func (a *Authorizer) SetPolicy(p *Policy) { a.policy.Store(p) }

// Allow checks that peer may do what needs perm; what names it (a gRPC
// method or an HTTP route) in the error and the log.
func (a *Authorizer) Allow(peer Peer, perm Permission, what string) error {
	r := a.policy.Load().match(peer)
	if r != nil && r.grants(perm) {
		return nil
	}
	return a.deny(peer, what, r, fmt.Sprintf("needs %s", perm))
}

// AllowMethod checks a gRPC method by the method table; methods open to all
// pass, unknown ones are refused.
func (a *Authorizer) AllowMethod(peer Peer, fullMethod string) error {
	perm, isOpen, ok := MethodPermission(fullMethod)
	switch {
	case isOpen:
		return nil
	case !ok:
		return a.deny(peer, fullMethod, nil, "the method has no permission mapped")
	}
	return a.Allow(peer, perm, fullMethod)
}

// SpeakFor checks that peer may send soft state in the name of site: the
// site is the peer certificate's common name or one of its DNS names, or
// matches the speak_for of the rule that grants it rli_update.
func (a *Authorizer) SpeakFor(peer Peer, site string) error {
	what := "soft state for site " + site
	r := a.policy.Load().match(peer)
	if r == nil || !r.grants(RLIUpdate) {
		return a.deny(peer, what, r, "needs rli_update")
	}
	if r.speakFor != nil && r.speakFor.MatchString(site) {
		return nil
	}
	if !peer.Anonymous() && (peer.CommonName == site || slices.Contains(peer.DNSNames, site)) {
		return nil
	}
	return a.deny(peer, what, r, "may not speak for this site (its certificate names another, and the rule's speak_for does not cover it)")
}

func (a *Authorizer) deny(peer Peer, what string, r *rule, why string) error {
	ruleText := "no rule matched"
	if r != nil {
		ruleText = r.String()
	}
	a.logDenied(peer, what, ruleText, why)
	return fmt.Errorf("%w: %s may not %s (%s; %s)", ErrDenied, peer, whatVerb(what), ruleText, why)
}

func whatVerb(what string) string {
	if len(what) > 0 && what[0] == '/' {
		return "call " + what
	}
	return "send " + what
}

func (a *Authorizer) logDenied(peer Peer, what, ruleText, why string) {
	key := peer.String() + "\x00" + what
	now := time.Now()
	a.mu.Lock()
	d := a.logged[key]
	if d == nil {
		if len(a.logged) >= 4096 { // bound the memory a flood of names takes
			clear(a.logged)
		}
		d = &denials{}
		a.logged[key] = d
	}
	if !d.last.IsZero() && now.Sub(d.last) < denyLogEvery {
		d.suppressed++
		a.mu.Unlock()
		return
	}
	suppressed := d.suppressed
	d.last, d.suppressed = now, 0
	a.mu.Unlock()
	a.log.Warn("permission denied", "identity", peer.String(), "peer", peer.Addr, "method", what,
		"rule", ruleText, "reason", why, "suppressed", suppressed)
}

// UnaryInterceptor checks each unary call by the method table.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.AllowMethod(GRPCPeer(ctx), info.FullMethod); err != nil {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		return handler(withAuthorizer(ctx, a), req)
	}
}

// StreamInterceptor checks each streaming call by the method table.
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.AllowMethod(GRPCPeer(ss.Context()), info.FullMethod); err != nil {
			return status.Error(codes.PermissionDenied, err.Error())
		}
		return handler(srv, &authStream{ServerStream: ss, ctx: withAuthorizer(ss.Context(), a)})
	}
}

type authStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authStream) Context() context.Context { return s.ctx }

type authorizerKey struct{}

func withAuthorizer(ctx context.Context, a *Authorizer) context.Context {
	return context.WithValue(ctx, authorizerKey{}, a)
}

// SpeakForContext checks that the caller of a gRPC call may speak for site,
// with the Authorizer whose interceptor admitted the call. A call that no
// Authorizer admitted (a handler called in process, without a server) is
// allowed.
func SpeakForContext(ctx context.Context, site string) error {
	a, _ := ctx.Value(authorizerKey{}).(*Authorizer)
	if a == nil {
		return nil
	}
	return a.SpeakFor(GRPCPeer(ctx), site)
}

// HTTPPermission returns the permission an HTTP request path needs, by the
// one table of the daemon's HTTP routes: /healthz is open (isOpen), /metrics
// needs stats, /v1/transfer/... transfer_read, /v1/mirror/... mirror,
// /debug/pprof/... admin, and anything else (the status page) stats.
func HTTPPermission(path string) (perm Permission, isOpen bool) {
	for _, r := range httpRoutes {
		if path == r.prefix || strings.HasSuffix(r.prefix, "/") && strings.HasPrefix(path, r.prefix) {
			return r.perm, r.perm == open
		}
	}
	return Stats, false
}

var httpRoutes = []struct {
	prefix string // a path, or with a trailing slash every path under it
	perm   Permission
}{
	{"/healthz", open},
	{"/metrics", Stats},
	{"/v1/transfer/", TransferRead},
	{"/v1/mirror/", Mirror},
	{"/debug/pprof/", Admin},
}

// Middleware wraps the handler of a whole HTTP listener (wrapping the mux,
// not single routes, so that no route can bypass it): each request needs
// the permission HTTPPermission gives its path, or gets 403 with the
// reason.
func (a *Authorizer) Middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		perm, isOpen := HTTPPermission(r.URL.Path)
		if !isOpen {
			if err := a.Allow(HTTPPeer(r), perm, r.Method+" "+r.URL.Path); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
