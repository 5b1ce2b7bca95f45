package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
)

// The live view: what the page at / shows and GET /events streams.
//
// Membership changes come from the member's events (watch hands them to
// record); when each member was last heard from comes from sampling
// GetMembers every tick, noting when each heartbeat last grew. Clients of
// GET /events get the whole view once, then each change as it happens and
// the heard times every tick, as server-sent events. Each client has a
// bounded queue: one that falls behind is disconnected, and its browser
// reconnects and starts again from a fresh view.

const (
	// maxRecent bounds the changes the page lists, and maxGone the failed
	// and left members it keeps.
	maxRecent = 30
	maxGone   = 50
	// clientQueue is how many messages a slow client may fall behind by
	// before it is disconnected.
	clientQueue = 64
	// sseWriteTimeout bounds each write to a client.
	sseWriteTimeout = 10 * time.Second
	// sseRetry is how long a browser waits before reconnecting.
	sseRetry = 2 * time.Second
	// timeLayout shows times with their zone, as the logs do.
	timeLayout = "15:04:05.000 MST"
)

// liveMember is a live member as the page shows it.
type liveMember struct {
	Addr     string `json:"addr"`
	Self     bool   `json:"self"`
	Service  string `json:"service"`
	Link     string `json:"link"`     // the endpoint, where it is safe as a link
	Endpoint string `json:"endpoint"` // the endpoint as text, or data that is not a Service
	Tags     string `json:"tags"`
	Started  string `json:"started"`  // from the heartbeat, which starts at the start time
	HeardMs  int64  `json:"heard_ms"` // how long ago its heartbeat last grew

	heard time.Time   // when its heartbeat last grew, here
	hb    int64       // the heartbeat then
	data  interface{} // its data, to describe changes
}

// goneMember is a failed or left member.
type goneMember struct {
	Addr      string `json:"addr"`
	Kind      string `json:"kind"` // "failed" or "left"
	Time      string `json:"time"`
	LastHeard string `json:"last_heard"`
}

// pageChange is one line of the page's recent changes.
type pageChange struct {
	Time   string `json:"time"`
	Kind   string `json:"kind"`
	Addr   string `json:"addr"`
	Detail string `json:"detail"`
}

// view is the whole live view, as the page renders it and as the first
// message of GET /events carries it.
type view struct {
	Self    string       `json:"self"`
	Time    string       `json:"time"`
	Members []liveMember `json:"members"`
	Failed  []goneMember `json:"failed"`
	Left    []goneMember `json:"left"`
	Recent  []pageChange `json:"recent"`

	// FailureMs is the member's FailureTime: a member not heard from for
	// that long is declared dead.
	FailureMs int64 `json:"failure_ms"`
	MaxRecent int   `json:"-"` // for the page's script
}

// changeMsg is one change, as GET /events pushes it.
type changeMsg struct {
	Change pageChange  `json:"change"`
	Member *liveMember `json:"member,omitempty"` // the member now, unless it failed or left
	Gone   *goneMember `json:"gone,omitempty"`   // for a failure or a leave
}

// sseClient is one GET /events stream.
type sseClient struct {
	ch   chan []byte
	lost chan struct{} // closed when the client fell behind
}

// live keeps the live view and the clients following it. Its methods are
// safe for concurrent use.
type live struct {
	g    *gossip.Gossip
	log  logrus.FieldLogger
	tick time.Duration // how often heard times are sampled and pushed
	now  func() time.Time

	closing   chan struct{} // closed by close: streams end
	closeOnce sync.Once

	mu      sync.Mutex // protects the fields below
	members map[string]*liveMember
	gone    []goneMember // newest first
	recent  []pageChange // newest first
	clients map[*sseClient]struct{}
}

func newLive(g *gossip.Gossip, log logrus.FieldLogger) *live {
	return &live{
		g: g, log: log, tick: 500 * time.Millisecond, now: time.Now,
		closing: make(chan struct{}),
		members: make(map[string]*liveMember),
		clients: make(map[*sseClient]struct{}),
	}
}

// close ends every stream, for the HTTP server's shutdown. Idempotent.
func (l *live) close() { l.closeOnce.Do(func() { close(l.closing) }) }

// toLive describes m for the page.
func toLive(m gossip.Member, self string, now time.Time) *liveMember {
	p := &liveMember{Addr: m.Addr, Self: m.Addr == self, heard: now, hb: m.Heartbeat, data: m.Data}
	if m.Heartbeat > 0 {
		p.Started = time.UnixMicro(m.Heartbeat).Format("2006-01-02 " + timeLayout)
	}
	switch d := m.Data.(type) {
	case nil:
	case Service:
		p.Service, p.Endpoint, p.Tags = d.Name, d.Endpoint, formatTags(d.Tags)
		if safeLink(d.Endpoint) {
			p.Link = d.Endpoint
		}
	default:
		p.Endpoint = fmt.Sprint(d)
	}
	return p
}

// safeLink says whether an endpoint may be shown as a link.
func safeLink(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// record applies changes, as watch reports them from the member's events,
// and pushes each to the clients.
func (l *live) record(cs []change) {
	now := l.now()
	self := l.g.Addr()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		pc := pageChange{Time: now.Format(timeLayout), Kind: c.kind, Addr: c.member.Addr}
		msg := changeMsg{}
		switch c.kind {
		case "failed", "left":
			g := goneMember{Addr: c.member.Addr, Kind: c.kind, Time: pc.Time}
			if old := l.members[c.member.Addr]; old != nil {
				g.LastHeard = old.heard.Format(timeLayout)
				pc.Detail = describe(old.data)
			}
			delete(l.members, c.member.Addr)
			l.gone = trim(append([]goneMember{g}, l.dropGone(c.member.Addr)...), maxGone)
			msg.Gone = &g
		default: // joined, rejoined, data
			old := l.members[c.member.Addr]
			m := toLive(c.member, self, now)
			if c.kind == "data" {
				pc.Detail = dataChange(c.old, c.member.Data)
				if old != nil {
					m.heard, m.hb = old.heard, old.hb
				}
			} else {
				pc.Detail = describe(c.member.Data)
			}
			l.members[m.Addr] = m
			l.gone = l.dropGone(m.Addr)
			m.HeardMs = now.Sub(m.heard).Milliseconds()
			msg.Member = m
		}
		l.recent = trim(append([]pageChange{pc}, l.recent...), maxRecent)
		msg.Change = pc
		l.broadcastLocked("change", msg)
	}
}

// dropGone returns the gone list without addr, which is back.
func (l *live) dropGone(addr string) []goneMember {
	out := l.gone[:0:0]
	for _, g := range l.gone {
		if g.Addr != addr {
			out = append(out, g)
		}
	}
	return out
}

func trim[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// sample notes whose heartbeat grew since the last tick, and pushes the heard
// times to the clients, every tick until ctx is done or the member closes.
func (l *live) sample(ctx context.Context) {
	t := time.NewTicker(l.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.g.Done():
			return
		case <-t.C:
		}
		ms := l.g.GetMembers()
		now := l.now()
		l.mu.Lock()
		for _, m := range ms {
			// Only members the events reported: the events say who is
			// live, the table only how recently.
			if p := l.members[m.Addr]; p != nil && m.Heartbeat != p.hb {
				p.hb, p.heard = m.Heartbeat, now
			}
		}
		ages := make(map[string]int64, len(l.members))
		for addr, p := range l.members {
			ages[addr] = now.Sub(p.heard).Milliseconds()
		}
		l.broadcastLocked("heard", map[string]interface{}{
			"time": now.Format(timeLayout), "heard_ms": ages, "failure_ms": l.g.FailureTime().Milliseconds()})
		l.mu.Unlock()
	}
}

// viewLocked returns the whole view. l.mu must be held.
func (l *live) viewLocked() view {
	now := l.now()
	v := view{Self: l.g.Addr(), Time: now.Format("2006-01-02 " + timeLayout),
		Members: []liveMember{}, Failed: []goneMember{}, Left: []goneMember{}, Recent: append([]pageChange{}, l.recent...),
		FailureMs: l.g.FailureTime().Milliseconds(), MaxRecent: maxRecent}
	for _, p := range l.members {
		m := *p
		m.HeardMs = now.Sub(p.heard).Milliseconds()
		v.Members = append(v.Members, m)
	}
	sort.Slice(v.Members, func(i, j int) bool { return v.Members[i].Addr < v.Members[j].Addr })
	for _, g := range l.gone {
		if g.Kind == "failed" {
			v.Failed = append(v.Failed, g)
		} else {
			v.Left = append(v.Left, g)
		}
	}
	return v
}

// snapshot returns the whole view.
func (l *live) snapshot() view {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.viewLocked()
}

// sseMessage encodes one server-sent event.
func sseMessage(event string, v interface{}) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", event, data)
	return b.Bytes(), nil
}

// broadcastLocked queues an event for every client, never waiting: a
// client whose queue is full is marked lost and dropped. l.mu must be held.
func (l *live) broadcastLocked(event string, v interface{}) {
	if len(l.clients) == 0 {
		return
	}
	msg, err := sseMessage(event, v)
	if err != nil {
		l.log.WithError(err).Error("encoding a page event")
		return
	}
	for c := range l.clients {
		select {
		case c.ch <- msg:
		default:
			close(c.lost)
			delete(l.clients, c)
		}
	}
}

// subscribe adds a client and returns it with the view it starts from:
// every change after the view is queued for it, and none before.
func (l *live) subscribe() (*sseClient, view) {
	c := &sseClient{ch: make(chan []byte, clientQueue), lost: make(chan struct{})}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clients[c] = struct{}{}
	return c, l.viewLocked()
}

func (l *live) unsubscribe(c *sseClient) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.clients, c)
}

// serveEvents streams the view as server-sent events: a "view" event with
// the whole view, then a "change" event for each change and a "heard"
// event every tick. It ends when the client goes, falls behind, the member
// closes or the server shuts down.
func (l *live) serveEvents(w http.ResponseWriter, r *http.Request) {
	select {
	case <-l.g.Done():
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("the member is closed"))
		return
	case <-l.closing:
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("the server is shutting down"))
		return
	default:
	}
	c, v := l.subscribe()
	defer l.unsubscribe(c)
	first, err := sseMessage("view", v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(b []byte) error {
		// Extends the server's WriteTimeout, meant for one response,
		// to one write; ErrNotSupported where there is none.
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write(append([]byte(fmt.Sprintf("retry: %d\n", sseRetry.Milliseconds())), first...)); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-l.g.Done():
			return
		case <-l.closing:
			return
		case <-c.lost:
			l.log.WithField("client", r.RemoteAddr).Debug("GET /events: client fell behind; disconnected")
			return
		case b := <-c.ch:
			if err := write(b); err != nil {
				return
			}
		}
	}
}
