package gossip

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leftAt merges the record of a member that left, as Exchange does with
// ExchangeRequest.Left, at the fake clock's time.
func (g *Gossip) leftAt(addr string, hb, version int64) bool {
	g.mu.Lock()
	_, changed, _, _ := g.mergeExchangeLocked(nil, nil, appendDigest(nil, addr, hb, version), g.clock.Now(), true)
	g.mu.Unlock()
	return changed
}

func TestLeftMemberIsNotBroughtBackByStaleGossip(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer = "10.0.0.2:7000"
	d, _ := encodeData("old life", DefaultMaxDataSize)
	require.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 100, Version: 90, WithData: true, Data: d}))

	assert.True(t, g.leftAt(peer, 101, 90), "a leave changes the live set")
	assert.Equal(t, []string{selfAddr}, addrs(g.GetMembers()), "dropped at once")
	e := g.entryOf(peer)
	assert.True(t, e.left, "recorded as left")
	assert.False(t, g.leftAt(peer, 101, 90), "the same news again changes nothing")

	for _, u := range []Entry{
		{Addr: peer, Heartbeat: 100, Version: 90, WithData: true, Data: d},
		{Addr: peer, Heartbeat: 101, Version: 90, WithData: true, Data: d},
		{Addr: peer, Heartbeat: 101, Version: 101, WithData: true, Data: d},
		{Addr: peer, Heartbeat: 101, Version: 101},
		{Addr: peer, Heartbeat: 50, Version: 50},
	} {
		assert.False(t, g.mergeAt(u), "stale entry hb=%d v=%d data=%v", u.Heartbeat, u.Version, u.WithData)
		assert.Empty(t, g.wantAt(u), "stale entry hb=%d v=%d: its data is not asked for", u.Heartbeat, u.Version)
	}
	// The same stale heartbeat in a digest, as a peer that has not heard of
	// the leave sends it.
	g.mu.Lock()
	_, changed, _, err := g.mergeUpdateLocked(appendDigest(nil, peer, 101, 90), nil, clk.Now(), true)
	g.mu.Unlock()
	require.NoError(t, err)
	assert.False(t, changed, "stale digest record")
	assert.Equal(t, []string{selfAddr}, addrs(g.GetMembers()))

	// Past FailureTime it is still remembered as left, not failed, and
	// still not brought back.
	clk.Advance(g.FailureTime() + time.Second)
	assert.Equal(t, []string{selfAddr}, addrs(g.GetMembers()))
	assert.True(t, g.entryOf(peer).left, "still left after FailureTime")
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 101, Version: 101, WithData: true, Data: d}))

	// After the cleanup time it is forgotten.
	clk.Advance(cleanupTime(g.FailureTime()) + time.Second)
	g.GetMembers()
	assert.Nil(t, g.entryOf(peer), "forgotten after the cleanup time")
}

func TestLeftMemberRejoinsWhenRestarted(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer = "10.0.0.2:7000"
	require.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 100, Version: 90, WithData: true}))
	require.True(t, g.leftAt(peer, 101, 90))
	drain(g.C)

	// A restart counts from its start time in microseconds. Without its
	// data it is asked for; with it, it is back at once.
	clk.Advance(time.Second)
	hb := clk.Now().UnixMicro()
	assert.Equal(t, []string{peer}, g.wantAt(Entry{Addr: peer, Heartbeat: hb, Version: hb}))
	d, _ := encodeData("new life", DefaultMaxDataSize)
	assert.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: hb, Version: hb, WithData: true, Data: d}))
	ms := g.GetMembers()
	require.Equal(t, []string{selfAddr, peer}, addrs(ms))
	assert.Equal(t, "new life", ms[1].Data)
	assert.False(t, g.entryOf(peer).left)

	// The old life's leave, arriving late, does not remove the new one.
	assert.False(t, g.leftAt(peer, 101, 90))
	assert.Len(t, g.GetMembers(), 2)
}

func TestLeaveNewsForUnknownMemberKeepsItOut(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	const peer = "10.0.0.2:7000"
	assert.False(t, g.leftAt(peer, 101, 90), "nothing visible changes")
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 100, Version: 90, WithData: true}), "an older entry arriving later is not a join")
	assert.Equal(t, []string{selfAddr}, addrs(g.GetMembers()))
}

func TestAnswerCarriesLeftMembers(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	const b, c = "10.0.0.2:7000", "10.0.0.3:7000"
	g.mergeAt(Entry{Addr: b, Heartbeat: 5, WithData: true}, Entry{Addr: c, Heartbeat: 5, WithData: true})
	g.leftAt(b, 6, 0)

	answer := func(digest []byte, left []byte, partial bool) []string {
		g.mu.Lock()
		defer g.mu.Unlock()
		gen, _, _, err := g.mergeExchangeLocked(digest, nil, left, g.clock.Now(), true)
		require.NoError(t, err)
		var out []string
		require.NoError(t, readDigest(g.table.answerLeft(gen, partial), 10, func(addr []byte, hb, _ int64) error {
			out = append(out, string(addr))
			assert.Equal(t, int64(6), hb)
			return nil
		}))
		return out
	}
	assert.Equal(t, []string{b}, answer(appendDigest(nil, b, 5, 0), nil, true), "a peer that shows it alive is told")
	assert.Equal(t, []string{b}, answer(appendDigest(nil, c, 5, 0), nil, false), "a full exchange that does not name it is told")
	assert.Empty(t, answer(appendDigest(nil, c, 5, 0), nil, true), "a partial one is not")
	assert.Empty(t, answer(nil, appendDigest(nil, b, 6, 0), false), "a peer that knows is not")
}

// dropTime returns how long after start every member of rest stopped
// seeing addr, polling every few milliseconds.
func dropTime(t *testing.T, rest []*Gossip, addr string, start time.Time, within time.Duration) time.Duration {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, g := range rest {
			for _, m := range g.GetMembers() {
				if m.Addr == addr {
					return false
				}
			}
		}
		return true
	}, within, 2*time.Millisecond, "%s dropped by all", addr)
	return time.Since(start)
}

func TestLeaveIsSeenByAllSoonerThanFailure(t *testing.T) {
	gs := startCluster(t, 8, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	tfail := gs[0].FailureTime()

	leaver, rest := gs[7], gs[:7]
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, leaver.Shutdown(ctx))
	left := dropTime(t, rest, leaver.Addr(), start, converge)
	for _, g := range rest {
		e := g.entryOf(leaver.Addr())
		require.NotNil(t, e, "%s remembers the leaver", g.Addr())
		assert.True(t, e.left, "%s records it as left, not failed", g.Addr())
	}

	victim, rest := gs[6], gs[:6]
	start = time.Now()
	victim.Close()
	failed := dropTime(t, rest, victim.Addr(), start, 3*tfail+converge)

	t.Logf("all survivors dropped a member that left after %v, one that was closed after %v (interval %v, FailureTime %v)",
		left, failed, gs[0].cfg.GossipInterval, tfail)
	assert.Less(t, left, tfail, "a leave is seen sooner than a failure")
	// The leaver does not come back from stale gossip meanwhile.
	requireView(t, rest, addrsOf(rest...), converge, "the survivors agree")
}

func TestRestartAfterLeaveJoinsAgain(t *testing.T) {
	gs := startCluster(t, 3, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	addr := gs[2].Addr()
	require.NoError(t, gs[2].Shutdown(context.Background()))
	requireView(t, gs[:2], addrsOf(gs[:2]...), converge, "the leaver is dropped")

	cfg := testConfig(t, gs[0].Addr())
	cfg.Addr = addr
	reborn := startMember(t, cfg)
	all := append(gs[:2:2], reborn)
	requireView(t, all, addrsOf(all...), converge, "the restarted member joins again")
}

func TestLeaveErrors(t *testing.T) {
	ctx := context.Background()
	g, err := NewWithConfig(testConfig(t))
	require.NoError(t, err)
	assert.NoError(t, g.Leave(ctx), "a member never started has no one to tell")
	require.NoError(t, g.Start())
	assert.NoError(t, g.Leave(ctx), "a member alone has no one to tell")
	g.Close()
	assert.ErrorIs(t, g.Leave(ctx), ErrClosed)

	// Peers that are gone: Leave gives up when ctx ends, and says so.
	gs := startCluster(t, 3, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	gs[1].Close()
	gs[2].Close()
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = gs[0].Leave(ctx)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrClosed), "got %v", err)
	assert.Contains(t, err.Error(), "leave reached 0 of 2 peers")
}
