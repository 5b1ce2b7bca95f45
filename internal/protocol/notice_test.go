package protocol

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// noticeAt merges a death notice of addr at heartbeat hb, as a peer's rumor
// carries it, and returns the answer and the output.
func (m *member) noticeAt(t testing.TB, addr string, hb int64) (ExchangeResponse, Output) {
	t.Helper()
	resp, out, err := m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Dead: AppendDigest(nil, addr, hb, hb)}, m.now)
	require.NoError(t, err)
	return resp, out
}

func TestRefused(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(m *member) (addr string, since time.Time)
		failed bool
	}{
		{"a live member", func(m *member) (string, time.Time) { return peer(0), m.now }, true},
		{"its heartbeat rose during the call", func(m *member) (string, time.Time) {
			since := m.now
			m.advance(time.Millisecond)
			m.mergeAt(full(peer(0), 101, 100, "d"))
			return peer(0), since
		}, false},
		{"this member", func(m *member) (string, time.Time) { return selfAddr, m.now }, false},
		{"an unknown address", func(m *member) (string, time.Time) { return peer(9), m.now }, false},
		{"a member that left", func(m *member) (string, time.Time) {
			m.leftAt(t, peer(0), 100, 100)
			return peer(0), m.now
		}, false},
		{"a member dead by timeout", func(m *member) (string, time.Time) {
			m.advance(m.FailureTime() + time.Second)
			m.mergeAt(full(peer(1), 200, 100, "d"), full(peer(2), 200, 100, "d"))
			m.Sweep(m.now)
			_, st := m.Lookup(peer(0))
			require.Equal(t, Dead, st)
			return peer(0), m.now
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMember(t)
			m.join(t, 3)
			addr, since := c.setup(m)
			_, before := m.Lookup(addr)
			out := m.Refused(addr, since, m.now)
			_, st := m.Lookup(addr)
			if !c.failed {
				assert.Empty(t, eventsOf(out), "Refused(%s)", addr)
				assert.Equal(t, before, st, "Refused(%s): status", addr)
				return
			}
			assert.Equal(t, []string{"failed " + addr}, eventsOf(out), "Refused(%s)", addr)
			assert.True(t, out.Changed && out.Rumors, "Refused(%s): changed and a rumor", addr)
			assert.Equal(t, Dead, st, "Refused(%s): status", addr)
			// The notice goes out as a rumor, with the heartbeat it
			// died at.
			spread := m.Spread(m.now, nil)
			require.NotEmpty(t, spread.Send, "a spread")
			for _, s := range spread.Send {
				assert.NotEqual(t, addr, s.To, "the rumor goes to live peers")
				assert.Equal(t, []Entry{{Addr: addr, Heartbeat: 100, Version: 100}}, readEntries(t, s.Req.Dead), "rumor to %s", s.To)
			}
			// And a full request carries it.
			req, ok := m.Request(peer(1))
			require.True(t, ok)
			assert.Equal(t, []Entry{{Addr: addr, Heartbeat: 100, Version: 100}}, readEntries(t, req.Dead))
		})
	}
}

func TestRefusedBeforeStart(t *testing.T) {
	m := newIdle(t)
	out := m.Refused(peer(0), m.now, m.now)
	assert.Empty(t, eventsOf(out))
}

func TestDeathNotice(t *testing.T) {
	// Three peers and this member: S(4) = 3, so K = 9.
	const k = noticeSlackSpreads * 3
	cases := []struct {
		name    string
		ours    int64 // our heartbeat of peer(0), 0 to leave it at 100
		notice  int64
		left    bool // peer(0) left first
		addr    string
		want    Status
		events  []string
		refuted int64 // the heartbeat the answer must carry back, if any
	}{
		{name: "at our heartbeat", notice: 100, want: Dead, events: []string{"failed " + peer(0)}},
		{name: "ours within the slack", ours: 100 + k, notice: 100, want: Dead, events: []string{"failed " + peer(0)}},
		{name: "ours fresher refutes it", ours: 101 + k, notice: 100, want: Alive, refuted: 101 + k},
		{name: "ours older", ours: 0, notice: 150, want: Dead, events: []string{"failed " + peer(0)}},
		{name: "a member that left", notice: 200, left: true, want: Gone},
		{name: "an unknown member", addr: peer(9), notice: 100, want: Unknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMember(t)
			m.join(t, 3)
			if c.ours > 0 {
				m.mergeAt(full(peer(0), c.ours, 100, "d"))
			}
			if c.left {
				m.leftAt(t, peer(0), 100, 100)
			}
			addr := c.addr
			if addr == "" {
				addr = peer(0)
			}
			resp, out := m.noticeAt(t, addr, c.notice)
			_, st := m.Lookup(addr)
			assert.Equal(t, c.want, st, "notice of %s at %d: status", addr, c.notice)
			assert.Equal(t, c.events, eventsOf(out), "notice of %s at %d", addr, c.notice)
			if len(c.events) > 0 {
				assert.True(t, out.Rumors, "the notice is spread on")
			}
			if c.refuted > 0 {
				assert.Equal(t, []Entry{{Addr: addr, Heartbeat: c.refuted, Version: 100}}, readEntries(t, resp.Digest), "the answer carries the fresher heartbeat")
			}
			assert.Empty(t, resp.Dead, "the notice is not sent back")
		})
	}
}

func TestDeathNoticeAboutSelf(t *testing.T) {
	m := newMember(t)
	m.join(t, 3)
	h := m.self().heartbeat
	m.advance(time.Second)
	resp, out := m.noticeAt(t, selfAddr, h)
	assert.Empty(t, eventsOf(out))
	_, st := m.Lookup(selfAddr)
	assert.Equal(t, Alive, st)
	now := m.self().heartbeat
	assert.Greater(t, now, h+m.noticeSlack(), "heartbeat counted on above the notice's slack")
	assert.Equal(t, []Entry{{Addr: selfAddr, Heartbeat: now, Version: m.self().version}}, readEntries(t, resp.Digest), "the answer refutes the notice")
	// A later notice below our heartbeat changes nothing.
	m.noticeAt(t, selfAddr, h)
	assert.Equal(t, now, m.self().heartbeat)
}

func TestNoticedMemberComesBackAboveTheSlack(t *testing.T) {
	m := newMember(t)
	m.join(t, 3)
	m.noticeAt(t, peer(0), 100)
	k := m.noticeSlack()
	// Stale gossip, up to the slack, does not bring it back.
	for _, hb := range []int64{100, 100 + k} {
		m.HandleRequest(ExchangeRequest{From: stranger, Digest: digestOf(Entry{Addr: peer(0), Heartbeat: hb, Version: 100})}, m.now)
		out := m.mergeAt(full(peer(0), hb, 100, "d"))
		assert.Empty(t, eventsOf(out), "heartbeat %d", hb)
		_, st := m.Lookup(peer(0))
		assert.Equal(t, Dead, st, "heartbeat %d", hb)
	}
	// One above it does, long before the revive margin of a death by
	// timeout.
	require.Less(t, k+1, m.reviveMargin())
	out := m.mergeAt(full(peer(0), 101+k, 100, "d"))
	assert.Equal(t, []string{"rejoined " + peer(0)}, eventsOf(out))
	_, st := m.Lookup(peer(0))
	assert.Equal(t, Alive, st)
	// Declared dead again by timeout, it now needs the revive margin.
	assert.Zero(t, m.entryOf(peer(0)).noticed)
}

func TestNoticedMemberRestartedComesBack(t *testing.T) {
	m := newMember(t)
	m.join(t, 3)
	m.noticeAt(t, peer(0), 100)
	restarted := m.now.UnixMicro()
	out := m.mergeAt(full(peer(0), restarted, restarted, "new"))
	assert.Equal(t, []string{"rejoined " + peer(0)}, eventsOf(out))
}

func TestAnswersCarryNotices(t *testing.T) {
	m := newMember(t)
	m.join(t, 3)
	m.Refused(peer(0), m.now, m.now)
	notice := []Entry{{Addr: peer(0), Heartbeat: 100, Version: 100}}
	cases := []struct {
		name string
		req  ExchangeRequest
		want []Entry
	}{
		{"a rumor naming it alive", ExchangeRequest{Partial: true, Digest: digestOf(Entry{Addr: peer(0), Heartbeat: 100, Version: 100})}, notice},
		{"a full request naming it alive", ExchangeRequest{Digest: digestOf(Entry{Addr: peer(0), Heartbeat: 100, Version: 100})}, notice},
		{"a full request not naming it", ExchangeRequest{Digest: digestOf(Entry{Addr: peer(1), Heartbeat: 100, Version: 100})}, notice},
		{"a rumor not naming it", ExchangeRequest{Partial: true, Digest: digestOf(Entry{Addr: peer(1), Heartbeat: 100, Version: 100})}, nil},
		{"a request holding the notice", ExchangeRequest{Dead: AppendDigest(nil, peer(0), 100, 100)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.From = stranger
			resp, _, err := m.HandleRequest(c.req, m.now)
			require.NoError(t, err)
			assert.Equal(t, c.want, readEntries(t, resp.Dead))
		})
	}
}

// TestNoticeSpreadsBetweenMembers runs two members: the first is refused
// by a peer, and its answer to the second's full request brings it the notice.
func TestNoticeSpreadsBetweenMembers(t *testing.T) {
	a := newMember(t)
	a.join(t, 3)
	b := newMember(t)
	b.Start(peer(1), b.now)
	b.HandleResponse(stranger, Exchange, ExchangeResponse{Members: []Entry{full(selfAddr, a.self().heartbeat, a.self().version, ""), full(peer(0), 100, 100, "d"), full(peer(2), 100, 100, "d")}}, b.now)

	// By a full exchange: b asks a.
	a.Refused(peer(0), a.now, a.now)
	req, ok := b.Request(selfAddr)
	require.True(t, ok)
	resp, _, err := a.HandleRequest(req, a.now)
	require.NoError(t, err)
	out := b.HandleResponse(selfAddr, Exchange, resp, b.now)
	assert.Equal(t, []string{"failed " + peer(0)}, eventsOf(out))
	_, st := b.Lookup(peer(0))
	assert.Equal(t, Dead, st)
}
