package sim

import (
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
)

func TestTmpDetect(t *testing.T) {
	for _, n := range []int{32, 128} {
		for seed := uint64(1); seed <= 4; seed++ {
			r := Run(RunConfig{N: n, Seed: seed, Delay: ms, Jitter: ms, Warmup: 10, HostDown: true})
			t.Logf("n=%d seed=%d detect first=%d last=%d (FailureTime %d) false=%d", n, seed, r.DetectFirst, r.DetectLast, r.FailureRounds, r.FalseReports)
		}
	}
}

func TestTmpFalse(t *testing.T) {
	for _, loss := range []float64{0, 0.1, 0.3, 0.5} {
		for seed := uint64(1); seed <= 3; seed++ {
			c := New(Config{N: 32, Seed: seed, Net: NetConfig{RequestLoss: loss, ResponseLoss: loss, Delay: ms, Jitter: ms}})
			f := 0
			c.OnEvent = func(i int, ev protocol.Event) {
				if ev.Type == protocol.Failed {
					f++
				}
			}
			c.StartConverged()
			c.RunFor(300 * time.Second)
			t.Logf("loss=%.1f seed=%d false=%d probes=%d exchanges=%d skipped=%d", loss, seed, f, c.Stats.Sent[protocol.Probe], c.Stats.Sent[protocol.Exchange], c.Stats.Skipped)
		}
	}
}
