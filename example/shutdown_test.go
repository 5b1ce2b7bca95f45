package main

import (
	"testing"
	"time"

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
