package faultnet

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

type tcp struct{}

func (tcp) Listen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
func (tcp) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// echoNode listens on a node of n and echoes every connection until the
// test ends.
func echoNode(t *testing.T, n *Net) *Node {
	t.Helper()
	nd := n.Node("127.0.0.1:0")
	ln, err := nd.Listen("127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return nd
}

func dial(t *testing.T, from *Node, to string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := from.Dial(ctx, to)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes one byte and reports whether it came back within d.
func roundTrip(c net.Conn, d time.Duration) bool {
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte{1}); err != nil {
		return false
	}
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	return err == nil
}

// noLeaks checks, after the test's other cleanups, that its goroutines
// have ended.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestNoFaultsPassesEverything(t *testing.T) {
	noLeaks(t)
	n := New(tcp{}, 1)
	srv := echoNode(t, n)
	c := dial(t, n.Node("127.0.0.1:1"), srv.Addr())
	for i := 0; i < 100; i++ {
		require.True(t, roundTrip(c, 5*time.Second), "round trip %d", i)
	}
	s := n.Stats()
	assert.Equal(t, int64(200), s.Writes, "a write each way per round trip")
	assert.Zero(t, s.Lost)
}

func TestLossRateAndBlackhole(t *testing.T) {
	n := New(tcp{}, 2)
	n.SetLoss(0.1, Blackhole)
	srv := echoNode(t, n)
	cli := n.Node("127.0.0.1:1")
	// Each lost message leaves a hole: the round trip times out and the
	// stream is dead, so every try gets a connection of its own.
	ok := 0
	const tries = 300
	for i := 0; i < tries; i++ {
		c := dial(t, cli, srv.Addr())
		if roundTrip(c, 50*time.Millisecond) {
			ok++
		}
		c.Close()
	}
	s := n.Stats()
	rate := float64(s.Lost) / float64(s.Writes)
	t.Logf("writes %d lost %d (%.3f); round trips ok %d/%d", s.Writes, s.Lost, rate, ok, tries)
	assert.InDelta(t, 0.1, rate, 0.04, "loss rate")
	// A round trip is two messages: 0.81 expected.
	assert.InDelta(t, 0.81, float64(ok)/tries, 0.08, "round trips that survive")
}

func TestResetModeFailsTheWrite(t *testing.T) {
	n := New(tcp{}, 3)
	n.SetLoss(1, Reset)
	srv := echoNode(t, n)
	c := dial(t, n.Node("127.0.0.1:1"), srv.Addr())
	_, err := c.Write([]byte{1})
	require.ErrorIs(t, err, errReset)
	_, err = c.Write([]byte{1})
	assert.Error(t, err, "the connection is closed")
}

func TestDelay(t *testing.T) {
	n := New(tcp{}, 4)
	n.SetDelay(30*time.Millisecond, 10*time.Millisecond)
	srv := echoNode(t, n)
	c := dial(t, n.Node("127.0.0.1:1"), srv.Addr())
	start := time.Now()
	require.True(t, roundTrip(c, 5*time.Second))
	assert.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond, "two delayed writes")
}

func TestPartitionRefusesAndSevers(t *testing.T) {
	n := New(tcp{}, 5)
	a, b := echoNode(t, n), echoNode(t, n)
	c := dial(t, a, b.Addr())
	require.True(t, roundTrip(c, 5*time.Second))

	n.Partition(map[string]int{b.Addr(): 1})
	assert.False(t, roundTrip(c, time.Second), "the crossing connection is closed")
	_, err := a.Dial(context.Background(), b.Addr())
	assert.ErrorIs(t, err, ErrCut)
	assert.Equal(t, int64(1), n.Stats().Severed)

	n.Heal()
	c = dial(t, a, b.Addr())
	assert.True(t, roundTrip(c, 5*time.Second), "healed")

	n.Cut(a.Addr(), b.Addr())
	_, err = b.Dial(context.Background(), a.Addr())
	assert.ErrorIs(t, err, ErrCut, "a cut holds both ways")
}

func TestStallBlocksUntilResume(t *testing.T) {
	noLeaks(t)
	n := New(tcp{}, 6)
	srv := echoNode(t, n)
	cli := n.Node("127.0.0.1:1")
	c := dial(t, cli, srv.Addr())
	require.True(t, roundTrip(c, 5*time.Second))

	n.Stall(srv.Addr())
	assert.False(t, roundTrip(c, 200*time.Millisecond), "a stalled member answers nothing")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c2, err := cli.Dial(ctx, srv.Addr())
	if assert.NoError(t, err, "the kernel still accepts connections to a stalled member") {
		c2.Close()
	}

	n.Resume(srv.Addr())
	var b [1]byte
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadFull(c, b[:])
	assert.NoError(t, err, "the answer comes after Resume")

	n.Stall(cli.Addr())
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = cli.Dial(ctx, srv.Addr())
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "a stalled member's dials wait: %v", err)
	n.Resume(cli.Addr())
}
