package gossip

import (
	"context"
	"encoding/gob"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/rpc"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var _ Clock = (*fakeClock)(nil)

// quietLogger discards logs unless the test runs with -v, where debug logs
// help diagnose a failure.
func quietLogger(t testing.TB) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(testWriter{t})
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// testConfig is a Config for a member on a free loopback port with a short
// gossip interval.
func testConfig(t testing.TB, seeds ...string) Config {
	return Config{
		Addr:           "127.0.0.1:0",
		Seeds:          seeds,
		GossipInterval: 20 * time.Millisecond,
		RPCTimeout:     time.Second,
		Logger:         quietLogger(t),
	}
}

// plainClient dials addr with a plain net/rpc client, as the stats tool or
// any other client would, and closes it when the test ends.
func plainClient(t *testing.T, addr string) *rpc.Client {
	t.Helper()
	c, err := rpc.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// startMember starts a member and closes it when the test ends.
func startMember(t testing.TB, cfg Config) *Gossip {
	t.Helper()
	g, err := NewWithConfig(cfg)
	require.NoError(t, err)
	require.NoError(t, g.Start())
	t.Cleanup(g.Close)
	return g
}

// startCluster starts n members; members 1..n-1 join through member 0.
// tweak, if not nil, adjusts each member's Config.
func startCluster(t testing.TB, n int, tweak func(i int, c *Config)) []*Gossip {
	t.Helper()
	var gs []*Gossip
	for i := 0; i < n; i++ {
		var cfg Config
		if i == 0 {
			cfg = testConfig(t)
		} else {
			cfg = testConfig(t, gs[0].Addr())
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		gs = append(gs, startMember(t, cfg))
	}
	return gs
}

// addrs returns the addresses of members, sorted.
func addrs(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Addr
	}
	sort.Strings(out)
	return out
}

func addrsOf(gs ...*Gossip) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Addr()
	}
	sort.Strings(out)
	return out
}

// requireView waits until every member in observers sees exactly want.
func requireView(t testing.TB, observers []*Gossip, want []string, within time.Duration, msg string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, g := range observers {
			got := addrs(g.GetMembers())
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return false
			}
		}
		return true
	}, within, 10*time.Millisecond, "%s: want every observer to see %v", msg, want)
}

// partitionNet is a TCP transport that can cut links between members. Each
// member gets its own view of it (member), so that dials know their source.
type partitionNet struct {
	mu    sync.Mutex
	side  map[string]int // member address -> side; members on different sides are cut off
	cut   bool
	conns map[net.Conn][2]string
}

func newPartitionNet() *partitionNet {
	return &partitionNet{side: map[string]int{}, conns: map[net.Conn][2]string{}}
}

// member returns the transport for the member that will listen on addr.
func (p *partitionNet) member(self *string) Transport { return &partitionView{p, self} }

// split puts members on sides and cuts every link across them, closing the
// connections that cross.
func (p *partitionNet) split(sides map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.side, p.cut = sides, true
	for c, ends := range p.conns {
		if p.side[ends[0]] != p.side[ends[1]] {
			c.Close()
			delete(p.conns, c)
		}
	}
}

func (p *partitionNet) heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

type partitionView struct {
	p    *partitionNet
	self *string // the member's address, known once it listens
}

func (v *partitionView) Listen(addr string) (net.Listener, error) {
	ln, err := TCPTransport{}.Listen(addr)
	if err == nil {
		v.p.mu.Lock()
		*v.self = ln.Addr().String()
		v.p.mu.Unlock()
	}
	return ln, err
}

func (v *partitionView) Dial(ctx context.Context, addr string) (net.Conn, error) {
	p := v.p
	p.mu.Lock()
	blocked := p.cut && p.side[*v.self] != p.side[addr]
	p.mu.Unlock()
	if blocked {
		return nil, fmt.Errorf("partitioned from %s", addr)
	}
	c, err := TCPTransport{}.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut && p.side[*v.self] != p.side[addr] { // split while dialling
		c.Close()
		return nil, fmt.Errorf("partitioned from %s", addr)
	}
	p.conns[c] = [2]string{*v.self, addr}
	return c, nil
}

var _ Transport = (*partitionView)(nil)

// newShellMember returns a member that believes it runs at addr, with no
// network, listener or goroutines: its state machine is started directly,
// so that tests can drive the shell's handling of merges, data and events.
func newShellMember(t *testing.T, clk Clock, addr string) *Gossip {
	t.Helper()
	g, err := NewWithConfig(Config{Addr: addr, GossipInterval: time.Second, Clock: clk, Logger: quietLogger(t)})
	require.NoError(t, err)
	g.startShell(addr)
	return g
}

// startShell starts g's state machine at addr, and nothing else.
func (g *Gossip) startShell(addr string) {
	g.mu.Lock()
	g.proto = protocol.New(g.protocolConfig(testing.Verbose()), rand.New(rand.NewPCG(1, 2)), g.data)
	g.proto.Start(addr, g.clock.Now())
	g.state = stateRunning
	g.mu.Unlock()
}

// status returns what the member's table says of addr.
func (g *Gossip) status(addr string) protocol.Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, st := g.proto.Lookup(addr)
	return st
}

// mergeEntries merges entries as a push from a peer (Receive), at the
// member's clock.
func (g *Gossip) mergeEntries(entries ...Entry) {
	g.merging(func(s *protocol.State, now time.Time) protocol.Output { return s.Merge(entries, now) })
}

// lookup returns the member's row for addr, or nil if it knows none.
func (g *Gossip) lookup(addr string) *protocol.Row {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proto == nil {
		return nil
	}
	r, st := g.proto.Lookup(addr)
	if st == protocol.Unknown {
		return nil
	}
	return &r
}

// backoff returns the member's retry delay for a seed or dead member.
func (g *Gossip) backoff(name string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proto == nil {
		return 0
	}
	return g.proto.Backoff(name)
}

// unitAddr is the address newShellMember members believe they run at.
const unitAddr = "10.0.0.1:7000"

// exchangeNow makes one round's exchange with addr at once, as Tick asks.
func (g *Gossip) exchangeNow(ctx context.Context, addr string) error {
	g.mu.Lock()
	req, ok := g.proto.Request(addr)
	g.mu.Unlock()
	if !ok {
		return fmt.Errorf("no exchange with %s", addr)
	}
	return g.send(ctx, protocol.Send{To: addr, Purpose: protocol.Exchange, Req: req})
}

// leftNews merges the news that addr left at heartbeat hb with data version
// v, as a peer's request carries it.
func (g *Gossip) leftNews(addr string, hb, v int64) {
	req := ExchangeRequest{From: "10.0.0.99:7000", Partial: true, Left: protocol.AppendDigest(nil, addr, hb, v)}
	g.merging(func(s *protocol.State, now time.Time) protocol.Output {
		_, out, _ := s.HandleRequest(req, now)
		return out
	})
}

func init() { gob.Register(endpoint{}) }

// endpoint is application data of a type registered with gob, as a user's
// service descriptor would be.
type endpoint struct {
	Service string
	URL     string
	Tags    map[string]string
}

// converge is a generous bound for a small test cluster to converge: a few
// hundred gossip rounds of testConfig's interval.
const converge = 20 * time.Second

// dataOf returns the URL of addr's endpoint data as g sees it, or nil.
func dataOf(g *Gossip, addr string) any {
	for _, m := range g.GetMembers() {
		if ep, ok := m.Data.(endpoint); ok && m.Addr == addr {
			return ep.URL
		}
	}
	return nil
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func dataString(g *Gossip, addr string) string {
	for _, m := range g.GetMembers() {
		if m.Addr == addr {
			s, _ := m.Data.(string)
			return s
		}
	}
	return ""
}

// newOrStart returns the error of creating or starting a member with cfg.
func newOrStart(t *testing.T, cfg Config) error {
	cfg.Logger = quietLogger(t)
	g, err := NewWithConfig(cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	return g.Start()
}

// drain empties c and reports whether it held a signal.
func drain(c chan bool) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
