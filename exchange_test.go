package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAloneMemberJoinsSeedThatAppearsLater(t *testing.T) {
	seed := freeAddr(t)
	a := startMember(t, testConfig(t, seed))

	// a runs alone and keeps trying the seed.
	require.Eventually(t, func() bool {
		return a.backoff(seed) >= 4*a.cfg.GossipInterval
	}, converge, 10*time.Millisecond, "seed retried with backoff")
	assert.Equal(t, []string{a.Addr()}, addrs(a.GetMembers()))

	cfg := testConfig(t)
	cfg.Addr = seed
	b := startMember(t, cfg)
	requireView(t, []*Gossip{a, b}, addrsOf(a, b), converge, "joined the late seed")
}

// fakeResolver resolves every name to fixed addresses and counts lookups.
type fakeResolver struct {
	ips     []string
	lookups atomic.Int32
}

func (r *fakeResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	r.lookups.Add(1)
	if host != "seeds.cluster.test" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return r.ips, nil
}

func TestDNSSeedCountsAsSeveralSeeds(t *testing.T) {
	// Two members that do not know each other, on one port of two loopback
	// addresses, both behind one name.
	first := startMember(t, testConfig(t))
	_, port, err := net.SplitHostPort(first.Addr())
	require.NoError(t, err)
	cfg := testConfig(t)
	cfg.Addr = net.JoinHostPort("127.0.0.2", port)
	second, err := NewWithConfig(cfg)
	require.NoError(t, err)
	if err := second.Start(); err != nil {
		t.Skipf("cannot listen on 127.0.0.2:%s: %v", port, err)
	}
	t.Cleanup(second.Close)

	res := &fakeResolver{ips: []string{"127.0.0.1", "127.0.0.2"}}
	cfg = testConfig(t, net.JoinHostPort("seeds.cluster.test", port))
	cfg.Resolver = res
	joiner := startMember(t, cfg)

	all := []*Gossip{first, second, joiner}
	requireView(t, all, addrsOf(all...), converge, "joined through both addresses of the name")
	assert.Positive(t, res.lookups.Load())
}

func TestJoinerExchangesWithItsSeedAgain(t *testing.T) {
	// With an hour between rounds, a joiner's first round is its only one:
	// a full exchange with the seed, the data the seed asks for, then the
	// follow-up exchange a moment later. The seed's rumor about the joiner
	// has no one else to go to, so the seed serves exactly three requests.
	slow := testConfig(t)
	slow.GossipInterval = time.Hour
	seed := startMember(t, slow)
	slow.Seeds = []string{seed.Addr()}
	joiner := startMember(t, slow)
	requireView(t, []*Gossip{seed, joiner}, addrsOf(seed, joiner), converge, "joined")
	require.Eventually(t, func() bool { return seed.Stats().MessagesReceived >= 3 }, converge, 5*time.Millisecond,
		"the joiner exchanges with its seed again")
	require.Never(t, func() bool { return seed.Stats().MessagesReceived > 3 }, 4*protocol.RumorGap(slow.GossipInterval), 5*time.Millisecond,
		"one follow-up, no more")
}

func TestExchangeWithMalformedDigestIsRefused(t *testing.T) {
	gs := startCluster(t, 2, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	c := plainClient(t, gs[0].Addr())
	err := c.Call("Gossip.Exchange", ExchangeRequest{From: "10.9.9.9:1", Digest: []byte{0x05, 'a'}}, &ExchangeResponse{})
	assert.ErrorContains(t, err, "malformed digest")
	// The connection and the member carry on.
	var resp GetMembersResponse
	require.NoError(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &resp))
	assert.Len(t, resp.Members, 2)
}

// BenchmarkExchange measures one round's exchange between two members of a
// steady cluster of n, back to back, over loopback TCP with the packed
// codec: both sides' work (packing, gob, the system calls, merging) in one
// op; cpu-ns/op is the process's CPU time, the cluster's own gossip (at the
// default interval) included.
func BenchmarkExchange(b *testing.B) {
	for _, n := range []int{32, 128} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) { benchmarkExchange(b, n, 0) })
	}
}

// BenchmarkExchangeIdle measures an exchange between two members that idle
// 2 ms between exchanges (counted in ns/op too), as members idle between
// rounds: each message then wakes threads that had gone to sleep, which
// costs far more CPU than the exchange's own work (about 320 µs of CPU an
// exchange, against 30 to 50 for the same two members back to back, on the
// 2-core machine of docs/performance.md).
func BenchmarkExchangeIdle(b *testing.B) { benchmarkExchange(b, 2, 2*time.Millisecond) }

// BenchmarkRoundIdle is BenchmarkExchangeIdle with the exchange sent as a
// round sends it (apply, as after Tick) and no goroutine waiting for its
// end, as none waits in a round: the CPU of a round's exchange between two
// idle members, both sides.
func BenchmarkRoundIdle(b *testing.B) {
	gs := startCluster(b, 2, func(i int, c *Config) {
		c.GossipInterval = Tgossip
		c.RPCTimeout = Trpc
	})
	requireView(b, gs, addrsOf(gs...), time.Minute, "converged")
	g, to := gs[0], gs[1].Addr()
	round := func() {
		g.mu.Lock()
		req, ok := g.proto.Request(to)
		g.mu.Unlock()
		if !ok {
			b.Fatal("no exchange with the partner")
		}
		g.apply(protocol.Output{Send: []protocol.Send{{To: to, Purpose: protocol.Exchange, Req: req}}})
	}
	round() // the connection and its dictionaries
	require.Eventually(b, func() bool { return len(g.pool.held()) == 1 }, time.Minute, time.Millisecond)
	before := g.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for b.Loop() {
		round()
		time.Sleep(2 * time.Millisecond) // in ns/op too, as in benchmarkExchange
	}
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	// Every exchange ended, none failed: each merged the partner's answer
	// (the count includes the two members' own rounds, one a second).
	require.Eventually(b, func() bool { return g.Stats().Merges-before.Merges >= uint64(b.N) }, time.Minute, time.Millisecond)
	after := g.Stats()
	require.Equal(b, before.RPCErrors+before.RPCTimeouts, after.RPCErrors+after.RPCTimeouts, "failed exchanges")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

func benchmarkExchange(b *testing.B, n int, gap time.Duration) {
	gs := startCluster(b, n, func(i int, c *Config) {
		c.GossipInterval = Tgossip
		c.RPCTimeout = Trpc
	})
	requireView(b, gs[:2], addrsOf(gs...), time.Minute, "converged")
	to := gs[1].Addr()
	// Each exchange runs in a goroutine of its own, as a round's does
	// (goBounded).
	exchange := func() error {
		done := make(chan error, 1)
		gs[0].goBounded(gs[0].sem, func(ctx context.Context) { done <- gs[0].exchangeNow(ctx, to) })
		select {
		case err := <-done:
			return err
		case <-time.After(2 * Trpc): // skipped: every slot busy
			return errors.New("exchange skipped or hung")
		}
	}
	require.NoError(b, exchange()) // the connection and its dictionaries
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	for b.Loop() {
		if err := exchange(); err != nil {
			b.Fatal(err)
		}
		if gap > 0 {
			time.Sleep(gap) // in ns/op too; StopTimer would read the memory stats, a stop of the world
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stallingPeer is a net/rpc Gossip service whose Exchange answers at once
// until stall is closed, and then waits for release. Its next answer asks
// for the data of the member named in want, if set.
type stallingPeer struct {
	stall, release chan struct{}
	calls          atomic.Int32
	want           atomic.Pointer[string]
}

func (p *stallingPeer) Exchange(req ExchangeRequest, resp *ExchangeResponse) error {
	p.calls.Add(1)
	if w := p.want.Swap(nil); w != nil {
		resp.Want = []string{*w}
	}
	select {
	case <-p.stall:
		<-p.release
	default:
	}
	return nil
}

// peerSetup is a member that runs no rounds but a test's, and a
// stallingPeer it can send rounds to.
type peerSetup struct {
	g     *Gossip
	peer  *stallingPeer
	round protocol.Send // a round's exchange with the peer
	cut   func()        // closes the peer's side of every connection
}

// newPeerSetup starts a member, with cfg tweaked by tweak if set, and a
// stallingPeer, served until the test ends.
func newPeerSetup(t *testing.T, tweak func(*Config)) peerSetup {
	peer := &stallingPeer{stall: make(chan struct{}), release: make(chan struct{})}
	to, cut := serveRPC(t, "Gossip", peer, func() { close(peer.release) })
	cfg := testConfig(t)
	cfg.GossipInterval = time.Hour // no rounds but the test's
	if tweak != nil {
		tweak(&cfg)
	}
	g := startMember(t, cfg)
	round := protocol.Send{To: to, Purpose: protocol.Exchange, Req: ExchangeRequest{From: g.Addr()}}
	return peerSetup{g: g, peer: peer, round: round, cut: cut}
}

// hold sends the round over a connection that the member then keeps.
func (s peerSetup) hold(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	require.NoError(t, s.g.send(ctx, s.round), "dials and keeps a connection")
	require.Equal(t, []string{s.round.To}, s.g.pool.held())
}

func TestRoundOverLostConnectionIsSentAgain(t *testing.T) {
	s := newPeerSetup(t, nil)
	g, peer := s.g, s.peer
	for i := range 5 {
		s.hold(t)
		calls := peer.calls.Load()
		// The peer closes the connection, as a member closes one idle or
		// to make room. The round written to it before this member
		// noticed is made again over a new one; one started after goes
		// over a new one at once.
		s.cut()
		g.apply(protocol.Output{Send: []protocol.Send{s.round}})
		// (Twice, if the peer read it before it closed the connection.)
		require.Eventually(t, func() bool { return peer.calls.Load() > calls && len(g.sem) == 0 }, converge, time.Millisecond,
			"round %d reached the peer", i)
	}
}

func TestRoundOverHeldConnectionSendsDataAsked(t *testing.T) {
	s := newPeerSetup(t, nil)
	g, peer := s.g, s.peer
	g.SetData("endpoint")
	s.hold(t)

	// The answer, merged in the connection's reader, asks for g's data:
	// a second call carries it.
	self := g.Addr()
	peer.want.Store(&self)
	require.True(t, g.startHeld(g.sem, s.round, g.cfg.RPCTimeout, g.sent, nil))
	require.Eventually(t, func() bool { return peer.calls.Load() == 3 }, converge, time.Millisecond, "the data was pushed")
	assert.Never(t, func() bool { return peer.calls.Load() > 3 }, 50*time.Millisecond, 5*time.Millisecond)
}

func TestRoundOverHeldConnectionEndsOnClose(t *testing.T) {
	s := newPeerSetup(t, func(c *Config) { c.RPCTimeout = time.Hour })
	g, peer, round := s.g, s.peer, s.round
	assert.False(t, g.startHeld(g.sem, round, g.cfg.RPCTimeout, g.sent, nil), "no connection held yet")
	s.hold(t)

	// Answered from the connection's reader: the slot is given back.
	require.True(t, g.startHeld(g.sem, round, g.cfg.RPCTimeout, g.sent, nil))
	require.Eventually(t, func() bool { return peer.calls.Load() == 2 && len(g.sem) == 0 }, converge, time.Millisecond)

	// An exchange that waits for its answer holds a slot, and Close ends it
	// without waiting for the RPC timeout.
	close(peer.stall)
	require.True(t, g.startHeld(g.sem, round, g.cfg.RPCTimeout, g.sent, nil))
	assert.False(t, g.startHeld(g.sem, round, g.cfg.RPCTimeout, g.sent, nil), "one call at a time on a connection")
	require.Eventually(t, func() bool { return peer.calls.Load() == 3 }, converge, time.Millisecond)
	assert.Len(t, g.sem, 1)
	requireClosesSoon(t, g, "Close waited for an exchange's answer")
	assert.Empty(t, g.sem)
}
