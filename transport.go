package gossip

import (
	"context"
	"net"
	"sync"
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

// connSet tracks a member's inbound connections, so that Close can close them
// and so that their number stays bounded.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// add tracks c and reports true, or reports false if the set is closed or
// holds max connections already.
func (s *connSet) add(c net.Conn, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns) >= max {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closeAll closes every tracked connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}
