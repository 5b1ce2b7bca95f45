package gossip

import (
	"math"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Updates an unauthenticated peer can send: forged heartbeats.

// TestForgedHugeHeartbeatDoesNotKillItsMember has a stranger tell one member
// that another, m, has the highest heartbeat it can forge. Everyone adopts
// it, so m's own heartbeats look old; but m hears the forged value about
// itself, counts on above it, and so stays alive everywhere.
func TestForgedHugeHeartbeatDoesNotKillItsMember(t *testing.T) {
	gs := startCluster(t, 3, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	m := gs[2]

	c := plainClient(t, gs[0].Addr())
	forged := time.Now().Add(protocol.MaxHeartbeatLead).UnixMicro() // the highest heartbeat gs[0] accepts
	for _, hb := range []int64{math.MaxInt64, forged} {
		req := ExchangeRequest{From: "10.9.9.9:1", Members: []Entry{{Addr: m.Addr(), Heartbeat: hb, WithData: true}}}
		require.NoError(t, c.Call("Gossip.Exchange", req, &ExchangeResponse{}))
	}
	e := gs[0].lookup(m.Addr())
	require.NotNil(t, e)
	require.GreaterOrEqual(t, e.Heartbeat, forged, "the forged heartbeat was taken")
	require.Eventually(t, func() bool {
		for _, g := range gs {
			if e := g.lookup(m.Addr()); e == nil || e.Heartbeat <= forged {
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
