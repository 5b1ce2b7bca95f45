package gossip

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
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
// and so that their number stays bounded. When it is full, a new connection
// takes the place of the one idle the longest: a peer that dialled once and
// keeps its connection for later rounds must not lock out a member that is
// joining (a seed of a thousand members is dialled by all of them). The peer
// whose idle connection is closed dials again when it next needs to.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]*inbound
	closed bool
}

// inbound is the state of one inbound connection that eviction looks at.
type inbound struct {
	busy atomic.Int32 // requests read and not yet answered
	last atomic.Int64 // when it last started or finished a request, in Unix nanoseconds
}

// begin and end bracket a request.
func (c *inbound) begin() { c.busy.Add(1); c.last.Store(time.Now().UnixNano()) }
func (c *inbound) end()   { c.busy.Add(-1); c.last.Store(time.Now().UnixNano()) }

// add tracks c and returns its state. If the set holds max connections
// already, it stops tracking the one idle the longest and returns it as
// evicted, for the caller to close. It returns nil, nil if the set is closed,
// or is full of connections with requests under way.
func (s *connSet) add(c net.Conn, max int) (st *inbound, evicted net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]*inbound)
	}
	if len(s.conns) >= max {
		var oldest int64
		for vc, v := range s.conns {
			if last := v.last.Load(); v.busy.Load() == 0 && (evicted == nil || last < oldest) {
				evicted, oldest = vc, last
			}
		}
		if evicted == nil {
			return nil, nil
		}
		delete(s.conns, evicted)
	}
	st = &inbound{}
	st.last.Store(time.Now().UnixNano())
	s.conns[c] = st
	return st, evicted
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
