package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
)

// oursCluster runs members of this library with their defaults, but for the
// gossip interval and false report target if set, over a transport that
// counts and loses messages and can silence members. Each member's events
// are read by a goroutine of its own into the cluster's observers.
type oursCluster struct {
	w        wire
	quiet    *silencer
	log      logrus.FieldLogger
	interval time.Duration // Config.GossipInterval; 0 for the default
	target   float64       // Config.FalseReportTarget; 0 for the default
	obs      *observers
	readers  sync.WaitGroup // one per started member, until its events end

	mu      sync.Mutex // protects members and ids
	members []*gossip.Gossip
	ids     []string
}

func newOurs(interval time.Duration, target float64) *oursCluster {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return &oursCluster{log: l, interval: interval, target: target, obs: newObservers(), quiet: newSilencer()}
}

func (c *oursCluster) start(n int) error {
	for i := 0; i < n; i++ {
		cfg := gossip.Config{
			Addr:              "127.0.0.1:0",
			Logger:            c.log,
			Transport:         &benchTransport{w: &c.w, s: c.quiet},
			GossipInterval:    c.interval,
			FalseReportTarget: c.target,
		}
		if i > 0 {
			cfg.Seeds = []string{c.id(0)}
		}
		g, err := gossip.NewWithConfig(cfg)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		events := g.Events() // before Start, so that no join is missed
		if err := g.Start(); err != nil {
			g.Close()
			return fmt.Errorf("member %d: %w", i, err)
		}
		id := g.Addr()
		c.obs.open(i)
		c.obs.set(i, id, "") // a member is in its own view; events are about others
		c.mu.Lock()
		c.members = append(c.members, g)
		c.ids = append(c.ids, id)
		c.mu.Unlock()
		c.readers.Add(1)
		go func() {
			defer c.readers.Done()
			readEvents(g, events, observerSink{c.obs, i})
		}()
	}
	return nil
}

// readEvents applies a member's events to its view in sink until the
// channel is closed, which it is when the member has been closed.
func readEvents(g *gossip.Gossip, events <-chan gossip.Event, sink viewSink) {
	for ev := range events {
		switch ev.Type {
		case gossip.EventJoined, gossip.EventUpdated, gossip.EventRejoined:
			sink.set(ev.Member.Addr, dataString(ev.Member.Data))
		case gossip.EventFailed, gossip.EventLeft:
			sink.remove(ev.Member.Addr)
		case gossip.EventResync:
			// Events were dropped: the table is the truth.
			ms := g.GetMembers()
			members := make(map[string]string, len(ms))
			for _, m := range ms {
				members[m.Addr] = dataString(m.Data)
			}
			sink.reset(members)
		}
	}
}

// dataString is a member's data as the bench sets it: a string, or "" for
// none.
func dataString(d any) string {
	s, _ := d.(string)
	return s
}

func (c *oursCluster) observers() *observers { return c.obs }

func (c *oursCluster) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.members)
}

func (c *oursCluster) id(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[i]
}

func (c *oursCluster) member(i int) *gossip.Gossip {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i]
}

func (c *oursCluster) view(i int) view {
	g := c.member(i)
	if g == nil {
		return nil
	}
	ms := g.GetMembers() // sorted by address
	v := make(view, len(ms))
	for k, m := range ms {
		v[k] = viewEntry{id: m.Addr, data: dataString(m.Data)}
	}
	return v
}

func (c *oursCluster) kill(i int) {
	c.mu.Lock()
	g := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	c.obs.close(i)
	if g != nil {
		g.Close() // Close does not leave: the others must detect it
	}
}

func (c *oursCluster) seed() string { return c.id(0) }

func (c *oursCluster) silence(i int) {
	c.obs.close(i) // it will report everyone dead; that is not measured
	c.quiet.silence(c.id(i))
}

func (c *oursCluster) setData(i int, data string) error {
	g := c.member(i)
	if g == nil {
		return fmt.Errorf("member %d is closed", i)
	}
	if err := g.UpdateData(data); err != nil {
		return fmt.Errorf("member %d: %w", i, err)
	}
	c.obs.set(i, c.id(i), data) // its own change is not an event
	return nil
}

func (c *oursCluster) setLoss(p float64)            { c.w.setLoss(p) }
func (c *oursCluster) traffic() (bytes, msgs int64) { return c.w.traffic() }

func (c *oursCluster) close() {
	c.mu.Lock()
	members := c.members
	c.members = make([]*gossip.Gossip, len(members))
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range members {
		if g != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.Close()
			}()
		}
	}
	wg.Wait()
	c.readers.Wait() // every member is closed, so are their events
}

// benchTransport is one member's TCP with every connection, dialled or
// accepted, wrapped in a streamConn, to count and lose messages, and in a
// silentConn, to black-hole the member or its peer once silenced.
type benchTransport struct {
	tcp gossip.TCPTransport
	w   *wire
	s   *silencer

	mu   sync.Mutex // protects self
	self string     // the member's address, once it listens
}

var _ gossip.Transport = (*benchTransport)(nil)

func (t *benchTransport) addr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.self
}

func (t *benchTransport) Listen(addr string) (net.Listener, error) {
	ln, err := t.tcp.Listen(addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.self = ln.Addr().String()
	t.mu.Unlock()
	return benchListener{Listener: ln, t: t}, nil
}

func (t *benchTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	self := t.addr()
	if err := t.s.hang(ctx, nil, self, addr); err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c, err := t.tcp.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return dialledConn(newStreamConn(c, t.w), t.s, self, addr), nil
}

type benchListener struct {
	net.Listener
	t *benchTransport
}

func (l benchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return acceptedConn(newStreamConn(c, l.t.w), l.t.s, l.t.addr()), nil
}
