package protocol

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRumorPeersPreferOthers(t *testing.T) {
	m := newMember(t)
	var all []string
	for i := 0; i < 2*rumorFanout; i++ {
		m.table.put(&entry{addr: peer(i), alive: true})
		all = append(all, peer(i))
	}
	about := map[string]bool{peer(0): true, peer(1): true}
	for try := 0; try < 20; try++ {
		peers := m.rumorPeers(about, all, false) // held, so that no dial limits the spread
		require.Len(t, peers, rumorFanout)
		for _, p := range peers {
			require.False(t, about[p], "rumor about %s sent to it while %d other peers wait", p, 2*rumorFanout-2)
		}
	}
	// With fewer others than the fan-out, the subjects make up the rest.
	for i := 2; i < 2*rumorFanout-1; i++ {
		m.table.remove(peer(i))
	}
	peers := m.rumorPeers(about, all, false)
	require.ElementsMatch(t, []string{peer(0), peer(1), peer(2*rumorFanout - 1)}, peers)
}

func TestRumorPeersPreferHeldConnections(t *testing.T) {
	m := newMember(t)
	all := m.join(t, 20)
	held := append([]string{selfAddr, "10.9.9.9:9"}, all[:5]...) // this member and a stranger are ignored
	isHeld := map[string]bool{}
	for _, p := range all[:5] {
		isHeld[p] = true
	}
	beyond := 0
	for try := 0; try < 50; try++ {
		peers := m.rumorPeers(nil, held, false)
		require.Len(t, peers, rumorFanout)
		n := 0
		for _, p := range peers {
			if isHeld[p] {
				n++
			}
		}
		assert.GreaterOrEqual(t, n, rumorFanout-1, "peers held: %v", peers)
		if n < rumorFanout {
			beyond++
		}
	}
	assert.Positive(t, beyond, "a spread reaches beyond the peers held")

	// A rumor's subject is not told of itself, even over a held connection.
	about := map[string]bool{all[0]: true}
	for try := 0; try < 20; try++ {
		assert.NotContains(t, m.rumorPeers(about, held, false), all[0])
	}
}

func TestRumorGap(t *testing.T) {
	for _, tc := range []struct{ interval, want time.Duration }{
		{time.Second, 50 * time.Millisecond},
		{200 * time.Millisecond, 20 * time.Millisecond},
		{500 * time.Millisecond, 50 * time.Millisecond},
		{0, 0},
	} {
		if got := RumorGap(tc.interval); got != tc.want {
			t.Errorf("RumorGap(%v) = %v, want %v", tc.interval, got, tc.want)
		}
	}
}

// spreadStep is one call of Spread, at a time after the setup, and what
// it should give.
type spreadStep struct {
	after     time.Duration
	wantSends int
	wantMore  bool
}

func TestSpread(t *testing.T) {
	x := "10.5.0.1:7000" // the rumors' subject
	stale := time.Duration(SpreadRounds(10)) * time.Second
	for _, tc := range []struct {
		name string
		// setup gives the member its rumors; it returns the peers held.
		setup       func(t *testing.T, m *member) []string
		steps       []spreadStep
		wantMembers []string // in the rumor message
		wantLeft    []string
	}{
		{
			name: "a new member, to RumorFanout peers, twice",
			setup: func(t *testing.T, m *member) []string {
				all := m.join(t, 8)
				m.mergeAt(full(x, 5, 5, "x"))
				return all[:rumorFanout]
			},
			steps:       []spreadStep{{0, rumorFanout, true}, {time.Millisecond, rumorFanout, false}, {time.Second, 0, false}},
			wantMembers: []string{x},
		},
		{
			name: "new data",
			setup: func(t *testing.T, m *member) []string {
				all := m.join(t, 8)
				m.mergeAt(full(peer(3), 101, 101, "new"))
				return all[4:]
			},
			steps:       []spreadStep{{0, rumorFanout, true}, {0, rumorFanout, false}},
			wantMembers: []string{peer(3)},
		},
		{
			name: "a member that left",
			setup: func(t *testing.T, m *member) []string {
				all := m.join(t, 8)
				m.mergeAt(full(x, 5, 5, "x"))
				require.Len(t, m.Spread(m.now, all).Send, rumorFanout)
				require.Len(t, m.Spread(m.now, all).Send, rumorFanout)
				m.leftAt(t, x, 6, 5)
				return all
			},
			steps:    []spreadStep{{0, rumorFanout, true}, {0, rumorFanout, false}},
			wantLeft: []string{x},
		},
		{
			name: "this member's data",
			setup: func(t *testing.T, m *member) []string {
				all := m.join(t, 2)
				m.SetData([]byte("new"), m.now)
				return all
			},
			steps:       []spreadStep{{0, 2, true}, {0, 2, false}},
			wantMembers: []string{selfAddr},
		},
		{
			name:        "stale at a spread time",
			setup:       func(t *testing.T, m *member) []string { all := m.join(t, 8); m.mergeAt(full(x, 5, 5, "x")); return all },
			steps:       []spreadStep{{stale, rumorFanout, true}, {stale + time.Nanosecond, 0, false}},
			wantMembers: []string{x},
		},
		{
			name: "about a member since dead",
			setup: func(t *testing.T, m *member) []string {
				m.join(t, 8)
				m.mergeAt(full(x, 5, 5, "x"))
				// Declared dead within a spread time, which the failure
				// rules never do: the rumor would be stale by then.
				m.table.setAlive(m.table.members[x], false)
				return nil
			},
			steps: []spreadStep{{0, 0, false}, {0, 0, false}},
		},
		{
			name:  "no live peer",
			setup: func(t *testing.T, m *member) []string { m.SetData([]byte("new"), m.now); return nil },
			steps: []spreadStep{{0, 0, false}},
		},
		{
			name: "storm",
			setup: func(t *testing.T, m *member) []string {
				all := m.join(t, 8)
				for i := range 2 * maxRumorEntries {
					m.mergeAt(full(fmt.Sprintf("10.6.0.%d:7000", i), 5, 5, "x"))
				}
				return all
			},
			steps: []spreadStep{{0, rumorFanout, true}, {0, rumorFanout, false}, {0, 0, false}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t)
			held := tc.setup(t, m)
			start := m.now
			for i, step := range tc.steps {
				m.setNow(start.Add(step.after))
				out := m.Spread(m.now, held)
				if len(out.Send) != step.wantSends || out.Rumors != step.wantMore {
					t.Errorf("spread %d: Spread() = %d sends, more %v; want %d, %v", i, len(out.Send), out.Rumors, step.wantSends, step.wantMore)
				}
				if len(out.Send) == 0 {
					continue
				}
				req := out.Send[0].Req
				about := map[string]bool{}
				var members []string
				for _, e := range req.Members {
					members = append(members, e.Addr)
					about[e.Addr] = true
					assert.True(t, e.WithData, "a rumor carries the data")
				}
				var left []string
				for _, e := range readEntries(t, req.Left) {
					left = append(left, e.Addr)
					about[e.Addr] = true
				}
				switch tc.name {
				case "storm":
					assert.Len(t, members, maxRumorEntries, "a message holds at most maxRumorEntries")
				default:
					assert.Equal(t, tc.wantMembers, members, "spread %d: the rumor's members", i)
					assert.Equal(t, tc.wantLeft, left, "spread %d: the rumor's left records", i)
				}
				assert.True(t, req.Partial)
				assert.Equal(t, selfAddr, req.From)
				to := sendsOf(t, out, Rumor)
				assert.Equal(t, slices.Compact(slices.Clone(to)), to, "each peer once")
				for _, p := range to {
					assert.False(t, about[p], "spread %d: rumor sent to its subject %s while others wait", i, p)
					_, st := m.Lookup(p)
					assert.Equal(t, Alive, st, "spread %d: rumor sent to %s", i, p)
				}
			}
			if tc.name == "storm" {
				assert.Empty(t, m.rumors, "the rest of a storm is left to the exchange")
			}
		})
	}
}

func TestRumorAboutTheFirstJoinerWaitsForTheNext(t *testing.T) {
	m := newMember(t)
	a, b := peer(0), peer(1)
	m.mergeAt(full(a, 5, 5, "a"))
	out := m.Spread(m.now, nil)
	assert.Equal(t, []string{a}, sendsOf(t, out, Rumor), "the only peer is told")
	assert.False(t, out.Rumors, "nothing more to spread until another member comes")
	require.Contains(t, m.rumors, a, "the rumor is kept")
	assert.Equal(t, rumorSends, m.rumors[a].sends, "and not counted as sent")

	m.mergeAt(full(b, 5, 5, "b"))
	out = m.Spread(m.now, []string{a, b}) // held: no dial needed
	assert.Equal(t, []string{a, b}, sendsOf(t, out, Rumor))
	assert.Equal(t, rumorSends-1, m.rumors[a].sends, "now it went to another")
	assert.True(t, out.Rumors)
}

func TestRumorFromAnAnswerIsNotSpread(t *testing.T) {
	m := newMember(t)
	m.join(t, 3)
	m.Spread(m.now, nil)
	m.Spread(m.now, nil)
	require.Empty(t, m.rumors)
	out := m.HandleResponse(peer(0), Exchange, ExchangeResponse{From: peer(0), Members: []Entry{full("10.5.0.1:7000", 5, 5, "x")}}, m.now)
	assert.Equal(t, []string{"joined 10.5.0.1:7000"}, eventsOf(out))
	assert.False(t, out.Rumors, "what an answer to our digest tells us is not news to others")
	assert.Empty(t, m.Spread(m.now, nil).Send)
}

func TestSpreadIdle(t *testing.T) {
	m := newIdle(t)
	m.SetData([]byte("x"), m.now)
	assert.Equal(t, Output{}, m.Spread(m.now, nil), "Spread() before Start")
	m = newMember(t)
	assert.Equal(t, Output{}, m.Spread(m.now, nil), "Spread() without rumors")
}

func TestSpreadLogsAtDebug(t *testing.T) {
	m := newMember(t, func(c *Config) { c.Debug = true })
	all := m.join(t, 2)
	m.SetData([]byte("new"), m.now)
	out := m.Spread(m.now, all)
	require.Len(t, out.Send, 2)
	var msgs []string
	for _, l := range out.Logs {
		msgs = append(msgs, l.Msg)
	}
	assert.Contains(t, msgs, "gossip: spreading rumors")
}

// TestRumorDialsPerRound: in a storm (more than stormRumors news in a
// round, more than stormMinPeers live peers), between two rounds a member's spreads reach at most
// rumorDialsPerRound peers it holds no connection to; the rest go to the
// peers it holds, and rumors that find no peer wait for the next round,
// which asks for a spread again. Outside a storm a spread dials as many
// peers as its fan-out needs.
func TestRumorDialsPerRound(t *testing.T) {
	m := newMember(t)
	all := m.join(t, stormMinPeers+1)
	m.Tick(m.now, nil)
	spreadRound := func() (dialled []string) {
		for range 6 { // spreads a RumorGap apart, within the round
			m.advance(RumorGap(time.Second))
			dialled = append(dialled, sendsOf(t, m.Spread(m.now, nil), Rumor)...)
		}
		return dialled
	}

	m.mergeAt(full("10.6.9.1:7000", 5, 5, "x"))
	assert.Len(t, spreadRound(), rumorSends*rumorFanout, "one piece of news: RumorFanout peers, twice")
	m.Tick(m.now, nil)

	for round := 0; round < 3; round++ {
		for i := range stormRumors + 1 {
			m.mergeAt(full(fmt.Sprintf("10.6.%d.%d:7000", round, i), 5, 5, "x"))
		}
		assert.Len(t, spreadRound(), rumorDialsPerRound, "round %d: a storm, no connection held: one dial a round", round)
		require.NotEmpty(t, m.rumors, "round %d: the rumors wait", round)
		out := m.Tick(m.now, nil)
		assert.True(t, out.Rumors, "round %d: the next round asks for a spread again", round)
	}

	// Held connections carry a storm's spreads whatever the dials left.
	held := all[:rumorFanout]
	sent := 0
	for range 4 {
		m.advance(RumorGap(time.Second))
		to := sendsOf(t, m.Spread(m.now, held), Rumor)
		if len(to) == 0 {
			break // every rumor sent its rumorSends times
		}
		sent++
		assert.Len(t, to, rumorFanout)
		n := 0
		for _, p := range to {
			if slices.Contains(held, p) {
				n++
			}
		}
		assert.GreaterOrEqual(t, n, rumorFanout-rumorDialsPerRound, "at most %d dialled: %v", rumorDialsPerRound, to)
	}
	assert.Positive(t, sent)

	// Two rounds later, with no news meanwhile, it is no storm any more.
	m.Tick(m.now, nil)
	m.Tick(m.now, nil)
	m.mergeAt(full("10.6.9.2:7000", 5, 5, "x"))
	assert.Len(t, spreadRound(), rumorSends*rumorFanout, "the storm is over")

	// A member of a smaller cluster has no storm.
	m = newMember(t)
	m.join(t, stormMinPeers-stormRumors-1) // stormMinPeers with the news
	m.Tick(m.now, nil)
	for i := range stormRumors + 1 {
		m.mergeAt(full(fmt.Sprintf("10.6.8.%d:7000", i), 5, 5, "x"))
	}
	dialled := 0
	for range 2 {
		m.advance(RumorGap(time.Second))
		dialled += len(sendsOf(t, m.Spread(m.now, nil), Rumor))
	}
	assert.Equal(t, rumorSends*rumorFanout, dialled, "%d live peers: no storm", stormMinPeers)
}

// TestRandomPeerIsUniform draws peers from a table where most entries are
// dead (so that random draws fail and the whole table is gone through) and
// from one where all are live: each live peer comes about equally often,
// never this member or a dead one.
func TestRandomPeerIsUniform(t *testing.T) {
	for _, dead := range []int{0, 40} {
		m := newMember(t)
		all := m.join(t, 50)
		for _, a := range all[:dead] {
			m.table.setAlive(m.table.members[a], false)
		}
		count := map[string]int{}
		const draws = 20000
		for range draws {
			p, ok := m.table.randomPeer(m.rng, func(string) bool { return true })
			require.True(t, ok)
			count[p]++
		}
		live := all[dead:]
		require.Len(t, count, len(live), "dead=%d: only live peers, each drawn", dead)
		want := float64(draws) / float64(len(live))
		for _, a := range live {
			assert.InDelta(t, want, float64(count[a]), 0.25*want, "dead=%d: %s drawn %d times", dead, a, count[a])
		}
		_, ok := m.table.randomPeer(m.rng, func(string) bool { return false })
		assert.False(t, ok, "none acceptable")
	}
}
