package sim

import (
	"flag"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/require"
)

var spreadSizes = flag.String("sim.spread", "", "more cluster sizes for TestSpreadRoundsBoundsSimulation, comma-separated (say 256,512,1024,2048,4096)")

// meanSpread runs n lockstep members with no message delay, from full
// connection pools, and returns the mean rounds a heartbeat takes to reach
// all of them, over the heartbeats of up to 32 members made in enough
// rounds for about 20000/n + 20 heartbeats.
func meanSpread(t *testing.T, n int, loss float64, seed uint64) float64 {
	c := New(Config{N: n, Seed: seed, Lockstep: true, Net: NetConfig{RequestLoss: loss, ResponseLoss: loss}})
	c.StartConverged()
	c.FillPools()
	s := protocol.SpreadRounds(n)
	c.RunFor(time.Duration(2*s) * c.cfg.Interval) // a few exchanges, so that the pools' order of use settles
	sources := members(0, min(n, 32))
	rounds := max(3, (20000/n+20+len(sources)-1)/len(sources))
	m := c.MeasureHeartbeats(sources, 1, giveUp*s)
	c.RunFor(time.Duration(rounds) * c.cfg.Interval)
	m.Close()
	for m.Pending() > 0 {
		c.RunFor(c.cfg.Interval)
	}
	m.Stop()
	require.Zero(t, m.GaveUp, "n=%d loss=%.1f: heartbeats that never reached everyone", n, loss)
	return m.Mean()
}

// TestSpreadRoundsBoundsSimulation checks the S(n) of failure.go against
// the members' own state machine, in lockstep rounds with no delay (the
// slowest timing: a heartbeat crosses one exchange a round): the mean
// spread time of a heartbeat stays below S(n) without loss, and within one
// round of it at 10% loss. Without the race detector it runs up to 256
// members; larger sizes run with -sim.spread.
func TestSpreadRoundsBoundsSimulation(t *testing.T) {
	sizes := []int{2, 3, 4, 8, 16, 32, 64, 128}
	if !raceEnabled {
		sizes = append(sizes, 256)
	}
	for _, f := range strings.Split(*spreadSizes, ",") {
		if f = strings.TrimSpace(f); f != "" {
			n, err := strconv.Atoi(f)
			require.NoError(t, err)
			sizes = append(sizes, n)
		}
	}
	for _, loss := range []float64{0, 0.1} {
		for _, n := range sizes {
			mean := meanSpread(t, n, loss, 1)
			bound := protocol.SpreadRounds(n)
			if loss > 0 {
				bound++
			}
			if mean > float64(bound) {
				t.Errorf("n=%d loss=%.1f: mean spread %.2f rounds, above %d (S(n) = %d)", n, loss, mean, bound, protocol.SpreadRounds(n))
			}
			t.Logf("n=%d loss=%.1f: mean spread %.2f rounds, S(n) = %d", n, loss, mean, protocol.SpreadRounds(n))
		}
	}
}

// TestLossSlowsSpread checks that the network's loss reaches the members:
// heartbeats spread more slowly at 30% loss than at none.
func TestLossSlowsSpread(t *testing.T) {
	clean, lossy := meanSpread(t, 64, 0, 2), meanSpread(t, 64, 0.3, 2)
	t.Logf("n=64: mean spread %.2f rounds without loss, %.2f at 30%%", clean, lossy)
	require.Greater(t, lossy, clean+0.5, "loss slows the spread")
}
