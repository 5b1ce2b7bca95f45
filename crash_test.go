package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClosedMemberIsDroppedByNotice closes one of five members over real
// TCP: its listener is closed, so dials to it are refused, and its peers
// drop it by a death notice. Their clock stands still, so the failure time
// never passes: only the notice can drop it. A member started again at the
// same address (its clock a second later, so its heartbeat is beyond the
// first life's) is back in every view at once.
func TestClosedMemberIsDroppedByNotice(t *testing.T) {
	clk := newFakeClock()
	gs := startCluster(t, 5, func(i int, c *Config) { c.Clock = clk })
	requireView(t, gs, addrsOf(gs...), converge, "converge")

	victim, rest := gs[4], gs[:4]
	victim.Close()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, g := range rest {
			assert.Equal(c, protocol.Dead, g.status(victim.Addr()), "%s holds the closed member dead", g.Addr())
		}
	}, converge, 5*time.Millisecond, "every survivor drops the closed member while the clock stands still")
	requireView(t, rest, addrsOf(rest...), converge, "the survivors agree")

	clk.Advance(time.Second)
	cfg := testConfig(t, gs[0].Addr())
	cfg.Addr, cfg.Clock = victim.Addr(), clk
	reborn := startMember(t, cfg)
	all := append(rest[:4:4], reborn)
	requireView(t, all, addrsOf(all...), converge, "the member started again is back")
}

// TestRefusedCountsOnlyRefusedDials checks which call errors count as a
// refused dial: ECONNREFUSED however wrapped, and nothing else.
func TestRefusedCountsOnlyRefusedDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, dialErr := TCPTransport{}.Dial(context.Background(), addr)
	require.Error(t, dialErr, "dial to a closed port")

	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"a refused dial", dialErr, true},
		{"a refused dial, wrapped", fmt.Errorf("gossip: dial %s: %w", addr, dialErr), true},
		{"a timeout", context.DeadlineExceeded, false},
		{"a reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"a closed connection", net.ErrClosed, false},
		{"another error", errors.New("gossip: TLS handshake: bad certificate"), false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, refused(c.err), "refused(%v) (%s)", c.err, c.name)
	}
}

// TestEndedConnectionIsChecked drives the check a member makes when a peer
// ends a connection it holds (connEnded), with no rounds to dial for it (an
// hour apart): a peer whose port now refuses dials is declared dead; one
// that accepts the dial stays alive.
func TestEndedConnectionIsChecked(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(t)
	cfg.GossipInterval, cfg.Clock = time.Hour, clk
	g := startMember(t, cfg)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := closed.Addr().String()
	require.NoError(t, closed.Close())
	live, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer live.Close()
	accepted := make(chan struct{})
	go func() {
		if c, err := live.Accept(); err == nil {
			c.Close()
			close(accepted)
		}
	}()

	// Its first round comes at once: past it, none comes for an hour.
	require.Eventually(t, func() bool { return g.Stats().Rounds >= 1 }, converge, time.Millisecond, "first round")

	hb := clk.Now().UnixMicro()
	// As an exchange's answer brings them: no rumor, so nothing dials them.
	g.merging(func(s *protocol.State, now time.Time) protocol.Output {
		return s.HandleResponse("", protocol.Exchange, ExchangeResponse{Members: []Entry{
			{Addr: gone, Heartbeat: hb, Version: hb, WithData: true},
			{Addr: live.Addr().String(), Heartbeat: hb, Version: hb, WithData: true},
		}}, now)
	})
	require.Equal(t, protocol.Alive, g.status(gone))

	g.connEnded(gone)
	require.Eventually(t, func() bool { return g.status(gone) == protocol.Dead }, converge, 2*time.Millisecond, "the refusing peer is declared dead")

	g.connEnded(live.Addr().String())
	select {
	case <-accepted:
	case <-time.After(converge):
		t.Fatal("no dial to the live peer")
	}
	assert.Equal(t, protocol.Alive, g.status(live.Addr().String()), "the peer that accepted stays alive")
}

// TestClosedMemberStaysWithoutNotices: with Config.DisableDeathNotices
// set, a refused dial declares no one dead; while the clock stands still,
// the closed member stays in every view.
func TestClosedMemberStaysWithoutNotices(t *testing.T) {
	clk := newFakeClock()
	gs := startCluster(t, 3, func(i int, c *Config) { c.Clock, c.DisableDeathNotices = clk, true })
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	victim, rest := gs[2], gs[:2]
	victim.Close()
	assert.Never(t, func() bool {
		for _, g := range rest {
			if g.status(victim.Addr()) != protocol.Alive {
				return true
			}
		}
		return false
	}, 50*testConfig(t).GossipInterval, 5*time.Millisecond, "no one is declared dead while the clock stands still")
}
