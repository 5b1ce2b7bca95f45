package gossip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startEvents subscribes to a unit member's events and runs its delivery
// goroutine, as Start does, until the test ends.
func (g *Gossip) startEvents(t *testing.T) <-chan Event {
	ch := g.Events()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.events.run(g.ctx, g.clock)
	}()
	t.Cleanup(g.Close)
	return ch
}

func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "events channel closed")
		return ev
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no event")
		return Event{}
	}
}

func TestEventsOrderAndContent(t *testing.T) {
	clk := newFakeClock()
	g := newShellMember(t, clk, unitAddr)
	ch := g.startEvents(t)
	const b, c = "10.0.0.2:7000", "10.0.0.3:7000"
	enc := func(v string) []byte { d, _ := encodeData(v, DefaultMaxDataSize); return d }

	g.mergeEntries(Entry{Addr: b, Heartbeat: 10, Version: 10, WithData: true, Data: enc("b1")})
	g.mergeEntries(Entry{Addr: c, Heartbeat: 20, Version: 20, WithData: true, Data: enc("c1")})
	clk.Advance(time.Millisecond)
	g.mergeEntries(Entry{Addr: b, Heartbeat: 11, Version: 11, WithData: true, Data: enc("b2")})
	g.mergeEntries(Entry{Addr: b, Heartbeat: 12, Version: 12, WithData: true, Data: enc("b2")}) // same data: no event
	failAt := clk.Now().Add(g.FailureTime() + time.Second)
	for clk.Now().Before(failAt) {
		// Less than two rounds at a time: a longer jump of the clock would
		// be a pause of the member, which accuses no one for it (see the
		// protocol's watch). In steps of 1.25 s both fail at the same sweep,
		// at failAt, FailureTime + 1 s = 10 s on.
		clk.Advance(1250 * time.Millisecond)
		g.GetMembers()
	}
	require.Equal(t, failAt, clk.Now())
	clk.Advance(time.Second)
	hb := clk.Now().UnixMicro()
	g.mergeEntries(Entry{Addr: b, Heartbeat: hb, Version: hb, WithData: true, Data: enc("b3")})
	g.leftNews(b, hb+1, hb)

	want := []struct {
		typ  EventType
		addr string
		hb   int64
		data any
		at   time.Time
	}{
		{EventJoined, b, 10, "b1", time.Unix(1_700_000_000, 0)},
		{EventJoined, c, 20, "c1", time.Unix(1_700_000_000, 0)},
		{EventUpdated, b, 11, "b2", time.Unix(1_700_000_000, 0).Add(time.Millisecond)},
	}
	for i, w := range want {
		ev := nextEvent(t, ch)
		assert.Equal(t, w.typ, ev.Type, "event %d", i)
		assert.Equal(t, Member{Addr: w.addr, Heartbeat: w.hb, Data: w.data}, ev.Member, "event %d", i)
		assert.Equal(t, w.at, ev.Time, "event %d", i)
	}
	// The sweep visits the table in no particular order.
	failed := map[string]bool{}
	for range 2 {
		ev := nextEvent(t, ch)
		assert.Equal(t, EventFailed, ev.Type)
		assert.Equal(t, failAt, ev.Time)
		failed[ev.Member.Addr] = true
	}
	assert.Equal(t, map[string]bool{b: true, c: true}, failed)
	ev := nextEvent(t, ch)
	assert.Equal(t, EventRejoined, ev.Type)
	assert.Equal(t, Member{Addr: b, Heartbeat: hb, Data: "b3"}, ev.Member)
	ev = nextEvent(t, ch)
	assert.Equal(t, EventLeft, ev.Type)
	assert.Equal(t, Member{Addr: b, Heartbeat: hb + 1, Data: "b3"}, ev.Member)
	assert.Equal(t, "left 10.0.0.2:7000 hb="+fmt.Sprint(hb+1)+" data=b3", ev.String())

	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %v", ev)
	default:
	}
	assert.Zero(t, g.Overruns())
	g.Close()
	_, ok := <-ch
	assert.False(t, ok, "closed with the member")
}

func TestNoEventsBeforeSubscribing(t *testing.T) {
	g := newShellMember(t, newFakeClock(), unitAddr)
	g.mergeEntries(Entry{Addr: "10.0.0.2:7000", Heartbeat: 10, WithData: true})
	ch := g.startEvents(t)
	g.mergeEntries(Entry{Addr: "10.0.0.3:7000", Heartbeat: 10, WithData: true})
	assert.Equal(t, "10.0.0.3:7000", nextEvent(t, ch).Member.Addr)
}

func TestSlowEventReaderDoesNotSlowGossip(t *testing.T) {
	gs := startCluster(t, 3, func(i int, c *Config) {
		if i == 0 {
			c.EventBuffer = 4
		}
	})
	ch := gs[0].Events() // and never read, for now
	requireView(t, gs, addrsOf(gs...), converge, "converge")

	// Many changes, each awaited: every one is an event for member 0, and
	// every one reaches it while its events pile up.
	const changes = 30
	for i := range changes {
		src := gs[1+i%2]
		require.NoError(t, src.UpdateData(i))
		require.Eventually(t, func() bool {
			return memberData(gs[0].GetMembers(), src.Addr()) == any(i)
		}, converge, time.Millisecond, "change %d reaches member 0", i)
	}
	assert.GreaterOrEqual(t, gs[0].Overruns(), uint64(changes-4-1), "events over the buffer (and the one in hand) are counted")

	// Reading now: the queued events, then a resync covering every drop.
	missed := 0
	require.Eventually(t, func() bool {
		for {
			select {
			case ev := <-ch:
				if ev.Type == EventResync {
					missed += ev.Missed
				}
			default:
				return uint64(missed) == gs[0].Overruns()
			}
		}
	}, converge, 10*time.Millisecond, "resync events account for every drop")
	t.Logf("%d events dropped with a buffer of 4", missed)
}

// memberData returns the data of addr among ms, or nil.
func memberData(ms []Member, addr string) any {
	for _, m := range ms {
		if m.Addr == addr {
			return m.Data
		}
	}
	return nil
}

func TestEventsInACluster(t *testing.T) {
	a := startMember(t, testConfig(t))
	ch := a.Events()
	cfg := testConfig(t, a.Addr())
	cfg.Data = "b"
	b := startMember(t, cfg)
	ev := nextEvent(t, ch)
	assert.Equal(t, EventJoined, ev.Type)
	assert.Equal(t, b.Addr(), ev.Member.Addr)
	assert.Equal(t, "b", ev.Member.Data)

	require.NoError(t, b.UpdateData("b2"))
	ev = nextEvent(t, ch)
	assert.Equal(t, EventUpdated, ev.Type)
	assert.Equal(t, "b2", ev.Member.Data)

	require.NoError(t, b.Shutdown(t.Context()))
	ev = nextEvent(t, ch)
	assert.Equal(t, EventLeft, ev.Type)
	assert.Equal(t, b.Addr(), ev.Member.Addr)
}

func TestEventQueueLetsGoOfADrainedBurst(t *testing.T) {
	q := newEventQueue(100)
	q.on = true
	for i := range 50 {
		q.push(pendingEvent{typ: EventJoined, addr: fmt.Sprintf("10.0.0.%d:1", i)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.run(ctx, realClock{}) }()
	for range 50 {
		<-q.out
	}
	cancel()
	<-done
	q.mu.Lock()
	defer q.mu.Unlock()
	assert.Nil(t, q.q, "the array the burst grew is let go")
}
