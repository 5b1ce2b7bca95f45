package gossip

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
)

// Typed events.
//
// C says that something changed; Events says what. The protocol's state
// machine makes events where the table changes (internal/protocol's
// Output.Events), and the member queues them under its lock, in order: a
// merge adds a member (joined),
// changes its data (updated) or brings it back (rejoined), a sweep declares
// it dead (failed), a leave removes it (left). They go into a bounded queue,
// and a goroutine of the member hands them to the application in order.
// Making an event never waits for the application: when the queue is full,
// events are dropped and counted (Overruns), and as soon as there is room
// again the next event delivered is an EventResync saying how many were
// missed. An application that gets one should read GetMembers afresh: the
// table is always the truth, events only its changes.

// DefaultEventBuffer is how many events a member queues for an application
// that does not keep up, when Config.EventBuffer is zero.
const DefaultEventBuffer = 1024

// EventType says what happened to a member.
type EventType int

// The event types. The first five are the protocol's own.
const (
	// EventJoined: a member was seen for the first time (or again after
	// it was forgotten).
	EventJoined = EventType(protocol.Joined)
	// EventUpdated: a live member's data changed.
	EventUpdated = EventType(protocol.Updated)
	// EventFailed: a member's heartbeat stopped for FailureTime; it was
	// declared dead.
	EventFailed = EventType(protocol.Failed)
	// EventLeft: a member left the cluster on purpose (Shutdown).
	EventLeft = EventType(protocol.Left)
	// EventRejoined: a member that had failed or left came back, usually
	// restarted.
	EventRejoined = EventType(protocol.Rejoined)
	// EventResync: events were dropped because the application did not
	// keep up; Event.Missed says how many. Read GetMembers afresh.
	EventResync = EventRejoined + 1
)

var eventNames = [...]string{"", "joined", "updated", "failed", "left", "rejoined", "resync"}

// String returns the type's name in lower case, "joined" for EventJoined.
func (t EventType) String() string {
	if t > 0 && int(t) < len(eventNames) {
		return eventNames[t]
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change of the membership as one member saw it.
type Event struct {
	Type EventType

	// Member is the member that changed, as GetMembers would report it
	// just after the change; its Data is decoded afresh for each event and
	// is the caller's. It is the zero Member for EventResync.
	Member Member

	// Time is when the change was seen, by the member's Config.Clock.
	Time time.Time

	// Missed is, for EventResync, how many events were dropped just
	// before it.
	Missed int
}

// String describes the event in one line.
func (e Event) String() string {
	if e.Type == EventResync {
		return fmt.Sprintf("resync: %d events missed", e.Missed)
	}
	return fmt.Sprintf("%v %s", e.Type, e.Member.String())
}

// Events returns the member's event channel: one Event for every change of
// another member (this member's own changes are the caller's doing, and
// not reported). Events are made only once Events has been called, so call
// it before Start to see every join. The channel is closed when the member
// has been closed. It may be called any number of times and always returns
// the same channel; it is safe for concurrent use.
func (g *Gossip) Events() <-chan Event {
	g.events.mu.Lock()
	defer g.events.mu.Unlock()
	g.events.on = true
	return g.events.out
}

// Overruns returns how many events were dropped because the application
// did not read Events fast enough.
func (g *Gossip) Overruns() uint64 { return g.events.overruns.Load() }

// pendingEvent is an event in the queue, its data not yet decoded.
type pendingEvent struct {
	typ       EventType
	addr      string
	heartbeat int64
	data      []byte // never modified in place (see entry.data)
	at        time.Time
	missed    int
}

// eventQueue is the bounded queue between the table and the application.
type eventQueue struct {
	out      chan Event    // unbuffered; closed by closeOut
	wake     chan struct{} // signalled when the queue gains an event
	overruns atomic.Uint64
	closed   sync.Once

	mu     sync.Mutex // protects the fields below
	on     bool       // Events was called
	max    int
	q      []pendingEvent
	missed int // events dropped since the last resync was queued
}

func newEventQueue(max int) *eventQueue {
	return &eventQueue{out: make(chan Event), wake: make(chan struct{}, 1), max: max}
}

// push queues ev, or drops and counts it if the queue is full. It never
// blocks.
func (q *eventQueue) push(ev pendingEvent) {
	q.mu.Lock()
	if !q.on {
		q.mu.Unlock()
		return
	}
	if q.missed > 0 && len(q.q)+2 <= q.max {
		q.q = append(q.q, pendingEvent{typ: EventResync, missed: q.missed, at: ev.at})
		q.missed = 0
	}
	if q.missed > 0 || len(q.q) >= q.max {
		q.missed++
		q.overruns.Add(1)
		q.mu.Unlock()
		return
	}
	q.q = append(q.q, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers the queued events in order until ctx is done, then closes
// out. When the application has caught up after overruns, it delivers an
// EventResync at once rather than waiting for the next change.
func (q *eventQueue) run(ctx context.Context, clock Clock) {
	defer q.closeOut()
	for {
		now := clock.Now()
		q.mu.Lock()
		if len(q.q) == 0 && q.missed > 0 {
			q.q = append(q.q, pendingEvent{typ: EventResync, missed: q.missed, at: now})
			q.missed = 0
		}
		if len(q.q) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		p := q.q[0]
		q.q[0] = pendingEvent{}
		q.q = q.q[1:]
		if len(q.q) == 0 {
			// Let go of the array a burst of events grew (a cluster's
			// forming fills it with one event a member), which would
			// otherwise stay for the member's life.
			q.q = nil
		}
		q.mu.Unlock()
		ev := Event{Type: p.typ, Time: p.at, Missed: p.missed}
		if p.typ != EventResync {
			ev.Member = Member{Addr: p.addr, Heartbeat: p.heartbeat, Data: decodeData(p.data)}
		}
		select {
		case q.out <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// closeOut closes the channel of Events, once.
func (q *eventQueue) closeOut() { q.closed.Do(func() { close(q.out) }) }
