package gossip

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of one member's table and counters, as Gossip.Stats
// and the Gossip.Stats RPC return it. Counters count from Start and never
// go down.
type Stats struct {
	// Addr is the member's advertised address.
	Addr string

	// Alive, Failed and Left count the members in the table: live ones,
	// this one included; ones declared dead; ones that left. Dead and left
	// members are counted until they are forgotten, after the cleanup time.
	Alive, Failed, Left int

	// FailureTime is the member's current FailureTime.
	FailureTime time.Duration

	// Unanswered is the share of this member's last calls (up to 64) to
	// live members it heard from within the failure time that went
	// unanswered, 0 until a few were made. More than Config.ExpectedLoss
	// explains, and the member distrusts its own view: Timeout grows (see
	// failure.go, Local health).
	Unanswered float64

	// Timeout is how long a live member's heartbeat may stay unchanged
	// here, now, before the timeout rule declares it dead: FailureTime,
	// or up to 8 times longer while Unanswered is high.
	Timeout time.Duration

	// Rounds counts gossip rounds.
	Rounds uint64

	// MessagesSent counts the RPC requests this member made (exchanges,
	// rumors, leave announcements), MessagesReceived those it served.
	MessagesSent, MessagesReceived uint64

	// BytesSent and BytesReceived count the bytes written to and read from
	// the member's connections, inbound and outbound: gob messages as they
	// go on the wire (encrypted, with TLS, and without the handshakes).
	BytesSent, BytesReceived uint64

	// RPCErrors counts the RPCs this member made that failed, dials
	// included; RPCTimeouts counts those of them that ran out of time
	// (Config.RPCTimeout).
	RPCErrors, RPCTimeouts uint64

	// ExchangesSkipped counts the rounds whose exchange this member did
	// not send because, for 3 intervals, its last answers had all come
	// more than half an interval after their calls, and an exchange was
	// still under way: an overloaded process or a slow network (see
	// docs/operations.md, Overload).
	ExchangesSkipped uint64

	// Merges counts the updates (digests and entries received) merged into
	// the table; MergeTime is the time spent merging them, LastMergeTime
	// the time the last one took.
	Merges                   uint64
	MergeTime, LastMergeTime time.Duration

	// EventOverruns counts events dropped because the reader of Events
	// did not keep up (see Overruns).
	EventOverruns uint64
}

// StatsRequest asks for a member's Stats (Gossip.Stats).
type StatsRequest struct{}

// StatsResponse holds a member's Stats.
type StatsResponse struct{ Stats Stats }

// Stats returns a snapshot of the member's table and counters. It is safe
// for concurrent use and cheap enough to call on every metrics scrape.
func (g *Gossip) Stats() Stats {
	m := &g.metrics
	s := Stats{
		Rounds:           m.rounds.Load(),
		MessagesSent:     m.sent.Load(),
		MessagesReceived: m.received.Load(),
		BytesSent:        m.bytesOut.Load(),
		BytesReceived:    m.bytesIn.Load(),
		RPCErrors:        m.rpcErrors.Load(),
		RPCTimeouts:      m.rpcTimeouts.Load(),
		ExchangesSkipped: m.skipped.Load(),
		Merges:           m.merges.Load(),
		MergeTime:        time.Duration(m.mergeNanos.Load()),
		LastMergeTime:    time.Duration(m.lastMergeNanos.Load()),
		EventOverruns:    g.Overruns(),
	}
	s.Addr = g.Addr()
	now := g.clock.Now() // the Clock is the user's: read outside the lock
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proto != nil {
		s.Alive, s.Failed, s.Left = g.proto.Counts()
		s.Unanswered, s.Timeout = g.proto.LocalHealth(now)
	}
	s.FailureTime = g.failureTimeLocked()
	if s.Timeout == 0 {
		s.Timeout = s.FailureTime
	}
	return s
}

// metrics are a member's counters, updated without its lock.
type metrics struct {
	rounds, sent, received, bytesOut, bytesIn atomic.Uint64
	rpcErrors, rpcTimeouts, merges, skipped   atomic.Uint64
	mergeNanos, lastMergeNanos                atomic.Int64
}

// merged records one merge that began at start.
func (m *metrics) merged(start time.Time) {
	d := int64(time.Since(start))
	m.merges.Add(1)
	m.mergeNanos.Add(d)
	m.lastMergeNanos.Store(d)
}

// called records the outcome of one outgoing RPC.
func (m *metrics) called(err error) {
	if err == nil {
		return
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		m.rpcTimeouts.Add(1)
	}
	m.rpcErrors.Add(1)
}

// countingConn counts the bytes read and written on a connection.
type countingConn struct {
	net.Conn
	m *metrics
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.bytesIn.Add(uint64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.m.bytesOut.Add(uint64(n))
	return n, err
}

// countingCodec counts the requests a server codec reads.
type countingCodec struct {
	rpc.ServerCodec
	m *metrics
}

func (c countingCodec) ReadRequestHeader(r *rpc.Request) error {
	err := c.ServerCodec.ReadRequestHeader(r)
	if err == nil {
		c.m.received.Add(1)
	}
	return err
}
