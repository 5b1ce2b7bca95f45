package sim

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Silent members (internal/protocol's suspect.go): a host that vanishes is
// suspected, confirmed by probes and dropped long before the failure time;
// lost messages convict no live member.

var silentLong = flag.Bool("sim.silentlong", false, "measure false reports at 30-50% loss over longer runs")

// TestStaleness measures how stale the heartbeat of a live member gets at
// another, the distribution that chose the suspicion time Ts
// (SuspectRounds): the share of (member, peer) looks, at each member's
// rounds, that find the peer's heartbeat unchanged for Ts rounds or more.
func TestStaleness(t *testing.T) {
	for _, n := range []int{32, 128} {
		ts := protocol.SuspectRounds(n)
		for _, loss := range []float64{0, 0.1, 0.3} {
			c := New(Config{N: n, Seed: 1, Net: NetConfig{RequestLoss: loss, ResponseLoss: loss, Delay: ms, Jitter: ms}})
			c.StartConverged()
			c.RunFor(20 * time.Second)
			var looks, stale, ts2 int
			c.OnTick = func(i int) {
				now := c.Now()
				for _, r := range c.Member(i).Members() {
					if r.Addr == Addr(i) {
						continue
					}
					at, _ := c.Member(i).LastRise(r.Addr)
					looks++
					if now.Sub(at) >= time.Duration(ts)*time.Second {
						stale++
					}
					if now.Sub(at) >= time.Duration(2*ts)*time.Second {
						ts2++
					}
				}
			}
			c.RunFor(time.Duration(6400/n) * time.Second)
			t.Logf("n=%d loss=%.1f: stale for Ts=%d rounds or more in %.2g of looks, 2 Ts in %.2g", n, loss, ts, float64(stale)/float64(looks), float64(ts2)/float64(looks))
			if loss == 0 {
				assert.Less(t, float64(stale)/float64(looks), 0.01, "n=%d: suspicion is rare without loss", n)
			}
		}
	}
}

// TestSilentHostDropped crashes a member with its host (calls to it time
// out) in clusters of 32 and 128: every other member drops it within Ts +
// W + 2 rounds with no loss (a round for its last heartbeat, a round for
// the rounds' phase), far within the failure time, and within the failure
// time at 10% loss; no live member is reported dead.
func TestSilentHostDropped(t *testing.T) {
	for _, n := range []int{32, 128} {
		for _, loss := range []float64{0, 0.1} {
			for seed := uint64(1); seed <= 3; seed++ {
				r := Run(RunConfig{N: n, Loss: loss, Seed: seed, Delay: ms, Jitter: ms, Warmup: 20, HostDown: true})
				bound := protocol.SuspectRounds(n) + protocol.ConfirmRounds + 2
				t.Logf("n=%d loss=%.1f seed=%d: detect first=%d last=%d rounds (no-loss bound %d, FailureTime %d)", n, loss, seed, r.DetectFirst, r.DetectLast, bound, r.FailureRounds)
				require.Positive(t, r.DetectLast, "%+v", r)
				if loss == 0 {
					assert.LessOrEqual(t, r.DetectLast, bound, "n=%d seed=%d", n, seed)
				}
				assert.Less(t, r.DetectLast, r.FailureRounds, "n=%d loss=%.1f seed=%d", n, loss, seed)
				assert.GreaterOrEqual(t, r.DetectFirst, protocol.SuspectRounds(n), "not before a suspicion")
				assert.Zero(t, r.FalseReports, "%+v", r)
			}
		}
	}
}

// falseReports runs n converged members for d at the loss given, and
// returns the live members reported dead, the failure times (counted from
// the start, of the failure time at n) in which any was, and the probes
// sent.
func falseReports(n int, loss float64, seed uint64, d time.Duration) (reports, periods, probes int) {
	c := New(Config{N: n, Seed: seed, Net: NetConfig{RequestLoss: loss, ResponseLoss: loss, Delay: ms, Jitter: ms}})
	tfail := protocol.FailureTime(n, c.cfg.Interval, 3)
	hit := map[time.Duration]bool{}
	c.OnEvent = func(i int, ev protocol.Event) {
		if ev.Type == protocol.Failed {
			reports++
			hit[c.Elapsed()/tfail] = true
		}
	}
	c.StartConverged()
	c.RunFor(d)
	return reports, len(hit), c.Stats.Sent[protocol.Probe]
}

// TestSilenceNoFalseReports runs 32 members for 300 seconds at 10% and 30%
// message loss, three seeds each: no live member is reported dead.
func TestSilenceNoFalseReports(t *testing.T) {
	if testing.Short() {
		t.Skip("300 virtual seconds, several times")
	}
	for _, loss := range []float64{0.1, 0.3} {
		for seed := uint64(1); seed <= 3; seed++ {
			reports, _, probes := falseReports(32, loss, seed, 300*time.Second)
			t.Logf("loss=%.1f seed=%d: %d false reports, %d probes sent (%.1f a member a round)", loss, seed, reports, probes, float64(probes)/32/300)
			assert.Zero(t, reports, "loss=%.1f seed=%d", loss, seed)
		}
	}
}

// TestSilenceFalseReportRate measures the false reports at 15% to 70% loss
// in short runs, beside the bound of both rules (protocol.SilenceFalseReportProbability
// and FalseReportProbability). The bound is on the probability that any
// member reports any other falsely in one failure time, so the rate it is
// compared with is the share of failure times in which any report came.
func TestSilenceFalseReportRate(t *testing.T) {
	runs, d := 3, 120*time.Second
	if *silentLong {
		runs, d = 5, 300*time.Second
	}
	const n = 32
	for _, loss := range []float64{0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7} {
		total, hit := 0, 0
		for seed := uint64(1); seed <= uint64(runs); seed++ {
			reports, periods, _ := falseReports(n, loss, seed, d)
			total += reports
			hit += periods
		}
		tfail := protocol.FailureTime(n, time.Second, 3)
		periods := float64(runs) * float64(d) / float64(tfail)
		silence := protocol.SilenceFalseReportProbability(n, loss, 3)
		timeout := protocol.TimeoutFalseReportProbability(n, loss, 3)
		t.Logf("n=%d loss=%.2f: %d false reports, in %d of %.0f failure times (%d runs of %v): %.2g per failure time; bound per failure time: silence rule %s, timeout rule %s",
			n, loss, total, hit, periods, runs, d, float64(hit)/periods, fmtP(silence), fmtP(timeout))
	}
}

func fmtP(p float64) string {
	if p >= 1 {
		return "1 (no bound)"
	}
	return fmt.Sprintf("%.2g", p)
}
