package secure

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// Dialer makes every outgoing gRPC connection of a process: soft-state
// updates, forwarding, verification, pulls, the mirror's calls and
// rlsctl's. With TLS material it dials TLS, presenting its certificate and
// trusting its CA, as current at each handshake (a Store reload applies to
// the next connection made, including reconnections, without redialing);
// without, plaintext. A nil *Dialer is valid and dials plaintext. It is safe
// for concurrent use.
type Dialer struct {
	tls *Store
}

// NewDialer returns a Dialer using s's material; s may be nil (plaintext).
func NewDialer(s *Store) *Dialer { return &Dialer{tls: s} }

// TLS reports whether the dialer dials TLS.
func (d *Dialer) TLS() bool { return d != nil && d.tls != nil }

// Store returns the dialer's TLS material, nil for plaintext.
func (d *Dialer) Store() *Store {
	if d == nil {
		return nil
	}
	return d.tls
}

// keepaliveParams make a connection to another site notice a dead peer or
// a partition within about 40 s, instead of waiting for TCP to give up
// (minutes) with a call hanging on it; the servers allow pings every 10 s
// (api.NewServer's enforcement policy).
var keepaliveParams = keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}

// Dial creates a client connection to addr (HOST:PORT) with opts after the
// dialer's transport credentials and keepalive. Like grpc.NewClient it does
// not connect: the first call does.
func (d *Dialer) Dial(addr string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if d.TLS() {
		creds = d.tls.GRPCCredentials()
	}
	return grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithKeepaliveParams(keepaliveParams)}, opts...)...)
}

// DialConn is Dial without options, in the form the index package's Dial
// hooks take. The connection it returns is an io.Closer.
func (d *Dialer) DialConn(addr string) (grpc.ClientConnInterface, error) {
	return d.Dial(addr)
}
