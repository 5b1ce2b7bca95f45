package gossip

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	addr, _ := acceptAll(t, nil)
	return addr
}

// acceptAll listens on a loopback port until the test ends, hands each
// connection it accepts to serve (if set), and returns its address and a
// function that closes every connection accepted so far. When the test
// ends it stops accepting and closes them all.
func acceptAll(t *testing.T, serve func(net.Conn)) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	cut := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if serve != nil {
				serve(c)
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		cut()
	})
	return ln.Addr().String(), cut
}

// requireClosesSoon closes g and fails the test if Close takes longer than
// converge.
func requireClosesSoon(t *testing.T, g *Gossip, msg string) {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		g.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(converge):
		t.Fatal(msg)
	}
}

func TestOutgoingRPCHonoursTrpc(t *testing.T) {
	hole := blackHole(t)
	cfg := testConfig(t, hole)
	cfg.RPCTimeout = 200 * time.Millisecond
	g := startMember(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RPCTimeout)
	defer cancel()
	start := time.Now()
	err := g.exchangeNow(ctx, hole)
	took := time.Since(start)
	// The error is the deadline, or the connection closed by the gossip
	// loop's own attempt on the same pooled connection timing out.
	assert.Error(t, err)
	assert.Less(t, took, 5*time.Second, "exchange with a black hole took %v", took)

	// The gossip loop keeps trying the seed, each attempt bounded by Trpc;
	// attempts never pile up and Close does not wait on them.
	require.Eventually(t, func() bool {
		return g.backoff(hole) >= 2*g.cfg.GossipInterval
	}, converge, time.Millisecond, "seed attempts time out and back off")
	assert.LessOrEqual(t, len(g.sem), maxExchangesInFlight)
	requireClosesSoon(t, g, "Close waited on a black hole")
}

// hangingDials is a Transport whose dials hang until their context ends,
// as dials to a host that is gone do.
type hangingDials struct{ TCPTransport }

func (hangingDials) Dial(ctx context.Context, addr string) (net.Conn, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCallQueuedBehindHangingDialsSaysSo(t *testing.T) {
	cfg := testConfig(t)
	p := newClientPool(hangingDials{}, &cfg, realClock{}, &metrics{})
	defer p.close()
	long, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, maxDialsInFlight)
	for range maxDialsInFlight {
		go func() {
			done <- p.call(long, "192.0.2.1:7946", "Gossip.Exchange", ExchangeRequest{}, new(ExchangeResponse), false)
		}()
	}
	require.Eventually(t, func() bool { return len(p.dials) == maxDialsInFlight }, converge, time.Millisecond, "the dials are under way")

	ctx, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	err := p.call(ctx, "192.0.2.2:7946", "Gossip.Exchange", ExchangeRequest{}, new(ExchangeResponse), false)
	assert.ErrorIs(t, err, errDialQueued, "a call that never dialled says so: a probe's failure must not count")
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	cancel()
	for range maxDialsInFlight {
		err := <-done
		assert.Error(t, err)
		assert.NotErrorIs(t, err, errDialQueued, "these dialled, and timed out")
	}
}

// stall is a net/rpc service whose calls wait to be let go: Wait(0)
// answers at once, Wait(-1) answers with an error, and any other call
// waits for release.
type stall struct{ release chan struct{} }

func (s *stall) Wait(n int, reply *int) error {
	switch n {
	case 0:
	case -1:
		return errors.New("refused by the service")
	default:
		<-s.release
	}
	*reply = n + 1
	return nil
}

// stallServer serves a stall over plain net/rpc and returns its address,
// the service, and a function that closes every connection it accepted.
func stallServer(t *testing.T) (string, *stall, func()) {
	t.Helper()
	s := &stall{release: make(chan struct{})}
	addr, cut := serveRPC(t, "Stall", s, func() { close(s.release) })
	return addr, s, cut
}

// serveRPC serves rcvr as name over plain net/rpc on a loopback port until
// the test ends, and returns its address and a function that closes every
// connection it accepted. When the test ends it calls release (to let
// waiting calls go), then stops accepting and closes the connections.
func serveRPC(t *testing.T, name string, rcvr any, release func()) (string, func()) {
	t.Helper()
	srv := rpc.NewServer()
	require.NoError(t, srv.RegisterName(name, rcvr))
	addr, cut := acceptAll(t, func(c net.Conn) { go srv.ServeConn(c) })
	t.Cleanup(release) // before acceptAll's: cleanups run last first
	return addr, cut
}

// heldPool returns a pool holding a connection to addr, a stall server,
// and a channel that receives each report of the peer ending one.
func heldPool(t *testing.T, addr string) (*clientPool, *metrics, chan string) {
	t.Helper()
	cfg, err := testConfig(t).withDefaults()
	require.NoError(t, err)
	m := &metrics{}
	p := newClientPool(TCPTransport{}, &cfg, realClock{}, m)
	ended := make(chan string, 8)
	p.ended = func(addr string) { ended <- addr }
	t.Cleanup(p.close)
	var reply int
	require.NoError(t, p.call(context.Background(), addr, "Stall.Wait", 0, &reply, true))
	require.Equal(t, []string{addr}, p.held())
	return p, m, ended
}

// startCall starts Stall.Wait(n) over p's held connection to addr and
// returns the reply and a channel that receives the call's end.
func startCall(t *testing.T, p *clientPool, addr string, n int, timeout time.Duration) (bool, *int, chan error) {
	reply := new(int)
	done := make(chan error, 2) // room for a second call of done, which the test would catch
	ok := p.start(addr, "Stall.Wait", n, reply, timeout, func(err error) { done <- err })
	return ok, reply, done
}

// endOf waits for a call started with startCall to end, and checks that
// it ended once.
func endOf(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		assert.Never(t, func() bool { return len(done) > 0 }, 50*time.Millisecond, 5*time.Millisecond, "done called twice")
		return err
	case <-time.After(converge):
		t.Fatal("the call never ended")
		return nil
	}
}

func TestStartEndsCallFromReader(t *testing.T) {
	addr, _, _ := stallServer(t)
	p, m, _ := heldPool(t, addr)

	ok, reply, done := startCall(t, p, addr, 0, time.Minute)
	require.True(t, ok)
	require.NoError(t, endOf(t, done))
	assert.Equal(t, 1, *reply, "the answer is read into reply before done")
	assert.Equal(t, []string{addr}, p.held(), "the connection is kept")
	assert.EqualValues(t, 2, m.sent.Load())

	// An error from the service is an answer: the connection is kept.
	ok, _, done = startCall(t, p, addr, -1, time.Minute)
	require.True(t, ok)
	var serverErr rpc.ServerError
	require.ErrorAs(t, endOf(t, done), &serverErr)
	assert.Equal(t, []string{addr}, p.held())
	assert.EqualValues(t, 1, m.rpcErrors.Load(), "the error is counted")
}

func TestStartNeedsAnIdleHeldConnection(t *testing.T) {
	addr, s, _ := stallServer(t)
	cfg, err := testConfig(t).withDefaults()
	require.NoError(t, err)
	p := newClientPool(TCPTransport{}, &cfg, realClock{}, &metrics{})
	defer p.close()
	ok, _, _ := startCall(t, p, addr, 0, time.Minute)
	assert.False(t, ok, "no connection held: start dials none")

	var reply int
	require.NoError(t, p.call(context.Background(), addr, "Stall.Wait", 0, &reply, true))
	ok, _, first := startCall(t, p, addr, 1, time.Minute)
	require.True(t, ok)
	ok, _, second := startCall(t, p, addr, 0, time.Minute)
	assert.False(t, ok, "a call is under way on the connection")
	s.release <- struct{}{}
	require.NoError(t, endOf(t, first))
	assert.Empty(t, second, "a call not started never ends")
}

func TestStartTimesOut(t *testing.T) {
	addr, _, _ := stallServer(t)
	p, m, _ := heldPool(t, addr)
	start := time.Now()
	ok, _, done := startCall(t, p, addr, 1, 50*time.Millisecond)
	require.True(t, ok)
	err := endOf(t, done)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	assert.Empty(t, p.held(), "the connection of a call that timed out is closed")
	assert.EqualValues(t, 1, m.rpcTimeouts.Load())
}

func TestStartEndsWhenPeerEndsConnection(t *testing.T) {
	addr, _, cut := stallServer(t)
	p, _, ended := heldPool(t, addr)
	ok, _, done := startCall(t, p, addr, 1, time.Minute)
	require.True(t, ok)
	cut()
	err := endOf(t, done)
	require.Error(t, err)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, addr, <-ended, "the peer's end is reported")
	assert.Empty(t, p.held())

	// A connection the peer ended before the call. Once net/rpc has seen
	// the end, start sends nothing (the caller dials anew); just before,
	// the request is written and the call ends at once with the
	// connection. Either way the dead connection is dropped.
	var reply int
	require.NoError(t, p.call(context.Background(), addr, "Stall.Wait", 0, &reply, true))
	cut()
	require.Equal(t, addr, <-ended)
	ok, _, done = startCall(t, p, addr, 0, time.Minute)
	if ok {
		err := endOf(t, done)
		require.Error(t, err)
		assert.NotErrorIs(t, err, context.DeadlineExceeded)
	} else {
		assert.Empty(t, done, "a call not started never ends")
	}
	assert.Empty(t, p.held(), "the dead connection is dropped")
}

func TestStartEndsWhenPoolCloses(t *testing.T) {
	addr, _, _ := stallServer(t)
	p, _, _ := heldPool(t, addr)
	ok, _, done := startCall(t, p, addr, 1, time.Minute)
	require.True(t, ok)
	p.close()
	assert.Error(t, endOf(t, done))
}
