package protocol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLeftMemberIsNotBroughtBackByStaleGossip(t *testing.T) {
	m := newMember(t)
	p := peer(0)
	require.True(t, m.mergeAt(full(p, 100, 90, "old life")).Changed)

	out := m.leftAt(t, p, 101, 90)
	assert.True(t, out.Changed, "a leave changes the live set")
	require.Len(t, out.Events, 1)
	assert.Equal(t, Event{Type: Left, Addr: p, Heartbeat: 101, Data: []byte("old life"), Time: m.now}, out.Events[0])
	assert.True(t, out.Rumors, "a leave is news to spread")
	assert.Equal(t, []string{selfAddr}, m.liveAddrs(), "dropped at once")
	assert.True(t, m.entryOf(p).left, "recorded as left")
	_, st := m.Lookup(p)
	assert.Equal(t, Gone, st)
	out = m.leftAt(t, p, 101, 90)
	assert.False(t, out.Changed, "the same news again changes nothing")
	assert.Empty(t, out.Events)

	for _, u := range []Entry{
		full(p, 100, 90, "old life"),
		full(p, 101, 90, "old life"),
		full(p, 101, 101, "old life"),
		{Addr: p, Heartbeat: 101, Version: 101},
		{Addr: p, Heartbeat: 50, Version: 50},
	} {
		assert.False(t, m.mergeAt(u).Changed, "stale entry hb=%d v=%d data=%v", u.Heartbeat, u.Version, u.WithData)
		assert.Empty(t, m.wantAt(t, u), "stale entry hb=%d v=%d: its data is not asked for", u.Heartbeat, u.Version)
	}
	// The same stale heartbeat in a digest, as a peer that has not heard of
	// the leave sends it.
	resp, out, err := m.HandleRequest(ExchangeRequest{From: stranger, Digest: AppendDigest(nil, p, 101, 90)}, m.now)
	require.NoError(t, err)
	assert.False(t, out.Changed, "stale digest record")
	assert.Equal(t, []Entry{{Addr: p, Heartbeat: 101, Version: 90}}, readEntries(t, resp.Left), "the peer is told that it left")
	assert.Equal(t, []string{selfAddr}, m.liveAddrs())

	// Past FailureTime it is still remembered as left, not failed, and
	// still not brought back.
	m.advance(m.FailureTime() + time.Second)
	assert.Empty(t, m.Sweep(m.now).Events)
	assert.Equal(t, []string{selfAddr}, m.liveAddrs())
	assert.True(t, m.entryOf(p).left, "still left after FailureTime")
	assert.False(t, m.mergeAt(full(p, 101, 101, "old life")).Changed)

	// After the cleanup time it is forgotten.
	m.advance(CleanupTime(m.FailureTime()) + time.Second)
	m.Sweep(m.now)
	assert.Nil(t, m.entryOf(p), "forgotten after the cleanup time")
}

func TestLeftMemberRejoinsWhenRestarted(t *testing.T) {
	m := newMember(t)
	p := peer(0)
	require.True(t, m.mergeAt(Entry{Addr: p, Heartbeat: 100, Version: 90, WithData: true}).Changed)
	require.True(t, m.leftAt(t, p, 101, 90).Changed)

	// A restart counts from its start time in microseconds. Without its
	// data it is asked for; with it, it is back at once.
	m.advance(time.Second)
	hb := m.now.UnixMicro()
	assert.Equal(t, []string{p}, m.wantAt(t, Entry{Addr: p, Heartbeat: hb, Version: hb}))
	out := m.mergeAt(full(p, hb, hb, "new life"))
	assert.True(t, out.Changed)
	assert.Equal(t, []string{"rejoined " + p}, eventsOf(out))
	require.Equal(t, []string{selfAddr, p}, m.liveAddrs())
	r, _ := m.Lookup(p)
	assert.Equal(t, "new life", string(r.Data))
	assert.False(t, m.entryOf(p).left)

	// The old life's leave, arriving late, does not remove the new one.
	assert.False(t, m.leftAt(t, p, 101, 90).Changed)
	assert.Len(t, m.Members(), 2)
}

func TestLeftMemberComesBackOneHeartbeatLater(t *testing.T) {
	// A member that left counts no further, so no margin applies: any
	// heartbeat above the one it left with is a new life.
	m := newMember(t)
	p := peer(0)
	m.mergeAt(full(p, 100, 90, "x"))
	m.leftAt(t, p, 101, 90)
	assert.False(t, m.mergeAt(full(p, 101, 90, "x")).Changed)
	assert.Equal(t, []string{"rejoined " + p}, eventsOf(m.mergeAt(full(p, 102, 90, "x"))))
}

func TestLeaveNewsForUnknownMemberKeepsItOut(t *testing.T) {
	m := newMember(t)
	p := peer(0)
	out := m.leftAt(t, p, 101, 90)
	assert.False(t, out.Changed, "nothing visible changes")
	assert.Empty(t, out.Events)
	_, st := m.Lookup(p)
	assert.Equal(t, Gone, st, "remembered as left")
	assert.False(t, m.mergeAt(Entry{Addr: p, Heartbeat: 100, Version: 90, WithData: true}).Changed, "an older entry arriving later is not a join")
	assert.Equal(t, []string{selfAddr}, m.liveAddrs())
}

func TestLeaveNewsForDeadMember(t *testing.T) {
	m := newMember(t)
	p := peer(0)
	m.mergeAt(full(p, 100, 90, "x"))
	m.advance(m.FailureTime() + time.Second)
	require.Equal(t, []string{"failed " + p}, eventsOf(m.Sweep(m.now)))

	out := m.leftAt(t, p, 101, 90)
	assert.Empty(t, out.Events, "declared dead already: no event")
	assert.False(t, out.Changed)
	_, st := m.Lookup(p)
	assert.Equal(t, Gone, st, "it left in fact")
	assert.Equal(t, int64(101), m.entryOf(p).heartbeat)

	// Older news about it changes nothing.
	m.leftAt(t, p, 100, 90)
	assert.Equal(t, int64(101), m.entryOf(p).heartbeat)
}

// TestLeaveNewsForNoticedMember: a member that closes its connections on
// leaving looks, to a peer that dials it before the news arrives, like a
// crashed process: refused, declared dead by a notice. The news that it
// left, at a heartbeat at or above the one it was declared dead at, is then
// reported as a leave (after the failure), and spread on to the members the
// notice reached; a member dead by its failure time stays failed.
func TestLeaveNewsForNoticedMember(t *testing.T) {
	cases := []struct {
		name   string
		dead   func(m *member)
		leftHB int64
		want   []string
	}{
		{"refused", func(m *member) { m.Refused(peer(0), m.now, m.now) }, 101, []string{"left " + peer(0)}},
		{"refused, news at the same heartbeat", func(m *member) { m.Refused(peer(0), m.now, m.now) }, 100, []string{"left " + peer(0)}},
		{"a notice from a peer", func(m *member) { m.noticeAt(t, peer(0), 100) }, 101, []string{"left " + peer(0)}},
		{"a notice below the heartbeat held", func(m *member) { m.noticeAt(t, peer(0), 98) }, 101, []string{"left " + peer(0)}},
		{"older news than the heartbeat held", func(m *member) { m.Refused(peer(0), m.now, m.now) }, 99, nil},
		{"its failure time", func(m *member) {
			m.advance(m.FailureTime() + time.Second)
			m.mergeAt(full(peer(1), 200, 100, "d"), full(peer(2), 200, 100, "d"))
			m.Sweep(m.now)
		}, 101, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMember(t)
			m.join(t, 3)
			c.dead(m)
			_, st := m.Lookup(peer(0))
			require.Equal(t, Dead, st)
			m.advance(10 * time.Millisecond)
			out := m.leftAt(t, peer(0), c.leftHB, 90)
			assert.Equal(t, c.want, eventsOf(out))
			assert.False(t, out.Changed, "the live set is as it was")
			if c.want == nil {
				return
			}
			assert.True(t, out.Rumors, "the news spreads on")
			assert.Equal(t, c.leftHB, out.Events[0].Heartbeat)
			_, st = m.Lookup(peer(0))
			assert.Equal(t, Gone, st, "it left")
			assert.Empty(t, m.table.noticeDigest(false), "no notice of it is held any more")
			out = m.leftAt(t, peer(0), c.leftHB, 90)
			assert.Empty(t, out.Events, "the same news again")
			_, out = m.noticeAt(t, peer(0), 100)
			assert.Empty(t, eventsOf(out), "a notice arriving after it")
		})
	}
}

func TestLeaveNewsAboutSelf(t *testing.T) {
	// An earlier life of ours left at a heartbeat at or above ours: count
	// on above it, so that we are not taken for it.
	m := newMember(t)
	own := m.self().heartbeat
	for _, tc := range []struct {
		name string
		hb   int64
		want int64
	}{
		{"below ours", own - 5, own},
		{"equal to ours", own, own + 1},
		{"above ours", own + 10, own + 11},
	} {
		out := m.leftAt(t, selfAddr, tc.hb, 0)
		if got := m.self().heartbeat; got != tc.want {
			t.Errorf("%s: left news at %d: heartbeat %d, want %d", tc.name, tc.hb, got, tc.want)
		}
		assert.Empty(t, out.Events, tc.name)
		assert.True(t, m.self().alive, "%s: still alive", tc.name)
	}
	// After we left, news of an earlier leave does not move our heartbeat.
	m.Leave(m.now)
	hb := m.self().heartbeat
	m.leftAt(t, selfAddr, hb+10, 0)
	assert.Equal(t, hb, m.self().heartbeat)
}

func TestLeave(t *testing.T) {
	for _, tc := range []struct {
		name      string
		start     bool
		peers     int
		calls     int
		wantSends int
	}{
		{"not started", false, 0, 1, 0},
		{"alone", true, 0, 1, 0},
		{"with peers", true, 5, 1, 5},
		{"called again", true, 5, 2, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newIdle(t)
			if tc.start {
				m.Start(selfAddr, m.now)
			}
			peers := m.join(t, tc.peers)
			m.mergeAt(full(peer(tc.peers), 100, 100, "x"))
			m.advance(m.FailureTime() + time.Second)
			m.mergeAt(digestEntries(peers)...) // all but the last beat on
			m.Sweep(m.now)
			before := m.self()
			var out Output
			firstCall := m.now.Add(time.Second)
			for i := 0; i < tc.calls; i++ {
				m.advance(time.Second)
				out = m.Leave(m.now)
			}
			assert.Len(t, out.Send, tc.wantSends)
			if !tc.start {
				assert.Equal(t, Output{}, out, "Leave() before Start")
				assert.Equal(t, before, m.self())
				return
			}
			assert.False(t, m.Running(), "Running() after Leave")
			self := m.self()
			assert.Equal(t, before.heartbeat+1, self.heartbeat, "the heartbeat counts once, however often Leave is called")
			assert.True(t, self.left)
			assert.False(t, self.alive)
			assert.Equal(t, firstCall, self.deadAt, "left at the first call")
			assert.Equal(t, peers, sendsOf(t, out, Announce), "news for every live peer, the dead one excluded")
			for _, s := range out.Send {
				assert.Equal(t, ExchangeRequest{From: selfAddr, Partial: true, Left: AppendDigest(nil, selfAddr, self.heartbeat, self.version)}, s.Req)
			}
			assert.NotContains(t, m.liveAddrs(), selfAddr, "we no longer list ourselves")
			alive, _, left := m.Counts()
			assert.Equal(t, tc.peers, alive)
			assert.Equal(t, 1, left)

			// A member that left makes no rounds, no spreads, and
			// answers with the news that it left.
			m.advance(time.Second)
			assert.Equal(t, Output{}, m.Tick(m.now, nil), "Tick after Leave")
			m.mergeAt(full(peer(100), 5, 5, "new"))
			assert.Equal(t, Output{}, m.Spread(m.now, nil), "Spread after Leave")
			_, ok := m.Request(peer(0))
			assert.False(t, ok, "Request after Leave")
			resp, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Digest: AppendDigest(nil, selfAddr, before.heartbeat, before.version)}, m.now)
			require.NoError(t, err)
			assert.Equal(t, []Entry{{Addr: selfAddr, Heartbeat: self.heartbeat, Version: self.version}}, readEntries(t, resp.Left))
		})
	}
}

func TestLeaveLogsOnce(t *testing.T) {
	m := newMember(t)
	out := m.Leave(m.now)
	require.Len(t, out.Logs, 1)
	assert.Equal(t, Info, out.Logs[0].Level)
	assert.Equal(t, "gossip member leaving", out.Logs[0].Msg)
	assert.Empty(t, m.Leave(m.now).Logs, "a second call is a retry, not news")
}

func TestLeaveNewsOrderIsRandom(t *testing.T) {
	m := newMember(t)
	peers := m.join(t, 16)
	firsts := map[string]bool{}
	for range 20 {
		out := m.Leave(m.now)
		require.Len(t, out.Send, len(peers))
		firsts[out.Send[0].To] = true
	}
	assert.Greater(t, len(firsts), 1, "the news goes first to different peers on different calls")
}

// digestEntries returns entries without data that raise each of addrs'
// heartbeats to 200.
func digestEntries(addrs []string) []Entry {
	var es []Entry
	for _, a := range addrs {
		es = append(es, Entry{Addr: a, Heartbeat: 200, Version: 100})
	}
	return es
}
