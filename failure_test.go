package gossip

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFailureTime(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{1, 3 * time.Second},
		{2, 6 * time.Second},
		{3, 9 * time.Second},
		{4, 9 * time.Second},
		{5, 12 * time.Second},
		{32, 18 * time.Second},
		{33, 21 * time.Second},
		{1000, 33 * time.Second},
		{1024, 33 * time.Second},
	} {
		if got := failureTime(tc.n, time.Second, 3); got != tc.want {
			t.Errorf("failureTime(n=%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestFailureTimeScalesWithObservedClusterSize(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	assert.Equal(t, 3*time.Second, g.FailureTime(), "alone")
	for i := 0; i < 31; i++ {
		g.mergeAt(Entry{Addr: "10.0.1." + string(rune('a'+i)) + ":1", Heartbeat: 1, WithData: true})
	}
	assert.Equal(t, 18*time.Second, g.FailureTime(), "32 members")
}

// simulateSpread plays push-pull gossip in lockstep rounds, each member
// exchanging with one peer picked by choosePartner among the peers it holds
// connections to (pools, up to capacity each, carried from run to run as in
// a cluster that keeps running), each message lost with probability loss,
// and returns the rounds until a heartbeat born at member 0 has reached all n.
func simulateSpread(n int, loss float64, capacity int, pools []simPool[int], r *rand.Rand) int {
	know := make([]bool, n)
	know[0] = true
	count := 1
	for round := 1; ; round++ {
		before := append([]bool(nil), know...)
		for i := 0; i < n; i++ {
			j := choosePartner(r, pools[i].order, capacity, func() int {
				j := r.IntN(n - 1)
				if j >= i {
					j++
				}
				return j
			})
			if r.Float64() < loss {
				pools[i].drop(j)
				continue // request lost
			}
			if before[i] && !know[j] {
				know[j], count = true, count+1
			}
			if r.Float64() < loss {
				pools[i].drop(j)
				continue // answer lost
			}
			pools[i].use(j)
			if before[j] && !know[i] {
				know[i], count = true, count+1
			}
		}
		if count == n {
			return round
		}
	}
}

// TestSpreadRoundsBoundsSimulation checks the S(n) of failure.go against the
// protocol simulated, with its peer selection: the mean spread time stays
// below S(n) without loss, and within one round of it at 10% loss (where
// uniform choice among all peers stays just below S(n)).
func TestSpreadRoundsBoundsSimulation(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{2, 3, 4, 8, 16, 32, 64, 128, 256, 1024}
	if !testing.Short() {
		sizes = append(sizes, 4096)
	}
	for _, loss := range []float64{0, 0.1} {
		for _, n := range sizes {
			runs := 20000/n + 20
			total := 0
			pools := make([]simPool[int], n)
			for i := range pools {
				pools[i].capacity = DefaultMaxOutboundConns
			}
			for i := 0; i < 10*rotateRounds; i++ {
				simulateSpread(n, loss, DefaultMaxOutboundConns, pools, r) // fill the pools
			}
			for i := 0; i < runs; i++ {
				total += simulateSpread(n, loss, DefaultMaxOutboundConns, pools, r)
			}
			mean := float64(total) / float64(runs)
			bound := spreadRounds(n)
			if loss > 0 {
				bound++
			}
			if mean > float64(bound) {
				t.Errorf("n=%d loss=%.1f: mean spread %.2f rounds, above %d (S(n) = %d)", n, loss, mean, bound, spreadRounds(n))
			}
			t.Logf("n=%d loss=%.1f: mean spread %.2f rounds, S(n) = %d", n, loss, mean, spreadRounds(n))
		}
	}
}

func TestFalseReportProbability(t *testing.T) {
	for _, tc := range []struct {
		n        int
		loss     float64
		min, max float64
	}{
		{32, 0, 0, 0},
		{1, 0.5, 0, 0},
		{32, 0.1, 1e-12, 1e-10},
		{32, 0.5, 0.01, 1},
		{1000, 0.1, 1e-25, 1e-15},
		{8, 1, 1, 1},
	} {
		got := FalseReportProbability(tc.n, tc.loss, 3)
		if got < tc.min || got > tc.max {
			t.Errorf("FalseReportProbability(n=%d, loss=%v) = %g, want within [%g, %g]", tc.n, tc.loss, got, tc.min, tc.max)
		}
	}
	assert.Less(t, FalseReportProbability(32, 0.1, 4), FalseReportProbability(32, 0.1, 3), "more Nfailures, fewer false reports")
	assert.Less(t, FalseReportProbability(32, 0.05, 3), FalseReportProbability(32, 0.1, 3), "less loss, fewer false reports")
}

func TestTargetRounds(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want int
	}{{32, 15}, {128, 18}, {1000, 22}} {
		got := targetRounds(tc.n, 0.1, 1e-6)
		assert.Equal(t, tc.want, got, "n=%d", tc.n)
		// The bound holds at the rounds chosen and not at one fewer.
		miss := float64(got - spreadRounds(tc.n))
		q := missProbability(tc.n, 0.1)
		nn := float64(tc.n * (tc.n - 1))
		assert.LessOrEqual(t, nn*math.Pow(q, miss), 1e-6)
		assert.Greater(t, nn*math.Pow(q, miss-1), 1e-6)
	}
	assert.Equal(t, spreadRounds(5)+1, targetRounds(5, 0, 1e-6), "no loss: one round beyond the spread")

	g := newUnitMember(t, newFakeClock())
	g.cfg.FalseReportTarget = 1e-6
	assert.Equal(t, time.Duration(targetRounds(1, 0.1, 1e-6))*time.Second, g.FailureTime())
	_, err := NewWithConfig(Config{Addr: "127.0.0.1:0", FalseReportTarget: 2})
	assert.ErrorContains(t, err, "FalseReportTarget")
}
