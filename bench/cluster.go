package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
)

// cluster is n members of one library running in this process on
// 127.0.0.1. Implementations (ours.go, memberlist.go) are safe for concurrent
// use; close must be called to release every listener and goroutine.
type cluster interface {
	// start starts n members. Members 1..n-1 join through member 0, in the
	// background: start returns once all are started, not converged.
	start(n int) error
	// size is the number of members started.
	size() int
	// id is member i's identity as views name it.
	id(i int) string
	// observers holds each member's view as built from its membership
	// events; scenarios watch it.
	observers() *observers
	// view is what member i sees now, read in full from the library (O(n)):
	// nil if member i was killed. Only tests use it, to check the observed
	// views against the library's own.
	view(i int) view
	// seed is the address a member outside the cluster joins through:
	// member 0's.
	seed() string
	// kill closes member i abruptly: it says goodbye to no one. Its
	// listener and connections are closed, so dials to it are refused, as
	// when a process crashes and its host stays up.
	kill(i int)
	// silence black-holes member i's traffic from now on, as when its host
	// vanishes: see silencer. Member i goes on running, unobserved.
	silence(i int)
	// setData changes member i's application data.
	setData(i int, data string) error
	// setLoss makes every message sent from now on lost with probability p.
	setLoss(p float64)
	// traffic returns the bytes and messages sent by all members so far.
	traffic() (bytes, msgs int64)
	// close stops every member and waits for them.
	close()
}

// newCluster returns an empty cluster of the named library. Of o, only
// interval and target apply, and to this library only.
func newCluster(lib string, o options) (cluster, error) {
	switch lib {
	case libOurs:
		return newOurs(o.interval, o.target), nil
	case libMemberlist:
		return newMemberlist(), nil
	}
	return nil, fmt.Errorf("unknown library %q (want %s or %s)", lib, libOurs, libMemberlist)
}

// The libraries compared.
const (
	libOurs       = "ours"
	libMemberlist = "memberlist"
)

// view is the live members one member sees, sorted by id.
type view []viewEntry

type viewEntry struct {
	id   string
	data string
}

func (v view) sort() view {
	sort.Slice(v, func(i, j int) bool { return v[i].id < v[j].id })
	return v
}

// wire counts what a cluster's members send and loses a share of it. A
// message is a UDP packet, or on a stream one run of writes not interrupted
// by data read back: one request or one response. Lost messages are counted
// as sent.
type wire struct {
	bytes atomic.Int64
	msgs  atomic.Int64
	loss  atomic.Uint64 // math.Float64bits of the loss probability
}

func (w *wire) setLoss(p float64) { w.loss.Store(math.Float64bits(p)) }

// send counts a message of n bytes and reports whether it is lost.
func (w *wire) send(n int) (lost bool) {
	w.msgs.Add(1)
	w.bytes.Add(int64(n))
	p := math.Float64frombits(w.loss.Load())
	return p > 0 && rand.Float64() < p
}

func (w *wire) traffic() (bytes, msgs int64) { return w.bytes.Load(), w.msgs.Load() }

// streamConn counts the messages and bytes written on a stream connection
// and loses a share of the messages. A lost message is swallowed whole: the
// connection stays open and the peer waits for it until its own timeout,
// as when a connection stalls.
type streamConn struct {
	net.Conn
	w *wire

	mu    sync.Mutex // protects the fields below
	inMsg bool       // a message is being written
	lost  bool       // the message being written is lost
}

func newStreamConn(c net.Conn, w *wire) net.Conn { return &streamConn{Conn: c, w: w} }

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.inMsg = false
		c.mu.Unlock()
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.inMsg {
		c.inMsg = true
		c.lost = c.w.send(len(p))
	} else {
		c.w.bytes.Add(int64(len(p)))
	}
	lost := c.lost
	c.mu.Unlock()
	if lost {
		return len(p), nil
	}
	return c.Conn.Write(p)
}
