package gossip

import (
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
)

func TestRumorBudget(t *testing.T) {
	// Without a gap, the budget alone: rumorBurst spreads at once, then
	// rumorRate a round.
	now := time.Unix(1000, 0)
	b := rumorPacer{tokens: rumorBurst, per: time.Second}
	for i := 0; i < rumorBurst; i++ {
		assert.Zero(t, b.wait(now), "spread %d of the burst goes at once", i)
	}
	assert.Equal(t, time.Second, b.wait(now), "then one a round")
	assert.Equal(t, 500*time.Millisecond, b.wait(now.Add(500*time.Millisecond)))
	assert.Zero(t, b.wait(now.Add(time.Second)))
	assert.Zero(t, b.wait(now.Add(time.Hour)))
	assert.InDelta(t, rumorBurst-1, b.tokens, 1e-9, "earned spreads are capped at the burst")
}

func TestRumorGap(t *testing.T) {
	now := time.Unix(1000, 0)
	p := newRumorPacer(time.Second)
	gap := protocol.RumorGap(time.Second)
	assert.Zero(t, p.wait(now), "the first spread goes at once")
	assert.Equal(t, gap, p.wait(now), "the next waits a rumor gap")
	assert.Equal(t, gap/2, p.wait(now.Add(gap/2)))
	assert.InDelta(t, rumorBurst-1, p.tokens, 1e-9, "a spread held by the gap costs nothing")
	assert.Zero(t, p.wait(now.Add(gap)), "and goes once the gap has passed")
}
