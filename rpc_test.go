package gossip

import (
	"bytes"
	"context"
	"encoding/gob"
	"io"
	"net"
	"net/rpc"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestPlainRPCClient(t *testing.T) {
	gs := startCluster(t, 3, func(i int, c *Config) { c.Data = map[string]string{"role": "db"} })
	requireView(t, gs, addrsOf(gs...), converge, "converge")

	c, err := rpc.Dial("tcp", gs[0].Addr())
	require.NoError(t, err)
	defer c.Close()
	var resp GetMembersResponse
	require.NoError(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &resp))
	assert.Equal(t, addrsOf(gs...), addrs(resp.Members))
	for _, m := range resp.Members {
		assert.Equal(t, map[string]string{"role": "db"}, m.Data)
		assert.Positive(t, m.Heartbeat)
	}

	// Gossip.Gossip pushes members in, as Receive does.
	const outsider = "127.0.0.1:1"
	require.NoError(t, c.Call("Gossip.Gossip", GossipRequest{Members: []Member{{Addr: outsider, Heartbeat: 7, Data: "hello"}}}, &GossipResponse{}))
	assert.Eventually(t, func() bool { return dataString(gs[1], outsider) == "hello" }, converge, 5*time.Millisecond,
		"a pushed member spreads")
	// It never gossips, so it is dropped after FailureTime.
	requireView(t, gs, addrsOf(gs...), converge, "the silent pushed member is dropped")
}

// closedWithin reports whether c was closed by the server within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		return true // EOF
	}
	ne, ok := err.(net.Error)
	return !ok || !ne.Timeout()
}

func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	gs := startCluster(t, 3, func(i int, c *Config) {
		c.RPCTimeout = 300 * time.Millisecond
		c.MaxMessageSize = 64 << 10
		c.MaxDataSize = 1 << 10
	})
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	target := gs[0]

	dial := func() net.Conn {
		c, err := net.Dial("tcp", target.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	var header bytes.Buffer
	require.NoError(t, gob.NewEncoder(&header).Encode(rpc.Request{ServiceMethod: "Gossip.Exchange", Seq: 1}))

	cases := map[string][]byte{
		"garbage":              []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"oversized length":     {0xfc, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3},
		"bad length prefix":    {0xf0, 1, 2, 3},
		"header then garbage":  append(header.Bytes(), 0x05, 0xff, 0xff, 0xff, 0xff, 0xff),
		"just over the limit":  append([]byte{0xfd, 0x01, 0x00, 0x01}, make([]byte, 100)...),
		"never speaks (empty)": nil,
	}
	for name, payload := range cases {
		c := dial()
		if payload != nil {
			_, err := c.Write(payload)
			require.NoError(t, err, name)
		}
		assert.True(t, closedWithin(c, 10*time.Second), "%s: connection not closed", name)
	}

	// The member still answers and gossips.
	rc, err := rpc.Dial("tcp", target.Addr())
	require.NoError(t, err)
	defer rc.Close()
	var resp GetMembersResponse
	require.NoError(t, rc.Call("Gossip.GetMembers", GetMembersRequest{}, &resp))
	assert.Len(t, resp.Members, 3)
	require.NoError(t, gs[2].UpdateData("still gossiping"))
	assert.Eventually(t, func() bool { return dataString(target, gs[2].Addr()) == "still gossiping" }, converge, 5*time.Millisecond)
	requireView(t, gs, addrsOf(gs...), converge, "nobody was dropped")
}

func TestHostileUpdatesAreBounded(t *testing.T) {
	g := startMember(t, func() Config {
		c := testConfig(t)
		c.MaxMembers = 50
		return c
	}())
	c, err := rpc.Dial("tcp", g.Addr())
	require.NoError(t, err)
	defer c.Close()

	// Too many members in one message: refused with an error.
	many := make([]Entry, 51)
	for i := range many {
		many[i] = Entry{Addr: net.JoinHostPort("10.9.0.1", strconv.Itoa(i+1)), Heartbeat: 1, WithData: true}
	}
	err = c.Call("Gossip.Exchange", ExchangeRequest{From: "10.9.9.9:1", Members: many}, &ExchangeResponse{})
	assert.ErrorContains(t, err, "51 members in one message")

	// Many messages of fake members: the table stops at MaxMembers.
	for i := 0; i < 10; i++ {
		batch := make([]Entry, 40)
		for j := range batch {
			batch[j] = Entry{Addr: net.JoinHostPort("10.9.1.1", strconv.Itoa(i*40+j+1)), Heartbeat: time.Now().UnixMicro(), WithData: true}
		}
		require.NoError(t, c.Call("Gossip.Exchange", ExchangeRequest{From: "10.9.9.9:1", Members: batch}, &ExchangeResponse{}))
	}
	st := g.Stats()
	assert.LessOrEqual(t, st.Alive+st.Failed+st.Left, 50)

	// Data over the limit and malformed entries are ignored.
	bad := []Entry{
		{Addr: "10.9.2.1:1", Heartbeat: 5, Data: make([]byte, 2*DefaultMaxDataSize)},
		{Addr: "no port", Heartbeat: 5},
		{Addr: "10.9.2.2:1", Heartbeat: -3},
		{Addr: "10.9.2.3:1", Heartbeat: 1 << 62},
	}
	require.NoError(t, c.Call("Gossip.Exchange", ExchangeRequest{From: "10.9.9.9:1", Members: bad}, &ExchangeResponse{}))
	for _, e := range bad {
		assert.Nil(t, g.lookup(e.Addr))
	}
}

func TestInboundConnectionsAreBounded(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxInboundConns = 3
	g := startMember(t, cfg)
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", g.Addr())
		require.NoError(t, err)
		defer c.Close()
		conns = append(conns, c)
		require.Eventually(t, func() bool { return g.conns.len() == i+1 }, converge, time.Millisecond)
	}
	// A fourth takes the place of the one idle the longest, the first.
	extra, err := net.Dial("tcp", g.Addr())
	require.NoError(t, err)
	defer extra.Close()
	assert.True(t, closedWithin(conns[0], 10*time.Second), "the connection idle the longest closed")
	client := rpc.NewClient(extra)
	var resp GetMembersResponse
	require.NoError(t, client.Call("Gossip.GetMembers", GetMembersRequest{}, &resp), "the new connection is served")
	assert.Equal(t, 3, g.conns.len())
}

func TestBusyInboundConnectionsAreNotEvicted(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxInboundConns = 2
	cfg.RPCTimeout = 10 * time.Second // how long a request may take to arrive whole
	g := startMember(t, cfg)
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", g.Addr())
		require.NoError(t, err)
		defer c.Close()
		// A request header without its body: the request is under way.
		require.NoError(t, gob.NewEncoder(c).Encode(rpc.Request{ServiceMethod: "Gossip.GetMembers", Seq: 1}))
	}
	require.Eventually(t, func() bool {
		g.conns.mu.Lock()
		defer g.conns.mu.Unlock()
		busy := 0
		for _, st := range g.conns.conns {
			busy += int(st.busy.Load())
		}
		return busy == 2
	}, converge, time.Millisecond)
	extra, err := net.Dial("tcp", g.Addr())
	require.NoError(t, err)
	defer extra.Close()
	assert.True(t, closedWithin(extra, 5*time.Second), "a connection over the bound, with all others busy, is closed")
	assert.Equal(t, 2, g.conns.len())
}

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	var held []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestOutgoingRPCHonoursTrpc(t *testing.T) {
	hole := blackHole(t)
	cfg := testConfig(t, hole)
	cfg.RPCTimeout = 200 * time.Millisecond
	g := startMember(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RPCTimeout)
	defer cancel()
	start := time.Now()
	err := g.exchangeNow(ctx, hole)
	took := time.Since(start)
	// The error is the deadline, or the connection closed by the gossip
	// loop's own attempt on the same pooled connection timing out.
	assert.Error(t, err)
	assert.Less(t, took, 5*time.Second, "exchange with a black hole took %v", took)

	// The gossip loop keeps trying the seed, each attempt bounded by Trpc;
	// attempts never pile up and Close does not wait on them.
	require.Eventually(t, func() bool {
		return g.backoff(hole) >= 2*g.cfg.GossipInterval
	}, converge, time.Millisecond, "seed attempts time out and back off")
	assert.LessOrEqual(t, len(g.sem), maxExchangesInFlight)
	closed := make(chan struct{})
	go func() {
		g.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(converge):
		t.Fatal("Close waited on a black hole")
	}
}

func TestCloseWhileClientsAreConnectedLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g, err := NewWithConfig(testConfig(t))
	require.NoError(t, err)
	require.NoError(t, g.Start())
	c, err := rpc.Dial("tcp", g.Addr())
	require.NoError(t, err)
	require.NoError(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &GetMembersResponse{}))
	g.Close()
	assert.Error(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &GetMembersResponse{}))
	c.Close()
}
