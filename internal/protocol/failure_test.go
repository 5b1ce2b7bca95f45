package protocol

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpreadRounds(t *testing.T) {
	for _, tc := range []struct{ n, want int }{
		{0, 1}, {1, 1}, {2, 2}, {3, 3}, {4, 3}, {5, 4}, {32, 6}, {33, 7}, {1000, 11}, {1024, 11}, {1025, 12},
	} {
		if got := SpreadRounds(tc.n); got != tc.want {
			t.Errorf("SpreadRounds(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestFailureTime(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{1, 3 * time.Second},
		{2, 6 * time.Second},
		{3, 9 * time.Second},
		{4, 9 * time.Second},
		{5, 12 * time.Second},
		{32, 18 * time.Second},
		{33, 21 * time.Second},
		{1000, 33 * time.Second},
		{1024, 33 * time.Second},
	} {
		if got := FailureTime(tc.n, time.Second, 3); got != tc.want {
			t.Errorf("FailureTime(n=%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	if got, want := CleanupTime(9*time.Second), 18*time.Second; got != want {
		t.Errorf("CleanupTime(9s) = %v, want %v", got, want)
	}
}

func TestFailureTimeScalesWithObservedClusterSize(t *testing.T) {
	m := newMember(t)
	assert.Equal(t, 3*time.Second, m.FailureTime(), "alone")
	for i := 0; i < 31; i++ {
		m.mergeAt(Entry{Addr: "10.0.1." + string(rune('a'+i)) + ":1", Heartbeat: 1, WithData: true})
	}
	assert.Equal(t, 18*time.Second, m.FailureTime(), "32 members")
}

func TestFalseReportProbability(t *testing.T) {
	for _, tc := range []struct {
		n        int
		loss     float64
		min, max float64
	}{
		{32, 0, 0, 0},
		{1, 0.5, 0, 0},
		{32, 0.1, 1e-12, 1e-9},
		{32, 0.5, 1e-12, 1e-10}, // the timeout rule waits longer (local health)
		{1000, 0.1, 1e-25, 1e-9},
		{8, 1, 1, 1},
	} {
		got := FalseReportProbability(tc.n, tc.loss, 3)
		if got < tc.min || got > tc.max {
			t.Errorf("FalseReportProbability(n=%d, loss=%v) = %g, want within [%g, %g]", tc.n, tc.loss, got, tc.min, tc.max)
		}
	}
	assert.Less(t, TimeoutFalseReportProbability(32, 0.1, 4), TimeoutFalseReportProbability(32, 0.1, 3), "more Nfailures, fewer false reports")
	assert.Less(t, TimeoutFalseReportProbability(32, 0.05, 3), TimeoutFalseReportProbability(32, 0.1, 3), "less loss, fewer false reports")
	for _, loss := range []float64{0.2, 0.3, 0.5} {
		assert.LessOrEqual(t, TimeoutFalseReportProbability(32, loss, 3), TimeoutFalseReportProbability(32, 0.1, 3),
			"at %v loss the timeout rule keeps the bound it has at the expected loss", loss)
	}
	// Not so the silence rule's: the evidence it asks for grows with the
	// loss (see suspect.go).
}

func TestTargetRounds(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want int
	}{{32, 15}, {128, 18}, {1000, 22}} {
		got := TargetRounds(tc.n, 0.1, 1e-6)
		assert.Equal(t, tc.want, got, "TargetRounds(n=%d)", tc.n)
		// The bound holds at the rounds chosen and not at one fewer.
		miss := float64(got - SpreadRounds(tc.n))
		q := MissProbability(tc.n, 0.1)
		nn := float64(tc.n * (tc.n - 1))
		assert.LessOrEqual(t, nn*math.Pow(q, miss), 1e-6)
		assert.Greater(t, nn*math.Pow(q, miss-1), 1e-6)
	}
	assert.Equal(t, SpreadRounds(5)+1, TargetRounds(5, 0, 1e-6), "no loss: one round beyond the spread")
	assert.Equal(t, SpreadRounds(1)+1, TargetRounds(1, 0.1, 1e-6), "alone: one round beyond the spread")

	m := newMember(t, func(c *Config) { c.FalseReportTarget = 1e-6 })
	assert.Equal(t, time.Duration(TargetRounds(1, 0.1, 1e-6))*time.Second, m.FailureTime())
	m.join(t, 31)
	assert.Equal(t, 15*time.Second, m.FailureTime(), "32 members at 10%% loss")
}

func TestFailureAndCleanup(t *testing.T) {
	m := newMember(t)
	p, other := peer(0), peer(1)
	m.mergeAt(Entry{Addr: p, Heartbeat: 50, WithData: true}, Entry{Addr: other, Heartbeat: 70, WithData: true})
	tfail := m.FailureTime()
	require.Equal(t, FailureTime(3, time.Second, 3), tfail)

	// other keeps beating; p falls silent. step returns what the merges
	// and a sweep at the end gave.
	step := func(d time.Duration) Output {
		var all Output
		for end := m.now.Add(d); m.now.Before(end); {
			m.advance(time.Second)
			out := m.mergeAt(Entry{Addr: other, Heartbeat: m.entryOf(other).heartbeat + 1, WithData: true})
			all.Changed = all.Changed || out.Changed
			all.Events = append(all.Events, out.Events...)
		}
		out := m.Sweep(m.now)
		all.Changed = all.Changed || out.Changed
		all.Events = append(all.Events, out.Events...)
		return all
	}
	out := step(tfail)
	assert.Equal(t, []string{selfAddr, p, other}, m.liveAddrs(), "alive for FailureTime")
	assert.False(t, out.Changed)
	assert.Empty(t, out.Events)

	out = step(time.Second)
	assert.Equal(t, []string{selfAddr, other}, m.liveAddrs(), "dead once silent for longer than FailureTime")
	assert.True(t, out.Changed, "a failure is a change")
	require.Len(t, out.Events, 1)
	assert.Equal(t, Event{Type: Failed, Addr: p, Heartbeat: 50, Time: m.now}, out.Events[0])
	require.NotNil(t, m.entryOf(p), "the dead member is remembered")
	_, st := m.Lookup(p)
	assert.Equal(t, Dead, st)
	alive, failed, left := m.Counts()
	assert.Equal(t, [3]int{2, 1, 0}, [3]int{alive, failed, left}, "Counts()")

	// Stale gossip, even slightly newer than ours, does not bring it back.
	assert.False(t, m.mergeAt(Entry{Addr: p, Heartbeat: 51, WithData: true}).Changed)
	assert.False(t, m.mergeAt(Entry{Addr: p, Heartbeat: 50 + m.reviveMargin(), WithData: true}).Changed)
	assert.Empty(t, m.wantAt(t, Entry{Addr: p, Heartbeat: 50 + m.reviveMargin(), Version: 50 + m.reviveMargin()}), "nor is its data asked for")
	assert.Equal(t, []string{selfAddr, other}, m.liveAddrs())

	// Forgotten after the cleanup time: memory is released.
	step(CleanupTime(m.FailureTime()))
	require.NotNil(t, m.entryOf(p), "remembered for the whole cleanup time")
	out = step(time.Second)
	assert.Nil(t, m.entryOf(p), "forgotten after the cleanup time")
	assert.Empty(t, out.Events, "forgetting is no event")
	_, st = m.Lookup(p)
	assert.Equal(t, Unknown, st)
}

func TestRestartedMemberComesBackAtOnce(t *testing.T) {
	m := newMember(t)
	p := peer(0)
	m.mergeAt(Entry{Addr: p, Heartbeat: m.now.UnixMicro(), WithData: true})
	m.advance(m.FailureTime() + time.Second)
	m.Sweep(m.now)
	require.Equal(t, []string{selfAddr}, m.liveAddrs())

	// The member restarts: its heartbeat starts at the clock in
	// microseconds. Without its data it is asked for.
	hb := m.now.UnixMicro()
	assert.Equal(t, []string{p}, m.wantAt(t, Entry{Addr: p, Heartbeat: hb, Version: hb}))
	require.Equal(t, []string{selfAddr}, m.liveAddrs(), "not back before its data")
	out := m.mergeAt(full(p, hb, hb, "reborn"))
	assert.True(t, out.Changed)
	assert.Equal(t, []string{"rejoined " + p}, eventsOf(out))
	assert.True(t, out.Rumors, "a return is news")
	require.Equal(t, []string{selfAddr, p}, m.liveAddrs())
	r, st := m.Lookup(p)
	assert.Equal(t, Alive, st)
	assert.Equal(t, "reborn", string(r.Data))

	// Back with the same data version it had: the data it had stays.
	m.advance(m.FailureTime() + time.Second)
	m.Sweep(m.now)
	hb2 := m.now.UnixMicro()
	out = m.mergeAt(Entry{Addr: p, Heartbeat: hb2, Version: hb})
	assert.Equal(t, []string{"rejoined " + p}, eventsOf(out))
	r, _ = m.Lookup(p)
	assert.Equal(t, "reborn", string(r.Data))
	assert.Equal(t, hb2, r.Heartbeat)
}

func TestReviveMargin(t *testing.T) {
	for _, n := range []int{1, 2, 8, 33} {
		m := newMember(t)
		if n > 1 {
			m.join(t, n-1)
		}
		want := int64(2 * FailureTime(n, time.Second, 3) / time.Second)
		if got := m.reviveMargin(); got != want {
			t.Errorf("reviveMargin(n=%d) = %d, want %d", n, got, want)
		}
	}
}

// TestSweep applies the failure rules to a member with two peers, one
// beating and one silent since t0, at times around its failure and cleanup
// times.
func TestSweep(t *testing.T) {
	tfail := FailureTime(3, time.Second, 3)
	for _, tc := range []struct {
		name       string
		at         []time.Duration // sweeps, from t0
		running    bool
		wantEvents []string
		wantCounts [3]int
	}{
		{"before the failure time", []time.Duration{tfail}, true, nil, [3]int{3, 0, 0}},
		{"past the failure time", []time.Duration{tfail + time.Nanosecond}, true, []string{"failed " + peer(0)}, [3]int{2, 1, 0}},
		{"left", []time.Duration{tfail + time.Hour}, false, nil, [3]int{2, 0, 1}},
		{"within the cleanup time", []time.Duration{tfail + time.Second, tfail + time.Second + CleanupTime(FailureTime(2, time.Second, 3))}, true, []string{"failed " + peer(0)}, [3]int{2, 1, 0}},
		{"past the cleanup time", []time.Duration{tfail + time.Second, tfail + time.Second + CleanupTime(FailureTime(2, time.Second, 3)) + time.Nanosecond}, true, []string{"failed " + peer(0)}, [3]int{2, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t)
			m.join(t, 2)
			m.retry[peer(0)] = &retryState{delay: time.Second}
			if !tc.running {
				m.Leave(m.now)
			}
			var events []string
			for _, at := range tc.at {
				// peer(1) keeps beating.
				m.setNow(t0.Add(at))
				m.mergeAt(Entry{Addr: peer(1), Heartbeat: 100 + int64(at/time.Millisecond), Version: 100})
				events = append(events, eventsOf(m.Sweep(m.now))...)
			}
			assert.Equal(t, tc.wantEvents, events)
			alive, failed, left := m.Counts()
			if got := [3]int{alive, failed, left}; got != tc.wantCounts {
				t.Errorf("Counts() = %v, want %v", got, tc.wantCounts)
			}
			if tc.wantCounts[1] == 0 && len(tc.wantEvents) > 0 {
				assert.Zero(t, m.Backoff(peer(0)), "a forgotten member is contacted no more")
			}
		})
	}
}

func TestSweepForgetsMembersThatLeft(t *testing.T) {
	m := newMember(t)
	m.join(t, 2)
	m.leftAt(t, peer(0), 101, 100)
	_, st := m.Lookup(peer(0))
	require.Equal(t, Gone, st)
	// The cleanup time is counted from the leave at the failure time of
	// the member left alone with peer(1) (which keeps beating).
	cleanup := CleanupTime(FailureTime(2, time.Second, 3))
	for _, d := range []time.Duration{cleanup / 2, cleanup} {
		m.setNow(t0.Add(d))
		m.mergeAt(Entry{Addr: peer(1), Heartbeat: 100 + int64(d/time.Second), Version: 100})
		assert.Empty(t, m.Sweep(m.now).Events, "at %v", d)
		_, st = m.Lookup(peer(0))
		assert.Equal(t, Gone, st, "remembered as left at %v: not failed", d)
	}
	m.advance(time.Nanosecond)
	m.Sweep(m.now)
	_, st = m.Lookup(peer(0))
	assert.Equal(t, Unknown, st, "forgotten after the cleanup time")
}

func TestMissProbability(t *testing.T) {
	for _, tc := range []struct {
		n    int
		loss float64
		want float64
	}{
		{2, 0, 0},
		{2, 1, 1},
		{2, 0.5, 0.75 * 0.5},
	} {
		if got := MissProbability(tc.n, tc.loss); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("MissProbability(%d, %v) = %v, want %v", tc.n, tc.loss, got, tc.want)
		}
	}
	// Large n: the factor tends to exp(-(1-p)).
	got, want := MissProbability(1_000_000, 0.1), (1-0.81)*math.Exp(-0.9)
	assert.InDelta(t, want, got, 1e-6, fmt.Sprintf("MissProbability(1e6, 0.1) = %v, want about %v", got, want))
}

// TestPauseAccusesNoOne stops a member for three failure times without
// ticking, as SIGSTOP does: on resume it accuses no one, a peer that was
// already silent before the pause stays exactly as suspect as it was, and
// it counts its heartbeat on from the clock so that its peers take it back.
func TestPauseAccusesNoOne(t *testing.T) {
	m := newMember(t)
	m.join(t, 2) // peer(0) keeps beating; peer(1) falls silent at t0
	beat := func() Output {
		hb := 100 + int64(m.now.Sub(t0)/time.Second)
		m.mergeAt(Entry{Addr: peer(0), Heartbeat: hb, Version: 100})
		return m.Tick(m.now, nil)
	}
	silentBefore := 5 * time.Second
	for range int(silentBefore / time.Second) {
		m.now = m.now.Add(time.Second)
		require.Empty(t, eventsOf(beat()))
	}
	tfail := m.FailureTime()

	m.now = m.now.Add(3 * tfail) // stopped: no tick, no merge
	// What queued up while it was stopped is handled before its round.
	m.mergeAt(Entry{Addr: peer(0), Heartbeat: 100 + int64(m.now.Sub(t0)/time.Second), Version: 100})
	out := m.Tick(m.now, nil)
	assert.Equal(t, m.now, m.entryOf(peer(0)).lastRise, "a peer heard from on resume is not pushed into the future")
	assert.Empty(t, eventsOf(out), "nobody is accused on resume")
	assert.Equal(t, []string{selfAddr, peer(0), peer(1)}, m.liveAddrs())
	assert.GreaterOrEqual(t, m.self().heartbeat, m.now.UnixMicro(), "counts on from the clock, beyond the peers' revive margin")
	var warned bool
	for _, l := range out.Logs {
		warned = warned || l.Level == Warn
	}
	assert.True(t, warned, "a pause past half a failure time is logged at warning level")

	// peer(1) was silent for silentBefore when the member stopped; of the
	// time away only one round counts, so it fails at the first round at
	// which silentBefore, that round and the time since pass the failure
	// time.
	var failedAfter time.Duration
	for resumed := m.now; failedAfter == 0; {
		m.now = m.now.Add(time.Second)
		for _, ev := range beat().Events {
			require.Equal(t, Failed, ev.Type)
			require.Equal(t, peer(1), ev.Addr, "only the silent peer fails")
			failedAfter = m.now.Sub(resumed)
		}
		require.Less(t, m.now.Sub(resumed), 2*tfail, "the silent peer is still detected")
	}
	assert.Equal(t, tfail-silentBefore, failedAfter, "the silent peer fails once its silence, pause aside but for a round, passes the failure time")
}

// TestSlowRoundsAreNoPause checks that rounds up to pauseRounds intervals
// apart, as a busy machine makes them, change nothing: a silent peer fails
// after exactly the failure time.
func TestSlowRoundsAreNoPause(t *testing.T) {
	m := newMember(t)
	m.join(t, 1)
	tfail := m.FailureTime()
	var failedAt time.Duration
	for failedAt == 0 && m.now.Sub(t0) < 3*tfail {
		m.now = m.now.Add(pauseRounds * time.Second)
		if len(m.Tick(m.now, nil).Events) > 0 {
			failedAt = m.now.Sub(t0)
		}
	}
	assert.Equal(t, tfail+pauseRounds*time.Second-tfail%(pauseRounds*time.Second), failedAt, "the first round past the failure time")
}

func TestStretchedRounds(t *testing.T) {
	for _, tc := range []struct {
		n, rounds int
		loss      float64
		want      int
	}{
		{32, 18, 0, 18},
		{32, 18, 0.05, 18},
		{32, 18, 0.1, 18},  // the loss the failure time was set for
		{32, 18, 0.3, 29},  // 6 + ceil(22.4)
		{32, 18, 0.5, 46},  // 6 + ceil(39.01)
		{32, 18, 0.9, 144}, // at most maxStretch failure times
		{32, 18, 1, 144},
		{8, 12, lossFromFailRate(0.5), 19},
		{1, 3, 0.5, 3},
		{2, 2, 0.5, 2}, // no rounds beyond the spread: nothing to stretch
	} {
		assert.Equal(t, tc.want, stretchedRounds(tc.n, tc.rounds, 0.1, tc.loss), "n=%d, %d rounds, loss %v", tc.n, tc.rounds, tc.loss)
	}
	// The bound the failure time had at the expected loss holds at the
	// loss seen, and would not at one round fewer.
	for _, loss := range []float64{0.2, 0.3, 0.5} {
		r := stretchedRounds(32, 18, 0.1, loss)
		at := func(rounds int) float64 { return math.Pow(MissProbability(32, loss), float64(rounds-SpreadRounds(32))) }
		want := math.Pow(MissProbability(32, 0.1), 12)
		assert.LessOrEqual(t, at(r), want, "loss %v", loss)
		assert.Greater(t, at(r-1), want, "loss %v", loss)
	}
	assert.InDelta(t, 0.1, lossFromFailRate(0.19), 1e-12, "f = 1 - (1-p)²")
}

func TestTimeoutRuleWaitsLongerWhileOwnCallsGoUnanswered(t *testing.T) {
	for _, tc := range []struct {
		name       string
		unanswered int // one call in this many, 0 for none
		stretched  bool
	}{
		{"calls answered", 0, false},
		{"one call in ten unanswered, as the expected loss makes", 10, false},
		{"half the calls unanswered", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t)
			peers := m.join(t, 7)
			silent, others := peers[0], peers[1:]
			for i := range reachWindow {
				m.reach.note(others[i%len(others)], tc.unanswered == 0 || i%tc.unanswered != 0)
				m.reach.note(silent, false) // calls to the judged member do not count
			}
			tfail := m.FailureTime()
			require.Equal(t, 12*time.Second, tfail, "8 members")
			want := tfail
			if tc.stretched {
				want = time.Duration(stretchedRounds(8, 12, 0.1, lossFromFailRate(0.5))) * time.Second
				require.Equal(t, 19*time.Second, want)
			}
			// The others keep beating; silent does not.
			var died time.Time
			for start := m.now; died.IsZero() && m.now.Sub(start) < maxStretch*tfail+time.Minute; {
				m.advance(time.Second)
				for _, p := range others {
					m.mergeAt(Entry{Addr: p, Heartbeat: m.entryOf(p).heartbeat + 1, WithData: true})
				}
				for _, ev := range m.Sweep(m.now).Events {
					require.Equal(t, Event{Type: Failed, Addr: silent, Heartbeat: 100, Data: []byte("d"), Time: m.now}, ev)
					died = m.now
				}
			}
			require.False(t, died.IsZero(), "declared dead in the end")
			assert.Equal(t, t0.Add(want+time.Second), died, "declared dead the round after its silence passed %v", want)
			assert.Len(t, m.liveAddrs(), 7)
		})
	}
}

func TestMembersSilentTogetherDoNotStretchEachOthersTimeout(t *testing.T) {
	// Three members; two hosts go silent at once. The survivor's calls to
	// them go unanswered, but that is their silence, not the network's:
	// both are dropped at the failure time, not maxStretch times later.
	m := newMember(t)
	peers := m.join(t, 2)
	for i := range reachWindow {
		m.reach.note(peers[i%2], false)
	}
	tfail := m.FailureTime()
	require.Equal(t, 9*time.Second, tfail, "3 members")
	var died []time.Time
	for start := m.now; len(died) < 2 && m.now.Sub(start) < maxStretch*tfail+time.Minute; {
		m.advance(time.Second)
		for range m.Sweep(m.now).Events {
			died = append(died, m.now)
		}
	}
	require.Len(t, died, 2, "both declared dead")
	assert.Equal(t, []time.Time{t0.Add(tfail + time.Second), t0.Add(tfail + time.Second)}, died)

	// One of two silent, the other answering half of the calls: the
	// silent one waits longer, as the network is lossy.
	m = newMember(t)
	peers = m.join(t, 2)
	for i := range reachWindow {
		m.reach.note(peers[i%2], i%4 != 1)
	}
	f, ok := m.healthRate(peers[0], m.FailureTime(), m.now)
	require.True(t, ok)
	assert.Equal(t, 0.5, f, "the calls to the live member")
	timeout, unanswered := m.healthyTimeout(peers[0], m.FailureTime(), m.now)
	assert.Greater(t, timeout, m.FailureTime())
	assert.Equal(t, f, unanswered)
}
