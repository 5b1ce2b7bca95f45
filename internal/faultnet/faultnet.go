// Package faultnet is a fault-injecting network for testing gossip members:
// a transport, wrapped around a real one (TCP), that loses and delays
// messages, cuts links between members and stalls members.
//
// Each member gets its own Node of a shared Net, so that the Net knows which
// member every connection belongs to. A Node has the methods of
// gossip.Transport (this package does not import gossip, so that the
// package's own tests can use it).
//
// # What a message is
//
// Members talk over TCP streams, and the gossip codecs buffer each request
// and each answer and flush it in one write. A message is therefore one
// Write on a connection (a message larger than the codec's 4 KiB buffer may
// take more than one; every write is counted and can be lost).
//
// # Losing a message
//
// Each write is lost with probability Loss, decided independently. How a
// loss shows depends on the Mode:
//
//   - Blackhole (the default): the write reports success, its bytes go
//     nowhere, and so does everything written after it on that connection,
//     since a stream with a hole in it cannot deliver what follows. The peer
//     waits for a message that never comes: the RPC times out (Trpc), as a
//     lost datagram or a dead path would make it. This is what the false
//     report analysis in the gossip package assumes.
//   - Reset: the connection is closed instead of written to, and the write
//     fails. Both sides learn at once, and the gossip client may retry the
//     call once on a fresh connection.
//
// Delay sleeps before every write for Delay plus a uniform random share of
// Jitter, so a round trip takes at least twice Delay.
//
// # Cutting links and stalling members
//
// Partition and Cut refuse dials across the cut and close the connections
// that cross it. Stall freezes a member's network: its dials, accepts, reads
// and writes wait until Resume (or until the connection or listener is
// closed), while peers' connections to it are still accepted by the kernel,
// as when a process is stopped with SIGSTOP.
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Base is the transport a Net wraps; gossip.TCPTransport is one.
type Base interface {
	Listen(addr string) (net.Listener, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// Mode is how a lost message shows; see the package comment.
type Mode int

const (
	// Blackhole loses a message silently; the peer waits for it.
	Blackhole Mode = iota
	// Reset closes the connection instead of writing the message.
	Reset
)

// String returns the mode's name.
func (m Mode) String() string {
	if m == Reset {
		return "reset"
	}
	return "blackhole"
}

// ErrCut is the error of a dial across a cut link.
var ErrCut = errors.New("faultnet: link cut")

// errReset is the error of a write lost in Reset mode.
var errReset = errors.New("faultnet: message lost, connection reset")

// Stats counts what a Net did.
type Stats struct {
	Writes    int64 // writes attempted, lost ones included
	Lost      int64 // writes lost
	Refused   int64 // dials refused by a cut
	Severed   int64 // connections closed by a cut
	Open      int64 // connections open now
	MaxOpen   int64 // most connections open at once
	Dials     int64 // dials attempted
	Accepted  int64 // connections accepted
	StallWait int64 // operations that waited for a stalled member
}

// Net is a fault-injecting network shared by a set of members. Its methods
// are safe for concurrent use; faults set on it apply at once.
type Net struct {
	base Base

	mu      sync.Mutex // protects everything below
	rng     *rand.Rand
	loss    float64
	mode    Mode
	delay   time.Duration
	jitter  time.Duration
	group   map[string]int           // member address -> side of a partition
	cut     map[[2]string]bool       // cut links, as sorted address pairs
	stalled map[string]chan struct{} // closed on Resume
	conns   map[*conn]struct{}

	writes, lost, refused, severed, dials, accepted, stallWait atomic.Int64
	maxOpen                                                    int64 // guarded by mu
}

// New returns a Net over base with no faults; seed seeds its random choices.
func New(base Base, seed uint64) *Net {
	return &Net{
		base:    base,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		group:   map[string]int{},
		cut:     map[[2]string]bool{},
		stalled: map[string]chan struct{}{},
		conns:   map[*conn]struct{}{},
	}
}

// SetLoss loses each message with probability p, shown as mode.
func (n *Net) SetLoss(p float64, mode Mode) {
	n.mu.Lock()
	n.loss, n.mode = p, mode
	n.mu.Unlock()
}

// SetDelay delays each message by d plus up to jitter.
func (n *Net) SetDelay(d, jitter time.Duration) {
	n.mu.Lock()
	n.delay, n.jitter = d, jitter
	n.mu.Unlock()
}

// Partition puts each listed member on the side given; members on different
// sides are cut off from each other, unlisted members are on side 0. It
// closes the connections that cross the new cut.
func (n *Net) Partition(sides map[string]int) {
	n.mu.Lock()
	n.group = make(map[string]int, len(sides))
	for a, s := range sides {
		n.group[a] = s
	}
	n.severLocked()
	n.mu.Unlock()
}

// Cut cuts the link between members a and b, both ways.
func (n *Net) Cut(a, b string) {
	n.mu.Lock()
	n.cut[pair(a, b)] = true
	n.severLocked()
	n.mu.Unlock()
}

// Heal removes every partition and cut link.
func (n *Net) Heal() {
	n.mu.Lock()
	n.group = map[string]int{}
	n.cut = map[[2]string]bool{}
	n.mu.Unlock()
}

// Stall freezes the network of the member at addr until Resume.
func (n *Net) Stall(addr string) {
	n.mu.Lock()
	if n.stalled[addr] == nil {
		n.stalled[addr] = make(chan struct{})
	}
	n.mu.Unlock()
}

// Resume ends a Stall of the member at addr.
func (n *Net) Resume(addr string) {
	n.mu.Lock()
	if ch := n.stalled[addr]; ch != nil {
		close(ch)
		delete(n.stalled, addr)
	}
	n.mu.Unlock()
}

// Stats returns the counts so far.
func (n *Net) Stats() Stats {
	n.mu.Lock()
	open, maxOpen := int64(len(n.conns)), n.maxOpen
	n.mu.Unlock()
	return Stats{
		Writes: n.writes.Load(), Lost: n.lost.Load(), Refused: n.refused.Load(),
		Severed: n.severed.Load(), Open: open, MaxOpen: maxOpen,
		Dials: n.dials.Load(), Accepted: n.accepted.Load(), StallWait: n.stallWait.Load(),
	}
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (n *Net) cutLocked(a, b string) bool {
	return n.group[a] != n.group[b] || n.cut[pair(a, b)]
}

// severLocked closes the dialled connections that cross a cut. Closing the
// dialling side ends the accepted side too.
func (n *Net) severLocked() {
	for c := range n.conns {
		if c.remote != "" && n.cutLocked(c.owner.addr, c.remote) {
			c.closeOnce()
			delete(n.conns, c)
			n.severed.Add(1)
		}
	}
}

// gate returns a channel closed when the member at addr is not stalled, or
// nil if it is not stalled now.
func (n *Net) gate(addr string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stalled[addr]
}

// wait blocks while the member at addr is stalled, or until done is closed
// or ctx ends; it reports false in the last two cases.
func (n *Net) wait(ctx context.Context, addr string, done <-chan struct{}) bool {
	g := n.gate(addr)
	if g == nil {
		return true
	}
	n.stallWait.Add(1)
	select {
	case <-g:
		return true
	case <-done:
		return false
	case <-ctx.Done():
		return false
	}
}

// Node returns the transport of one member. Its address is learnt when it
// listens; a member that only dials is known by the address passed here.
func (n *Net) Node(addr string) *Node { return &Node{n: n, addr: addr} }

// Node is one member's view of a Net; it has the methods of
// gossip.Transport. Listen it once, before dialling.
type Node struct {
	n    *Net
	addr string // guarded by n.mu after Listen
}

// Addr returns the member's address: the listener's once it listens.
func (nd *Node) Addr() string {
	nd.n.mu.Lock()
	defer nd.n.mu.Unlock()
	return nd.addr
}

// Listen listens on addr through the base transport.
func (nd *Node) Listen(addr string) (net.Listener, error) {
	ln, err := nd.n.base.Listen(addr)
	if err != nil {
		return nil, err
	}
	nd.n.mu.Lock()
	nd.addr = ln.Addr().String()
	nd.n.mu.Unlock()
	return &listener{Listener: ln, nd: nd, done: make(chan struct{})}, nil
}

// Dial connects to addr unless the link is cut, waiting while this member
// is stalled.
func (nd *Node) Dial(ctx context.Context, addr string) (net.Conn, error) {
	n := nd.n
	n.dials.Add(1)
	self := nd.Addr()
	if !n.wait(ctx, self, nil) {
		return nil, ctx.Err()
	}
	n.mu.Lock()
	blocked := n.cutLocked(self, addr)
	n.mu.Unlock()
	if blocked {
		n.refused.Add(1)
		return nil, fmt.Errorf("dial %s from %s: %w", addr, self, ErrCut)
	}
	c, err := n.base.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	fc := newConn(c, nd, addr)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cutLocked(self, addr) { // cut while dialling
		c.Close()
		n.refused.Add(1)
		return nil, fmt.Errorf("dial %s from %s: %w", addr, self, ErrCut)
	}
	n.trackLocked(fc)
	return fc, nil
}

func (n *Net) trackLocked(c *conn) {
	n.conns[c] = struct{}{}
	n.maxOpen = max(n.maxOpen, int64(len(n.conns)))
}

func (n *Net) untrack(c *conn) {
	n.mu.Lock()
	delete(n.conns, c)
	n.mu.Unlock()
}

type listener struct {
	net.Listener
	nd   *Node
	once sync.Once
	done chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	n := l.nd.n
	if !n.wait(context.Background(), l.nd.Addr(), l.done) {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	n.accepted.Add(1)
	fc := newConn(c, l.nd, "")
	n.mu.Lock()
	n.trackLocked(fc)
	n.mu.Unlock()
	return fc, nil
}

func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// conn is a connection of member owner, dialled to remote ("" if accepted).
type conn struct {
	net.Conn
	owner  *Node
	remote string
	hole   atomic.Bool // a message was lost: the rest of the stream is lost
	once   sync.Once
	done   chan struct{}
}

func newConn(c net.Conn, owner *Node, remote string) *conn {
	return &conn{Conn: c, owner: owner, remote: remote, done: make(chan struct{})}
}

func (c *conn) closeOnce() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		err = c.Conn.Close()
	})
	return err
}

func (c *conn) Close() error {
	c.owner.n.untrack(c)
	return c.closeOnce()
}

func (c *conn) Read(p []byte) (int, error) {
	if !c.owner.n.wait(context.Background(), c.owner.Addr(), c.done) {
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *conn) Write(p []byte) (int, error) {
	n := c.owner.n
	if !n.wait(context.Background(), c.owner.Addr(), c.done) {
		return 0, net.ErrClosed
	}
	n.writes.Add(1)
	n.mu.Lock()
	lose := n.loss > 0 && n.rng.Float64() < n.loss
	mode := n.mode
	d := n.delay
	if n.jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.jitter)))
	}
	n.mu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.done:
			t.Stop()
			return 0, net.ErrClosed
		}
	}
	if lose {
		n.lost.Add(1)
		if mode == Reset {
			c.Close()
			return 0, errReset
		}
		c.hole.Store(true)
	}
	if c.hole.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}
