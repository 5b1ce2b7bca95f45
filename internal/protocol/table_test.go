package protocol

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// answerTo merges a peer's digest and entries as HandleRequest does and
// returns the answer, by address: digest records and entries with data.
func (m *member) answerTo(t *testing.T, digest []Entry, update []Entry, partial bool) (map[string]Entry, error) {
	t.Helper()
	resp, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Digest: digestOf(digest...), Members: update, Partial: partial}, m.now)
	out := map[string]Entry{}
	for _, e := range readEntries(t, resp.Digest) {
		out[e.Addr] = e
	}
	for _, e := range resp.Members {
		out[e.Addr] = e
	}
	return out, err
}

func TestDigestAndAnswer(t *testing.T) {
	m := newMember(t)
	b, c, x := peer(0), peer(1), peer(2)
	m.mergeAt(Entry{Addr: b, Heartbeat: 5, WithData: true}, full(c, 5, 3, "c's data"))
	self := m.self()
	assert.ElementsMatch(t, []Entry{
		{Addr: selfAddr, Heartbeat: self.heartbeat, Version: self.version},
		{Addr: b, Heartbeat: 5},
		{Addr: c, Heartbeat: 5, Version: 3},
	}, readEntries(t, m.table.digest()), "the digest holds every live member, without data")

	// The peer has b as new as we do, c's heartbeat older but its data
	// version as new, an old version of our data, and x, which we lack.
	got, err := m.answerTo(t, []Entry{
		{Addr: b, Heartbeat: 5},
		{Addr: c, Heartbeat: 4, Version: 3},
		{Addr: selfAddr, Heartbeat: 1},
		{Addr: x, Heartbeat: 9, Version: 9},
	}, nil, false)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, Entry{Addr: c, Heartbeat: 5, Version: 3}, got[c], "a newer heartbeat goes without data the peer has")
	assert.True(t, got[selfAddr].WithData, "data the peer has an older version of goes with it")

	got, err = m.answerTo(t, []Entry{{Addr: c, Heartbeat: 4, Version: 3}}, nil, true)
	require.NoError(t, err)
	assert.Len(t, got, 1, "a partial request is answered only about its entries")
	got, err = m.answerTo(t, []Entry{{Addr: c, Heartbeat: 4, Version: 3}}, nil, false)
	require.NoError(t, err)
	assert.Len(t, got, 3, "a full digest is answered with what it lacks")
	assert.True(t, got[b].WithData)

	// A new member that came with its data is not sent back.
	got, err = m.answerTo(t, nil, []Entry{{Addr: x, Heartbeat: 9, Version: 9, WithData: true}}, true)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestAnswerLeavesOutTheDead(t *testing.T) {
	m := newMember(t)
	m.join(t, 2)
	m.advance(m.FailureTime() + 1)
	m.mergeAt(Entry{Addr: peer(1), Heartbeat: 101, Version: 100})
	require.Equal(t, []string{"failed " + peer(0)}, eventsOf(m.Sweep(m.now)))
	got, err := m.answerTo(t, nil, nil, false)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{selfAddr, peer(1)}, mapKeys(got), "a dead member is not gossiped")
	got, err = m.answerTo(t, []Entry{{Addr: peer(0), Heartbeat: 50, Version: 50}}, nil, true)
	require.NoError(t, err)
	assert.Empty(t, got, "not even to a peer that names it")
}

func TestAnswerCarriesLeftMembers(t *testing.T) {
	m := newMember(t)
	b, c := peer(0), peer(1)
	m.mergeAt(Entry{Addr: b, Heartbeat: 5, WithData: true}, Entry{Addr: c, Heartbeat: 5, WithData: true})
	m.leftAt(t, b, 6, 0)

	answer := func(digest, left []byte, partial bool) []string {
		resp, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Digest: digest, Left: left, Partial: partial}, m.now)
		require.NoError(t, err)
		var out []string
		for _, e := range readEntries(t, resp.Left) {
			out = append(out, e.Addr)
			assert.Equal(t, int64(6), e.Heartbeat)
		}
		return out
	}
	assert.Equal(t, []string{b}, answer(AppendDigest(nil, b, 5, 0), nil, true), "a peer that shows it alive is told")
	assert.Equal(t, []string{b}, answer(AppendDigest(nil, c, 5, 0), nil, false), "a full exchange that does not name it is told")
	assert.Empty(t, answer(AppendDigest(nil, c, 5, 0), nil, true), "a partial one is not")
	assert.Empty(t, answer(nil, AppendDigest(nil, b, 6, 0), false), "a peer that knows is not")
	assert.Equal(t, []Entry{{Addr: b, Heartbeat: 6}}, readEntries(t, m.table.leftDigest()), "a request carries it")
}

func TestWithDataIsBounded(t *testing.T) {
	m := newMember(t)
	peers := m.join(t, 5)
	got := m.table.withData(append([]string{"10.9.9.9:9", selfAddr}, peers...), 3)
	require.Len(t, got, 3, "withData(max=3)")
	assert.Equal(t, selfAddr, got[0].Addr, "unknown names are skipped")
	for _, e := range got {
		assert.True(t, e.WithData)
	}
}

// TestTableOperations checks that the table's list, map and live count
// agree after every operation, and that the list's order depends only on
// the operations made.
func TestTableOperations(t *testing.T) {
	var tb table
	tb.members = map[string]*entry{}
	check := func(step string) {
		t.Helper()
		require.Len(t, tb.list, len(tb.members), step)
		live := 0
		for i, e := range tb.list {
			require.Equal(t, i, e.pos, "%s: position of %s", step, e.addr)
			require.Same(t, e, tb.members[e.addr], "%s: %s", step, e.addr)
			if e.alive {
				live++
			}
		}
		require.Equal(t, live, tb.live, "%s: live count", step)
	}
	order := func() []string {
		var out []string
		for _, e := range tb.list {
			out = append(out, e.addr)
		}
		return out
	}
	for i := range 6 {
		tb.put(&entry{addr: peer(i), alive: i%2 == 0})
		check(fmt.Sprint("put ", i))
	}
	tb.put(&entry{addr: peer(1), alive: true})
	check("put in place of a dead entry")
	assert.Equal(t, 4, tb.live)
	tb.remove(peer(0))
	check("remove the first")
	tb.remove(peer(5))
	check("remove the last")
	tb.remove("10.9.9.9:9")
	check("remove one not there")
	tb.setAlive(tb.members[peer(3)], true)
	tb.setAlive(tb.members[peer(3)], true)
	check("set alive twice")
	tb.setAlive(tb.members[peer(2)], false)
	check("set dead")
	assert.Equal(t, []string{peer(1), peer(4), peer(2), peer(3)}, order())
	assert.Equal(t, []string{peer(1), peer(4), peer(3)}, tb.livePeers())
	tb.self = tb.members[peer(4)]
	assert.Equal(t, []string{peer(1), peer(3)}, tb.livePeers(), "livePeers leaves this member out")
}

func mapKeys(m map[string]Entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestSteadyAnswerAllocatesItsDigestOnce(t *testing.T) {
	m := newMember(t)
	peers := m.join(t, 127)
	// The heartbeats rise here; a peer's digest is one behind on every
	// member: the answer names them all.
	var ahead, behind []Entry
	for _, a := range peers {
		ahead = append(ahead, Entry{Addr: a, Heartbeat: 101, Version: 100})
		behind = append(behind, Entry{Addr: a, Heartbeat: 100, Version: 100})
	}
	_, _, err := m.merge(digestOf(ahead...), nil, nil, nil, nil, m.now, false)
	require.NoError(t, err)
	gen, _, err := m.merge(digestOf(behind...), nil, nil, nil, nil, m.now, false)
	require.NoError(t, err)
	first, _ := m.table.answer(gen, false)
	require.Len(t, readEntries(t, first), 127)
	// Grown by doubling, a digest allocates about twice its length.
	var before, after runtime.MemStats
	const runs = 10
	var lens [runs]int
	runtime.ReadMemStats(&before)
	for i := range runs {
		d, _ := m.table.answer(gen, false)
		lens[i] = len(d)
	}
	runtime.ReadMemStats(&after)
	for _, l := range lens {
		require.Equal(t, len(first), l)
	}
	perAnswer := float64(after.TotalAlloc-before.TotalAlloc) / runs
	assert.Less(t, perAnswer, 1.25*float64(len(first)), "the digest, sized as the last answer's (%d bytes)", len(first))
	d, _ := m.table.answer(gen, true)
	assert.Len(t, readEntries(t, d), 127, "a partial answer too")
}

// TestRandomPeerBeforeStart: before Start this member is not in its table;
// it has no live peer and randomPeer finds none (and does not panic on the
// empty table).
func TestRandomPeerBeforeStart(t *testing.T) {
	m := newIdle(t)
	assert.Zero(t, m.table.livePeerCount())
	_, ok := m.table.randomPeer(m.rng, func(string) bool { return true })
	assert.False(t, ok)
	m = newMember(t)
	assert.Zero(t, m.table.livePeerCount(), "started, alone")
	m.join(t, 3)
	assert.Equal(t, 3, m.table.livePeerCount())
}
