package gossip

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/faultnet"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Fault tests: members on a faultnet.Net, which loses, delays and cuts
// messages under the real TCP transport. They stay short by default; the long
// runs are in the faults command (go run ./faults -h), and -faults.long here
// lengthens the loss test tenfold.

var faultsLong = flag.Bool("faults.long", false, "run the fault tests for longer")

// faultCluster starts n members on fn, members 1..n-1 joining through member
// 0, with the RPC timeout at five gossip intervals, the ratio of the package
// defaults (Trpc 5 s, Tgossip 1 s): a lost message costs an exchange slot for
// five rounds, as it would in production.
func faultCluster(t *testing.T, fn *faultnet.Net, n int) []*Gossip {
	t.Helper()
	return startCluster(t, n, func(i int, c *Config) {
		c.Transport = fn.Node(c.Addr)
		c.RPCTimeout = 5 * c.GossipInterval
	})
}

// deathWatch polls the views of a set of members and records every time one
// of them stops seeing another while both are meant to be healthy: a false
// report. A member that is dead in a view stays so for at least the cleanup
// time (it cannot come back sooner without restarting), far longer than the
// polling period, so no report is missed.
type deathWatch struct {
	mu      sync.Mutex
	healthy map[string]bool // members whose death would be a false report
	reports []string
	polls   int

	stop chan struct{}
	done chan struct{}
}

// watchDeaths starts watching gs, all healthy, every period, once every
// member sees all of them.
func watchDeaths(gs []*Gossip, period time.Duration) *deathWatch {
	w := &deathWatch{healthy: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, g := range gs {
		w.healthy[g.Addr()] = true
	}
	go w.run(gs, period)
	return w
}

// setHealthy marks the member at addr as healthy or not (stalled, killed):
// it is neither watched nor a watcher while it is not.
func (w *deathWatch) setHealthy(addr string, ok bool) {
	w.mu.Lock()
	w.healthy[addr] = ok
	w.mu.Unlock()
}

func (w *deathWatch) run(gs []*Gossip, period time.Duration) {
	defer close(w.done)
	seen := make(map[string]map[string]bool) // observer -> members it saw alive
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		for _, g := range gs {
			obs := g.Addr()
			if !w.healthy[obs] {
				delete(seen, obs)
				continue
			}
			now := map[string]bool{}
			for _, m := range g.GetMembers() {
				now[m.Addr] = true
			}
			for addr := range seen[obs] {
				if !now[addr] && w.healthy[addr] {
					w.reports = append(w.reports, fmt.Sprintf("%s dropped %s", obs, addr))
				}
			}
			seen[obs] = now
		}
		w.polls++
		w.mu.Unlock()
	}
}

// finish stops the watch and returns the false reports.
func (w *deathWatch) finish() []string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.reports...)
}

func TestNoFalseReportsUnderLoss(t *testing.T) {
	const (
		n    = 8
		loss = 0.10
	)
	rounds := 150
	switch {
	case *faultsLong:
		rounds *= 10
	case testing.Short():
		rounds = 40
	}
	fn := faultnet.New(TCPTransport{}, 1)
	gs := faultCluster(t, fn, n)
	all := addrsOf(gs...)
	requireView(t, gs, all, converge, "converge before the loss")

	fn.SetLoss(loss, faultnet.Blackhole)
	w := watchDeaths(gs, 5*time.Millisecond)
	interval := gs[0].cfg.GossipInterval
	start := time.Now()
	// Gossip for the number of rounds while the watch checks the views.
	<-time.After(time.Duration(rounds) * interval)
	reports := w.finish()
	fn.SetLoss(0, faultnet.Blackhole)

	s := fn.Stats()
	elapsed := time.Since(start)
	tfail := gs[0].FailureTime()
	periods := float64(elapsed) / float64(tfail)
	predicted := FalseReportProbability(n, loss, Nfailures) * periods
	t.Logf("%d members, %.0f%% loss (%d of %d messages), %v (%d rounds, %.0f failure times of %v): %d false reports; FalseReportProbability bound %.2g per failure time, %.2g over the run",
		n, 100*loss, s.Lost, s.Writes, elapsed.Round(time.Millisecond), rounds, periods, tfail, len(reports),
		FalseReportProbability(n, loss, Nfailures), predicted)
	assert.Empty(t, reports, "false reports under %.0f%% loss", 100*loss)
	assert.InDelta(t, loss, float64(s.Lost)/float64(s.Writes), 0.03, "the loss injected")
	requireView(t, gs, all, converge, "views after the loss")
}

func TestPartitionLongerThanCleanupRemerges(t *testing.T) {
	const n = 8
	fn := faultnet.New(TCPTransport{}, 2)
	gs := faultCluster(t, fn, n)
	all := addrsOf(gs...)
	requireView(t, gs, all, converge, "converge")

	left, right := gs[:n/2], gs[n/2:]
	sides := map[string]int{}
	for _, g := range right {
		sides[g.Addr()] = 1
	}
	fn.Partition(sides)
	cut := time.Now()
	requireView(t, left, addrsOf(left...), converge, "left side alone")
	requireView(t, right, addrsOf(right...), converge, "right side alone")
	dropped := time.Since(cut)
	// Hold the partition until no table remembers a member across it: past
	// the cleanup time, 2 × FailureTime after the deaths.
	require.Eventually(t, func() bool {
		for _, g := range gs {
			for _, o := range gs {
				if sides[g.Addr()] != sides[o.Addr()] && g.lookup(o.Addr()) != nil {
					return false
				}
			}
		}
		return true
	}, converge, 10*time.Millisecond, "each side forgets the other")
	held := time.Since(cut)

	fn.Heal()
	healed := time.Now()
	requireView(t, gs, all, converge, "re-merged after healing")
	t.Logf("%d members split %d/%d: sides dropped each other after %v, forgot each other after %v; re-merged %v after healing (%.0f rounds)",
		n, len(left), len(right), dropped.Round(time.Millisecond), held.Round(time.Millisecond),
		time.Since(healed).Round(time.Millisecond), float64(time.Since(healed))/float64(gs[0].cfg.GossipInterval))
}

func TestStalledMemberHurtsNoOne(t *testing.T) {
	const n = 8
	fn := faultnet.New(TCPTransport{}, 3)
	gs := faultCluster(t, fn, n)
	all := addrsOf(gs...)
	requireView(t, gs, all, converge, "converge")

	stalled := gs[3]
	var healthy []*Gossip
	for _, g := range gs {
		if g != stalled {
			healthy = append(healthy, g)
		}
	}
	// The count varies as connections come and go: take the most seen
	// over 50 rounds as the baseline.
	before := maxGoroutines(t, 50*stalled.cfg.GossipInterval)
	w := watchDeaths(gs, 5*time.Millisecond)
	w.setHealthy(stalled.Addr(), false)

	// Stall it for 20 RPC timeouts, long enough to be declared dead.
	trpc := stalled.cfg.RPCTimeout
	fn.Stall(stalled.Addr())
	most := maxGoroutines(t, 20*trpc)
	requireView(t, healthy, addrsOf(healthy...), converge, "the stalled member is dropped")
	s := fn.Stats()
	fn.Resume(stalled.Addr())
	w.setHealthy(stalled.Addr(), true)
	requireView(t, gs, all, converge, "the stalled member is back after it resumes")
	reports := w.finish()

	// Each member has at most maxExchangesInFlight exchanges and as many
	// rumors under way, and maxProbesInFlight probes: a call beyond them is
	// skipped, not queued, so however long the stalled member keeps calls
	// waiting, the goroutines stay bounded. (Each call is also bounded by
	// Trpc: TestOutgoingRPCHonoursTrpc.)
	limit := before + n*(2*maxExchangesInFlight+maxProbesInFlight)
	t.Logf("goroutines: at most %d before, at most %d during a stall of %v (limit %d); connections: at most %d open; %d operations waited on the stall",
		before, most, 20*trpc, limit, s.MaxOpen, s.StallWait)
	assert.Empty(t, reports, "healthy members dropped while one member stalled")
	assert.LessOrEqual(t, most, limit, "goroutines during the stall")
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= before }, converge, 10*time.Millisecond,
		"goroutines settle after the stall (at most %d before)", before)
}

// maxGoroutines returns the most goroutines counted over d.
func maxGoroutines(t *testing.T, d time.Duration) int {
	most := runtime.NumGoroutine()
	until := time.Now().Add(d)
	require.Eventually(t, func() bool {
		most = max(most, runtime.NumGoroutine())
		return time.Now().After(until)
	}, d+converge, 2*time.Millisecond)
	return most
}
