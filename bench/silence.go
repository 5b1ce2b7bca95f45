package main

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// silencer black-holes the traffic of chosen members of one cluster, as if
// their host had vanished from the network: nothing is refused and nothing
// is closed, everything sent to or by them is lost, and connections hang.
// For a silenced member, from the moment it is silenced:
//
//   - a dial to it or by it hangs until the dialler gives up (its context or
//     timeout), and then fails as a timeout, as a SYN that is never answered;
//   - on a connection to or from it, writes succeed and go nowhere; reads
//     return nothing, the data that still arrives being dropped, until the
//     read deadline or a local Close; an end of stream or a reset from the
//     other side is not seen either (the FIN would be lost too);
//   - a datagram to it or from it is dropped (memberlist's packets).
//
// Each member's transport wraps its connections in silentConns that know
// their owner and, where it can be learnt, the member at the other end: a
// dialled connection knows the address it dialled; an accepted one looks its
// remote address up among the local addresses of the connections the
// cluster's members dialled. It is safe for concurrent use.
type silencer struct {
	mu       sync.Mutex        // protects the fields below
	silenced map[string]bool   // member addresses
	dialled  map[string]string // local address of a dialled connection -> its owner's member address
}

func newSilencer() *silencer {
	return &silencer{silenced: map[string]bool{}, dialled: map[string]string{}}
}

// silence black-holes the member at addr from now on, for good.
func (s *silencer) silence(addr string) {
	s.mu.Lock()
	s.silenced[addr] = true
	s.mu.Unlock()
}

// any reports whether any of the member addresses is silenced; "" is none.
func (s *silencer) any(addrs ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range addrs {
		if a != "" && s.silenced[a] {
			return true
		}
	}
	return false
}

// owner returns the member address that dialled from the local address
// local, or "" if no member of this cluster did.
func (s *silencer) owner(local string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialled[local]
}

func (s *silencer) register(local, owner string) {
	s.mu.Lock()
	s.dialled[local] = owner
	s.mu.Unlock()
}

func (s *silencer) unregister(local string) {
	s.mu.Lock()
	delete(s.dialled, local)
	s.mu.Unlock()
}

// hang blocks a dial from self to addr if either is silenced, until ctx
// ends (then it returns a timeout error) or closed is closed. It returns nil
// at once if neither is silenced.
func (s *silencer) hang(ctx context.Context, closed <-chan struct{}, self, addr string) error {
	if !s.any(self, addr) {
		return nil
	}
	select {
	case <-ctx.Done():
	case <-closed:
		return net.ErrClosed
	}
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded} // as a SYN never answered
}

// silentConn is a connection of a member of a silencer's cluster that goes
// quiet, as described on silencer, once its owner or the member at its other
// end is silenced.
type silentConn struct {
	net.Conn
	s     *silencer
	self  string // the owner's member address
	local string // the local address, registered if dialled
	done  chan struct{}
	once  sync.Once

	mu           sync.Mutex // protects the fields below
	peer         string     // the other end's member address; "" if not known yet
	readDeadline time.Time
}

// dialledConn wraps c, dialled by self to the member at addr, and registers
// its local address so that the accepting side can tell who it is.
func dialledConn(c net.Conn, s *silencer, self, addr string) net.Conn {
	sc := &silentConn{Conn: c, s: s, self: self, peer: addr, local: c.LocalAddr().String(), done: make(chan struct{})}
	s.register(sc.local, self)
	return sc
}

// acceptedConn wraps c, accepted by self.
func acceptedConn(c net.Conn, s *silencer, self string) net.Conn {
	return &silentConn{Conn: c, s: s, self: self, done: make(chan struct{})}
}

// quiet reports whether the connection is black-holed now.
func (c *silentConn) quiet() bool {
	c.mu.Lock()
	peer := c.peer
	c.mu.Unlock()
	if peer == "" {
		if peer = c.s.owner(c.Conn.RemoteAddr().String()); peer != "" {
			c.mu.Lock()
			c.peer = peer
			c.mu.Unlock()
		}
	}
	return c.s.any(c.self, peer)
}

func (c *silentConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if !c.quiet() {
			return n, err
		}
		select {
		case <-c.done:
			return 0, net.ErrClosed
		default:
		}
		var ne net.Error
		switch {
		case err == nil:
			continue // the data is lost
		case errors.As(err, &ne) && ne.Timeout():
			return 0, err
		default:
			// The other end closed or reset: that is lost too.
			return 0, c.waitDeadline()
		}
	}
}

// waitDeadline blocks until the read deadline or a local Close.
func (c *silentConn) waitDeadline() error {
	c.mu.Lock()
	d := c.readDeadline
	c.mu.Unlock()
	var expired <-chan time.Time
	if !d.IsZero() {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-expired:
		return &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	case <-c.done:
		return net.ErrClosed
	}
}

func (c *silentConn) Write(p []byte) (int, error) {
	if c.quiet() {
		select {
		case <-c.done:
			return 0, net.ErrClosed
		default:
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

func (c *silentConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *silentConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *silentConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		if c.local != "" {
			c.s.unregister(c.local)
		}
	})
	return c.Conn.Close()
}
