package sim

import (
	"bytes"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
)

// RunConfig is one measured run (Run).
type RunConfig struct {
	N    int
	Loss float64 // each request and each answer is lost with this probability
	Seed uint64
	// Warmup is the rounds of gossip before the measurements, so that the
	// connection pools fill; every report in them is false.
	Warmup int
	// Steady is the rounds of steady gossip before the crash, counting
	// false reports.
	Steady int
	// Target is the members' FalseReportTarget (0: Nfailures decides).
	Target float64
	// Lockstep, Delay and Jitter set the timing (Config.Lockstep,
	// NetConfig.Delay and Jitter).
	Lockstep      bool
	Delay, Jitter time.Duration
	// HostDown crashes member 0 with its host (Cluster.CrashHost): calls
	// to it time out and the failure time detects it. Without it, member 0
	// crashes alone (Cluster.Crash): calls to it are refused.
	HostDown bool
}

// giveUp is how many times S(n) a spread may take before a run gives up
// waiting for it.
const giveUp = 50

// Run measures, on a converged cluster of c.N members and after c.Warmup
// rounds: the spread of a heartbeat of member 0 (HeartbeatRounds), the
// spread of a data change of member 0 (SpreadRounds), c.Steady rounds of
// steady gossip, and the detection of member 0's crash; and the false
// reports of the whole run. Its phases begin half a round after a round
// of lockstep members, and its rounds are counted from there.
func Run(rc RunConfig) SimResult {
	c := New(Config{
		N: rc.N, Seed: rc.Seed, Lockstep: rc.Lockstep,
		Net:               NetConfig{RequestLoss: rc.Loss, ResponseLoss: rc.Loss, Delay: rc.Delay, Jitter: rc.Jitter},
		FalseReportTarget: rc.Target, ExpectedLoss: max(rc.Loss, 0.01),
	})
	iv := c.cfg.Interval
	r := SimResult{Source: "code", N: rc.N, Loss: rc.Loss, Lockstep: rc.Lockstep,
		PredictedSpread: protocol.SpreadRounds(rc.N), WarmupRounds: rc.Warmup, SteadyRounds: rc.Steady}
	limit := giveUp * r.PredictedSpread
	subject := Addr(0)

	crashed := false
	falseReports := &r.FalseReports
	var (
		changed   []byte        // member 0's new data
		reached   []bool        // members that have it
		nreached  int           // how many
		lastReach time.Duration // when the last one got it
		detected  []bool        // members that declared member 0 dead
		ndetected int
		phase     time.Duration // when the current phase began
	)
	c.OnEvent = func(i int, ev protocol.Event) {
		switch {
		case ev.Type == protocol.Failed && ev.Addr == subject && crashed:
			if !detected[i] {
				detected[i] = true
				ndetected++
			}
			rounds := roundsSince(c.Elapsed(), phase, iv)
			if r.DetectFirst == 0 {
				r.DetectFirst = rounds
			}
			r.DetectLast = rounds
		case ev.Type == protocol.Failed:
			*falseReports++
		case changed != nil && ev.Addr == subject && bytes.Equal(ev.Data, changed) && !reached[i]:
			reached[i] = true
			nreached++
			lastReach = c.Elapsed()
		}
	}
	c.StartConverged()
	r.FailureRounds = int(c.Member(1).FailureTime() / iv)

	// Warm-up: the connection pools fill.
	start := iv / 2
	phase = start + time.Duration(rc.Warmup)*iv
	c.RunUntil(phase)

	// A heartbeat of member 0: the next it makes.
	meter := c.MeasureHeartbeats([]int{0}, probesPerRound(rc.Lockstep), limit)
	for len(meter.Rounds) == 0 && meter.GaveUp == 0 {
		c.RunFor(iv)
	}
	meter.Stop()
	r.HeartbeatRounds = limit
	if len(meter.Rounds) > 0 {
		r.HeartbeatRounds = meter.Rounds[0]
	}
	phase = nextPhase(c.Elapsed(), iv)
	c.RunUntil(phase)

	// A data change of member 0.
	changed = []byte("changed")
	reached = make([]bool, rc.N)
	reached[0] = true
	nreached = 1
	c.SetData(0, changed)
	for nreached < rc.N && c.Elapsed()-phase < time.Duration(limit)*iv {
		c.RunFor(iv)
	}
	r.SpreadRounds = limit
	if nreached == rc.N {
		r.SpreadRounds = roundsSince(lastReach, phase, iv)
	}
	phase = nextPhase(c.Elapsed(), iv)
	c.RunUntil(phase)

	// Steady gossip.
	falseReports = &r.SteadyFalse
	c.RunFor(time.Duration(rc.Steady) * iv)
	r.FalseReports += r.SteadyFalse
	falseReports = &r.FalseReports
	r.PredictedFalse = FalseReportBound(rc.N, rc.Loss, r.FailureRounds, r.SteadyRounds)

	// Member 0 crashes.
	phase = c.Elapsed()
	detected = make([]bool, rc.N)
	crashed = true
	if rc.HostDown {
		c.CrashHost(0)
	} else {
		c.Crash(0)
	}
	for ndetected < rc.N-1 && c.Elapsed()-phase < time.Duration(10*r.FailureRounds)*iv {
		c.RunFor(iv)
	}
	r.Rounds = int((c.Elapsed() - start + iv/2) / iv)
	r.PredictedFalseRun = FalseReportBound(rc.N, rc.Loss, r.FailureRounds, r.Rounds)
	return r
}

// roundsSince returns the rounds from since to t, a part of one counting as
// one.
func roundsSince(t, since, iv time.Duration) int {
	return int((t - since + iv - 1) / iv)
}

// nextPhase returns the first time from t half a round after a multiple of
// the interval: between two rounds of lockstep members.
func nextPhase(t, iv time.Duration) time.Duration {
	k := (t - iv/2 + iv - 1) / iv
	return k*iv + iv/2
}

// probesPerRound is how often a run looks at the members' heartbeats: just
// before each round of lockstep members, and ten times a round otherwise.
func probesPerRound(lockstep bool) int {
	if lockstep {
		return 1
	}
	return 10
}
