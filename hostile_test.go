package gossip

import (
	"math"
	"net/rpc"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Updates an unauthenticated peer can send: forged heartbeats.

func TestForgedHeartbeatAboutSelf(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	own := g.entryOf(selfAddr).heartbeat
	highest := clk.Now().Add(maxHeartbeatLead).UnixMicro()

	for _, hb := range []int64{math.MaxInt64, math.MaxInt64 - 1, highest + 1, 1 << 62} {
		g.mergeAt(Entry{Addr: selfAddr, Heartbeat: hb})
		assert.Equal(t, own, g.entryOf(selfAddr).heartbeat, "heartbeat %d beyond the clock's lead is ignored", hb)
	}
	// The highest acceptable heartbeat: we count on above it, and peers
	// accept ours once their clock has moved on by a microsecond.
	g.mergeAt(Entry{Addr: selfAddr, Heartbeat: highest})
	self := g.entryOf(selfAddr)
	require.Equal(t, highest+1, self.heartbeat, "we count on above a forged heartbeat")
	clk.Advance(time.Microsecond)
	assert.Empty(t, g.checkEntry(Entry{Addr: selfAddr, Heartbeat: self.heartbeat}), "our heartbeat is acceptable")
}

func TestForgedHeartbeatAboutPeer(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer = "10.0.0.2:7000"
	g.mergeAt(Entry{Addr: peer, Heartbeat: clk.Now().UnixMicro(), WithData: true})
	g.mergeAt(Entry{Addr: peer, Heartbeat: math.MaxInt64, WithData: true})
	assert.Equal(t, clk.Now().UnixMicro(), g.entryOf(peer).heartbeat, "an impossible heartbeat is ignored")
	// A dead member's record is never near overflow, so stale gossip
	// cannot revive it through an overflowing margin.
	clk.Advance(g.FailureTime() + time.Second)
	require.Len(t, g.GetMembers(), 1)
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 5, WithData: true}), "stale gossip does not revive a dead member")
}

// TestForgedHugeHeartbeatDoesNotKillItsMember has a stranger tell one member
// that another, m, has the highest heartbeat it can forge. Everyone adopts
// it, so m's own heartbeats look old; but m hears the forged value about
// itself, counts on above it, and so stays alive everywhere.
func TestForgedHugeHeartbeatDoesNotKillItsMember(t *testing.T) {
	gs := startCluster(t, 3, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	m := gs[2]

	c, err := rpc.Dial("tcp", gs[0].Addr())
	require.NoError(t, err)
	defer c.Close()
	forged := time.Now().Add(maxHeartbeatLead).UnixMicro() // the highest heartbeat gs[0] accepts
	for _, hb := range []int64{math.MaxInt64, forged} {
		req := ExchangeRequest{From: "10.9.9.9:1", Members: []Entry{{Addr: m.Addr(), Heartbeat: hb, WithData: true}}}
		require.NoError(t, c.Call("Gossip.Exchange", req, &ExchangeResponse{}))
	}
	e := gs[0].entryOf(m.Addr())
	require.NotNil(t, e)
	require.GreaterOrEqual(t, e.heartbeat, forged, "the forged heartbeat was taken")
	require.Eventually(t, func() bool {
		for _, g := range gs {
			if e := g.entryOf(m.Addr()); e == nil || e.heartbeat <= forged {
				return false
			}
		}
		return true
	}, converge, 10*time.Millisecond, "m counts on above the forged heartbeat and everyone sees it")
	assert.Never(t, func() bool {
		for _, g := range gs {
			if len(g.GetMembers()) != 3 {
				return true
			}
		}
		return false
	}, 5*gs[0].FailureTime(), 10*time.Millisecond, "nobody declares m dead")
}
