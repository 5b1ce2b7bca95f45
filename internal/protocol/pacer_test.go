package protocol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestPacerBudget(t *testing.T) {
	// Without a gap, the budget alone: rumorBurst spreads at once, then
	// rumorRate a round.
	now := time.Unix(1000, 0)
	b := Pacer{tokens: rumorBurst, per: time.Second}
	for i := 0; i < rumorBurst; i++ {
		assert.Zero(t, b.Wait(now), "spread %d of the burst goes at once", i)
	}
	assert.Equal(t, time.Second, b.Wait(now), "then one a round")
	assert.Equal(t, 500*time.Millisecond, b.Wait(now.Add(500*time.Millisecond)))
	assert.Zero(t, b.Wait(now.Add(time.Second)))
	assert.Zero(t, b.Wait(now.Add(time.Hour)))
	assert.InDelta(t, rumorBurst-1, b.tokens, 1e-9, "earned spreads are capped at the burst")
}

func TestPacerGap(t *testing.T) {
	now := time.Unix(1000, 0)
	p := NewPacer(time.Second)
	gap := RumorGap(time.Second)
	assert.Zero(t, p.Wait(now), "the first spread goes at once")
	assert.Equal(t, gap, p.Wait(now), "the next waits a rumor gap")
	assert.Equal(t, gap/2, p.Wait(now.Add(gap/2)))
	assert.InDelta(t, rumorBurst-1, p.tokens, 1e-9, "a spread held by the gap costs nothing")
	assert.Zero(t, p.Wait(now.Add(gap)), "and goes once the gap has passed")
}
