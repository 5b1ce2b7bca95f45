package gossip

import (
	"context"
	"net"
	"time"
)

// Transport is how a member listens and dials. The default, TCPTransport, is
// plain TCP; a Transport can wrap it to add TLS, count bytes, inject faults in
// tests, or run members over an in-memory network. Implementations must be
// safe for concurrent use.
type Transport interface {
	// Listen returns a listener on addr (host:port).
	Listen(addr string) (net.Listener, error)
	// Dial connects to addr, giving up when ctx is done.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCPTransport is the default Transport: plain TCP.
type TCPTransport struct{}

// Listen listens on the TCP address addr.
func (TCPTransport) Listen(addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(context.Background(), "tcp", addr)
}

// Dial connects to the TCP address addr.
func (TCPTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// Clock tells the time. Tests inject a fake one to drive the failure rules
// without sleeping.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Resolver resolves a seed's host name to addresses; *net.Resolver is one.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}
