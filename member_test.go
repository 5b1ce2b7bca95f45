package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const selfAddr = "10.0.0.1:7000"

// newUnitMember returns a member that believes it runs at selfAddr, with no
// network and a fake clock: the rules are driven by calling merge and sweep.
func newUnitMember(t *testing.T, clk *fakeClock) *Gossip {
	t.Helper()
	g, err := NewWithConfig(Config{Addr: selfAddr, GossipInterval: time.Second, Clock: clk, Logger: quietLogger(t)})
	require.NoError(t, err)
	g.mu.Lock()
	g.becomeLocked(selfAddr)
	g.mu.Unlock()
	return g
}

// mergeAt merges entries at the fake clock's time and signals C as the
// protocol's callers of mergeLocked do.
func (g *Gossip) mergeAt(entries ...Entry) bool {
	g.mu.Lock()
	changed := g.mergeLocked(entries, g.clock.Now())
	g.mu.Unlock()
	if changed {
		g.notify()
	}
	return changed
}

func (g *Gossip) entryOf(addr string) *entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.table.members[addr]; e != nil {
		c := *e
		return &c
	}
	return nil
}

func drain(c chan bool) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestMergeKeepsHigherHeartbeatAndItsData(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer = "10.0.0.2:7000"
	d1, _ := encodeData("one", DefaultMaxDataSize)
	d2, _ := encodeData("two", DefaultMaxDataSize)

	assert.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 10, Data: d1}), "a new member changes the live set")
	joined := clk.Now()

	clk.Advance(time.Second)
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 9, Data: d2}), "a lower heartbeat is ignored")
	e := g.entryOf(peer)
	assert.Equal(t, int64(10), e.heartbeat)
	assert.Equal(t, "one", decodeData(e.data))
	assert.Equal(t, joined, e.lastRise, "a lower heartbeat is not a rise")

	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 10, Data: d2}), "an equal heartbeat is ignored")
	assert.Equal(t, "one", decodeData(g.entryOf(peer).data))

	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 11, Data: d1}), "a rise with the same data changes nothing visible")
	assert.Equal(t, clk.Now(), g.entryOf(peer).lastRise, "the rise time is recorded")

	assert.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 12, Data: d2}), "new data with a higher heartbeat is a change")
	assert.Equal(t, "two", decodeData(g.entryOf(peer).data))
}

func TestMergeIgnoresInvalidEntries(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	big := make([]byte, DefaultMaxDataSize+1)
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"no port", Entry{Addr: "10.0.0.2", Heartbeat: 1}},
		{"empty address", Entry{Addr: "", Heartbeat: 1}},
		{"long address", Entry{Addr: fmt.Sprintf("%0600d:1", 0), Heartbeat: 1}},
		{"zero heartbeat", Entry{Addr: "10.0.0.2:1", Heartbeat: 0}},
		{"negative heartbeat", Entry{Addr: "10.0.0.2:1", Heartbeat: -5}},
		{"data over the limit", Entry{Addr: "10.0.0.2:1", Heartbeat: 1, Data: big}},
	} {
		assert.False(t, g.mergeAt(tc.e), tc.name)
		assert.Len(t, g.GetMembers(), 1, "%s: only this member is known", tc.name)
	}
}

func TestMergeAboutSelfCountsOnAboveIt(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	own := g.entryOf(selfAddr).heartbeat
	assert.False(t, g.mergeAt(Entry{Addr: selfAddr, Heartbeat: own - 1}))
	assert.Equal(t, own, g.entryOf(selfAddr).heartbeat, "older gossip about us is ignored")
	assert.False(t, g.mergeAt(Entry{Addr: selfAddr, Heartbeat: own + 100}))
	assert.Equal(t, own+101, g.entryOf(selfAddr).heartbeat, "we count on above a higher heartbeat of ours")
}

func TestMergeBoundsTheTable(t *testing.T) {
	clk := newFakeClock()
	g, err := NewWithConfig(Config{Addr: selfAddr, MaxMembers: 10, Clock: clk, Logger: quietLogger(t)})
	require.NoError(t, err)
	g.mu.Lock()
	g.becomeLocked(selfAddr)
	g.mu.Unlock()
	var flood []Entry
	for i := 0; i < 1000; i++ {
		flood = append(flood, Entry{Addr: fmt.Sprintf("10.1.%d.%d:7000", i/256, i%256), Heartbeat: 1})
	}
	g.mergeAt(flood...)
	assert.Len(t, g.GetMembers(), 10, "a flood of fake members is capped at MaxMembers")
}

func TestFailureAndCleanup(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer, other = "10.0.0.2:7000", "10.0.0.3:7000"
	g.mergeAt(Entry{Addr: peer, Heartbeat: 50}, Entry{Addr: other, Heartbeat: 70})
	drain(g.C)
	tfail := g.FailureTime()
	require.Equal(t, failureTime(3, time.Second, Nfailures), tfail)

	// other keeps beating; peer falls silent.
	step := func(d time.Duration) {
		for end := clk.Now().Add(d); clk.Now().Before(end); {
			clk.Advance(time.Second)
			e := g.entryOf(other)
			g.mergeAt(Entry{Addr: other, Heartbeat: e.heartbeat + 1})
		}
	}
	step(tfail)
	assert.Equal(t, []string{selfAddr, peer, other}, addrs(g.GetMembers()), "alive for FailureTime")
	assert.False(t, drain(g.C))

	step(time.Second)
	assert.Equal(t, []string{selfAddr, other}, addrs(g.GetMembers()), "dead once silent for longer than FailureTime")
	assert.True(t, drain(g.C), "a failure is signalled on C")
	require.NotNil(t, g.entryOf(peer), "the dead member is remembered")

	// Stale gossip, even slightly newer than ours, does not bring it back.
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 51}))
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 50 + g.reviveMargin()}))
	assert.Equal(t, []string{selfAddr, other}, addrs(g.GetMembers()))

	// Forgotten after the cleanup time: memory is released.
	step(cleanupTime(g.FailureTime()))
	require.NotNil(t, g.entryOf(peer), "remembered for the whole cleanup time")
	step(time.Second)
	g.GetMembers()
	assert.Nil(t, g.entryOf(peer), "forgotten after the cleanup time")
}

func TestRestartedMemberComesBackAtOnce(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer = "10.0.0.2:7000"
	start := clk.Now().UnixMicro()
	g.mergeAt(Entry{Addr: peer, Heartbeat: start})
	clk.Advance(g.FailureTime() + time.Second)
	require.Equal(t, []string{selfAddr}, addrs(g.GetMembers()))
	drain(g.C)

	// The member restarts: its heartbeat starts at the clock in microseconds.
	d, _ := encodeData("reborn", DefaultMaxDataSize)
	assert.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: clk.Now().UnixMicro(), Data: d}))
	ms := g.GetMembers()
	require.Equal(t, []string{selfAddr, peer}, addrs(ms))
	assert.Equal(t, "reborn", ms[1].Data)
	assert.True(t, drain(g.C))
}

func TestWireSendsOnlyNewerEntries(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	g.mergeAt(Entry{Addr: "10.0.0.2:7000", Heartbeat: 5}, Entry{Addr: "10.0.0.3:7000", Heartbeat: 5})
	g.mu.Lock()
	all := g.table.wire(nil)
	some := g.table.wire(map[string]int64{"10.0.0.2:7000": 5, "10.0.0.3:7000": 4, selfAddr: 1 << 62})
	g.mu.Unlock()
	assert.Len(t, all, 3)
	require.Len(t, some, 1)
	assert.Equal(t, "10.0.0.3:7000", some[0].Addr)
}

func TestNotifyNeverBlocks(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			assert.NoError(t, g.UpdateData(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("UpdateData blocked with nobody reading C")
	}
	assert.True(t, drain(g.C), "the changes left one signal")
	assert.False(t, drain(g.C), "bursts are merged into one signal")
	assert.Equal(t, 999, g.GetMembers()[0].Data)
}

func TestMemberString(t *testing.T) {
	for _, tc := range []struct {
		m    Member
		want string
	}{
		{Member{Addr: "10.0.0.1:7000", Heartbeat: 3}, "10.0.0.1:7000 hb=3"},
		{Member{Addr: "[::1]:7000", Heartbeat: 4, Data: "x"}, "[::1]:7000 hb=4 data=x"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("Member.String() = %q, want %q", got, tc.want)
		}
	}
}
