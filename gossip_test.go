package gossip

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestClusterConvergesAndSharesData(t *testing.T) {
	if testing.Short() {
		t.Skip("16 members: not in -short")
	}
	const n = 16
	gs := startCluster(t, n, func(i int, c *Config) {
		c.Data = endpoint{Service: "web", URL: fmt.Sprintf("http://10.0.0.%d:80", i), Tags: map[string]string{"i": fmt.Sprint(i)}}
	})
	want := addrsOf(gs...)
	requireView(t, gs, want, converge, "16 members converge")

	// Every member sees every member's data, decoded to the registered type.
	for _, g := range gs {
		ms := g.GetMembers()
		byAddr := map[string]Member{}
		for _, m := range ms {
			byAddr[m.Addr] = m
		}
		for i, o := range gs {
			ep, ok := byAddr[o.Addr()].Data.(endpoint)
			require.True(t, ok, "data of %s as seen by %s: %#v", o.Addr(), g.Addr(), byAddr[o.Addr()].Data)
			assert.Equal(t, fmt.Sprintf("http://10.0.0.%d:80", i), ep.URL)
		}
	}

	// A data change reaches everyone.
	changed := endpoint{Service: "web", URL: "http://10.0.0.99:80"}
	require.NoError(t, gs[5].UpdateData(changed))
	require.Eventually(t, func() bool {
		for _, g := range gs {
			if dataOf(g, gs[5].Addr()) != any(changed.URL) {
				return false
			}
		}
		return true
	}, converge, 10*time.Millisecond, "every member sees the new data")
}

func TestClosedMemberIsDroppedWithinFailureTime(t *testing.T) {
	gs := startCluster(t, 6, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")

	victim, rest := gs[3], append(append([]*Gossip{}, gs[:3]...), gs[4:]...)
	tfail := rest[0].FailureTime()
	closed := time.Now()
	victim.Close()
	// The last heartbeat left the victim just before Close; each survivor
	// drops it FailureTime after it last saw the heartbeat rise, checking
	// once a round. Bound it generously for noisy machines.
	bound := 3*tfail + 2*time.Second
	requireView(t, rest, addrsOf(rest...), bound, "closed member dropped")
	t.Logf("closed member dropped by all %d survivors after %v (FailureTime %v)", len(rest), time.Since(closed), tfail)
}

func TestFailureTimeGrowsWithObservedSize(t *testing.T) {
	gs := startCluster(t, 5, nil)
	alone := time.Duration(Nfailures) * gs[0].cfg.GossipInterval
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	// S(1) = 1 round, S(5) = 4 rounds.
	assert.Eventually(t, func() bool { return gs[0].FailureTime() == 4*alone }, converge, time.Millisecond)
}

func TestRestartAtSameAddressIsSeenAtOnce(t *testing.T) {
	for _, waitDead := range []bool{false, true} {
		t.Run(fmt.Sprintf("declared-dead=%v", waitDead), func(t *testing.T) {
			gs := startCluster(t, 4, func(i int, c *Config) { c.Data = fmt.Sprintf("life 1 of %d", i) })
			requireView(t, gs, addrsOf(gs...), converge, "converge")
			old, rest := gs[3], gs[:3]
			addr := old.Addr()
			old.Close()
			if waitDead {
				requireView(t, rest, addrsOf(rest...), converge, "dropped")
			}

			cfg := testConfig(t, gs[0].Addr())
			cfg.Addr, cfg.Data = addr, "life 2"
			reborn := startMember(t, cfg)
			start := time.Now()
			require.Eventually(t, func() bool {
				for _, g := range append(rest, reborn) {
					found := false
					for _, m := range g.GetMembers() {
						found = found || m.Addr == addr && m.Data == "life 2"
					}
					if !found || len(g.GetMembers()) != 4 {
						return false
					}
				}
				return true
			}, converge, 10*time.Millisecond, "restarted member seen with its new data")
			t.Logf("restarted member seen by all after %v (FailureTime %v)", time.Since(start), rest[0].FailureTime())
		})
	}
}

func TestPartitionedClusterRemergesAfterForgetting(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the cleanup time: not in -short")
	}
	pn := newPartitionNet()
	const n = 6
	self := make([]string, n)
	gs := startCluster(t, n, func(i int, c *Config) { c.Transport = pn.member(&self[i]) })
	requireView(t, gs, addrsOf(gs...), converge, "converge")

	left, right := gs[:3], gs[3:]
	sides := map[string]int{}
	for _, g := range right {
		sides[g.Addr()] = 1
	}
	pn.split(sides)
	requireView(t, left, addrsOf(left...), converge, "left side alone")
	requireView(t, right, addrsOf(right...), converge, "right side alone")

	// Wait until each side has forgotten the other: nothing in any table
	// remembers a member across the cut.
	require.Eventually(t, func() bool {
		for _, g := range gs {
			for _, o := range gs {
				if sides[g.Addr()] != sides[o.Addr()] && g.lookup(o.Addr()) != nil {
					return false
				}
			}
		}
		return true
	}, converge, 10*time.Millisecond, "the sides forget each other")

	pn.heal()
	healed := time.Now()
	requireView(t, gs, addrsOf(gs...), converge, "re-merged after healing")
	t.Logf("re-merged %v after healing", time.Since(healed))
}

func TestCSignalsChanges(t *testing.T) {
	gs := startCluster(t, 2, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	a, b := gs[0], gs[1]
	drain(a.C)
	require.NoError(t, b.UpdateData("new"))
	select {
	case <-a.C:
	case <-time.After(converge):
		t.Fatal("no signal on C for a data change")
	}
	assert.Eventually(t, func() bool { return dataString(a, b.Addr()) == "new" }, converge, 10*time.Millisecond)

	// Nobody reads b's C: b goes on gossiping regardless.
	for i := 0; i < 5; i++ {
		require.NoError(t, a.UpdateData(fmt.Sprint(i)))
		require.Eventually(t, func() bool { return dataString(b, a.Addr()) == fmt.Sprint(i) }, converge, 5*time.Millisecond)
	}
}

func TestRunReturnsAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g := New("127.0.0.1:0", "data", nil)
	g.log = quietLogger(t)
	g.Tgossip = 10 * time.Millisecond
	g.Trpc = 100 * time.Millisecond
	returned := make(chan struct{})
	go func() {
		g.Run()
		close(returned)
	}()
	require.Eventually(t, func() bool { return g.Addr() != "127.0.0.1:0" }, converge, time.Millisecond)
	assert.Equal(t, 10*time.Millisecond, g.cfg.GossipInterval, "Tgossip changed between New and Run is used")
	g.Close()
	g.Close() // twice is safe
	select {
	case <-returned:
	case <-time.After(converge):
		t.Fatal("Run did not return after Close")
	}
	assert.ErrorIs(t, g.Start(), ErrClosed)
}

func TestRunWithBadAddressReturns(t *testing.T) {
	taken := startMember(t, testConfig(t))
	g := New(taken.Addr(), nil, nil)
	g.log = quietLogger(t)
	done := make(chan struct{})
	go func() {
		g.Run() // logs the bind error
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(converge):
		t.Fatal("Run blocked on an address it could not bind")
	}
	err := newOrStart(t, Config{Addr: taken.Addr()})
	assert.ErrorContains(t, err, "listen on "+taken.Addr())
	g.Close()
}

func TestShutdownEndsALoopOverC(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	gs := startCluster(t, 2, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	g := gs[1]
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for range g.C {
			g.GetMembers()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	require.NoError(t, g.Shutdown(ctx))
	select {
	case <-ended:
	case <-time.After(converge):
		t.Fatal("a loop over C did not end after Shutdown")
	}
	<-g.Done()
	assert.Empty(t, g.GetMembers(), "a closed member lists no one")
	assert.ErrorIs(t, g.Shutdown(ctx), ErrClosed, "a second Shutdown")
	requireView(t, gs[:1], addrsOf(gs[0]), converge, "the other drops the member that left")
	gs[0].Close()
}

func TestCloseLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var gs []*Gossip
	for i := 0; i < 4; i++ {
		cfg := testConfig(t)
		if i > 0 {
			cfg.Seeds = []string{gs[0].Addr(), freeAddr(t)} // one seed never answers
		}
		g, err := NewWithConfig(cfg)
		require.NoError(t, err)
		require.NoError(t, g.Start())
		gs = append(gs, g)
	}
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	// A client that connects and stays, and a plain RPC client.
	idle, err := net.Dial("tcp", gs[0].Addr())
	require.NoError(t, err)
	defer idle.Close()
	require.Eventually(t, func() bool { return gs[0].conns.len() >= 2 }, converge, time.Millisecond)

	for _, g := range gs {
		require.NoError(t, g.close())
		assert.Equal(t, 0, g.conns.len())
	}
	_, err = idle.Read(make([]byte, 1))
	assert.Error(t, err, "inbound connection closed by Close")
}
