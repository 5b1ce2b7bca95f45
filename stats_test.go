package gossip

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatsRPCWithPlainClient(t *testing.T) {
	gs := startCluster(t, 4, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	c := plainClient(t, gs[0].Addr())
	stats := func() Stats {
		var resp StatsResponse
		require.NoError(t, c.Call("Gossip.Stats", StatsRequest{}, &resp))
		return resp.Stats
	}

	s := stats()
	assert.Equal(t, gs[0].Addr(), s.Addr)
	assert.Equal(t, 4, s.Alive)
	assert.Zero(t, s.Failed+s.Left)
	assert.Equal(t, gs[0].FailureTime(), s.FailureTime)
	assert.GreaterOrEqual(t, s.Timeout, s.FailureTime)
	assert.GreaterOrEqual(t, s.Unanswered, 0.0)
	assert.Positive(t, s.Rounds)
	assert.Positive(t, s.MessagesSent)
	assert.Positive(t, s.MessagesReceived)
	assert.Positive(t, s.BytesSent)
	assert.Positive(t, s.BytesReceived)
	assert.Positive(t, s.Merges)
	assert.Positive(t, s.MergeTime)
	assert.LessOrEqual(t, s.LastMergeTime, s.MergeTime)

	// Counters rise; a member that left and one that failed are counted
	// apart, and exchanges with the dead one fail.
	require.NoError(t, gs[3].Shutdown(context.Background()))
	gs[2].Close()
	require.Eventually(t, func() bool {
		s2 := stats()
		return s2.Alive == 2 && s2.Left == 1 && s2.Failed == 1 && s2.RPCErrors > 0 &&
			s2.Rounds > s.Rounds && s2.BytesReceived > s.BytesReceived
	}, converge, 10*time.Millisecond, "one left, one failed")
	before := gs[0].Stats().MessagesReceived
	assert.Greater(t, stats().MessagesReceived, before, "the Stats call itself is counted")
}
