package gossip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/faultnet"
	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
		assert.Equal(t, protocol.Gone, g.status(leaver.Addr()), "%s remembers the leaver as left, not failed", g.Addr())
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

func TestShutdownErrors(t *testing.T) {
	ctx := context.Background()
	g, err := NewWithConfig(testConfig(t))
	require.NoError(t, err)
	assert.NoError(t, g.Shutdown(ctx), "a member never started has no one to tell")
	assert.ErrorIs(t, g.Start(), ErrClosed, "and is closed")
	g, err = NewWithConfig(testConfig(t))
	require.NoError(t, err)
	require.NoError(t, g.Start())
	assert.NoError(t, g.Shutdown(ctx), "a member alone has no one to tell")
	assert.ErrorIs(t, g.Shutdown(ctx), ErrClosed)

	// Peers that cannot be reached (dials across a cut link fail, but are
	// not refused, which would declare the peers dead at once): the leave
	// gives up when ctx ends, says so on one line, and the member is
	// closed all the same.
	fn := faultnet.New(TCPTransport{}, 4)
	gs := faultCluster(t, fn, 3)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	fn.Cut(gs[0].Addr(), gs[1].Addr())
	fn.Cut(gs[0].Addr(), gs[2].Addr())
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = gs[0].Shutdown(ctx)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrClosed), "got %v", err)
	assert.Contains(t, err.Error(), "leave reached 0 of 2 peers")
	assert.NotContains(t, err.Error(), "\n", "one line")
	<-gs[0].Done()
}

// eventLog records the events every member of a cluster reports.
type eventLog struct {
	mu  sync.Mutex
	got map[string][]string // by observer: "type addr"
}

// recordEvents reads the events of every member of gs until each is
// closed.
func recordEvents(gs []*Gossip) *eventLog {
	l := &eventLog{got: make(map[string][]string)}
	for _, g := range gs {
		ch, self := g.Events(), g.Addr()
		go func() {
			for ev := range ch {
				l.mu.Lock()
				l.got[self] = append(l.got[self], ev.Type.String()+" "+ev.Member.Addr)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// about returns the events observer reported about addr.
func (l *eventLog) about(observer, addr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.got[observer] {
		if strings.HasSuffix(ev, " "+addr) {
			out = append(out, strings.TrimSuffix(ev, " "+addr))
		}
	}
	return out
}

// TestShutdownIsReportedLeftByAll: with death notices on, the default,
// members shut down at once, as a rolling restart (two) or a scale-down
// (most of them) stops them, and every other member reports each of them
// left, never failed. Every member holds connections to the leavers, which
// end when they close: a member that had not heard the news by then would
// dial, be refused, and report a failure. Shutdown keeps telling its peers,
// and serving, for Config.LeavePropagateDelay after a few took the news, so
// that it reaches everyone first. Without the delay, two leaving failed in
// about one run in four (-count=20); with the delay but telling only three
// peers, six leaving did, as the three were often leavers themselves, who
// pass nothing on.
func TestShutdownIsReportedLeftByAll(t *testing.T) {
	for _, leaving := range []int{2, 6} {
		t.Run(fmt.Sprintf("%d of 8", leaving), func(t *testing.T) {
			gs := startCluster(t, 8, nil)
			requireView(t, gs, addrsOf(gs...), converge, "converge")
			log := recordEvents(gs)
			// Some rounds, so that every member holds connections to
			// its peers.
			waitRounds(t, gs, 5)

			leavers, rest := gs[8-leaving:], gs[:8-leaving]
			var wg sync.WaitGroup
			for _, g := range leavers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					assert.NoError(t, g.Shutdown(ctx))
				}()
			}
			wg.Wait()
			requireView(t, rest, addrsOf(rest...), converge, "the leavers are dropped")
			// The others' connections to the leavers have ended, and
			// been dialled again, by now; a few more rounds for any
			// notice to spread.
			waitRounds(t, rest, 5)
			for _, g := range rest {
				for _, l := range leavers {
					assert.Equal(t, []string{"left"}, log.about(g.Addr(), l.Addr()), "%s's events about %s", g.Addr(), l.Addr())
				}
			}
		})
	}
}

// waitRounds waits until every member of gs has made n more gossip rounds.
func waitRounds(t *testing.T, gs []*Gossip, n uint64) {
	t.Helper()
	want := make([]uint64, len(gs))
	for i, g := range gs {
		want[i] = g.Stats().Rounds + n
	}
	require.Eventually(t, func() bool {
		for i, g := range gs {
			if g.Stats().Rounds < want[i] {
				return false
			}
		}
		return true
	}, converge, time.Millisecond, "%d rounds", n)
}
