package protocol

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMergeKeepsHigherHeartbeatAndItsData(t *testing.T) {
	m := newMember(t)
	p := peer(0)

	out := m.mergeAt(full(p, 10, 10, "one"))
	assert.True(t, out.Changed, "a new member changes the live set")
	assert.Equal(t, []string{"joined " + p}, eventsOf(out))
	assert.True(t, out.Rumors, "a new member pushed to us is news to spread")
	joined := m.now

	m.advance(time.Second)
	out = m.mergeAt(full(p, 9, 9, "two"))
	assert.False(t, out.Changed, "a lower heartbeat is ignored")
	assert.Empty(t, out.Events)
	e := m.entryOf(p)
	assert.Equal(t, int64(10), e.heartbeat)
	assert.Equal(t, "one", string(e.data))
	assert.Equal(t, joined, e.lastRise, "a lower heartbeat is not a rise")

	out = m.mergeAt(full(p, 10, 10, "two"))
	assert.False(t, out.Changed, "an equal heartbeat is ignored")
	assert.Equal(t, "one", string(m.entryOf(p).data))

	out = m.mergeAt(full(p, 11, 11, "one"))
	assert.False(t, out.Changed, "a rise with the same data changes nothing visible")
	assert.Empty(t, out.Events)
	assert.Equal(t, m.now, m.entryOf(p).lastRise, "the rise time is recorded")
	assert.Equal(t, int64(11), m.entryOf(p).version, "the data version is taken")

	out = m.mergeAt(full(p, 12, 12, "two"))
	assert.True(t, out.Changed, "new data with a higher heartbeat is a change")
	require.Len(t, out.Events, 1)
	assert.Equal(t, Event{Type: Updated, Addr: p, Heartbeat: 12, Data: []byte("two"), Time: m.now}, out.Events[0])
	assert.Equal(t, "two", string(m.entryOf(p).data))
}

func TestMergeIgnoresInvalidEntries(t *testing.T) {
	big := make([]byte, testConfig().MaxDataSize+1)
	ahead := t0.Add(MaxHeartbeatLead).UnixMicro() + 1
	for _, tc := range []struct {
		name   string
		e      Entry
		reason string
	}{
		{"no port", Entry{Addr: "10.0.0.2", Heartbeat: 1, WithData: true}, "bad address"},
		{"empty address", Entry{Addr: "", Heartbeat: 1, WithData: true}, "bad address"},
		{"long address", Entry{Addr: fmt.Sprintf("%0600d:1", 0), Heartbeat: 1, WithData: true}, "address too long"},
		{"zero heartbeat", Entry{Addr: "10.0.0.2:1", Heartbeat: 0, WithData: true}, "heartbeat not positive"},
		{"negative heartbeat", Entry{Addr: "10.0.0.2:1", Heartbeat: -5, WithData: true}, "heartbeat not positive"},
		{"negative version", Entry{Addr: "10.0.0.2:1", Heartbeat: 5, Version: -1, WithData: true}, "data version outside"},
		{"version above heartbeat", Entry{Addr: "10.0.0.2:1", Heartbeat: 5, Version: 6, WithData: true}, "data version outside"},
		{"data without WithData", Entry{Addr: "10.0.0.2:1", Heartbeat: 5, Data: []byte("x")}, "data without WithData"},
		{"heartbeat ahead of the clock", Entry{Addr: "10.0.0.2:1", Heartbeat: ahead, WithData: true}, "too far ahead"},
		{"data over the limit", Entry{Addr: "10.0.0.2:1", Heartbeat: 1, Version: 1, WithData: true, Data: big}, "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t, func(c *Config) { c.Debug = true })
			out := m.mergeAt(tc.e)
			assert.False(t, out.Changed)
			assert.Empty(t, out.Events)
			assert.False(t, out.Rumors)
			assert.Equal(t, []string{selfAddr}, m.liveAddrs(), "only this member is known")
			alive, failed, left := m.Counts()
			assert.Equal(t, [3]int{1, 0, 0}, [3]int{alive, failed, left}, "Counts()")
			require.Len(t, out.Logs, 1, "one debug record")
			assert.Equal(t, Debug, out.Logs[0].Level)
			assert.Equal(t, "gossip: ignoring entry", out.Logs[0].Msg)
			assert.Contains(t, fmt.Sprint(out.Logs[0].Fields...), tc.reason)

		})
	}
}

func TestMergeLeftIgnoresInvalidRecords(t *testing.T) {
	ahead := t0.Add(MaxHeartbeatLead).UnixMicro() + 1
	for _, tc := range []struct {
		name   string
		addr   string
		hb     int64
		reason string
	}{
		{"no port", "10.0.0.2", 5, "bad address"},
		{"empty address", "", 5, "bad address"},
		{"heartbeat ahead of the clock", "10.0.0.2:1", ahead, "too far ahead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMember(t, func(c *Config) { c.Debug = true })
			out := m.leftAt(t, tc.addr, tc.hb, 0)
			assert.False(t, out.Changed)
			alive, failed, left := m.Counts()
			assert.Equal(t, [3]int{1, 0, 0}, [3]int{alive, failed, left}, "Counts(): not remembered")
			require.Len(t, out.Logs, 1, "one debug record")
			assert.Equal(t, "gossip: ignoring left entry", out.Logs[0].Msg)
			assert.Contains(t, fmt.Sprint(out.Logs[0].Fields...), tc.reason)
		})
	}
}

func TestMergeWithoutDebugMakesNoLogs(t *testing.T) {
	m := newMember(t)
	out := m.mergeAt(Entry{Addr: "no port", Heartbeat: 1, WithData: true}, full(peer(0), 5, 5, "x"))
	assert.Empty(t, out.Logs, "debug records are made only with Config.Debug")
	assert.True(t, out.Changed)
}

func TestMergeAboutSelfCountsOnAboveIt(t *testing.T) {
	m := newMember(t)
	own := m.self()
	for _, tc := range []struct {
		name          string
		e             Entry
		wantHeartbeat int64
		wantVersion   int64
	}{
		{"older", Entry{Addr: selfAddr, Heartbeat: own.heartbeat - 1, WithData: true}, own.heartbeat, own.version},
		{"our own echoed", Entry{Addr: selfAddr, Heartbeat: own.heartbeat, Version: own.version}, own.heartbeat, own.version},
		{"higher heartbeat", Entry{Addr: selfAddr, Heartbeat: own.heartbeat + 100, WithData: true}, own.heartbeat + 101, own.version},
		{"higher version", Entry{Addr: selfAddr, Heartbeat: own.heartbeat + 200, Version: own.heartbeat + 150}, own.heartbeat + 201, own.heartbeat + 201},
	} {
		out := m.mergeAt(tc.e)
		self := m.self()
		if self.heartbeat != tc.wantHeartbeat || self.version != tc.wantVersion {
			t.Errorf("%s: merge(%+v): self at heartbeat %d version %d, want %d %d", tc.name, tc.e, self.heartbeat, self.version, tc.wantHeartbeat, tc.wantVersion)
		}
		assert.False(t, out.Changed, tc.name)
		assert.Empty(t, out.Events, tc.name)
	}
	assert.Equal(t, []string{selfAddr}, m.liveAddrs())
}

func TestMergeBoundsTheTable(t *testing.T) {
	m := newMember(t, func(c *Config) { c.MaxMembers = 10 })
	var flood []Entry
	for i := range 1000 {
		flood = append(flood, Entry{Addr: fmt.Sprintf("10.1.%d.%d:7000", i/256, i%256), Heartbeat: 1, WithData: true})
	}
	out := m.mergeAt(flood...)
	assert.Len(t, m.Members(), 10, "a flood of fake members is capped at MaxMembers")
	assert.Len(t, out.Events, 9)

	// Members that left are not remembered past the bound either.
	m.leftAt(t, "10.2.0.1:7000", 5, 0)
	alive, failed, left := m.Counts()
	assert.Equal(t, [3]int{10, 0, 0}, [3]int{alive, failed, left}, "Counts()")

	// Nor are rumors: at most MaxMembers wait.
	assert.LessOrEqual(t, len(m.rumors), 10)
}

func TestMergeAsksForDataItLacks(t *testing.T) {
	m := newMember(t)
	p := peer(0)

	// A new member without its data is not added, but asked for.
	assert.Equal(t, []string{p}, m.wantAt(t, Entry{Addr: p, Heartbeat: 10, Version: 10}))
	assert.Nil(t, m.entryOf(p))

	require.Empty(t, m.wantAt(t, full(p, 10, 10, "one")))
	// A rise without data, same version: nothing to ask for.
	m.advance(time.Second)
	assert.Empty(t, m.wantAt(t, Entry{Addr: p, Heartbeat: 11, Version: 10}))
	assert.Equal(t, int64(11), m.entryOf(p).heartbeat)
	assert.Equal(t, m.now, m.entryOf(p).lastRise)
	// A newer version without data: the member stays alive with its old
	// data, which is asked for.
	m.advance(time.Second)
	assert.Equal(t, []string{p}, m.wantAt(t, Entry{Addr: p, Heartbeat: 13, Version: 12}))
	e := m.entryOf(p)
	assert.Equal(t, int64(13), e.heartbeat)
	assert.Equal(t, int64(10), e.version)
	assert.Equal(t, "one", string(e.data))
	assert.Equal(t, m.now, e.lastRise)
	// The same in a digest.
	m.advance(time.Second)
	resp, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Digest: digestOf(Entry{Addr: p, Heartbeat: 14, Version: 14})}, m.now)
	require.NoError(t, err)
	assert.Equal(t, []string{p}, resp.Want)
	assert.Equal(t, int64(14), m.entryOf(p).heartbeat)
	assert.Equal(t, m.now, m.entryOf(p).lastRise)
}

// Updates an unauthenticated peer can send: forged heartbeats.

func TestForgedHeartbeatAboutSelf(t *testing.T) {
	m := newMember(t)
	own := m.self().heartbeat
	highest := m.now.Add(MaxHeartbeatLead).UnixMicro()

	for _, hb := range []int64{math.MaxInt64, math.MaxInt64 - 1, highest + 1, 1 << 62} {
		m.mergeAt(Entry{Addr: selfAddr, Heartbeat: hb})
		assert.Equal(t, own, m.self().heartbeat, "heartbeat %d beyond the clock's lead is ignored", hb)
	}
	// The highest acceptable heartbeat: we count on above it, and peers
	// accept ours once their clock has moved on by a microsecond.
	m.mergeAt(Entry{Addr: selfAddr, Heartbeat: highest})
	self := m.self()
	require.Equal(t, highest+1, self.heartbeat, "we count on above a forged heartbeat")
	m.advance(time.Microsecond)
	assert.Empty(t, m.checkEntry(Entry{Addr: selfAddr, Heartbeat: self.heartbeat}, m.now), "our heartbeat is acceptable")
}

func TestForgedHeartbeatAboutPeer(t *testing.T) {
	m := newMember(t)
	p := peer(0)
	m.mergeAt(Entry{Addr: p, Heartbeat: m.now.UnixMicro(), WithData: true})
	m.mergeAt(Entry{Addr: p, Heartbeat: math.MaxInt64, WithData: true})
	assert.Equal(t, m.now.UnixMicro(), m.entryOf(p).heartbeat, "an impossible heartbeat is ignored")
	// A dead member's record is never near overflow, so stale gossip
	// cannot revive it through an overflowing margin.
	m.advance(m.FailureTime() + time.Second)
	m.Sweep(m.now)
	require.Len(t, m.Members(), 1)
	out := m.mergeAt(Entry{Addr: p, Heartbeat: 5, WithData: true})
	assert.False(t, out.Changed, "stale gossip does not revive a dead member")
	assert.Len(t, m.Members(), 1)
}

func TestMergeDigestMalformedKeepsWhatCameBefore(t *testing.T) {
	m := newMember(t)
	m.join(t, 1)
	m.advance(time.Second)
	d := digestOf(Entry{Addr: peer(0), Heartbeat: 150, Version: 100})
	d = append(d, 0x05, 'a') // a record cut short
	_, out, err := m.HandleRequest(ExchangeRequest{From: stranger, Digest: d}, m.now)
	assert.ErrorIs(t, err, ErrBadDigest)
	assert.Equal(t, int64(150), m.entryOf(peer(0)).heartbeat, "the record before the fault is merged")
	assert.False(t, out.Changed)

	// A malformed left field is an error too, after the rest is merged.
	_, _, err = m.HandleRequest(ExchangeRequest{From: stranger, Digest: digestOf(Entry{Addr: peer(0), Heartbeat: 160, Version: 100}), Left: []byte{0xff}}, m.now)
	assert.ErrorIs(t, err, ErrBadDigest)
	assert.Equal(t, int64(160), m.entryOf(peer(0)).heartbeat)
}

func TestCheckEntryAcceptsLongestAddress(t *testing.T) {
	m := newMember(t)
	addr := strings.Repeat("a", MaxAddrLen-2) + ":1"
	assert.Empty(t, m.checkEntry(Entry{Addr: addr, Heartbeat: 1}, m.now))
	assert.NotEmpty(t, m.checkEntry(Entry{Addr: "a" + addr, Heartbeat: 1}, m.now))
}

// benchMember is a member with n-1 live peers in its table, each with data.
func benchMember(b *testing.B, n int) *member {
	b.Helper()
	m := newMember(b, func(c *Config) { c.MaxMembers = 2 * n })
	hb := m.now.UnixMicro()
	var es []Entry
	for i := 1; i < n; i++ {
		es = append(es, full(fmt.Sprintf("10.1.%d.%d:7946", i/256, i%256), hb, hb, "http://10.0.0.1:8080/service"))
	}
	m.mergeAt(es...)
	if len(m.Members()) != n {
		b.Fatalf("%d members, want %d", len(m.Members()), n)
	}
	return m
}

// BenchmarkMergeDigest measures merging a peer's digest in which every
// heartbeat rose, as happens each round, and answering it.
func BenchmarkMergeDigest(b *testing.B) {
	for _, n := range []int{32, 128, 1000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			m := benchMember(b, n)
			es := readEntries(b, m.table.digest())
			// Each round every heartbeat rises: digests are made ahead,
			// out of the timing.
			digests := make([][]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(digests) == 0 {
					b.StopTimer()
					for r := range digests {
						digests[r] = digests[r][:0]
						for _, e := range es {
							digests[r] = AppendDigest(digests[r], e.Addr, e.Heartbeat+int64(i+r+1), e.Version)
						}
					}
					b.StartTimer()
				}
				if _, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Digest: digests[i%len(digests)]}, m.now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
