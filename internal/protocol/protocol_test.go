package protocol

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStart(t *testing.T) {
	m := newIdle(t)
	assert.Equal(t, "", m.Addr())
	assert.False(t, m.Running())
	assert.Empty(t, m.Members(), "no members before Start")
	_, ok := m.Request(peer(0))
	assert.False(t, ok, "no request before Start")

	m.SetData([]byte("mine"), m.now)
	m.advance(time.Second)
	m.Start(selfAddr, m.now)
	assert.Equal(t, selfAddr, m.Addr())
	assert.True(t, m.Running())
	assert.True(t, m.IsSelf(selfAddr))
	assert.False(t, m.IsSelf(peer(0)))
	hb := m.now.UnixMicro()
	assert.Equal(t, []Row{{Addr: selfAddr, Heartbeat: hb, Version: hb, Data: []byte("mine")}}, m.Members(),
		"the heartbeat starts at the start time in microseconds, and versions the data set before")
	r, st := m.Lookup(selfAddr)
	assert.Equal(t, Alive, st)
	assert.Equal(t, hb, r.Heartbeat)
}

func TestNew(t *testing.T) {
	s := New(testConfig(), rand.New(rand.NewPCG(1, 2)), []byte("data"))
	s.Start(selfAddr, t0)
	assert.Equal(t, "data", string(s.Members()[0].Data))
}

func TestTick(t *testing.T) {
	for _, tc := range []struct {
		name         string
		seeds        []string
		peers        int
		wantSends    int
		wantContacts []string
	}{
		{"alone without seeds", nil, 0, 0, nil},
		{"alone with seeds: join them", []string{seedA, seedB}, 0, 0, []string{"join " + seedA, "join " + seedB}},
		{"one peer", nil, 1, 1, nil},
		{"many peers", nil, 10, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t, func(c *Config) { c.Seeds = tc.seeds })
			peers := m.join(t, tc.peers)
			before := m.self()
			m.advance(time.Second)
			out := m.Tick(m.now, nil)
			self := m.self()
			assert.Equal(t, before.heartbeat+1, self.heartbeat, "Tick counts the heartbeat up")
			assert.Equal(t, m.now, self.lastRise)
			assert.Equal(t, before.version, self.version, "the data version stays")
			require.Len(t, out.Send, tc.wantSends)
			for _, s := range out.Send {
				assert.Equal(t, Exchange, s.Purpose)
				assert.Contains(t, peers, s.To, "the partner is a live peer")
				req, ok := m.Request(s.To)
				require.True(t, ok)
				assert.Equal(t, req, s.Req, "the round's request is a full one")
				assert.False(t, s.Req.Partial)
				assert.Len(t, readEntries(t, s.Req.Digest), tc.peers+1, "the digest holds every live member")
			}
			assert.Equal(t, tc.wantContacts, contacts(out))
			assert.Empty(t, out.Events)
		})
	}
}

func TestTickSweeps(t *testing.T) {
	m := newMember(t)
	m.join(t, 2)
	m.advance(m.FailureTime() + time.Second)
	m.HandleResponse(stranger, Exchange, ExchangeResponse{From: stranger, Digest: AppendDigest(nil, peer(1), 101, 100)}, m.now)
	out := m.Tick(m.now, nil)
	assert.Equal(t, []string{"failed " + peer(0)}, eventsOf(out))
	assert.True(t, out.Changed)
	require.Len(t, out.Send, 1)
	assert.Equal(t, peer(1), out.Send[0].To, "the partner is the one peer left alive")
}

func TestTickWhenNotRunning(t *testing.T) {
	m := newIdle(t, withSeeds)
	assert.Equal(t, Output{}, m.Tick(m.now, nil), "Tick() before Start")
	m = newMember(t, withSeeds)
	m.join(t, 3)
	m.Leave(m.now)
	hb := m.self().heartbeat
	assert.Equal(t, Output{}, m.Tick(m.now, nil), "Tick() after Leave")
	assert.Equal(t, hb, m.self().heartbeat)
}

// TestTickPartner counts the partners of many rounds, the table and time
// unchanged.
func TestTickPartner(t *testing.T) {
	const rounds = 1600
	for _, tc := range []struct {
		name  string
		peers int
		held  func(peers []string) []string
		// wantHeld is the share of rounds whose partner is one of held
		// (live), and wantOthers that of each other live peer.
		wantHeld, wantOthers float64
	}{
		{"nothing held: uniform", 8, func([]string) []string { return nil }, 0, 1.0 / 8},
		{"fewer held than MaxOutboundConns: uniform", 10, func(p []string) []string { return p[:3] }, 3.0 / 10, 1.0 / 10},
		{"a full set held: mostly those", 10, func(p []string) []string { return p[:6] }, 1 - 1.0/rotateRounds + 1.0/rotateRounds*6/10, 1.0 / rotateRounds / 10},
		{"only this member, strangers and the dead held: uniform", 4, func([]string) []string { return []string{selfAddr, stranger, peer(50)} }, 0, 1.0 / 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t)
			m.mergeAt(full(peer(50), 100, 100, "dead soon"))
			m.advance(time.Minute)
			peers := m.join(t, tc.peers) // at the later time: alive
			require.Equal(t, []string{"failed " + peer(50)}, eventsOf(m.Sweep(m.now)))
			held := tc.held(peers)
			count := map[string]int{}
			for range rounds {
				out := m.Tick(m.now, held)
				require.Len(t, out.Send, 1)
				count[out.Send[0].To]++
			}
			inHeld := 0
			for p, n := range count {
				require.Contains(t, peers, p, "partner %s is a live peer", p)
				if slices.Contains(held, p) {
					inHeld += n
				} else {
					assert.InDelta(t, tc.wantOthers*rounds, n, 0.4*tc.wantOthers*rounds+10, "rounds with %s", p)
				}
			}
			assert.InDelta(t, tc.wantHeld*rounds, inHeld, 0.1*rounds, "rounds with a peer held")
		})
	}
}

func TestTickContactsNowAndThen(t *testing.T) {
	// With one live peer, a round contacts a due seed with probability 1/2.
	m := newMember(t, func(c *Config) { c.Seeds = []string{seedA} })
	m.join(t, 1)
	n := 0
	for range 400 {
		out := m.Tick(m.now, nil)
		for _, c := range out.Contacts {
			require.Equal(t, Target{Name: seedA, Purpose: Recover}, c)
			n++
			m.Contacted(seedA, true, nil, m.now)
		}
	}
	assert.InDelta(t, 200, n, 50, "rounds that contact the seed, of 400")
}

func TestChoosePartner(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	anyPeer := func() int { return -1 }
	for _, tc := range []struct {
		name     string
		held     []int
		capacity int
		wantAny  float64 // the share of picks made by anyPeer
	}{
		{"none held", nil, 4, 1},
		{"fewer than capacity", []int{1, 2, 3}, 4, 1},
		{"capacity reached", []int{1, 2, 3, 4}, 4, 1.0 / rotateRounds},
		{"beyond capacity", []int{1, 2, 3, 4, 5}, 4, 1.0 / rotateRounds},
	} {
		const n = 4000
		anyN := 0
		for range n {
			p := ChoosePartner(r, tc.held, tc.capacity, anyPeer)
			if p == -1 {
				anyN++
			} else if !slices.Contains(tc.held, p) {
				t.Fatalf("%s: ChoosePartner() = %d, not held", tc.name, p)
			}
		}
		if got := float64(anyN) / n; got < tc.wantAny-0.03 || got > tc.wantAny+0.03 {
			t.Errorf("%s: ChoosePartner() chose any peer in %.3f of picks, want %.3f", tc.name, got, tc.wantAny)
		}
	}
}

func TestNextTick(t *testing.T) {
	m := newMember(t)
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := m.NextTick()
		lo, hi = min(lo, d), max(hi, d)
	}
	assert.GreaterOrEqual(t, lo, 900*time.Millisecond)
	assert.LessOrEqual(t, hi, 1100*time.Millisecond)
	assert.Less(t, lo, 920*time.Millisecond, "NextTick() is spread over the range")
	assert.Greater(t, hi, 1080*time.Millisecond, "NextTick() is spread over the range")
}

func TestRequest(t *testing.T) {
	m := newMember(t, func(c *Config) { c.ClusterName = "blue" })
	m.join(t, 2)
	m.leftAt(t, peer(5), 7, 0)
	req, ok := m.Request(peer(0))
	require.True(t, ok)
	assert.Equal(t, selfAddr, req.From)
	assert.Equal(t, "blue", req.Cluster)
	assert.False(t, req.Partial)
	assert.Empty(t, req.Members)
	assert.Len(t, readEntries(t, req.Digest), 3)
	assert.Equal(t, []Entry{{Addr: peer(5), Heartbeat: 7}}, readEntries(t, req.Left))

	_, ok = m.Request(selfAddr)
	assert.False(t, ok, "Request(self)")
	m.HandleResponse(seedA, Recover, ExchangeResponse{From: selfAddr}, m.now)
	_, ok = m.Request(seedA)
	assert.False(t, ok, "Request(an address found to be this member)")
}

func TestHandleRequest(t *testing.T) {
	x := "10.5.0.1:7000"
	for _, tc := range []struct {
		name        string
		req         ExchangeRequest
		wantErr     string
		wantWant    []string
		wantMembers []string // in the answer, with data
		wantEvents  []string
		wantJoined  bool // x is in the table afterwards
	}{
		{
			name:        "a full digest",
			req:         ExchangeRequest{From: peer(0), Digest: digestOf(Entry{Addr: peer(0), Heartbeat: 100, Version: 100})},
			wantMembers: []string{selfAddr, peer(1)},
		},
		{
			name:        "a digest naming data we lack",
			req:         ExchangeRequest{From: peer(0), Digest: digestOf(Entry{Addr: x, Heartbeat: 9, Version: 9})},
			wantWant:    []string{x},
			wantMembers: []string{selfAddr, peer(0), peer(1)},
		},
		{
			name:        "a rumor",
			req:         ExchangeRequest{From: peer(0), Partial: true, Members: []Entry{full(x, 9, 9, "x")}},
			wantEvents:  []string{"joined " + x},
			wantJoined:  true,
			wantMembers: nil,
		},
		{
			name: "from ourselves",
			req:  ExchangeRequest{From: selfAddr, Members: []Entry{full(x, 9, 9, "x")}},
		},
		{
			name:    "too many members",
			req:     ExchangeRequest{From: peer(0), Partial: true, Members: make([]Entry, 11)},
			wantErr: "11 members in one message, limit 10",
		},
		{
			name:    "too many digest records",
			req:     ExchangeRequest{From: peer(0), Digest: tooLong(11)},
			wantErr: "malformed digest",
		},
		{
			name:       "a malformed digest",
			req:        ExchangeRequest{From: peer(0), Members: []Entry{full(x, 9, 9, "x")}, Digest: []byte{0x05, 'a'}},
			wantErr:    "malformed digest",
			wantEvents: []string{"joined " + x},
			wantJoined: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t, func(c *Config) { c.MaxMembers = 10; c.ClusterName = "blue" })
			m.join(t, 2)
			resp, out, err := m.HandleRequest(tc.req, m.now)
			assert.Equal(t, selfAddr, resp.From)
			assert.Equal(t, "blue", resp.Cluster)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				assert.Empty(t, resp.Digest)
				assert.Empty(t, resp.Members)
				assert.Empty(t, resp.Want)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.wantWant, resp.Want, "Want")
			var members []string
			for _, e := range resp.Members {
				members = append(members, e.Addr)
			}
			slices.Sort(members)
			assert.Equal(t, tc.wantMembers, members, "the answer's members")
			assert.Equal(t, tc.wantEvents, eventsOf(out))
			assert.Equal(t, len(tc.wantEvents) > 0, out.Changed, "Changed")
			assert.Equal(t, len(tc.wantEvents) > 0, out.Rumors, "Rumors: what a peer sends us is news")
			_, st := m.Lookup(x)
			assert.Equal(t, tc.wantJoined, st == Alive, "Lookup(x)")
		})
	}
}

// tooLong returns a well-formed digest of n records.
func tooLong(n int) []byte {
	var es []Entry
	for i := range n {
		es = append(es, Entry{Addr: peer(i), Heartbeat: 100, Version: 100})
	}
	return digestOf(es...)
}

func TestHandleResponse(t *testing.T) {
	x := "10.5.0.1:7000"
	for _, tc := range []struct {
		name          string
		purpose       Purpose
		resp          ExchangeResponse
		leave         bool
		wantEvents    []string
		wantPush      []string // the members pushed
		wantFollowUps []FollowUp
		wantAlias     bool
	}{
		{
			name:       "an answer with a new member",
			purpose:    Exchange,
			resp:       ExchangeResponse{From: peer(0), Members: []Entry{full(x, 9, 9, "x")}},
			wantEvents: []string{"joined " + x},
		},
		{
			name:     "an answer that wants data",
			purpose:  Exchange,
			resp:     ExchangeResponse{From: peer(0), Want: []string{selfAddr, peer(1), "10.9.9.9:9"}},
			wantPush: []string{selfAddr, peer(1)},
		},
		{
			name:    "an answer that wants data we do not have",
			purpose: Exchange,
			resp:    ExchangeResponse{From: peer(0), Want: []string{"10.9.9.9:9"}},
		},
		{
			name:    "the answer to a push",
			purpose: Push,
			resp:    ExchangeResponse{From: peer(0), Want: []string{selfAddr}},
		},
		{
			name:     "an answer after we left",
			purpose:  Recover,
			leave:    true,
			resp:     ExchangeResponse{From: peer(0), Want: []string{peer(1)}},
			wantPush: []string{peer(1)},
		},
		{
			name:          "a seed's answer while joining",
			purpose:       Join,
			resp:          ExchangeResponse{From: peer(0)},
			wantFollowUps: []FollowUp{{To: peer(0), After: 100 * time.Millisecond}},
		},
		{
			name:    "a seed's answer while joining, after we left",
			purpose: Join,
			leave:   true,
			resp:    ExchangeResponse{From: peer(0)},
		},
		{
			name:    "an answer without From",
			purpose: Join,
			resp:    ExchangeResponse{},
		},
		{
			name:      "our own answer",
			purpose:   Join,
			resp:      ExchangeResponse{From: selfAddr, Members: []Entry{full(x, 9, 9, "x")}, Want: []string{selfAddr}},
			wantAlias: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t)
			m.join(t, 2)
			if tc.leave {
				m.Leave(m.now)
			}
			out := m.HandleResponse(peer(0), tc.purpose, tc.resp, m.now)
			assert.Equal(t, tc.wantEvents, eventsOf(out))
			assert.Equal(t, len(tc.wantEvents) > 0, out.Changed)
			assert.False(t, out.Rumors, "an answer is no news to spread")
			if tc.wantPush == nil {
				assert.Empty(t, out.Send)
			} else {
				require.Len(t, out.Send, 1)
				s := out.Send[0]
				assert.Equal(t, peer(0), s.To)
				assert.Equal(t, Push, s.Purpose)
				assert.True(t, s.Req.Partial)
				assert.Equal(t, selfAddr, s.Req.From)
				var pushed []string
				for _, e := range s.Req.Members {
					assert.True(t, e.WithData)
					pushed = append(pushed, e.Addr)
				}
				assert.Equal(t, tc.wantPush, pushed)
			}
			assert.Equal(t, tc.wantFollowUps, out.FollowUps)
			assert.Equal(t, tc.wantAlias, m.IsSelf(peer(0)), "IsSelf(%s)", peer(0))
			if tc.wantAlias {
				assert.Equal(t, Output{}, out)
				_, st := m.Lookup(x)
				assert.Equal(t, Unknown, st, "our own answer is not merged")
				// Gossip about the alias is gossip about us.
				hb := m.self().heartbeat
				m.mergeAt(Entry{Addr: peer(0), Heartbeat: hb + 10, WithData: true})
				assert.Equal(t, hb+11, m.self().heartbeat)
			}
		})
	}
}

func TestHandleResponseBeforeStart(t *testing.T) {
	m := newIdle(t)
	out := m.HandleResponse(peer(0), Exchange, ExchangeResponse{From: peer(0), Want: []string{peer(0)}, Members: []Entry{full(peer(0), 5, 5, "x")}}, m.now)
	assert.Empty(t, out.Send, "no data is pushed before Start")
	assert.Empty(t, out.FollowUps)
}

func TestHandleResponseMalformed(t *testing.T) {
	m := newMember(t, func(c *Config) { c.Debug = true })
	out := m.HandleResponse(peer(0), Exchange, ExchangeResponse{From: peer(0), Members: []Entry{full(peer(0), 5, 5, "x")}, Digest: []byte{0x05}}, m.now)
	assert.Equal(t, []string{"joined " + peer(0)}, eventsOf(out), "what came with the fault is merged")
	var msgs []string
	for _, l := range out.Logs {
		msgs = append(msgs, l.Msg)
	}
	assert.Contains(t, msgs, "gossip: bad exchange response")
}

func TestSetData(t *testing.T) {
	for _, tc := range []struct {
		name        string
		phase       phase
		data        string
		wantChanged bool
		wantRumor   bool
	}{
		{"new data", running, "new", true, true},
		{"the same data", running, "old", false, false},
		{"before Start", idle, "new", true, false},
		{"after Leave", left, "new", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newIdle(t)
			m.SetData([]byte("old"), m.now)
			if tc.phase != idle {
				m.Start(selfAddr, m.now)
			}
			if tc.phase == left {
				m.Leave(m.now)
			}
			before := m.self()
			out := m.SetData([]byte(tc.data), m.now)
			self := m.self()
			assert.Equal(t, before.heartbeat+1, self.heartbeat, "the heartbeat counts up")
			assert.Equal(t, self.heartbeat, self.version, "and versions the data")
			assert.Equal(t, tc.data, string(self.data))
			assert.Equal(t, tc.wantChanged, out.Changed, "Changed")
			assert.Equal(t, tc.wantRumor, out.Rumors, "Rumors")
			_, pending := m.rumors[selfAddr]
			assert.Equal(t, tc.wantRumor, pending, "a rumor about us")
			assert.Empty(t, out.Events, "our own data is no event")
		})
	}
}

func TestMembersAndCounts(t *testing.T) {
	m := newMember(t)
	m.join(t, 4)
	m.leftAt(t, peer(0), 101, 100)
	m.advance(m.FailureTime() + time.Second)
	m.HandleResponse(stranger, Exchange, ExchangeResponse{From: stranger, Digest: digestOf(Entry{Addr: peer(2), Heartbeat: 101, Version: 100}, Entry{Addr: peer(3), Heartbeat: 101, Version: 100})}, m.now)
	m.Sweep(m.now)
	alive, failed, left := m.Counts()
	assert.Equal(t, [3]int{3, 1, 1}, [3]int{alive, failed, left}, "Counts()")
	assert.Equal(t, []string{selfAddr, peer(2), peer(3)}, m.liveAddrs())
	for _, tc := range []struct {
		addr string
		want Status
	}{
		{selfAddr, Alive}, {peer(0), Gone}, {peer(1), Dead}, {peer(2), Alive}, {peer(9), Unknown},
	} {
		if _, got := m.Lookup(tc.addr); got != tc.want {
			t.Errorf("Lookup(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	r, _ := m.Lookup(peer(1))
	assert.Equal(t, Row{Addr: peer(1), Heartbeat: 100, Version: 100, Data: []byte("d")}, r, "a dead member's row")
}

func TestSweepWhenNotRunning(t *testing.T) {
	m := newIdle(t)
	m.mergeAt(full(peer(0), 5, 5, "x"))
	m.advance(time.Hour)
	assert.Equal(t, Output{}, m.Sweep(m.now), "Sweep() before Start")
	_, st := m.Lookup(peer(0))
	assert.Equal(t, Alive, st)
}

// TestExchangeBetweenTwoStates runs whole exchanges between two states by
// hand, as the shell would carry them out: a member joins through its seed.
func TestExchangeBetweenTwoStates(t *testing.T) {
	seed := newMember(t)
	seed.SetData([]byte("seed data"), seed.now)
	joiner := newIdle(t, func(c *Config) { c.Seeds = []string{selfAddr} })
	joiner.SetData([]byte("joiner data"), joiner.now)
	joiner.Start(peer(0), joiner.now)

	out := joiner.Tick(joiner.now, nil)
	require.Equal(t, []string{"join " + selfAddr}, contacts(out))
	req, ok := joiner.Request(selfAddr)
	require.True(t, ok)
	resp, sout, err := seed.HandleRequest(req, seed.now)
	require.NoError(t, err)
	assert.Equal(t, []string{peer(0)}, resp.Want, "the seed asks for the joiner's data")
	assert.Empty(t, sout.Events, "not before it has it")
	jout := joiner.HandleResponse(selfAddr, Join, resp, joiner.now)
	assert.Equal(t, []string{"joined " + selfAddr}, eventsOf(jout))
	require.Len(t, jout.Send, 1)
	require.Equal(t, Push, jout.Send[0].Purpose)
	assert.Len(t, jout.FollowUps, 1)
	joiner.Contacted(selfAddr, true, nil, joiner.now)

	presp, sout, err := seed.HandleRequest(jout.Send[0].Req, seed.now)
	require.NoError(t, err)
	assert.Equal(t, []string{"joined " + peer(0)}, eventsOf(sout))
	assert.True(t, sout.Rumors)
	assert.Empty(t, joiner.HandleResponse(selfAddr, Push, presp, joiner.now).Events)

	for _, s := range []*member{seed, joiner} {
		rows := s.Members()
		require.Len(t, rows, 2)
		slices.SortFunc(rows, func(a, b Row) int { return len(a.Data) - len(b.Data) })
		assert.Equal(t, "seed data", string(rows[0].Data))
		assert.Equal(t, "joiner data", string(rows[1].Data))
	}
}
