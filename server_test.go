package gossip

import (
	"encoding/gob"
	"net"
	"net/rpc"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

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
