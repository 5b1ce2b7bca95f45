package gossip

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The simulation drives the protocol's own table code (digest, merge,
// answer, sweep) in lockstep rounds over an in-memory exchange, with virtual
// time and no sockets, to measure spread and detection past what one machine
// can run as real members. It leaves out what only the network part does:
// rumors and connection handling.
//
//	go test -run TestSimulation -sim.n 32,128,1024,4096 -sim.loss 0,0.1 -sim.out sim.json
var (
	simN      = flag.String("sim.n", "", "cluster sizes to simulate, comma-separated (the simulation runs only if set)")
	simLoss   = flag.String("sim.loss", "0,0.1", "message loss rates to simulate, comma-separated")
	simRuns   = flag.Int("sim.runs", 3, "runs per size and loss rate")
	simOut    = flag.String("sim.out", "", "write the results as JSON to this file")
	simSteady = flag.Int("sim.steady", 0, "rounds of steady gossip, counting false reports, before the crash")
	simEps    = flag.Float64("sim.target", 0, "Config.FalseReportTarget of the simulated members (0: Nfailures)")
	simWarmup = flag.Int("sim.warmup", 0, "rounds of gossip before the measurements, so that the members' connection pools are full")
)

// SimResult is one simulated run, as written to -sim.out and -model.out.
type SimResult struct {
	// Source is "code" for a run of the library's table code (runSim),
	// "model" for one of the compact model (runModel).
	Source string  `json:"source,omitempty"`
	N      int     `json:"n"`
	Loss   float64 `json:"loss"`
	// SpreadRounds is the rounds until every member had a data change of
	// one member; PredictedSpread is S(n).
	SpreadRounds    int `json:"spread_rounds"`
	PredictedSpread int `json:"predicted_spread"`
	// DetectFirst and DetectLast are the rounds from a crash until the
	// first and the last member declared it dead; FailureRounds is
	// FailureTime in rounds.
	DetectFirst   int `json:"detect_first"`
	DetectLast    int `json:"detect_last"`
	FailureRounds int `json:"failure_rounds"`
	// FalseReports counts live members declared dead during the run;
	// PredictedFalse is the bound of failure.go over the steady rounds:
	// the failure times they span times the probability of any false
	// report in one.
	FalseReports   int     `json:"false_reports"`
	SteadyRounds   int     `json:"steady_rounds"`
	PredictedFalse float64 `json:"predicted_false"`
	// SteadyFalse counts the false reports of the steady rounds alone;
	// Rounds is the rounds of the whole run, WarmupRounds included, and
	// PredictedFalseRun the bound over them, reckoned as PredictedFalse.
	SteadyFalse       int     `json:"steady_false_reports"`
	WarmupRounds      int     `json:"warmup_rounds"`
	Rounds            int     `json:"rounds"`
	PredictedFalseRun float64 `json:"predicted_false_run"`
	// Seconds is the wall time the run took.
	Seconds float64 `json:"seconds,omitempty"`
}

// falseReportBound is the bound of failure.go on false reports over rounds
// lockstep rounds of n members with failure time failureRounds: the failure
// times they span times the probability, at most 1, of any false report in
// one, n(n-1) q(n, loss)^(failureRounds - S(n)).
func falseReportBound(n int, loss float64, failureRounds, rounds int) float64 {
	if loss <= 0 || n < 2 || failureRounds <= 0 {
		return 0
	}
	miss := failureRounds - spreadRounds(n)
	bound := float64(n*(n-1)) * math.Pow(missProbability(n, loss), float64(miss))
	return float64(rounds) / float64(failureRounds) * math.Min(1, bound)
}

// simCluster is n members sharing a fake clock.
type simCluster struct {
	clk   *fakeClock
	ms    []*Gossip
	pools []*simPool[string] // the peers each member holds connections to
	rng   *rand.Rand
	loss  float64
	down  map[int]bool
	idx   map[string]int // member index by address
	addrs []string       // member address by index
}

// simPool models the peers a member holds connections to (clientPool): the
// last capacity distinct peers it exchanged with, the least recently used
// dropped first, and a peer whose exchange failed dropped at once, as a
// broken connection is.
type simPool[T comparable] struct {
	capacity int
	order    []T // least recently used first
}

func (p *simPool[T]) use(x T) {
	p.drop(x)
	p.order = append(p.order, x)
	if len(p.order) > p.capacity {
		p.order = p.order[1:]
	}
}

func (p *simPool[T]) drop(x T) {
	for i, y := range p.order {
		if y == x {
			p.order = append(p.order[:i], p.order[i+1:]...)
			return
		}
	}
}

func newSimCluster(t *testing.T, n int, loss float64, seed uint64) *simCluster {
	clk := newFakeClock()
	c := &simCluster{clk: clk, rng: rand.New(rand.NewPCG(seed, 1)), loss: loss, down: map[int]bool{}, idx: map[string]int{}}
	full := make([]Entry, n)
	for i := 0; i < n; i++ {
		g, err := NewWithConfig(Config{Addr: simAddr(i), GossipInterval: time.Second, Clock: clk, Logger: quietLogger(t), MaxMembers: n + 1,
			FalseReportTarget: *simEps, ExpectedLoss: max(loss, 0.01)})
		require.NoError(t, err)
		g.mu.Lock()
		g.becomeLocked(simAddr(i))
		full[i] = g.table.self.withData()
		g.mu.Unlock()
		g.rng = rand.New(rand.NewPCG(seed, uint64(i)))
		c.ms = append(c.ms, g)
		c.pools = append(c.pools, &simPool[string]{capacity: g.cfg.MaxOutboundConns})
		c.idx[simAddr(i)] = i
		c.addrs = append(c.addrs, simAddr(i))
	}
	// Start converged: everyone knows everyone.
	for _, g := range c.ms {
		g.mu.Lock()
		g.mergeUpdateLocked(nil, full, clk.Now(), false)
		g.mu.Unlock()
	}
	return c
}

func simAddr(i int) string { return fmt.Sprintf("10.%d.%d.%d:7000", i>>16&255, i>>8&255, i&255) }

// round runs one gossip round: every member that is up counts its heartbeat
// up, applies the failure rules and exchanges with a random live peer; a
// request or an answer is lost with probability loss. It returns the
// members each member newly declared dead.
func (c *simCluster) round() (died map[int][]string) {
	c.clk.Advance(time.Second)
	now := c.clk.Now()
	died = map[int][]string{}
	for i, g := range c.ms {
		if c.down[i] {
			continue
		}
		g.mu.Lock()
		g.table.self.heartbeat++
		g.table.self.lastRise = now
		if g.sweepLocked(now) {
			for a, e := range g.table.members {
				if !e.alive && e.deadAt.Equal(now) {
					died[i] = append(died[i], a)
				}
			}
		}
		hasPeers := g.table.liveCount() > 1
		var req []byte
		var partner string
		if hasPeers {
			req = g.table.digest()
			var held []string
			for _, a := range c.pools[i].order {
				if e := g.table.members[a]; e != nil && e.alive {
					held = append(held, a)
				}
			}
			partner = choosePartner(g.rng, held, g.cfg.MaxOutboundConns, func() string { return c.anyPeer(i) })
		}
		g.mu.Unlock()
		if !hasPeers {
			continue
		}
		j := c.index(partner)
		if c.down[j] || c.rng.Float64() < c.loss {
			c.pools[i].drop(partner)
			continue // the peer is down, or the request was lost
		}
		callee := c.ms[j]
		callee.mu.Lock()
		gen, _, want, _ := callee.mergeUpdateLocked(req, nil, now, false)
		ad, am := callee.table.answer(gen, false)
		callee.mu.Unlock()
		if c.rng.Float64() < c.loss {
			c.pools[i].drop(partner)
			continue // the answer was lost
		}
		c.pools[i].use(partner)
		g.mu.Lock()
		g.mergeUpdateLocked(ad, am, now, false)
		push := g.table.withData(want, len(want))
		g.mu.Unlock()
		if len(push) > 0 && c.rng.Float64() >= c.loss {
			callee.mu.Lock()
			callee.mergeUpdateLocked(nil, push, now, false)
			callee.mu.Unlock()
		}
	}
	return died
}

func (c *simCluster) index(addr string) int { return c.idx[addr] }

// anyPeer picks uniformly a peer that member i sees alive, as tick's pick
// among livePeers does. It draws a member index rather than a place in
// livePeers, whose order is the table's map order: so runs with the same
// seed are the same.
func (c *simCluster) anyPeer(i int) string {
	g := c.ms[i]
	for {
		k := g.rng.IntN(len(c.ms) - 1)
		if k >= i {
			k++
		}
		if e := g.table.members[c.addrs[k]]; e != nil && e.alive {
			return c.addrs[k]
		}
	}
}

// runSim measures, on a converged cluster of n, the spread of a data change
// and the detection of a crash, after -sim.warmup rounds.
func runSim(t *testing.T, n int, loss float64, seed uint64) SimResult {
	return runSimWarm(t, n, loss, seed, *simWarmup)
}

// runSimWarm is runSim after warmup rounds of gossip.
func runSimWarm(t *testing.T, n int, loss float64, seed uint64, warmup int) SimResult {
	c := newSimCluster(t, n, loss, seed)
	r := SimResult{Source: "code", N: n, Loss: loss, PredictedSpread: spreadRounds(n), WarmupRounds: warmup}
	r.FailureRounds = int(c.ms[1].FailureTime() / time.Second)
	round := func() map[int][]string {
		r.Rounds++
		return c.round()
	}

	// Warm-up: the connection pools fill; every report is false.
	for i := 0; i < warmup; i++ {
		for _, d := range round() {
			r.FalseReports += len(d)
		}
	}

	// Spread: member 0 changes its data.
	require.NoError(t, c.ms[0].UpdateData("changed"))
	c.ms[0].mu.Lock()
	version := c.ms[0].table.self.version
	c.ms[0].mu.Unlock()
	for r.SpreadRounds = 1; ; r.SpreadRounds++ {
		died := round()
		for _, d := range died {
			r.FalseReports += len(d)
		}
		all := true
		for _, g := range c.ms[1:] {
			g.mu.Lock()
			e := g.table.members[simAddr(0)]
			all = all && e != nil && e.version >= version
			g.mu.Unlock()
		}
		if all || r.SpreadRounds > 50*r.PredictedSpread {
			break
		}
	}

	// Steady gossip: every report is false.
	for i := 0; i < *simSteady; i++ {
		for _, d := range round() {
			r.SteadyFalse += len(d)
		}
	}
	r.FalseReports += r.SteadyFalse
	r.SteadyRounds = *simSteady
	r.PredictedFalse = falseReportBound(n, loss, r.FailureRounds, r.SteadyRounds)

	// Detection: member 0 crashes.
	c.down[0] = true
	dead := map[int]bool{}
	for rounds := 1; len(dead) < n-1 && rounds < 10*r.FailureRounds; rounds++ {
		for i, ds := range round() {
			for _, a := range ds {
				if a != simAddr(0) {
					r.FalseReports++
					continue
				}
				dead[i] = true
				if r.DetectFirst == 0 {
					r.DetectFirst = rounds
				}
				r.DetectLast = rounds
			}
		}
	}
	r.PredictedFalseRun = falseReportBound(n, loss, r.FailureRounds, r.Rounds)
	return r
}

func TestSimulation(t *testing.T) {
	if *simN == "" {
		t.Skip("set -sim.n to run the simulation")
	}
	results := simGrid(t, *simN, *simLoss, *simRuns, func(n int, loss float64, run int) SimResult {
		return runSim(t, n, loss, uint64(run+1))
	})
	writeSimResults(t, *simOut, results)
}

// simGrid runs one simulation for each size of the comma-separated list ns,
// each loss rate of losses and each of runs runs, timing and logging each.
func simGrid(t *testing.T, ns, losses string, runs int, sim func(n int, loss float64, run int) SimResult) []SimResult {
	var results []SimResult
	for _, nf := range strings.Split(ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(nf))
		require.NoError(t, err)
		for _, lf := range strings.Split(losses, ",") {
			loss, err := strconv.ParseFloat(strings.TrimSpace(lf), 64)
			require.NoError(t, err)
			for run := 0; run < runs; run++ {
				start := time.Now()
				r := sim(n, loss, run)
				r.Seconds = time.Since(start).Seconds()
				t.Logf("%s n=%d loss=%.2f spread=%d (S(n)=%d) detect first=%d last=%d (FailureTime %d rounds) false=%d (%d in %d steady rounds, bound %.2g; %d rounds, bound %.2g) [%.1fs]",
					r.Source, r.N, r.Loss, r.SpreadRounds, r.PredictedSpread, r.DetectFirst, r.DetectLast, r.FailureRounds,
					r.FalseReports, r.SteadyFalse, r.SteadyRounds, r.PredictedFalse, r.Rounds, r.PredictedFalseRun, r.Seconds)
				results = append(results, r)
			}
		}
	}
	return results
}

// writeSimResults writes results as JSON to path, if path is set.
func writeSimResults(t *testing.T, path string, results []SimResult) {
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(results, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// TestSimulationSmall keeps the simulation itself tested in the default run.
func TestSimulationSmall(t *testing.T) {
	r := runSim(t, 16, 0.1, 1)
	require.LessOrEqual(t, r.SpreadRounds, 3*r.PredictedSpread, "%+v", r)
	require.Positive(t, r.DetectFirst, "%+v", r)
	require.GreaterOrEqual(t, r.DetectFirst, r.FailureRounds, "no member detects before FailureTime: %+v", r)
	require.LessOrEqual(t, r.DetectLast, r.FailureRounds+3*r.PredictedSpread, "%+v", r)
	require.Zero(t, r.FalseReports, "%+v", r)
}
