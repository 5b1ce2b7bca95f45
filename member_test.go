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
	changed, _ := g.mergeLocked(entries, g.clock.Now())
	g.mu.Unlock()
	if changed {
		g.notify()
	}
	return changed
}

// wantAt merges entries at the fake clock's time and returns the members
// whose data the merge asked for.
func (g *Gossip) wantAt(entries ...Entry) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, want := g.mergeLocked(entries, g.clock.Now())
	return want
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

	assert.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 10, Version: 10, WithData: true, Data: d1}), "a new member changes the live set")
	joined := clk.Now()

	clk.Advance(time.Second)
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 9, Version: 9, WithData: true, Data: d2}), "a lower heartbeat is ignored")
	e := g.entryOf(peer)
	assert.Equal(t, int64(10), e.heartbeat)
	assert.Equal(t, "one", decodeData(e.data))
	assert.Equal(t, joined, e.lastRise, "a lower heartbeat is not a rise")

	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 10, Version: 10, WithData: true, Data: d2}), "an equal heartbeat is ignored")
	assert.Equal(t, "one", decodeData(g.entryOf(peer).data))

	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 11, Version: 11, WithData: true, Data: d1}), "a rise with the same data changes nothing visible")
	assert.Equal(t, clk.Now(), g.entryOf(peer).lastRise, "the rise time is recorded")

	assert.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 12, Version: 12, WithData: true, Data: d2}), "new data with a higher heartbeat is a change")
	assert.Equal(t, "two", decodeData(g.entryOf(peer).data))
}

func TestMergeIgnoresInvalidEntries(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	big := make([]byte, DefaultMaxDataSize+1)
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"no port", Entry{Addr: "10.0.0.2", Heartbeat: 1, WithData: true}},
		{"empty address", Entry{Addr: "", Heartbeat: 1, WithData: true}},
		{"long address", Entry{Addr: fmt.Sprintf("%0600d:1", 0), Heartbeat: 1, WithData: true}},
		{"zero heartbeat", Entry{Addr: "10.0.0.2:1", Heartbeat: 0, WithData: true}},
		{"negative heartbeat", Entry{Addr: "10.0.0.2:1", Heartbeat: -5, WithData: true}},
		{"data over the limit", Entry{Addr: "10.0.0.2:1", Heartbeat: 1, Version: 1, WithData: true, Data: big}},
	} {
		assert.False(t, g.mergeAt(tc.e), tc.name)
		assert.Len(t, g.GetMembers(), 1, "%s: only this member is known", tc.name)
	}
}

func TestMergeAboutSelfCountsOnAboveIt(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	own := g.entryOf(selfAddr).heartbeat
	assert.False(t, g.mergeAt(Entry{Addr: selfAddr, Heartbeat: own - 1, WithData: true}))
	assert.Equal(t, own, g.entryOf(selfAddr).heartbeat, "older gossip about us is ignored")
	assert.False(t, g.mergeAt(Entry{Addr: selfAddr, Heartbeat: own + 100, WithData: true}))
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
		flood = append(flood, Entry{Addr: fmt.Sprintf("10.1.%d.%d:7000", i/256, i%256), Heartbeat: 1, WithData: true})
	}
	g.mergeAt(flood...)
	assert.Len(t, g.GetMembers(), 10, "a flood of fake members is capped at MaxMembers")
}

func TestFailureAndCleanup(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer, other = "10.0.0.2:7000", "10.0.0.3:7000"
	g.mergeAt(Entry{Addr: peer, Heartbeat: 50, WithData: true}, Entry{Addr: other, Heartbeat: 70, WithData: true})
	drain(g.C)
	tfail := g.FailureTime()
	require.Equal(t, failureTime(3, time.Second, Nfailures), tfail)

	// other keeps beating; peer falls silent.
	step := func(d time.Duration) {
		for end := clk.Now().Add(d); clk.Now().Before(end); {
			clk.Advance(time.Second)
			e := g.entryOf(other)
			g.mergeAt(Entry{Addr: other, Heartbeat: e.heartbeat + 1, WithData: true})
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
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 51, WithData: true}))
	assert.False(t, g.mergeAt(Entry{Addr: peer, Heartbeat: 50 + g.reviveMargin(), WithData: true}))
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
	g.mergeAt(Entry{Addr: peer, Heartbeat: start, WithData: true})
	clk.Advance(g.FailureTime() + time.Second)
	require.Equal(t, []string{selfAddr}, addrs(g.GetMembers()))
	drain(g.C)

	// The member restarts: its heartbeat starts at the clock in microseconds.
	d, _ := encodeData("reborn", DefaultMaxDataSize)
	assert.True(t, g.mergeAt(Entry{Addr: peer, Heartbeat: clk.Now().UnixMicro(), Version: clk.Now().UnixMicro(), WithData: true, Data: d}))
	ms := g.GetMembers()
	require.Equal(t, []string{selfAddr, peer}, addrs(ms))
	assert.Equal(t, "reborn", ms[1].Data)
	assert.True(t, drain(g.C))
}

// answerTo merges a peer's digest and entries as the Exchange service does
// and returns the answer.
func (g *Gossip) answerTo(t *testing.T, digest []Entry, update []Entry, partial bool) (map[string]Entry, error) {
	var d []byte
	for _, e := range digest {
		d = appendDigest(d, e.Addr, e.Heartbeat, e.Version)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	gen, _, _, err := g.mergeUpdateLocked(d, update, g.clock.Now(), true)
	ad, am := g.table.answer(gen, partial)
	out := map[string]Entry{}
	require.NoError(t, readDigest(ad, 100, func(addr []byte, hb, v int64) error {
		out[string(addr)] = Entry{Addr: string(addr), Heartbeat: hb, Version: v}
		return nil
	}))
	for _, e := range am {
		out[e.Addr] = e
	}
	return out, err
}

func TestDigestAndAnswer(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	const b, c, x = "10.0.0.2:7000", "10.0.0.3:7000", "10.0.0.4:7000"
	d, _ := encodeData("c's data", DefaultMaxDataSize)
	g.mergeAt(Entry{Addr: b, Heartbeat: 5, WithData: true}, Entry{Addr: c, Heartbeat: 5, Version: 3, WithData: true, Data: d})
	g.mu.Lock()
	digest := g.table.digest()
	g.mu.Unlock()
	n := 0
	require.NoError(t, readDigest(digest, 100, func([]byte, int64, int64) error { n++; return nil }))
	assert.Equal(t, 3, n)

	// The peer has b as new as we do, c's heartbeat older but its data
	// version as new, an old version of our data, and x, which we lack.
	got, err := g.answerTo(t, []Entry{
		{Addr: b, Heartbeat: 5},
		{Addr: c, Heartbeat: 4, Version: 3},
		{Addr: selfAddr, Heartbeat: 1},
		{Addr: x, Heartbeat: 9, Version: 9},
	}, nil, false)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, Entry{Addr: c, Heartbeat: 5, Version: 3}, got[c], "a newer heartbeat goes without data the peer has")
	assert.True(t, got[selfAddr].WithData, "data the peer has an older version of goes with it")

	got, err = g.answerTo(t, []Entry{{Addr: c, Heartbeat: 4, Version: 3}}, nil, true)
	require.NoError(t, err)
	assert.Len(t, got, 1, "a partial request is answered only about its entries")
	got, err = g.answerTo(t, []Entry{{Addr: c, Heartbeat: 4, Version: 3}}, nil, false)
	require.NoError(t, err)
	assert.Len(t, got, 3, "a full digest is answered with what it lacks")
	assert.True(t, got[b].WithData)

	// A new member that came with its data is not sent back.
	got, err = g.answerTo(t, nil, []Entry{{Addr: x, Heartbeat: 9, Version: 9, WithData: true}}, true)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestMergeAsksForDataItLacks(t *testing.T) {
	clk := newFakeClock()
	g := newUnitMember(t, clk)
	const peer = "10.0.0.2:7000"
	d1, _ := encodeData("one", DefaultMaxDataSize)

	// A new member without its data is not added, but asked for.
	assert.Equal(t, []string{peer}, g.wantAt(Entry{Addr: peer, Heartbeat: 10, Version: 10}))
	assert.Nil(t, g.entryOf(peer))

	require.Empty(t, g.wantAt(Entry{Addr: peer, Heartbeat: 10, Version: 10, WithData: true, Data: d1}))
	// A rise without data, same version: nothing to ask for.
	clk.Advance(time.Second)
	assert.Empty(t, g.wantAt(Entry{Addr: peer, Heartbeat: 11, Version: 10}))
	assert.Equal(t, int64(11), g.entryOf(peer).heartbeat)
	assert.Equal(t, clk.Now(), g.entryOf(peer).lastRise)
	// A newer version without data: the member stays alive with its old
	// data, which is asked for.
	clk.Advance(time.Second)
	assert.Equal(t, []string{peer}, g.wantAt(Entry{Addr: peer, Heartbeat: 13, Version: 12}))
	e := g.entryOf(peer)
	assert.Equal(t, int64(13), e.heartbeat)
	assert.Equal(t, int64(10), e.version)
	assert.Equal(t, "one", decodeData(e.data))
	assert.Equal(t, clk.Now(), e.lastRise)
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
