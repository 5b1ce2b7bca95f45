package main

import (
	"context"
	"sync"
	"time"
)

// observers keeps, for every member of a cluster, the view that member has
// built from its own membership events: the live members it knows (itself
// included), each with its data and the time of its last change. The
// libraries' adapters (ours.go, memberlist.go) feed it; scenarios watch it
// for a condition instead of reading every member's full view again and
// again, so that observing costs O(events) rather than O(n²) a poll.
//
// Times are time.Now() when the event is handled here, under the lock, for
// both libraries alike. It is safe for concurrent use.
type observers struct {
	mu       sync.Mutex // protects the fields below
	views    viewSet
	watchers map[*watcher]struct{}
}

// viewSet is the views by member index: nil for a member that does not
// observe (not started yet, or closed). Conditions read it under the
// observers' lock.
type viewSet []map[string]entry

// entry is one member in a view.
type entry struct {
	data string
	at   time.Time // when it was added or its data last changed
}

// change is one change of one view.
type change struct {
	observer int    // whose view changed
	id       string // the member that changed in it
	data     string // its data, unless gone
	gone     bool   // it left the view: dead, left or closed
	at       time.Time
}

// observing reports whether observer i has a view: it has started and
// not been closed.
func (s viewSet) observing(i int) bool { return i < len(s) && s[i] != nil }

// size is how many members observer i sees, itself included.
func (s viewSet) size(i int) int {
	if i < len(s) {
		return len(s[i])
	}
	return 0
}

// lookup returns observer i's entry for id, if it sees id.
func (s viewSet) lookup(i int, id string) (entry, bool) {
	if i < len(s) && s[i] != nil {
		e, ok := s[i][id]
		return e, ok
	}
	return entry{}, false
}

func newObservers() *observers {
	return &observers{watchers: make(map[*watcher]struct{})}
}

// open starts observer i with an empty view. Members are opened before they
// start, so that no event is missed.
func (o *observers) open(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.views) <= i {
		o.views = append(o.views, nil)
	}
	o.views[i] = make(map[string]entry)
}

// close drops observer i's view: the member was closed, and whatever it
// still reports is ignored.
func (o *observers) close(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i < len(o.views) {
		o.views[i] = nil
	}
}

// closeAll drops every view, for good: events are still read, but ignored.
func (o *observers) closeAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.views)
}

// set records that observer i sees id with data.
func (o *observers) set(i int, id, data string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.setLocked(i, id, data, time.Now())
}

// remove records that observer i no longer sees id.
func (o *observers) remove(i int, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removeLocked(i, id, time.Now())
}

// reset replaces observer i's view with members (id -> data), as one
// change for every difference.
func (o *observers) reset(i int, members map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i >= len(o.views) || o.views[i] == nil {
		return
	}
	now := time.Now()
	for id := range o.views[i] {
		if _, ok := members[id]; !ok {
			o.removeLocked(i, id, now)
		}
	}
	for id, data := range members {
		o.setLocked(i, id, data, now)
	}
}

func (o *observers) setLocked(i int, id, data string, now time.Time) {
	if i >= len(o.views) || o.views[i] == nil {
		return
	}
	if e, ok := o.views[i][id]; ok && e.data == data {
		return
	}
	o.views[i][id] = entry{data: data, at: now}
	o.changedLocked(change{observer: i, id: id, data: data, at: now})
}

func (o *observers) removeLocked(i int, id string, now time.Time) {
	if i >= len(o.views) || o.views[i] == nil {
		return
	}
	if _, ok := o.views[i][id]; !ok {
		return
	}
	delete(o.views[i], id)
	o.changedLocked(change{observer: i, id: id, gone: true, at: now})
}

// changedLocked checks every watcher's condition after ch.
func (o *observers) changedLocked(ch change) {
	for w := range o.watchers {
		if w.cond(o.views, &ch) {
			o.doneLocked(w)
		}
	}
}

// snapshot returns observer i's view, sorted, or nil if i does not observe.
func (o *observers) snapshot(i int) view {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i >= len(o.views) || o.views[i] == nil {
		return nil
	}
	v := make(view, 0, len(o.views[i]))
	for id, e := range o.views[i] {
		v = append(v, viewEntry{id: id, data: e.data})
	}
	return v.sort()
}

// A condition is what a scenario waits for. It is called under the
// observers' lock, first with ch nil on the views as they are, then after
// every change with that change, until it returns true. It should look only
// at what ch changed, so that a call costs O(1).
type condition func(s viewSet, ch *change) bool

// watcher is a condition being watched.
type watcher struct {
	o    *observers
	cond condition
	done chan struct{} // closed when cond has held
}

// watch starts checking cond, at once and then after every change. Call
// wait, or stop, to end watching.
func (o *observers) watch(cond condition) *watcher {
	w := &watcher{o: o, cond: cond, done: make(chan struct{})}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.watchers[w] = struct{}{}
	if cond(o.views, nil) {
		o.doneLocked(w)
	}
	return w
}

// doneLocked ends w because its condition held.
func (o *observers) doneLocked(w *watcher) {
	delete(o.watchers, w)
	close(w.done)
}

// wait blocks until w's condition holds, deadline passes (errTimeout) or
// ctx ends, then stops w. Whatever the condition recorded may be read once
// wait has returned.
func (w *watcher) wait(ctx context.Context, deadline time.Duration) error {
	defer w.stop()
	t := time.NewTimer(deadline)
	defer t.Stop()
	select {
	case <-w.done:
		return nil
	case <-t.C:
		return errTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop stops checking w's condition. It may be called more than once.
func (w *watcher) stop() {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	delete(w.o.watchers, w)
}

// spread is a condition timing how a change spreads: it holds once held is
// true for every observer in a set, and records when it first became true
// for the first and for the last of them. held(s, i) is checked again only
// after a change of observer i's view, and only while i observes.
type spread struct {
	t0          time.Time
	pending     map[int]bool
	held        func(s viewSet, i int) bool
	first, last time.Duration // from t0; valid once seen > 0
	seen        int
}

func newSpread(t0 time.Time, observers []int, held func(s viewSet, i int) bool) *spread {
	sp := &spread{t0: t0, pending: make(map[int]bool, len(observers)), held: held}
	for _, i := range observers {
		sp.pending[i] = true
	}
	return sp
}

func (sp *spread) check(s viewSet, ch *change) bool {
	if ch == nil {
		now := time.Now()
		for i := range sp.pending {
			if s.observing(i) && sp.held(s, i) {
				sp.mark(i, now)
			}
		}
	} else if sp.pending[ch.observer] && s.observing(ch.observer) && sp.held(s, ch.observer) {
		sp.mark(ch.observer, ch.at)
	}
	return len(sp.pending) == 0
}

func (sp *spread) mark(i int, at time.Time) {
	delete(sp.pending, i)
	d := at.Sub(sp.t0)
	if sp.seen == 0 || d < sp.first {
		sp.first = d
	}
	if d > sp.last {
		sp.last = d
	}
	sp.seen++
}

// seconds returns the first and last times in seconds; on timeout, the
// unknown ones are deadline.
func (sp *spread) seconds(err error, deadline time.Duration) (first, last float64) {
	first, last = sp.first.Seconds(), sp.last.Seconds()
	if err != nil {
		if sp.seen == 0 {
			first = deadline.Seconds()
		}
		last = deadline.Seconds()
	}
	return first, last
}

// viewSink is where the events of one member go: its view.
type viewSink interface {
	// set records that the member sees id with data.
	set(id, data string)
	// remove records that the member no longer sees id.
	remove(id string)
	// reset replaces the member's view with members (id -> data).
	reset(members map[string]string)
}

// observerSink is observer i's view in o.
type observerSink struct {
	o *observers
	i int
}

func (s observerSink) set(id, data string)             { s.o.set(s.i, id, data) }
func (s observerSink) remove(id string)                { s.o.remove(s.i, id) }
func (s observerSink) reset(members map[string]string) { s.o.reset(s.i, members) }
