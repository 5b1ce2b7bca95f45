package gossip

import (
	"context"
	"errors"
	"net"
	"net/rpc"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// namedPair starts two members named name; each is seeded with its partner
// and with foreign, an address in another cluster.
func namedPair(t *testing.T, name string, addrs [2]string, foreign string) []*Gossip {
	t.Helper()
	var gs []*Gossip
	for i, addr := range addrs {
		cfg := testConfig(t, addrs[1-i], foreign)
		cfg.Addr, cfg.ClusterName = addr, name
		gs = append(gs, startMember(t, cfg))
	}
	return gs
}

func TestClustersWithDifferentNamesNeverMerge(t *testing.T) {
	blueAddrs := [2]string{freeAddr(t), freeAddr(t)}
	greenAddrs := [2]string{freeAddr(t), freeAddr(t)}
	blue := namedPair(t, "blue", blueAddrs, greenAddrs[0])
	green := namedPair(t, "green", greenAddrs, blueAddrs[1])
	requireView(t, blue, addrsOf(blue...), converge, "blue converges")
	requireView(t, green, addrsOf(green...), converge, "green converges")

	// Each keeps contacting the other's seed, is refused, and backs off.
	backedOff := func(g *Gossip, seed string) bool {
		return g.backoff(seed) >= 4*g.cfg.GossipInterval
	}
	require.Eventually(t, func() bool {
		return backedOff(blue[0], greenAddrs[0]) && backedOff(green[1], blueAddrs[1])
	}, converge, 10*time.Millisecond, "the other cluster's seeds are contacted and refuse")
	assert.Never(t, func() bool {
		for _, g := range append(append([]*Gossip(nil), blue...), green...) {
			if len(g.GetMembers()) != 2 {
				return true
			}
		}
		return false
	}, 10*blue[0].FailureTime(), 10*time.Millisecond, "the clusters stay apart")
}

func TestClustersWithTheSameNameMerge(t *testing.T) {
	aAddrs := [2]string{freeAddr(t), freeAddr(t)}
	bAddrs := [2]string{freeAddr(t), freeAddr(t)}
	gs := append(namedPair(t, "blue", aAddrs, bAddrs[0]), namedPair(t, "blue", bAddrs, aAddrs[1])...)
	requireView(t, gs, addrsOf(gs...), converge, "same name: one cluster")
}

func TestExchangeWithAnotherClusterMergesNothing(t *testing.T) {
	cfg := testConfig(t)
	cfg.ClusterName = "blue"
	g := startMember(t, cfg)
	const stranger = "10.9.0.1:7000"
	c := plainClient(t, g.Addr())

	// The callee refuses another name, and the empty one, before merging.
	for _, name := range []string{"green", ""} {
		req := ExchangeRequest{From: stranger, Cluster: name, Members: []Entry{{Addr: stranger, Heartbeat: 5, WithData: true}}}
		err := c.Call("Gossip.Exchange", req, &ExchangeResponse{})
		assert.ErrorContains(t, err, "cluster name mismatch", "callee named blue, request named %q", name)
	}
	err := c.Call("Gossip.Gossip", GossipRequest{Members: []Member{{Addr: stranger, Heartbeat: 5}}}, &GossipResponse{})
	assert.ErrorContains(t, err, "carries no cluster name", "a push to a named member")
	assert.Nil(t, g.lookup(stranger), "nothing merged")

	// The same name is served; GetMembers is served whatever the name.
	req := ExchangeRequest{From: stranger, Cluster: "blue", Members: []Entry{{Addr: stranger, Heartbeat: 5, WithData: true}}}
	var resp ExchangeResponse
	require.NoError(t, c.Call("Gossip.Exchange", req, &resp))
	assert.Equal(t, "blue", resp.Cluster)
	assert.NotNil(t, g.lookup(stranger))
	var members GetMembersResponse
	require.NoError(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &members))
}

// oldMember serves Gossip.Exchange as a member that does not check names
// would, answering with cluster name and members.
type oldMember struct {
	cluster string
	members []Entry
}

func (m *oldMember) Exchange(req ExchangeRequest, resp *ExchangeResponse) error {
	resp.From, resp.Cluster, resp.Members = "10.9.0.2:7000", m.cluster, m.members
	return nil
}

func TestCallerMergesNothingFromAnotherCluster(t *testing.T) {
	server := rpc.NewServer()
	require.NoError(t, server.RegisterName(serviceName, &oldMember{cluster: "green", members: []Entry{{Addr: "10.9.0.2:7000", Heartbeat: 5, WithData: true}}}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan struct{})
	go func() {
		defer close(served)
		server.Accept(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-served
	})

	cfg := testConfig(t)
	cfg.ClusterName = "blue"
	g := startMember(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	err = g.exchangeNow(ctx, ln.Addr().String())
	assert.True(t, errors.Is(err, ErrClusterMismatch), "exchange error %v, want ErrClusterMismatch", err)
	assert.Nil(t, g.lookup("10.9.0.2:7000"), "nothing merged from another cluster")
}

func TestLogLimit(t *testing.T) {
	var l logLimit
	now := time.Unix(1000, 0)
	_, ok := l.allow(now)
	assert.True(t, ok, "first line")
	for i := 0; i < 3; i++ {
		_, ok = l.allow(now.Add(time.Second))
		assert.False(t, ok, "within the interval")
	}
	n, ok := l.allow(now.Add(mismatchLogInterval))
	assert.True(t, ok, "after the interval")
	assert.Equal(t, 3, n, "held back lines counted")
}
