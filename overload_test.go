package gossip

import (
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/faultnet"
	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRTTKeepsTheShortestOfTheLastAnswers(t *testing.T) {
	var r rtt
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	slow := 500 * time.Millisecond
	assert.Zero(t, r.min(), "no answer yet")
	assert.Zero(t, r.slowFor(at(0)))
	r.observe(time.Second, at(0), slow)
	r.observe(600*time.Millisecond, at(1), slow)
	assert.Equal(t, 600*time.Millisecond, r.min())
	assert.Equal(t, 2*time.Second, r.slowFor(at(2)), "slow since the first answer")
	r.observe(time.Millisecond, at(2), slow)
	assert.Zero(t, r.slowFor(at(3)), "a quick answer")
	for i := range rttSamples - 1 {
		r.observe(time.Second, at(3+i), slow)
		assert.Equal(t, time.Millisecond, r.min(), "one quick answer among the last %d is enough", rttSamples)
		assert.Zero(t, r.slowFor(at(3+i)))
	}
	r.observe(time.Second, at(20), slow)
	assert.Equal(t, time.Second, r.min(), "the quick answer is out of the window")
	assert.Equal(t, time.Second, r.slowFor(at(21)), "slow from then on")
}

// TestOverloadGuardSkipsOnlyWhileAnExchangeIsUnderWay drives the guard
// directly: with answers slow for longer than overloadRounds intervals, a
// round's exchange is skipped (and counted) while another call holds a
// slot, and sent once none does; with answers quick again, never skipped.
// Skipped exchanges stay counted as calls the protocol made, so they count
// as unanswered for local health (see overload.go; the protocol side is
// the ordinary unanswered call).
func TestOverloadGuardSkipsOnlyWhileAnExchangeIsUnderWay(t *testing.T) {
	g := startMember(t, testConfig(t)) // alone: its own rounds send nothing
	iv := g.cfg.GossipInterval
	exchange := protocol.Output{Send: []protocol.Send{{To: "127.0.0.1:1", Purpose: protocol.Exchange}}}
	g.rtt.observe(time.Second+iv, time.Now().Add(-overloadRounds*iv-time.Second), iv/2)

	g.sem <- struct{}{} // a call under way
	g.apply(exchange)
	assert.Equal(t, uint64(1), g.Stats().ExchangesSkipped, "slow answers and a call under way: skipped")
	<-g.sem
	sent := g.metrics.sent.Load()
	g.apply(exchange)
	assert.Equal(t, uint64(1), g.Stats().ExchangesSkipped, "nothing under way: sent")
	require.Eventually(t, func() bool { return len(g.sem) == 0 && g.metrics.rpcErrors.Load() > 0 || g.metrics.sent.Load() > sent },
		converge, 5*time.Millisecond, "the exchange was tried")

	g.rtt.observe(time.Millisecond, time.Now(), iv/2) // a quick answer
	g.sem <- struct{}{}
	g.apply(exchange)
	<-g.sem
	assert.Equal(t, uint64(1), g.Stats().ExchangesSkipped, "a quick answer among the last: never skipped")
}

// TestSlowAnswersMakeAMemberSkipRounds: with every message delayed so that
// an exchange takes longer than a round, members send a round's exchange
// only once the last one is answered (Stats.ExchangesSkipped), and still
// converge, exchange data and accuse no one. Once the delay is gone, answers
// are quick again and the member watched skips no more rounds.
func TestSlowAnswersMakeAMemberSkipRounds(t *testing.T) {
	const n = 4
	fn := faultnet.New(TCPTransport{}, 6)
	gs := startCluster(t, n, func(i int, c *Config) {
		c.Transport = fn.Node(c.Addr)
		c.GossipInterval = 100 * time.Millisecond
		c.RPCTimeout = 20 * c.GossipInterval
	})
	all := addrsOf(gs...)
	requireView(t, gs, all, converge, "converge")

	fn.SetDelay(150*time.Millisecond, 0) // a round trip of 300 ms at least
	w := watchDeaths(gs, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		for _, g := range gs {
			if g.Stats().ExchangesSkipped < 5 {
				return false
			}
		}
		return true
	}, converge, 10*time.Millisecond, "every member skips rounds while answers come late")
	require.NoError(t, gs[1].UpdateData("slow"))
	require.Eventually(t, func() bool {
		for _, g := range gs {
			if dataString(g, gs[1].Addr()) != "slow" {
				return false
			}
		}
		return true
	}, converge, 10*time.Millisecond, "data still spreads")
	assert.Empty(t, w.finish(), "no one accused")

	fn.SetDelay(0, 0)
	requireEventuallyRounds(t, gs[0], rttSamples+2) // the slow answers age out
	before := gs[0].Stats().ExchangesSkipped
	requireEventuallyRounds(t, gs[0], 20)
	assert.Equal(t, before, gs[0].Stats().ExchangesSkipped, "quick answers again: no round skipped")
	requireView(t, gs, all, converge, "views after the delay")
}
