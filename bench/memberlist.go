package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// mlCluster runs hashicorp/memberlist nodes with DefaultLANConfig, over a
// transport that counts and loses messages and can silence nodes. Each
// node's event delegate feeds the cluster's observers.
type mlCluster struct {
	w         wire
	quiet     *silencer
	logger    *log.Logger
	obs       *observers
	wg        sync.WaitGroup // joins and node updates under way
	done      chan struct{}  // closed by close
	closeOnce sync.Once

	mu    sync.Mutex // protects the fields below
	nodes []*memberlist.Memberlist
	metas []*metaDelegate
	ids   []string
	addrs []string // the nodes' addresses
	join  string   // member 0's address
	errs  []error
}

func newMemberlist() *mlCluster {
	return &mlCluster{logger: log.New(io.Discard, "", 0), obs: newObservers(), quiet: newSilencer(), done: make(chan struct{})}
}

func (c *mlCluster) start(n int) error {
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		t, err := newMLNetTransport(c.logger, &c.w, c.quiet)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		d := &metaDelegate{}
		conf := mlConfig(name, t, d, mlEvents{observerSink{c.obs, i}}, c.logger)
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
		c.addrs = append(c.addrs, t.self)
		if i == 0 {
			c.join = m.LocalNode().Address()
		}
		seed := c.join
		c.mu.Unlock()
		if i > 0 {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.joinUntilDone(m, name, seed)
			}()
		}
	}
	return nil
}

// joinUntilDone joins node m, named name, through seed, trying again a
// second or two later until it succeeds or the cluster closes, as
// memberlist's users do (Consul's retry_join, every 30 s). A seed serves at
// most 128 push-pulls at once (memberlist's maxPushPullRequests) and closes
// the connection of any more, so that hundreds of nodes joining through one
// seed at once must retry; a node that has not joined knows no one, and no
// one knows it.
func (c *mlCluster) joinUntilDone(m *memberlist.Memberlist, name, seed string) {
	for try := 1; ; try++ {
		_, err := m.Join([]string{seed})
		if err == nil {
			return
		}
		c.mu.Lock()
		c.errs = append(c.errs, fmt.Errorf("%s: join, try %d: %w", name, try, err))
		c.mu.Unlock()
		select {
		case <-c.done:
			return
		case <-time.After(time.Second + rand.N(time.Second)):
		}
	}
}

// mlConfig is DefaultLANConfig for a node named name on 127.0.0.1 over t.
func mlConfig(name string, t memberlist.Transport, d memberlist.Delegate, ev memberlist.EventDelegate, logger *log.Logger) *memberlist.Config {
	conf := memberlist.DefaultLANConfig()
	conf.Name = name
	conf.BindAddr = "127.0.0.1"
	conf.BindPort = 0
	conf.Transport = t
	conf.Delegate = d
	conf.Events = ev
	conf.Logger = logger
	return conf
}

// newMLNetTransport binds TCP and UDP on one free port of 127.0.0.1 and
// wraps them in an mlTransport. The UDP port the kernel gives for TCP may
// be taken, so it tries a few times.
func newMLNetTransport(logger *log.Logger, w *wire, s *silencer) (*mlTransport, error) {
	var err error
	for try := 0; try < 10; try++ {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"},
			Logger:    logger,
		})
		if err == nil {
			return newMLTransport(nt, w, s), nil
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

func (c *mlCluster) seed() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.join
}

func (c *mlCluster) silence(i int) {
	c.mu.Lock()
	addr := c.addrs[i]
	c.mu.Unlock()
	c.obs.close(i) // it will suspect everyone; that is not measured
	c.quiet.silence(addr)
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
	c.closeOnce.Do(func() { close(c.done) })
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

// joinErrors returns the join attempts that failed.
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

// mlEvents is a node's memberlist.EventDelegate. Memberlist calls it from
// its own goroutines, holding its node lock, one call at a time: it only
// updates the node's view in the sink. A dead node is reported through
// NotifyLeave, as is one that left.
type mlEvents struct{ sink viewSink }

var _ memberlist.EventDelegate = mlEvents{}

func (e mlEvents) NotifyJoin(n *memberlist.Node)   { e.sink.set(n.Name, string(n.Meta)) }
func (e mlEvents) NotifyUpdate(n *memberlist.Node) { e.sink.set(n.Name, string(n.Meta)) }
func (e mlEvents) NotifyLeave(n *memberlist.Node)  { e.sink.remove(n.Name) }

// mlTransport is memberlist's NetTransport with UDP packets and stream
// messages counted and a share of them lost, and the node's traffic
// black-holed once it or its peer is silenced (see silencer): its packets
// dropped both ways, its dials hung until their timeout, its streams quiet.
type mlTransport struct {
	*memberlist.NetTransport
	self    string // the node's address
	w       *wire
	s       *silencer
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*mlTransport)(nil)

func newMLTransport(nt *memberlist.NetTransport, w *wire, s *silencer) *mlTransport {
	t := &mlTransport{
		NetTransport: nt,
		self:         net.JoinHostPort("127.0.0.1", strconv.Itoa(nt.GetAutoBindPort())),
		w:            w, s: s,
		packets: make(chan *memberlist.Packet),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	t.wg.Add(2)
	go t.forwardStreams()
	go t.forwardPackets()
	return t
}

// forwardStreams wraps the accepted stream connections.
func (t *mlTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.streams <- acceptedConn(newStreamConn(c, t.w), t.s, t.self):
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

// forwardPackets passes on the packets received, but those from or to a
// silenced node (sent before it was silenced).
func (t *mlTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-in:
			if t.s.any(t.self, p.From.String()) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *mlTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *mlTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *mlTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.w.send(len(b)) || t.s.any(t.self, a.Addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *mlTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *mlTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := t.s.hang(ctx, t.done, t.self, a.Addr)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", a.Addr, err)
	}
	c, err := t.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return dialledConn(newStreamConn(c, t.w), t.s, t.self, a.Addr), nil
}

func (t *mlTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *mlTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.done) })
	t.wg.Wait()
	return err
}
