package protocol

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The tests drive a State by its inputs alone: no sockets, no goroutines, no
// sleeps. Time is an input: each test member carries its own clock, which
// the test moves on, and passes its time to every input.

// selfAddr is the address test members run at.
const selfAddr = "10.0.0.1:7000"

// stranger is the sender of the requests that tests make up; it is never in
// the table.
const stranger = "10.9.9.9:1"

// t0 is the time test members start at.
var t0 = time.Unix(1_700_000_000, 0)

// testConfig is the root package's default configuration with a one-second
// interval.
func testConfig() Config {
	return Config{
		Interval:         time.Second,
		Nfailures:        3,
		ExpectedLoss:     0.1,
		MaxDataSize:      1 << 10,
		MaxMembers:       4096,
		MaxOutboundConns: 6,
	}
}

// member is a State under test and its clock.
type member struct {
	*State
	now time.Time
}

// newMember returns a member started at selfAddr at t0, with testConfig
// changed by tweaks and a fixed random source.
func newMember(t testing.TB, tweaks ...func(*Config)) *member {
	t.Helper()
	m := newIdle(t, tweaks...)
	m.Start(selfAddr, m.now)
	return m
}

// newIdle is newMember not yet started.
func newIdle(t testing.TB, tweaks ...func(*Config)) *member {
	t.Helper()
	cfg := testConfig()
	for _, f := range tweaks {
		f(&cfg)
	}
	return &member{State: New(cfg, rand.New(rand.NewPCG(1, 2)), nil), now: t0}
}

// advance moves the member's clock on by d.
func (m *member) advance(d time.Duration) { m.setNow(m.now.Add(d)) }

// setNow moves the member's clock to t as if the member had run all along,
// applying the failure rules every round: the tests of other rules jump the
// clock, and must not look like a pause to the guard against them (see
// watch). The guard's own tests move m.now by hand.
func (m *member) setNow(t time.Time) {
	m.now = t
	if t.After(m.watched) {
		m.watched = t
	}
}

// mergeAt merges entries pushed by a peer, at the member's time.
func (m *member) mergeAt(entries ...Entry) Output { return m.Merge(entries, m.now) }

// wantAt merges entries as a peer's partial request carries them and
// returns the names of the data the answer asks for.
func (m *member) wantAt(t testing.TB, entries ...Entry) []string {
	t.Helper()
	resp, _, err := m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Members: entries}, m.now)
	require.NoError(t, err)
	return resp.Want
}

// leftAt merges the news that addr left at heartbeat hb with data version
// v, as a peer's rumor carries it.
func (m *member) leftAt(t testing.TB, addr string, hb, v int64) Output {
	t.Helper()
	_, out, err := m.HandleRequest(ExchangeRequest{From: stranger, Partial: true, Left: AppendDigest(nil, addr, hb, v)}, m.now)
	require.NoError(t, err)
	return out
}

// entryOf returns a copy of the table's entry for addr, or nil.
func (m *member) entryOf(addr string) *entry {
	if e := m.table.members[addr]; e != nil {
		c := *e
		return &c
	}
	return nil
}

// self returns a copy of the member's own entry.
func (m *member) self() entry { return *m.table.self }

// liveAddrs returns the addresses of the live members, sorted.
func (m *member) liveAddrs() []string { return addrs(m.Members()) }

// addrs returns the addresses of rows, sorted.
func addrs(rows []Row) []string {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.Addr)
	}
	slices.Sort(out)
	return out
}

// peer returns the address of test peer i.
func peer(i int) string { return fmt.Sprintf("10.0.%d.%d:7000", i/250, i%250+2) }

// full returns an entry with its data.
func full(addr string, hb, version int64, data string) Entry {
	return Entry{Addr: addr, Heartbeat: hb, Version: version, WithData: true, Data: []byte(data)}
}

// digestOf encodes entries as a digest.
func digestOf(entries ...Entry) []byte {
	var d []byte
	for _, e := range entries {
		d = AppendDigest(d, e.Addr, e.Heartbeat, e.Version)
	}
	return d
}

// readEntries decodes a digest.
func readEntries(t testing.TB, d []byte) []Entry {
	t.Helper()
	var out []Entry
	require.NoError(t, ReadDigest(d, 1<<20, func(addr []byte, hb, v int64) error {
		out = append(out, Entry{Addr: string(addr), Heartbeat: hb, Version: v})
		return nil
	}))
	return out
}

// eventsOf returns out's events as "type addr" strings, in order.
func eventsOf(out Output) []string {
	var s []string
	for _, ev := range out.Events {
		s = append(s, fmt.Sprintf("%s %s", eventName(ev.Type), ev.Addr))
	}
	return s
}

func eventName(typ EventType) string {
	switch typ {
	case Joined:
		return "joined"
	case Updated:
		return "updated"
	case Failed:
		return "failed"
	case Left:
		return "left"
	case Rejoined:
		return "rejoined"
	}
	return fmt.Sprintf("EventType(%d)", int(typ))
}

// sendsOf returns the destinations of out's messages, sorted, and checks
// that they all have purpose p.
func sendsOf(t testing.TB, out Output, p Purpose) []string {
	t.Helper()
	var to []string
	for _, s := range out.Send {
		require.Equal(t, p, s.Purpose, "message to %s", s.To)
		to = append(to, s.To)
	}
	slices.Sort(to)
	return to
}

// join adds n live peers, peer(0) to peer(n-1), each with its data, at the
// member's time, as the answer to an exchange brings them (so that they are
// no news to spread), and returns their addresses.

func (m *member) join(t testing.TB, n int) []string {
	t.Helper()
	var es []Entry
	var out []string
	for i := range n {
		es = append(es, full(peer(i), 100, 100, "d"))
		out = append(out, peer(i))
	}
	m.HandleResponse(stranger, Exchange, ExchangeResponse{From: stranger, Members: es}, m.now)
	for _, a := range out {
		_, st := m.Lookup(a)
		require.Equal(t, Alive, st, "peer %s joined", a)
	}
	return out
}
