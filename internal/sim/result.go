package sim

import (
	"math"

	"github.com/gossipfd/gossip/internal/protocol"
)

// SimResult is one measured run (Run), as the -sim.out flag writes it in
// JSON and the benchmark module's plot (bench/simplot.go) reads it. Rounds
// are gossip intervals.
type SimResult struct {
	// Source is "code": a run of the members' own state machine. (Files
	// written before hold "model" runs too, of a compact model since
	// retired.)
	Source string  `json:"source,omitempty"`
	N      int     `json:"n"`
	Loss   float64 `json:"loss"`
	// Lockstep tells that every member ticked at the same instants; else
	// each at its own pace.
	Lockstep bool `json:"lockstep,omitempty"`
	// HeartbeatRounds is the rounds until every member had a heartbeat of
	// one member, counting the round it was made in: what S(n) estimates.
	HeartbeatRounds int `json:"heartbeat_spread_rounds"`
	// SpreadRounds is the rounds until every member had a data change of
	// one member, which rumors carry (0: all within the instant of the
	// change); PredictedSpread is S(n).
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

// FalseReportBound is the bound of failure.go on false reports over rounds
// rounds of n members with a failure time of failureRounds: the failure
// times they span times the probability, at most 1, of any false report in
// one, n(n-1) q(n, loss)^(failureRounds - S(n)).
func FalseReportBound(n int, loss float64, failureRounds, rounds int) float64 {
	if loss <= 0 || n < 2 || failureRounds <= 0 {
		return 0
	}
	miss := failureRounds - protocol.SpreadRounds(n)
	bound := float64(n) * float64(n-1) * math.Pow(protocol.MissProbability(n, loss), float64(miss))
	return float64(rounds) / float64(failureRounds) * math.Min(1, bound)
}
