package sim

import (
	"container/heap"
	"time"
)

// The classes of events, in the order they run at one instant.
const (
	classTimer    = iota // a node's timer (At)
	classMessage         // a message or a call's deadline
	classObserver        // a measurement (Observe)
)

// event is something to run at a time: at node, or, for node -1, outside
// the nodes.
type event struct {
	at       time.Duration
	class    int
	seq      uint64 // the order of scheduling, among events of one instant and class
	node     int
	deadline time.Duration // for a request: its caller's deadline (see Network.Resume)
	f        func()
}

func (a *event) before(b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.class != b.class {
		return a.class < b.class
	}
	return a.seq < b.seq
}

// eventQueue is a priority queue of events, earliest first.
type eventQueue struct{ h eventHeap }

func (q *eventQueue) Len() int      { return len(q.h) }
func (q *eventQueue) push(ev event) { heap.Push(&q.h, ev) }
func (q *eventQueue) pop() event    { return heap.Pop(&q.h).(event) }
func (q *eventQueue) peek() *event  { return &q.h[0] }

type eventHeap []event

func (h eventHeap) Len() int           { return len(h) }
func (h eventHeap) Less(i, j int) bool { return h[i].before(&h[j]) }
func (h eventHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)        { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	ev := old[len(old)-1]
	old[len(old)-1] = event{}
	*h = old[:len(old)-1]
	return ev
}
