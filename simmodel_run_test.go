package gossip

import (
	"flag"
	"runtime"
	"sort"
	"testing"
)

// The model's runs measure what runSim measures, past what the table code
// can simulate on one machine:
//
//	go test -run 'TestModel$' -model.n 32,128,1024,4096,10000 -model.loss 0,0.1 -model.runs 3 -model.out model.json
var (
	modelN      = flag.String("model.n", "", "cluster sizes to run the compact model at, comma-separated (it runs only if set)")
	modelLoss   = flag.String("model.loss", "0,0.1", "message loss rates of the model, comma-separated")
	modelRuns   = flag.Int("model.runs", 3, "model runs per size and loss rate")
	modelOut    = flag.String("model.out", "", "write the model's results as JSON to this file")
	modelSteady = flag.Int("model.steady", 0, "rounds of steady gossip, counting false reports, before the crash")
	modelTarget = flag.Float64("model.target", 0, "Config.FalseReportTarget of the modelled members (0: Nfailures)")
	modelWarmup = flag.Int("model.warmup", 20, "rounds of gossip before the measurements, so that the connection pools are full")
)

// modelRun is one run of the model.
type modelRun struct {
	n      int
	loss   float64
	seed   uint64
	warmup int     // rounds before the measurements
	steady int     // rounds of steady gossip before the crash
	target float64 // Config.FalseReportTarget
}

// runModel measures in the model what runSimWarm measures with the table
// code: after c.warmup rounds, the spread of a data change of member 0,
// c.steady rounds of steady gossip, and the detection of member 0's crash;
// and the false reports of the whole run.
func runModel(c modelRun) SimResult {
	m := newSimModel(c.n, c.loss, c.target, c.seed)
	r := SimResult{Source: "model", N: c.n, Loss: c.loss, PredictedSpread: spreadRounds(c.n), WarmupRounds: c.warmup}
	r.FailureRounds = int(m.failRounds(m.live[1]))
	round := func() []modelReport {
		r.Rounds++
		return m.round()
	}

	// Warm-up: the connection pools fill; every report is false.
	for i := 0; i < c.warmup; i++ {
		r.FalseReports += len(round())
	}

	// Spread: member 0 changes its data.
	version := m.setData(0)
	for r.SpreadRounds = 1; ; r.SpreadRounds++ {
		r.FalseReports += len(round())
		all := true
		for i := 1; i < c.n && all; i++ {
			all = m.ver[i*c.n] >= version // member i's entry of member 0
		}
		if all || r.SpreadRounds > 50*r.PredictedSpread {
			break
		}
	}

	// Steady gossip: every report is false.
	for i := 0; i < c.steady; i++ {
		r.SteadyFalse += len(round())
	}
	r.FalseReports += r.SteadyFalse
	r.SteadyRounds = c.steady
	r.PredictedFalse = falseReportBound(c.n, c.loss, r.FailureRounds, r.SteadyRounds)

	// Detection: member 0 crashes.
	m.down[0] = true
	dead := make([]bool, c.n)
	detected := 0
	for rounds := 1; detected < c.n-1 && rounds < 10*r.FailureRounds; rounds++ {
		for _, d := range round() {
			if d.of != 0 {
				r.FalseReports++
				continue
			}
			if !dead[d.by] {
				dead[d.by] = true
				detected++
			}
			if r.DetectFirst == 0 {
				r.DetectFirst = rounds
			}
			r.DetectLast = rounds
		}
	}
	r.PredictedFalseRun = falseReportBound(c.n, c.loss, r.FailureRounds, r.Rounds)
	return r
}

func TestModel(t *testing.T) {
	if *modelN == "" {
		t.Skip("set -model.n to run the model")
	}
	results := simGrid(t, *modelN, *modelLoss, *modelRuns, func(n int, loss float64, run int) SimResult {
		runtime.GC() // free the last run's tables before allocating the next
		return runModel(modelRun{n: n, loss: loss, seed: uint64(run + 1), warmup: *modelWarmup, steady: *modelSteady, target: *modelTarget})
	})
	writeSimResults(t, *modelOut, results)
}

// medianOf returns the median of f over results (the mean of the middle two
// for an even count).
func medianOf(results []SimResult, f func(SimResult) int) float64 {
	vs := make([]int, len(results))
	for i, r := range results {
		vs[i] = f(r)
	}
	sort.Ints(vs)
	m := len(vs) / 2
	if len(vs)%2 == 0 {
		return float64(vs[m-1]+vs[m]) / 2
	}
	return float64(vs[m])
}

// TestModelMatchesSimulation checks the model against the library's table
// code where both run, from the same warm-up: over five seeds, the medians
// of the spread rounds differ by at most 1 round, and those of the first
// and the last detection by at most 2; the failure times are equal and no
// run reports a live member dead. With the race detector, which slows the
// table code some fivefold, only the smaller cluster is checked. (Over 30
// seeds and more, at n up to 256, the means differ by less than half a
// round.)
func TestModelMatchesSimulation(t *testing.T) {
	const warmup, codeRuns, modelRuns = 10, 5, 31
	tests := []struct {
		n    int
		loss float64
		race bool // also with the race detector
	}{
		{32, 0, true},
		{32, 0.1, true},
		{64, 0, false},
		{64, 0.1, false},
	}
	metrics := []struct {
		name      string
		of        func(SimResult) int
		tolerance float64
	}{
		{"spread", func(r SimResult) int { return r.SpreadRounds }, 1},
		{"first detection", func(r SimResult) int { return r.DetectFirst }, 2},
		{"last detection", func(r SimResult) int { return r.DetectLast }, 2},
	}
	for _, tc := range tests {
		if raceEnabled && !tc.race {
			continue
		}
		var code, model []SimResult
		for seed := uint64(1); seed <= codeRuns; seed++ {
			code = append(code, runSimWarm(t, tc.n, tc.loss, seed, warmup))
		}
		for seed := uint64(1); seed <= modelRuns; seed++ {
			model = append(model, runModel(modelRun{n: tc.n, loss: tc.loss, seed: seed, warmup: warmup}))
		}
		for _, mt := range metrics {
			c, m := medianOf(code, mt.of), medianOf(model, mt.of)
			if d := c - m; d > mt.tolerance || d < -mt.tolerance {
				t.Errorf("n=%d loss=%.1f: median %s: got %.1f rounds in the model, want %.1f ± %.0f (the table code's)", tc.n, tc.loss, mt.name, m, c, mt.tolerance)
			}
			t.Logf("n=%d loss=%.1f: median %s %.1f rounds in the model, %.1f in the table code", tc.n, tc.loss, mt.name, m, c)
		}
		for _, r := range append(code, model...) {
			if r.FailureRounds != code[0].FailureRounds {
				t.Errorf("n=%d loss=%.1f: %s FailureTime %d rounds, want %d", tc.n, tc.loss, r.Source, r.FailureRounds, code[0].FailureRounds)
			}
			if r.FalseReports != 0 {
				t.Errorf("n=%d loss=%.1f: %s run with %d false reports, want 0", tc.n, tc.loss, r.Source, r.FalseReports)
			}
		}
	}
}
