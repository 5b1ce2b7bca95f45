package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// mlCluster runs hashicorp/memberlist nodes with DefaultLANConfig, over a
// transport that counts and loses messages. Each node's event delegate
// feeds the cluster's observers.
type mlCluster struct {
	w      wire
	logger *log.Logger
	obs    *observers
	wg     sync.WaitGroup // joins and node updates under way

	mu    sync.Mutex // protects the fields below
	nodes []*memberlist.Memberlist
	metas []*metaDelegate
	ids   []string
	join  string // member 0's address
	errs  []error
}

func newMemberlist() *mlCluster {
	return &mlCluster{logger: log.New(io.Discard, "", 0), obs: newObservers()}
}

func (c *mlCluster) start(n int) error {
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		t, err := c.transport()
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		d := &metaDelegate{}
		conf := memberlist.DefaultLANConfig()
		conf.Name = name
		conf.BindAddr = "127.0.0.1"
		conf.BindPort = 0
		conf.Transport = t
		conf.Delegate = d
		conf.Events = mlEvents{obs: c.obs, i: i}
		conf.Logger = c.logger
		c.obs.open(i) // Create reports the node itself as joined
		m, err := memberlist.Create(conf)
		if err != nil {
			c.obs.close(i)
			t.Shutdown()
			return fmt.Errorf("member %d: %w", i, err)
		}
		c.mu.Lock()
		c.nodes = append(c.nodes, m)
		c.metas = append(c.metas, d)
		c.ids = append(c.ids, name)
		if i == 0 {
			c.join = m.LocalNode().Address()
		}
		seed := c.join
		c.mu.Unlock()
		if i > 0 {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				if _, err := m.Join([]string{seed}); err != nil {
					c.mu.Lock()
					c.errs = append(c.errs, fmt.Errorf("%s: join: %w", name, err))
					c.mu.Unlock()
				}
			}()
		}
	}
	return nil
}

// transport binds TCP and UDP on one free port of 127.0.0.1. The UDP port
// the kernel gives for TCP may be taken, so it tries a few times.
func (c *mlCluster) transport() (*mlTransport, error) {
	var err error
	for try := 0; try < 10; try++ {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"},
			Logger:    c.logger,
		})
		if err == nil {
			return newMLTransport(nt, &c.w), nil
		}
	}
	return nil, err
}

func (c *mlCluster) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

func (c *mlCluster) id(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[i]
}

func (c *mlCluster) observers() *observers { return c.obs }

func (c *mlCluster) view(i int) view {
	c.mu.Lock()
	m := c.nodes[i]
	c.mu.Unlock()
	if m == nil {
		return nil
	}
	nodes := m.Members() // live and suspect nodes
	v := make(view, len(nodes))
	for k, nd := range nodes {
		v[k] = viewEntry{id: nd.Name, data: string(nd.Meta)}
	}
	return v.sort()
}

func (c *mlCluster) kill(i int) {
	c.mu.Lock()
	m := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	c.obs.close(i)
	if m != nil {
		m.Shutdown() // without Leave
	}
}

func (c *mlCluster) setData(i int, data string) error {
	c.mu.Lock()
	m, d := c.nodes[i], c.metas[i]
	c.mu.Unlock()
	if m == nil {
		return fmt.Errorf("member %d is closed", i)
	}
	d.set([]byte(data))
	// UpdateNode waits until the broadcast has gone out; the scenario
	// times how the news spreads, so it does not wait.
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		m.UpdateNode(10 * time.Second)
	}()
	return nil
}

func (c *mlCluster) setLoss(p float64)            { c.w.setLoss(p) }
func (c *mlCluster) traffic() (bytes, msgs int64) { return c.w.traffic() }

func (c *mlCluster) close() {
	c.wg.Wait()
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = make([]*memberlist.Memberlist, len(nodes))
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range nodes {
		if m != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.Shutdown()
			}()
		}
	}
	wg.Wait()
}

// joinErrors returns the joins that failed.
func (c *mlCluster) joinErrors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// metaDelegate gives memberlist the node's metadata, our application data.
type metaDelegate struct {
	mu   sync.Mutex
	meta []byte
}

func (d *metaDelegate) set(b []byte) {
	d.mu.Lock()
	d.meta = b
	d.mu.Unlock()
}

func (d *metaDelegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return append([]byte(nil), d.meta...)
}

func (d *metaDelegate) NotifyMsg([]byte)                           {}
func (d *metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *metaDelegate) LocalState(join bool) []byte                { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// mlEvents is node i's memberlist.EventDelegate. Memberlist calls it from
// its own goroutines, holding its node lock, one call at a time: it only
// updates the observed view. A dead node is reported through NotifyLeave,
// as is one that left.
type mlEvents struct {
	obs *observers
	i   int
}

var _ memberlist.EventDelegate = mlEvents{}

func (e mlEvents) NotifyJoin(n *memberlist.Node)   { e.obs.set(e.i, n.Name, string(n.Meta)) }
func (e mlEvents) NotifyUpdate(n *memberlist.Node) { e.obs.set(e.i, n.Name, string(n.Meta)) }
func (e mlEvents) NotifyLeave(n *memberlist.Node)  { e.obs.remove(e.i, n.Name) }

// mlTransport is memberlist's NetTransport with UDP packets and stream
// messages counted and a share of them lost.
type mlTransport struct {
	*memberlist.NetTransport
	w       *wire
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*mlTransport)(nil)

func newMLTransport(nt *memberlist.NetTransport, w *wire) *mlTransport {
	t := &mlTransport{NetTransport: nt, w: w, streams: make(chan net.Conn), done: make(chan struct{})}
	t.wg.Add(1)
	go t.forward()
	return t
}

// forward wraps the accepted stream connections.
func (t *mlTransport) forward() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.streams <- newStreamConn(c, t.w):
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *mlTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *mlTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.w.send(len(b)) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *mlTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *mlTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return newStreamConn(c, t.w), nil
}

func (t *mlTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *mlTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}
