package gossip

import (
	"net"
	"net/rpc"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlainRPCClient(t *testing.T) {
	gs := startCluster(t, 3, func(i int, c *Config) { c.Data = map[string]string{"role": "db"} })
	requireView(t, gs, addrsOf(gs...), converge, "converge")

	c := plainClient(t, gs[0].Addr())
	var resp GetMembersResponse
	require.NoError(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &resp))
	assert.Equal(t, addrsOf(gs...), addrs(resp.Members))
	for _, m := range resp.Members {
		assert.Equal(t, map[string]string{"role": "db"}, m.Data)
		assert.Positive(t, m.Heartbeat)
	}

	// Gossip.Gossip pushes members in, as Receive does. The outsider
	// listens but never answers: a dial refused would declare it dead at
	// once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	outsider := ln.Addr().String()
	require.NoError(t, c.Call("Gossip.Gossip", GossipRequest{Members: []Member{{Addr: outsider, Heartbeat: 7, Data: "hello"}}}, &GossipResponse{}))
	assert.Eventually(t, func() bool { return dataString(gs[1], outsider) == "hello" }, converge, 5*time.Millisecond,
		"a pushed member spreads")
	// It never gossips, so it is dropped after FailureTime.
	requireView(t, gs, addrsOf(gs...), converge, "the silent pushed member is dropped")
}

func TestHostileUpdatesAreBounded(t *testing.T) {
	g := startMember(t, func() Config {
		c := testConfig(t)
		c.MaxMembers = 50
		return c
	}())
	c := plainClient(t, g.Addr())

	// Too many members in one message: refused with an error.
	many := make([]Entry, 51)
	for i := range many {
		many[i] = Entry{Addr: net.JoinHostPort("10.9.0.1", strconv.Itoa(i+1)), Heartbeat: 1, WithData: true}
	}
	err := c.Call("Gossip.Exchange", ExchangeRequest{From: "10.9.9.9:1", Members: many}, &ExchangeResponse{})
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

// A call of a method the member lacks is answered with an error and the
// connection serves the next; calls sent together are all answered.
func TestConnectionGoesOnAfterAnUnknownMethod(t *testing.T) {
	gs := startCluster(t, 2, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	c := plainClient(t, gs[0].Addr())

	err := c.Call("Gossip.Nope", GetMembersRequest{}, &GetMembersResponse{})
	require.ErrorContains(t, err, "can't find method")
	var resp GetMembersResponse
	require.NoError(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &resp), "the connection goes on after an unknown method")
	assert.Equal(t, addrsOf(gs...), addrs(resp.Members))

	calls := make([]*rpc.Call, 20)
	for i := range calls {
		calls[i] = c.Go("Gossip.GetMembers", GetMembersRequest{}, &GetMembersResponse{}, nil)
	}
	for i, call := range calls {
		select {
		case <-call.Done:
			require.NoError(t, call.Error, "call %d", i)
			assert.Len(t, call.Reply.(*GetMembersResponse).Members, 2, "call %d", i)
		case <-time.After(converge):
			t.Fatalf("call %d of %d sent together was not answered", i, len(calls))
		}
	}
}
