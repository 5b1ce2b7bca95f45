package protocol

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// silentSetup is a member with four live peers, peer(0) gone silent at
// heartbeat 100 and the others counting on: the member's exchange of each
// round is answered with their newer heartbeats.
type silentSetup struct {
	*member
	hb     int64   // the others' heartbeat
	joined []Entry // members added by roundWith, counting on with the others
}

func newSilentSetup(t *testing.T) *silentSetup {
	m := newMember(t)
	m.join(t, 4)
	for i := range reachWindow { // no loss seen
		m.reach.note(peer(i%4), true)
	}
	return &silentSetup{member: m, hb: 100}
}

// round moves the member on one interval and ticks; the round's exchange is
// answered with the others' newer heartbeats. It returns the probes sent.
func (m *silentSetup) round(t *testing.T) []Send { return m.roundWith(t, nil) }

// roundWith is round where the answer also brings the members added, new to
// the member, which count on with the others from then on.
func (m *silentSetup) roundWith(t *testing.T, added []Entry) []Send {
	t.Helper()
	m.advance(time.Second)
	m.hb++
	live := []Entry{full(peer(1), m.hb, 100, ""), full(peer(2), m.hb, 100, ""), full(peer(3), m.hb, 100, "")}
	for i := range m.joined {
		m.joined[i].Heartbeat = m.hb
	}
	resp := ExchangeResponse{Digest: digestOf(append(live, m.joined...)...), Members: added}
	out := m.Tick(m.now, nil)
	var probes []Send
	answered := false
	for _, s := range out.Send {
		switch s.Purpose {
		case Exchange:
			resp.From = s.To
			m.HandleResponse(s.To, Exchange, resp, m.now)
			answered = true
		case Probe:
			probes = append(probes, s)
		}
	}
	if !answered && len(added) > 0 {
		resp.From = stranger
		m.HandleResponse(stranger, Exchange, resp, m.now)
	}
	for _, e := range added {
		_, st := m.Lookup(e.Addr)
		require.Equal(t, Alive, st, "new member %s", e.Addr)
	}
	m.joined = append(m.joined, added...)
	return probes
}

// answer carries out the probes: the suspect's fail, the others' are
// answered with resp (which may carry fresher news).
func (m *silentSetup) answer(probes []Send, resp func(to string) ExchangeResponse) Output {
	return m.carryOut(probes, func(p Send) Output {
		if p.To == p.About {
			return m.ProbeFailed(p.To, p.About, m.now)
		}
		return m.ProbeAnswered(p.To, p.About, resp(p.To), m.now)
	})
}

// carryOut hands each probe to outcome, which reports its outcome to the
// member, and carries out as well the probes those reports send (the one to
// the suspect, sent once an other's outcome is in). It returns the events
// and every probe carried out, in order.
func (m *silentSetup) carryOut(probes []Send, outcome func(p Send) Output) Output {
	var out Output
	for len(probes) > 0 {
		p := probes[0]
		probes = probes[1:]
		out.Send = append(out.Send, p)
		o := outcome(p)
		out.Events = append(out.Events, o.Events...)
		for _, s := range o.Send {
			if s.Purpose == Probe {
				probes = append(probes, s)
			}
		}
	}
	return out
}

func nothingNew(to string) ExchangeResponse { return ExchangeResponse{From: to} }

// suspectedAfter runs rounds until the first probes, and returns them and
// the rounds it took.
func (m *silentSetup) suspectedAfter(t *testing.T) ([]Send, int) {
	t.Helper()
	for r := 1; r <= 20; r++ {
		if probes := m.round(t); len(probes) > 0 {
			return probes, r
		}
	}
	require.Fail(t, "never suspected")
	return nil, 0
}

func TestSuspectAndConfirm(t *testing.T) {
	ts := SuspectRounds(5)
	cases := []struct {
		name string
		// act carries out the first round of probes and returns whether a
		// conviction may follow.
		act       func(m *silentSetup, probes []Send)
		convicted bool
	}{
		{"others answer without news, the suspect is silent", func(m *silentSetup, probes []Send) {
			m.answer(probes, nothingNew)
		}, true},
		{"another holds a fresher heartbeat", func(m *silentSetup, probes []Send) {
			m.answer(probes, func(to string) ExchangeResponse {
				if to == peer(2) {
					return ExchangeResponse{From: to, Digest: digestOf(full(peer(0), 101, 100, ""))}
				}
				return nothingNew(to)
			})
		}, false},
		{"the suspect answers", func(m *silentSetup, probes []Send) {
			m.carryOut(probes, func(p Send) Output { return m.ProbeAnswered(p.To, p.About, nothingNew(p.To), m.now) })
		}, false},
		{"no one answers", func(m *silentSetup, probes []Send) {
			m.carryOut(probes, func(p Send) Output { return m.ProbeFailed(p.To, p.About, m.now) })
		}, false},
		{"one other answers", func(m *silentSetup, probes []Send) {
			answered := false
			m.carryOut(probes, func(p Send) Output {
				if p.To != p.About && !answered {
					answered = true
					return m.ProbeAnswered(p.To, p.About, nothingNew(p.To), m.now)
				}
				return m.ProbeFailed(p.To, p.About, m.now)
			})
		}, false},
		{"a notice of silence comes meanwhile", func(m *silentSetup, probes []Send) {
			_, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Silent: AppendDigest(nil, peer(0), 100, 100)}, m.now)
			require.NoError(t, err)
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newSilentSetup(t)
			probes, rounds := m.suspectedAfter(t)
			assert.Equal(t, ts, rounds, "suspected after Ts rounds")
			assert.Equal(t, []string{peer(1), peer(2), peer(3)}, sendsOf(t, Output{Send: probes}, Probe), "ProbeFanout others, the suspect once one of them is heard from")
			all := m.carryOut(probes, func(p Send) Output { return m.ProbeAnswered(p.To, p.About, nothingNew(p.To), m.now) })
			assert.Equal(t, []string{peer(0), peer(1), peer(2), peer(3)}, sendsOf(t, all, Probe), "the suspect and ProbeFanout others")
			// Answering them changed the member: the case starts again.
			m = newSilentSetup(t)
			probes, _ = m.suspectedAfter(t)
			for _, p := range all.Send {
				assert.Equal(t, peer(0), p.About)
				assert.True(t, p.Req.Partial)
				assert.Equal(t, []Entry{{Addr: peer(0), Heartbeat: 100, Version: 100}}, readEntries(t, p.Req.Digest))
			}
			c.act(m, probes)
			m.advance(time.Second)
			out := m.Tick(m.now, nil)
			_, st := m.Lookup(peer(0))
			if c.convicted {
				assert.Equal(t, Dead, st)
				e := m.entryOf(peer(0))
				assert.True(t, e.heldNotice(true), "by a notice of silence")
				assert.Equal(t, []Entry{{Addr: peer(0), Heartbeat: 100, Version: 100}}, readEntries(t, m.request().Silent), "held as a notice")
				assert.Empty(t, m.request().Dead, "not as a refused dial's")
				return
			}
			assert.Equal(t, Alive, st)
			assert.Empty(t, eventsOf(out))
		})
	}
}

// The probe to the suspect itself waits for the first outcome of the
// others' probes, and is not sent once one of them carried fresher news.
func TestSuspectProbedAfterOthers(t *testing.T) {
	t.Run("after the first outcome, once", func(t *testing.T) {
		for _, answered := range []bool{true, false} {
			m := newSilentSetup(t)
			probes, _ := m.suspectedAfter(t)
			require.Equal(t, []string{peer(1), peer(2), peer(3)}, sendsOf(t, Output{Send: probes}, Probe))
			var out Output
			if answered {
				out = m.ProbeAnswered(probes[0].To, peer(0), nothingNew(probes[0].To), m.now)
			} else {
				out = m.ProbeFailed(probes[0].To, peer(0), m.now)
			}
			require.Equal(t, []string{peer(0)}, sendsOf(t, out, Probe), "answered %v", answered)
			assert.Equal(t, []Entry{{Addr: peer(0), Heartbeat: 100, Version: 100}}, readEntries(t, out.Send[0].Req.Digest))
			assert.Empty(t, m.ProbeAnswered(probes[1].To, peer(0), nothingNew(probes[1].To), m.now).Send, "only once")
		}
	})
	t.Run("not once another has fresher news", func(t *testing.T) {
		m := newSilentSetup(t)
		probes, _ := m.suspectedAfter(t)
		fresher := ExchangeResponse{Digest: digestOf(full(peer(0), 101, 100, ""))}
		out := m.carryOut(probes, func(p Send) Output {
			fresher.From = p.To
			return m.ProbeAnswered(p.To, p.About, fresher, m.now)
		})
		assert.Equal(t, []string{peer(1), peer(2), peer(3)}, sendsOf(t, out, Probe))
		assert.Nil(t, m.suspectOf(peer(0)))
	})
	t.Run("at the next round if no outcome came", func(t *testing.T) {
		m := newSilentSetup(t)
		m.suspectedAfter(t)
		probes := m.round(t)
		assert.Equal(t, []string{peer(0), peer(1), peer(2), peer(3)}, sendsOf(t, Output{Send: probes}, Probe))
	})
	t.Run("at once with no other to ask", func(t *testing.T) {
		m := newMember(t)
		m.join(t, 1)
		for range reachWindow { // no loss seen, on calls to others
			m.reach.note(stranger, true)
		}
		var probes []string
		for r := 0; r < 20 && len(probes) == 0; r++ {
			m.advance(time.Second)
			for _, s := range m.Tick(m.now, nil).Send {
				if s.Purpose == Probe {
					probes = append(probes, s.To)
				}
			}
		}
		assert.Equal(t, []string{peer(0)}, probes)
	})
}

func TestSilentConvictionSpreads(t *testing.T) {
	m := newSilentSetup(t)
	probes, _ := m.suspectedAfter(t)
	m.answer(probes, nothingNew)
	m.advance(time.Second)
	out := m.Tick(m.now, nil)
	assert.Equal(t, []string{"failed " + peer(0)}, eventsOf(out))
	require.True(t, out.Rumors)
	spread := m.Spread(m.now, nil)
	require.NotEmpty(t, spread.Send)
	for _, s := range spread.Send {
		assert.Equal(t, []Entry{{Addr: peer(0), Heartbeat: 100, Version: 100}}, readEntries(t, s.Req.Silent))
		assert.Empty(t, s.Req.Dead)
	}
	// A peer that names it alive is answered with the notice.
	resp, _, err := m.HandleRequest(ExchangeRequest{From: peer(1), Partial: true, Digest: digestOf(full(peer(0), 100, 100, ""))}, m.now)
	require.NoError(t, err)
	assert.Equal(t, []Entry{{Addr: peer(0), Heartbeat: 100, Version: 100}}, readEntries(t, resp.Silent))
	// It comes back only above the notice's slack, as from any notice.
	m.mergeAt(full(peer(0), 101, 100, "d"))
	_, st := m.Lookup(peer(0))
	assert.Equal(t, Dead, st)
	m.mergeAt(full(peer(0), 101+m.noticeSlack(), 100, "d"))
	_, st = m.Lookup(peer(0))
	assert.Equal(t, Alive, st)
}

func TestSuspicionsDroppedOnPause(t *testing.T) {
	m := newSilentSetup(t)
	probes, _ := m.suspectedAfter(t)
	m.answer(probes, nothingNew)
	// Paused: the next round comes late.
	m.now = m.now.Add(3 * time.Second)
	out := m.Tick(m.now, nil)
	assert.Empty(t, eventsOf(out), "no conviction for the time away")
	require.Contains(t, m.suspects, peer(0), "still suspect: it was silent before the pause")
	assert.Zero(t, m.suspects[peer(0)].answers, "but the answers count again from the resume")
}

func TestEvidenceGrowsWithLoss(t *testing.T) {
	cases := []struct {
		name string
		n    int
		loss float64
		want int  // -1: no D short of the failure time
		on   bool // D is at most 2 Ts: the rule probes and convicts
	}{
		{"no loss", 32, 0, 1, true},
		{"n=32, 5% loss", 32, 0.05, 7, true},
		{"n=32, 10% loss", 32, 0.1, 9, false},
		{"n=128, 1% loss", 128, 0.01, 6, true},
		{"n=128, 10% loss", 128, 0.1, 10, true},
		{"n=1000, 1% loss", 1000, 0.01, 8, true},
		{"n=1000, 30% loss", 1000, 0.3, 22, false},
		{"n=32, 30% loss", 32, 0.3, -1, false},
		{"all lost", 32, 1, -1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := 1 - (1-c.loss)*(1-c.loss)
			rounds := 3 * SpreadRounds(c.n)
			got := evidenceFor(c.n, rounds, f)
			assert.Equal(t, c.on, convictsBefore(SuspectRounds(c.n), got, rounds), "D = %d", got)
			if c.want < 0 {
				assert.Equal(t, math.MaxInt, got)
				return
			}
			assert.Equal(t, c.want, got)
			assert.LessOrEqual(t, silenceBound(c.n, rounds, f, got), silenceTarget, "D keeps the bound")
			if got > 1 {
				assert.Greater(t, silenceBound(c.n, rounds, f, got-1), silenceTarget, "and is the fewest that does")
			}
		})
	}
	s := newSilentSetup(t)
	for i := range reachWindow {
		s.reach.note(peer(i%4), i%5 != 0)
	}
	assert.Equal(t, evidenceFor(s.table.live, int(s.FailureTime()/s.cfg.Interval), s.reach.failRate("")), s.silentProbes(""),
		"a member asks for the evidence its own view calls for")
	assert.Less(t, s.reach.failRate(peer(0)), s.reach.failRate(""), "a suspect's own silence is left out")
	m := newMember(t)
	assert.Equal(t, 0.5, m.reach.failRate(""), "unknown until calls are made")
}

func TestHeavyLossSendsNoProbes(t *testing.T) {
	m := newSilentSetup(t)
	lose := func() {
		for i := range reachWindow {
			m.reach.note(peer(1+i%3), i%4 == 0)
		}
	}
	lose()
	for range 8 {
		assert.Empty(t, m.round(t), "no D short of the failure time will do: probes would only add load")
		lose()
	}
	_, st := m.Lookup(peer(0))
	assert.Equal(t, Alive, st, "left to the timeout rule")
}

func TestSilentNoticeAcceptance(t *testing.T) {
	ts := time.Duration(SuspectRounds(4)) * time.Second
	cases := []struct {
		name string
		// hb and since: our heartbeat of peer(0) and how long ago it rose.
		hb     int64
		since  time.Duration
		notice int64
		dead   bool
	}{
		{"ours not fresher", 100, 0, 100, true},
		{"ours lower", 100, 0, 105, true},
		{"ours fresher and recent", 103, 0, 100, false},
		{"ours fresher but as stale as a suspicion", 100 + int64(SuspectRounds(4)), ts, 100, true},
		{"ours more than Ts above, however stale", 101 + int64(SuspectRounds(4)), ts, 100, false},
		{"ours far above", 200, ts, 100, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMember(t)
			m.join(t, 3)
			m.mergeAt(full(peer(0), c.hb, 100, "d"))
			m.advance(c.since)
			resp, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Silent: AppendDigest(nil, peer(0), c.notice, 100)}, m.now)
			require.NoError(t, err)
			_, st := m.Lookup(peer(0))
			if c.dead {
				assert.Equal(t, Dead, st)
				return
			}
			assert.Equal(t, Alive, st)
			assert.Equal(t, []Entry{{Addr: peer(0), Heartbeat: c.hb, Version: 100}}, readEntries(t, resp.Digest), "the answer carries the fresher heartbeat")
		})
	}
	t.Run("about this member", func(t *testing.T) {
		m := newMember(t)
		m.join(t, 1)
		before := m.self().heartbeat
		m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Silent: AppendDigest(nil, selfAddr, before, before)}, m.now)
		assert.Greater(t, m.self().heartbeat, before+m.noticeSlack(), "refuted")
	})
	t.Run("an unknown member", func(t *testing.T) {
		m := newMember(t)
		m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Silent: AppendDigest(nil, peer(7), 5, 5)}, m.now)
		_, st := m.Lookup(peer(7))
		assert.Equal(t, Unknown, st)
	})
	t.Run("a malformed notice", func(t *testing.T) {
		m := newMember(t)
		m.join(t, 1)
		m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Silent: AppendDigest(nil, "nonsense", 100, 100)}, m.now)
		_, st := m.Lookup(peer(0))
		assert.Equal(t, Alive, st)
	})
}

func TestProbeAnswerFromSelf(t *testing.T) {
	m := newMember(t)
	m.ProbeAnswered("10.1.1.1:7000", peer(0), ExchangeResponse{From: selfAddr}, m.now)
	assert.True(t, m.IsSelf("10.1.1.1:7000"))
	out := m.ProbeAnswered(peer(1), peer(0), ExchangeResponse{From: peer(1), Digest: []byte{0xff}}, m.now)
	assert.Empty(t, out.Events, "a bad answer merges nothing")
}

func TestProbesBounded(t *testing.T) {
	m := newMember(t)
	m.join(t, 12)
	m.reach = reach{}
	for i := range reachWindow {
		m.reach.note(peer(i%4), true)
	}
	held := []string{peer(6), peer(7)}
	// peer(0) to peer(5) go silent, fewer than half the members; peer(6)
	// to peer(11) count on.
	var probes []Send
	for r := int64(1); len(probes) == 0 && r < 20; r++ {
		m.advance(time.Second)
		var live []Entry
		for i := 6; i < 12; i++ {
			live = append(live, full(peer(i), 100+r, 100, ""))
		}
		m.HandleResponse(stranger, Exchange, ExchangeResponse{Digest: digestOf(live...)}, m.now)
		for _, s := range m.Tick(m.now, held).Send {
			if s.Purpose == Probe {
				probes = append(probes, s)
			}
		}
	}
	about := map[string]int{}
	for _, p := range probes {
		about[p.About]++
	}
	assert.Len(t, about, maxProbed, "at most maxProbed suspects a round")
	assert.Contains(t, about, peer(0), "the stalest first, then in table order")
	for _, p := range probes {
		if p.About == peer(0) && p.To != peer(0) {
			assert.NotEqual(t, peer(0), p.To)
		}
	}
	// Once ProbeQuorum others answered, only the suspect is probed.
	for len(probes) > 0 {
		p := probes[0]
		probes = probes[1:]
		if p.About == peer(0) && p.To != peer(0) {
			probes = append(probes, m.ProbeAnswered(p.To, p.About, nothingNew(p.To), m.now).Send...)
		}
	}
	m.forget(peer(5)) // a suspect forgotten meanwhile
	m.advance(100 * time.Millisecond)
	var again []string
	for _, s := range m.Tick(m.now, held).Send {
		if s.Purpose == Probe && s.About == peer(0) {
			again = append(again, s.To)
		}
	}
	assert.Equal(t, []string{peer(0)}, again)
	assert.NotContains(t, m.suspects, peer(5))
}

func TestLastRise(t *testing.T) {
	m := newMember(t)
	m.join(t, 1)
	at, ok := m.LastRise(peer(0))
	assert.True(t, ok)
	assert.Equal(t, m.now, at)
	_, ok = m.LastRise(peer(3))
	assert.False(t, ok)
}

// forget removes addr from the table, as the cleanup does.
func (m *member) forget(addr string) { m.table.remove(addr) }

func TestSilenceFalseReportProbability(t *testing.T) {
	assert.Zero(t, SilenceFalseReportProbability(32, 0, 3), "no loss")
	assert.Zero(t, SilenceFalseReportProbability(1, 0.1, 3), "alone")
	p10 := SilenceFalseReportProbability(128, 0.1, 3)
	assert.Greater(t, p10, 0.0)
	assert.Less(t, p10, silenceTarget)
	assert.Greater(t, SilenceFalseReportProbability(32, 0.05, 3), 0.0)
	assert.Zero(t, SilenceFalseReportProbability(32, 0.1, 3), "at n = 32, D = 9 at 10% loss: over 2 Ts, the rule gives way")
	assert.Zero(t, SilenceFalseReportProbability(32, 0.3, 3), "off under heavy loss")
	for _, n := range []int{2, 8, 32, 128, 1000, 4096} {
		for _, loss := range []float64{0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5} {
			assert.LessOrEqual(t, SilenceFalseReportProbability(n, loss, 3), silenceTarget, "n=%d loss=%v: the target holds everywhere", n, loss)
		}
	}
	assert.Equal(t, TimeoutFalseReportProbability(128, 0.1, 3)+p10, FalseReportProbability(128, 0.1, 3))
	assert.Equal(t, 1, evidenceFor(32, 18, 0))
	assert.Equal(t, math.MaxInt, evidenceFor(32, 18, 1))
	t.Logf("silence rule %.2g at n = 32, 5%%; %.2g at n = 128, 10%%; timeout rule %.2g at n = 128, 10%%", SilenceFalseReportProbability(32, 0.05, 3), p10, TimeoutFalseReportProbability(128, 0.1, 3))
}

func TestEvidenceMemoStaysBounded(t *testing.T) {
	s := newSilentSetup(t)
	s.silentProbes("")
	for i := range maxEvidenceMemo {
		s.evidence[evidenceKey{n: 1_000_000 + i}] = 0
	}
	s.reach.note(peer(2), false) // a new f, so a new key
	got := s.silentProbes("")
	assert.Equal(t, evidenceFor(s.table.live, int(s.FailureTime()/s.cfg.Interval), s.reach.failRate("")), got)
	assert.Equal(t, 1, len(s.evidence), "the memo was emptied, then took the new key")
}

// TestMostSuspectProbesNone: a member that finds more than half of the live
// members suspect at once is the one cut off, or behind (starved, or in a
// forming cluster): it probes none of them, and so convicts none by
// silence.
func TestMostSuspectProbesNone(t *testing.T) {
	for _, silent := range []int{2, 3} { // of 5 live, self included
		m := newSilentSetup(t)
		probed := 0
		for r := 1; r <= 3*SpreadRounds(m.table.live); r++ {
			m.advance(time.Second)
			m.hb++
			var live []Entry
			for i := silent; i < 4; i++ {
				live = append(live, full(peer(i), m.hb, 100, ""))
			}
			m.HandleResponse(stranger, Exchange, ExchangeResponse{From: stranger, Digest: digestOf(live...)}, m.now)
			for _, s := range m.Tick(m.now, nil).Send {
				if s.Purpose == Probe {
					probed++
				}
			}
		}
		if silent*2 > m.table.live {
			assert.Zero(t, probed, "%d of %d silent", silent, m.table.live)
		} else {
			assert.NotZero(t, probed, "%d of %d silent", silent, m.table.live)
		}
	}
}

// A member whose table took a new member within the last Ts rounds starts
// no suspicion; the silent peer(0) is suspected Ts rounds after the last new
// member, and Ts rounds after its silence where the table stopped growing
// before (TestSuspectAndConfirm).
func TestGrowingTableSuspectsNoOne(t *testing.T) {
	const grow = 8 // rounds in which a new member arrives
	m := newSilentSetup(t)
	first := 0
	for r := 1; r <= 30 && first == 0; r++ {
		var added []Entry
		if r <= grow {
			added = []Entry{full(peer(10+r), m.hb+1, 100, "d")}
		}
		if probes := m.roundWith(t, added); len(probes) > 0 {
			first = r
			assert.Equal(t, peer(0), probes[0].About)
		}
	}
	ts := SuspectRounds(m.table.live)
	require.Greater(t, grow, ts, "peer(0) is stale long enough to be suspected while the table grows")
	assert.Equal(t, grow+ts, first, "first probe Ts rounds after the last new member")
}
