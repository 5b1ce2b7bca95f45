package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
)

// oursCluster runs members of this library with their defaults, over a
// transport that counts and loses messages.
type oursCluster struct {
	w   wire
	log logrus.FieldLogger

	mu      sync.Mutex // protects members and ids
	members []*gossip.Gossip
	ids     []string
}

func newOurs() *oursCluster {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return &oursCluster{log: l}
}

func (c *oursCluster) start(n int) error {
	for i := 0; i < n; i++ {
		cfg := gossip.Config{
			Addr:      "127.0.0.1:0",
			Logger:    c.log,
			Transport: countingTransport{w: &c.w},
		}
		if i > 0 {
			cfg.Seeds = []string{c.id(0)}
		}
		g, err := gossip.NewWithConfig(cfg)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		if err := g.Start(); err != nil {
			g.Close()
			return fmt.Errorf("member %d: %w", i, err)
		}
		c.mu.Lock()
		c.members = append(c.members, g)
		c.ids = append(c.ids, g.Addr())
		c.mu.Unlock()
	}
	return nil
}

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
		v[k].id = m.Addr
		if s, ok := m.Data.(string); ok {
			v[k].data = s
		}
	}
	return v
}

func (c *oursCluster) kill(i int) {
	c.mu.Lock()
	g := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if g != nil {
		g.Close() // Close does not leave: the others must detect it
	}
}

func (c *oursCluster) setData(i int, data string) error {
	g := c.member(i)
	if g == nil {
		return fmt.Errorf("member %d is closed", i)
	}
	return g.UpdateData(data)
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
}

// countingTransport is TCP with every connection, dialled or accepted,
// wrapped in a streamConn.
type countingTransport struct {
	tcp gossip.TCPTransport
	w   *wire
}

var _ gossip.Transport = countingTransport{}

func (t countingTransport) Listen(addr string) (net.Listener, error) {
	ln, err := t.tcp.Listen(addr)
	if err != nil {
		return nil, err
	}
	return countingListener{Listener: ln, w: t.w}, nil
}

func (t countingTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := t.tcp.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return newStreamConn(c, t.w), nil
}

type countingListener struct {
	net.Listener
	w *wire
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newStreamConn(c, l.w), nil
}
