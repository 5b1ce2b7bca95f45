package gossip

import (
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/faultnet"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Silent members, end to end (see internal/protocol's suspect.go): a member
// whose network freezes, so that calls to it hang, is dropped by the others
// by suspicion and probes, well before the failure time; under heavy loss
// no live member is.

// silentCluster is faultCluster with a gossip interval long enough for a
// probe's answer (its timeout is half an interval) on a busy test machine.
func silentCluster(t *testing.T, fn *faultnet.Net, n int) []*Gossip {
	t.Helper()
	return startCluster(t, n, func(i int, c *Config) {
		c.Transport = fn.Node(c.Addr)
		c.GossipInterval = 100 * time.Millisecond
		c.RPCTimeout = 5 * c.GossipInterval
	})
}

func TestSilentMemberDroppedBeforeFailureTime(t *testing.T) {
	const n = 8
	fn := faultnet.New(TCPTransport{}, 4)
	gs := silentCluster(t, fn, n)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	// A few rounds more, so that every member has seen its calls answered.
	requireEventuallyRounds(t, gs[0], 10)

	victim, others := gs[n-1], gs[:n-1]
	tfail := others[0].FailureTime()
	fn.Stall(victim.Addr())
	t.Cleanup(func() { fn.Resume(victim.Addr()) })
	start := time.Now()
	requireView(t, others, addrsOf(others...), 3*tfail+converge, "the silent member is dropped")
	took := time.Since(start)
	t.Logf("%d members, interval %v: the last dropped the silent member after %v (FailureTime %v)", n, others[0].cfg.GossipInterval, took.Round(time.Millisecond), tfail)
	assert.Less(t, took, tfail, "dropped before the timeout rule could")
}

func TestNoFalseReportsUnderHeavyLoss(t *testing.T) {
	const (
		n    = 8
		loss = 0.30
	)
	rounds := 80
	if testing.Short() {
		rounds = 30
	}
	fn := faultnet.New(TCPTransport{}, 5)
	gs := silentCluster(t, fn, n)
	all := addrsOf(gs...)
	requireView(t, gs, all, converge, "converge before the loss")

	fn.SetLoss(loss, faultnet.Blackhole)
	w := watchDeaths(gs, 5*time.Millisecond)
	interval := gs[0].cfg.GossipInterval
	until := time.Now().Add(time.Duration(rounds) * interval)
	requireEventuallyAfter(t, until)
	reports := w.finish()
	// The members see the loss in their own calls, and their timeout rule
	// waits longer for it (local health, failure.go).
	for _, g := range gs {
		s := g.Stats()
		t.Logf("%s: %.0f%% of its last calls unanswered, timeout %v (FailureTime %v)", g.Addr(), 100*s.Unanswered, s.Timeout, s.FailureTime)
		assert.Greater(t, s.Unanswered, 0.19, "%s sees the loss: more than the 10%% expected loses 19%% of calls", g.Addr())
		assert.Greater(t, s.Timeout, s.FailureTime, "%s waits longer", g.Addr())
	}
	fn.SetLoss(0, faultnet.Blackhole)
	s := fn.Stats()
	t.Logf("%d members, %.0f%% loss (%d of %d messages), %d rounds of %v: %d false reports; bound per failure time %.2g",
		n, 100*loss, s.Lost, s.Writes, rounds, interval, len(reports), FalseReportProbability(n, loss, Nfailures))
	assert.Empty(t, reports, "false reports under %.0f%% loss", 100*loss)
	requireView(t, gs, all, converge, "views after the loss")
}

// requireEventuallyRounds waits until g has gossiped k more rounds.
func requireEventuallyRounds(t *testing.T, g *Gossip, k uint64) {
	t.Helper()
	from := g.metrics.rounds.Load()
	require.Eventually(t, func() bool { return g.metrics.rounds.Load() >= from+k }, converge, 5*time.Millisecond)
}

// requireEventuallyAfter waits until the time until has passed.
func requireEventuallyAfter(t *testing.T, until time.Time) {
	t.Helper()
	require.Eventually(t, func() bool { return time.Now().After(until) }, time.Until(until)+converge, 5*time.Millisecond)
}
