package gossip

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRumorsSpreadWithoutWaitingForARound(t *testing.T) {
	// With an hour between rounds, only each member's first round (its
	// join) and the rumors can carry anything. With no more peers than
	// rumorFanout, a rumor reaches every member the spreader knows.
	slow := func(c Config, i int) Config {
		c.GossipInterval = time.Hour
		c.Data = fmt.Sprint("v0 of ", i)
		return c
	}
	gs := []*Gossip{startMember(t, slow(testConfig(t), 0))}
	for i := 1; i <= protocol.RumorFanout; i++ {
		// Each joiner learns the cluster from the seed's answer, and the
		// others learn of it from the seed's rumor.
		gs = append(gs, startMember(t, slow(testConfig(t, gs[0].Addr()), i)))
		requireView(t, gs, addrsOf(gs...), converge, "a join spreads as a rumor")
	}
	require.NoError(t, gs[2].UpdateData("v1"))
	require.Eventually(t, func() bool {
		for _, g := range gs {
			if dataString(g, gs[2].Addr()) != "v1" {
				return false
			}
		}
		return true
	}, converge, 5*time.Millisecond, "a data change spreads as a rumor")
}

func TestConcurrentJoinsSpreadAsRumors(t *testing.T) {
	// Members joining together, with an hour between rounds: only their
	// first round and the rumors carry anything. The seed learns of each
	// joiner, and its rumors must reach every joiner it knows, even those
	// it learned of when the joiner was its only peer (a rumor about a
	// member sent to that member alone tells no one anything).
	slow := func(c Config) Config {
		c.GossipInterval = time.Hour
		return c
	}
	seed := startMember(t, slow(testConfig(t)))
	gs := []*Gossip{seed}
	var wg sync.WaitGroup
	joiners := make([]*Gossip, protocol.RumorFanout)
	for i := range joiners {
		g, err := NewWithConfig(slow(testConfig(t, seed.Addr())))
		require.NoError(t, err)
		t.Cleanup(g.Close)
		joiners[i] = g
	}
	for _, g := range joiners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, g.Start())
		}()
	}
	wg.Wait()
	gs = append(gs, joiners...)
	requireView(t, gs, addrsOf(gs...), converge, "joins spread as rumors")
}
