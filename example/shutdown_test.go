package main

import (
	"context"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShutdownLeaves(t *testing.T) {
	first, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval}, quietLogger())
	require.NoError(t, err)
	defer first.shutdown(time.Second)
	second, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", join: first.g.Addr(), interval: interval}, quietLogger())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(first.g.GetMembers()) == 2 }, waitFor, tick, "joined")

	tfail := first.g.FailureTime()
	begin := time.Now()
	require.NoError(t, second.shutdown(time.Second))
	require.Eventually(t, func() bool { return len(first.g.GetMembers()) == 1 }, waitFor, time.Millisecond, "the other member drops it")
	took := time.Since(begin)
	assert.Equal(t, 1, first.g.Stats().Left, "recorded as left, not failed")
	assert.Less(t, took, tfail, "dropped sooner than FailureTime")
	t.Logf("dropped %v after shutdown began (FailureTime %v)", took, tfail)
}

func TestWatchLogsLeaveAndRejoin(t *testing.T) {
	log, hook := test.NewNullLogger()
	nodes := startNodes(t, Service{Name: "web"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(ctx, nodes[0].g, log, nil)
	}()
	defer func() {
		cancel()
		<-done
	}()
	logged := func(msg, addr string) func() bool {
		return func() bool {
			for _, e := range hook.AllEntries() {
				if e.Message == msg && e.Data["addr"] == addr {
					return true
				}
			}
			return false
		}
	}
	cfg := gossip.Config{Addr: "127.0.0.1:0", Seeds: []string{nodes[0].g.Addr()},
		Data: Service{Name: "db"}, GossipInterval: interval, Logger: quietLogger()}
	other, err := gossip.NewWithConfig(cfg)
	require.NoError(t, err)
	require.NoError(t, other.Start())
	addr := other.Addr()
	require.Eventually(t, logged("member joined", addr), waitFor, tick, "join logged")
	require.NoError(t, other.Shutdown(context.Background()))
	require.Eventually(t, logged("member left", addr), waitFor, tick, "leave logged")

	cfg.Addr = addr
	again, err := gossip.NewWithConfig(cfg)
	require.NoError(t, err)
	require.NoError(t, again.Start())
	defer again.Close()
	require.Eventually(t, logged("member rejoined", addr), waitFor, tick, "rejoin logged")
	for _, e := range hook.AllEntries() {
		assert.NotEqual(t, "member failed", e.Message, "nothing failed")
	}
}
