package gossip

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	var held []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
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
	closed := make(chan struct{})
	go func() {
		g.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(converge):
		t.Fatal("Close waited on a black hole")
	}
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
