package sim

import (
	"encoding/json"
	"flag"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The grid of measured runs, behind flags:
//
//	go test ./internal/sim -run 'TestSimulation$' -sim.n 32,128,512,2048 -sim.loss 0,0.1 -sim.runs 3 -sim.warmup 20 -sim.steady 100 -sim.out sim.json -v
var (
	simN        = flag.String("sim.n", "", "cluster sizes to simulate, comma-separated (the grid runs only if set)")
	simLoss     = flag.String("sim.loss", "0,0.1", "message loss rates to simulate, comma-separated")
	simRuns     = flag.Int("sim.runs", 3, "runs per size and loss rate")
	simOut      = flag.String("sim.out", "", "write the results as JSON to this file")
	simSteady   = flag.Int("sim.steady", 0, "rounds of steady gossip, counting false reports, before the crash")
	simTarget   = flag.Float64("sim.target", 0, "FalseReportTarget of the simulated members (0: Nfailures)")
	simWarmup   = flag.Int("sim.warmup", 20, "rounds of gossip before the measurements, so that the members' connection pools are full")
	simLockstep = flag.Bool("sim.lockstep", false, "members tick at the same instants, instead of each at its own pace")
	simDelay    = flag.Duration("sim.delay", time.Millisecond, "one-way delay of every message")
	simJitter   = flag.Duration("sim.jitter", time.Millisecond, "random delay added to each message, uniform up to this")
	simHostDown = flag.Bool("sim.hostdown", false, "the crashed member's host goes down with it: calls to it time out instead of being refused")
)

func TestSimulation(t *testing.T) {
	if *simN == "" {
		t.Skip("set -sim.n to run the simulation")
	}
	var results []SimResult
	for _, nf := range strings.Split(*simN, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(nf))
		require.NoError(t, err)
		for _, lf := range strings.Split(*simLoss, ",") {
			loss, err := strconv.ParseFloat(strings.TrimSpace(lf), 64)
			require.NoError(t, err)
			for run := 0; run < *simRuns; run++ {
				runtime.GC() // free the last run's tables before making the next
				start := time.Now()
				r := Run(RunConfig{N: n, Loss: loss, Seed: uint64(run + 1), Warmup: *simWarmup, Steady: *simSteady,
					Target: *simTarget, Lockstep: *simLockstep, Delay: *simDelay, Jitter: *simJitter, HostDown: *simHostDown})
				r.Seconds = time.Since(start).Seconds()
				t.Logf("n=%d loss=%.2f heartbeat=%d spread=%d (S(n)=%d) detect first=%d last=%d (FailureTime %d rounds) false=%d (%d in %d steady rounds, bound %.2g; %d rounds, bound %.2g) [%.1fs]",
					r.N, r.Loss, r.HeartbeatRounds, r.SpreadRounds, r.PredictedSpread, r.DetectFirst, r.DetectLast, r.FailureRounds,
					r.FalseReports, r.SteadyFalse, r.SteadyRounds, r.PredictedFalse, r.Rounds, r.PredictedFalseRun, r.Seconds)
				results = append(results, r)
			}
		}
	}
	if *simOut != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(*simOut, b, 0o644))
	}
}

// TestSimulationSmall keeps the measured run tested in the default run, in
// lockstep rounds with no delay, as the simulation ran before it drove the
// state machine: a heartbeat spreads within 3 S(n), a crash with its host
// (calls to it time out) is detected by no member before it is suspected
// (protocol.SuspectRounds) and by all within FailureTime + 3 S(n), and no
// live member is declared dead.
func TestSimulationSmall(t *testing.T) {
	r := Run(RunConfig{N: 16, Loss: 0.1, Seed: 1, Lockstep: true, HostDown: true})
	require.LessOrEqual(t, r.HeartbeatRounds, 3*r.PredictedSpread, "%+v", r)
	require.LessOrEqual(t, r.SpreadRounds, 3*r.PredictedSpread, "%+v", r)
	require.Positive(t, r.DetectFirst, "%+v", r)
	require.GreaterOrEqual(t, r.DetectFirst, protocol.SuspectRounds(16), "no member detects before suspecting: %+v", r)
	require.LessOrEqual(t, r.DetectLast, r.FailureRounds+3*r.PredictedSpread, "%+v", r)
	require.Zero(t, r.FalseReports, "%+v", r)
}

// TestSimulationSmallPaced is TestSimulationSmall with members at their own
// pace and messages delayed: a member may then declare the crashed one dead
// up to a round and a tenth before the suspicion time has passed since the
// crash, as its last heartbeat may have been made that long before.
func TestSimulationSmallPaced(t *testing.T) {
	r := Run(RunConfig{N: 16, Loss: 0.1, Seed: 1, Delay: time.Millisecond, Jitter: 5 * time.Millisecond, Warmup: 10, Steady: 20, HostDown: true})
	require.LessOrEqual(t, r.HeartbeatRounds, 3*r.PredictedSpread, "%+v", r)
	require.LessOrEqual(t, r.SpreadRounds, 3*r.PredictedSpread, "%+v", r)
	require.GreaterOrEqual(t, r.DetectFirst, protocol.SuspectRounds(16)-1, "%+v", r)
	require.LessOrEqual(t, r.DetectLast, r.FailureRounds+3*r.PredictedSpread, "%+v", r)
	require.Zero(t, r.FalseReports, "%+v", r)
}

// TestSimulationCrashedProcess crashes one member of 32 and of 128 alone,
// its host up (calls to it are refused): the first member that calls it
// declares it dead and its death notice spreads, so the last member drops
// it within a few rounds, far within FailureTime; loss makes no false
// report.
func TestSimulationCrashedProcess(t *testing.T) {
	for _, n := range []int{32, 128} {
		for _, loss := range []float64{0, 0.1} {
			r := Run(RunConfig{N: n, Loss: loss, Seed: 1, Delay: time.Millisecond, Jitter: time.Millisecond, Warmup: 10})
			t.Logf("n=%d loss=%.1f: detect first=%d last=%d rounds (FailureTime %d rounds)", n, loss, r.DetectFirst, r.DetectLast, r.FailureRounds)
			require.Positive(t, r.DetectLast, "n=%d loss=%.1f: %+v", n, loss, r)
			require.LessOrEqual(t, r.DetectLast, 2*protocol.SpreadRounds(n), "n=%d loss=%.1f: %+v", n, loss, r)
			require.Less(t, r.DetectLast, r.FailureRounds/2, "n=%d loss=%.1f: %+v", n, loss, r)
			require.Zero(t, r.FalseReports, "n=%d loss=%.1f: %+v", n, loss, r)
		}
	}
}

// TestLossPausesAndPartitionsGiveNoNotice runs 32 members for 300 rounds
// with 30% of messages lost, a partition and a paused member, and no crash:
// no call is refused, so no member is declared dead by a notice, whatever
// the failure time does meanwhile. Then one crashes: its calls are refused,
// and every member drops it within a few rounds even at 30% loss.
func TestLossPausesAndPartitionsGiveNoNotice(t *testing.T) {
	const n = 32
	c := New(Config{N: n, Seed: 7, Net: NetConfig{RequestLoss: 0.3, ResponseLoss: 0.3, Delay: time.Millisecond, Jitter: time.Millisecond}})
	c.StartConverged()
	iv := c.Config().Interval
	c.RunFor(100 * iv)
	c.Partition([]int{0, 1, 2, 3})
	c.Pause(10)
	c.RunFor(100 * iv)
	c.Heal()
	c.Resume(10)
	c.RunFor(100 * iv)
	require.Zero(t, c.Stats.Refused, "calls refused with no member crashed")

	c.Crash(5)
	c.RunFor(time.Duration(2*protocol.SpreadRounds(n)) * iv)
	assert.Positive(t, c.Stats.Refused, "calls to the crashed member refused")
	for i := 0; i < n; i++ {
		if _, st := c.Member(i).Lookup(Addr(5)); i != 5 && st == protocol.Alive {
			t.Errorf("member %d still holds the crashed member alive after %d rounds", i, 2*protocol.SpreadRounds(n))
		}
	}
}
