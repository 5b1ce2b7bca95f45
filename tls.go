package gossip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// TLS.
//
// Plain TCP, the default, lets anyone who reaches a member's port read the
// cluster and gossip into it (see docs/security.md, "What an unauthenticated
// peer can and cannot do"). With Config.TLS, or a TLSTransport, every connection
// is mutual TLS: both ends present a certificate signed by a CA they share,
// and a peer without one cannot complete the handshake, so it can neither
// gossip nor call Gossip.GetMembers. The protocol inside is unchanged.

// TLSTransport wraps a Transport with mutual TLS, for listening and for
// dialling. It is safe for concurrent use. Build it with NewTLSTransport, or
// set Config.TLS, which does so.
type TLSTransport struct {
	inner   Transport
	server  *tls.Config
	client  *tls.Config
	timeout time.Duration
}

var _ Transport = (*TLSTransport)(nil)

// NewTLSTransport returns inner (nil means TCPTransport) wrapped with mutual
// TLS configured by cfg, which is not modified and must not be modified
// afterwards. cfg must hold this member's certificate (Certificates or
// GetCertificate), used both to serve and as the client certificate, and
// the shared CA in RootCAs or ClientCAs; if only one is set it serves for
// both. The certificate must allow both server and client authentication
// (extended key usages ServerAuth and ClientAuth, or none).
//
// The server side requires and verifies a client certificate
// (tls.RequireAndVerifyClientCert). The client side verifies the server's
// certificate chain against the CA and, if cfg.ServerName is set, that it is
// valid for that name; if it is empty, as it usually is since members are
// known by their addresses, any certificate the CA signed is accepted.
// cfg.VerifyConnection, if set, is called after these checks on both sides.
//
// A handshake must end within handshakeTimeout; an accepted connection is
// given that deadline, which the member's own deadlines then replace, and a
// dial gives up at it or when its context is done, whichever is first.
func NewTLSTransport(inner Transport, cfg *tls.Config, handshakeTimeout time.Duration) (*TLSTransport, error) {
	switch {
	case cfg == nil:
		return nil, errors.New("gossip: TLS: no tls.Config")
	case len(cfg.Certificates) == 0 && cfg.GetCertificate == nil:
		return nil, errors.New("gossip: TLS: no certificate: set Certificates (see TLSConfigFromFiles)")
	case cfg.RootCAs == nil && cfg.ClientCAs == nil:
		return nil, errors.New("gossip: TLS: no CA: set RootCAs and ClientCAs to the CA the members share")
	case handshakeTimeout <= 0:
		return nil, fmt.Errorf("gossip: TLS: handshake timeout %v must be positive", handshakeTimeout)
	}
	if inner == nil {
		inner = TCPTransport{}
	}
	server := cfg.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	if server.ClientCAs == nil {
		server.ClientCAs = cfg.RootCAs
	}
	client := cfg.Clone()
	if client.RootCAs == nil {
		client.RootCAs = cfg.ClientCAs
	}
	if client.ServerName == "" {
		// Members dial addresses learnt from gossip, which certificates
		// seldom name: check the chain ourselves, without a host name.
		roots, then := client.RootCAs, cfg.VerifyConnection
		client.InsecureSkipVerify = true
		client.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := verifyChain(cs, roots); err != nil {
				return err
			}
			if then != nil {
				return then(cs)
			}
			return nil
		}
	}
	return &TLSTransport{inner: inner, server: server, client: client, timeout: handshakeTimeout}, nil
}

// verifyChain checks that the peer's certificate chains to roots and may
// serve.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("gossip: TLS: peer sent no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("gossip: TLS: peer certificate: %w", err)
	}
	return nil
}

// Listen listens on addr with the inner transport; the connections it
// accepts speak TLS, their handshake done on their first read or write.
func (t *TLSTransport) Listen(addr string) (net.Listener, error) {
	ln, err := t.inner.Listen(addr)
	if err != nil {
		return nil, err
	}
	return &tlsListener{Listener: ln, cfg: t.server, timeout: t.timeout}, nil
}

// Dial connects to addr with the inner transport and completes the TLS
// handshake before returning.
func (t *TLSTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	conn, err := t.inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, t.client)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("gossip: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// tlsListener hands out server-side TLS connections. It does not handshake
// in Accept, so that a slow client cannot hold up the accept loop; the
// deadline it sets bounds the handshake.
type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(l.timeout))
	return tls.Server(c, l.cfg), nil
}

// TLSConfigFromFiles returns a tls.Config for Config.TLS from PEM files: the
// member's certificate (with any intermediates after it) and private key,
// and the CA certificate(s) the members share, trusted both to verify
// servers and to verify clients.
func TLSConfigFromFiles(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("gossip: TLS certificate: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("gossip: TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("gossip: TLS CA: no PEM certificate in %s", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
