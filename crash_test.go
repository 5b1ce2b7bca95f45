package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClosedMemberIsDroppedByNotice closes one of five members over real
// TCP: its listener is closed, so dials to it are refused, and its peers
// drop it by a death notice. Their clock stands still, so the failure time
// never passes: only the notice can drop it. A member started again at the
// same address (its clock a second later, so its heartbeat is beyond the
// first life's) is back in every view at once.
func TestClosedMemberIsDroppedByNotice(t *testing.T) {
	clk := newFakeClock()
	gs := startCluster(t, 5, func(i int, c *Config) { c.Clock = clk })
	requireView(t, gs, addrsOf(gs...), converge, "converge")

	victim, rest := gs[4], gs[:4]
	victim.Close()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, g := range rest {
			assert.Equal(c, protocol.Dead, g.status(victim.Addr()), "%s holds the closed member dead", g.Addr())
		}
	}, converge, 5*time.Millisecond, "every survivor drops the closed member while the clock stands still")
	requireView(t, rest, addrsOf(rest...), converge, "the survivors agree")

	clk.Advance(time.Second)
	cfg := testConfig(t, gs[0].Addr())
	cfg.Addr, cfg.Clock = victim.Addr(), clk
	reborn := startMember(t, cfg)
	all := append(rest[:4:4], reborn)
	requireView(t, all, addrsOf(all...), converge, "the member started again is back")
}

// TestRefusedCountsOnlyRefusedDials checks which call errors count as a
// refused dial: ECONNREFUSED however wrapped, and nothing else.
func TestRefusedCountsOnlyRefusedDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, dialErr := TCPTransport{}.Dial(context.Background(), addr)
	require.Error(t, dialErr, "dial to a closed port")

	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"a refused dial", dialErr, true},
		{"a refused dial, wrapped", fmt.Errorf("gossip: dial %s: %w", addr, dialErr), true},
		{"a timeout", context.DeadlineExceeded, false},
		{"a reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"a closed connection", net.ErrClosed, false},
		{"another error", errors.New("gossip: TLS handshake: bad certificate"), false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, refused(c.err), "refused(%v) (%s)", c.err, c.name)
	}
}
