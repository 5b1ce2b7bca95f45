package sim

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callLog records what happened to calls, with the virtual time.
type callLog struct {
	nw      *Network
	served  []time.Duration
	replied []time.Duration
	failed  []time.Duration
	errs    []error
}

// call makes a call from node from to node to whose reply and failure are
// logged.
func (l *callLog) call(from, to int) {
	l.nw.Call(from, to, func() (func(), error) {
		l.served = append(l.served, l.nw.Now())
		return func() { l.replied = append(l.replied, l.nw.Now()) }, nil
	}, func(err error) {
		l.failed = append(l.failed, l.nw.Now())
		l.errs = append(l.errs, err)
	})
}

func newTestNetwork(n int, cfg NetConfig) (*Network, *callLog) {
	nw := NewNetwork(n, cfg, rand.New(rand.NewPCG(1, 2)))
	return nw, &callLog{nw: nw}
}

const ms = time.Millisecond

func TestNetworkDelivers(t *testing.T) {
	nw, l := newTestNetwork(2, NetConfig{Delay: 10 * ms})
	l.call(0, 1)
	nw.RunFor(time.Minute)
	assert.Equal(t, []time.Duration{10 * ms}, l.served, "the request arrives after one delay")
	assert.Equal(t, []time.Duration{20 * ms}, l.replied, "the answer after another")
	assert.Empty(t, l.failed, "a call ends once")
}

func TestNetworkJitter(t *testing.T) {
	nw, l := newTestNetwork(2, NetConfig{Delay: 10 * ms, Jitter: 5 * ms})
	for i := 0; i < 100; i++ {
		l.call(0, 1)
	}
	nw.RunFor(time.Minute)
	require.Len(t, l.served, 100)
	distinct := map[time.Duration]bool{}
	for _, at := range l.served {
		assert.GreaterOrEqual(t, at, 10*ms)
		assert.Less(t, at, 15*ms)
		distinct[at] = true
	}
	assert.Greater(t, len(distinct), 50, "delays vary")
}

func TestNetworkLoss(t *testing.T) {
	tests := []struct {
		name       string
		cfg        NetConfig
		served     int
		replied    int
		failedWhen time.Duration
	}{
		{"request lost", NetConfig{Delay: ms, RequestLoss: 1}, 0, 0, DefaultTimeout},
		{"answer lost", NetConfig{Delay: ms, ResponseLoss: 1}, 1, 0, DefaultTimeout},
		{"answer too late", NetConfig{Delay: 3 * time.Second}, 1, 0, DefaultTimeout},
		{"own timeout", NetConfig{Delay: ms, RequestLoss: 1, Timeout: time.Second}, 0, 0, time.Second},
	}
	for _, tt := range tests {
		nw, l := newTestNetwork(2, tt.cfg)
		l.call(0, 1)
		nw.RunFor(time.Minute)
		assert.Len(t, l.served, tt.served, tt.name)
		assert.Len(t, l.replied, tt.replied, tt.name)
		if assert.Len(t, l.failed, 1, tt.name) {
			assert.Equal(t, tt.failedWhen, l.failed[0], tt.name)
			assert.ErrorIs(t, l.errs[0], ErrTimeout, tt.name)
		}
	}
}

// TestNetworkLossRate checks that requests and answers are lost
// independently at their rates.
func TestNetworkLossRate(t *testing.T) {
	nw, l := newTestNetwork(2, NetConfig{RequestLoss: 0.3, ResponseLoss: 0.2})
	const calls = 20000
	for i := 0; i < calls; i++ {
		l.call(0, 1)
	}
	nw.RunFor(time.Minute)
	assert.InDelta(t, 0.7, float64(len(l.served))/calls, 0.02, "requests through")
	assert.InDelta(t, 0.7*0.8, float64(len(l.replied))/calls, 0.02, "answers through")
	assert.Equal(t, calls, len(l.replied)+len(l.failed), "every call ends once")
}

func TestNetworkPartition(t *testing.T) {
	nw, l := newTestNetwork(4, NetConfig{Delay: ms})
	nw.Partition([]int{0, 1})
	assert.True(t, nw.Reachable(0, 1))
	assert.True(t, nw.Reachable(2, 3), "the nodes not named form a group")
	assert.False(t, nw.Reachable(0, 2))
	l.call(0, 2)
	l.call(3, 1)
	l.call(0, 1)
	nw.RunFor(time.Minute)
	assert.Len(t, l.served, 1, "only within a group")
	assert.Len(t, l.replied, 1)
	assert.Len(t, l.failed, 2)

	nw.Heal()
	l.call(0, 2)
	nw.RunFor(time.Minute)
	assert.Len(t, l.replied, 2, "healed")
}

func TestNetworkCrash(t *testing.T) {
	nw, l := newTestNetwork(2, NetConfig{Delay: 10 * ms})
	ran := false
	nw.At(time.Second, 1, func() { ran = true })
	nw.Crash(1)
	l.call(0, 1)
	nw.RunFor(time.Minute)
	assert.False(t, ran, "a crashed node runs nothing")
	assert.Empty(t, l.served)
	if assert.Len(t, l.failed, 1) {
		assert.ErrorIs(t, l.errs[0], ErrRefused)
		assert.Equal(t, 10*ms, l.failed[0], "refused after a message delay")
	}

	// A crash while the answer is under way.
	nw, l = newTestNetwork(2, NetConfig{Delay: 10 * ms})
	l.call(0, 1)
	nw.RunFor(15 * ms)
	nw.Crash(0)
	nw.RunFor(time.Minute)
	assert.Len(t, l.served, 1)
	assert.Empty(t, l.replied, "nothing runs at the crashed caller")
	assert.Empty(t, l.failed)

	// No one listens.
	nw, l = newTestNetwork(1, NetConfig{})
	l.call(0, -1)
	nw.RunFor(time.Minute)
	if assert.Len(t, l.failed, 1) {
		assert.ErrorIs(t, l.errs[0], ErrTimeout)
	}
}

func TestNetworkRemoteError(t *testing.T) {
	nw, _ := newTestNetwork(2, NetConfig{Delay: ms})
	remote := errors.New("remote")
	var got error
	var at time.Duration
	nw.Call(0, 1, func() (func(), error) { return nil, remote }, func(err error) { got, at = err, nw.Now() })
	nw.RunFor(time.Minute)
	assert.ErrorIs(t, got, remote)
	assert.Equal(t, 2*ms, at, "with the answer")
}

// TestNetworkPause checks a paused node as a stopped process: its callers
// time out; a request it holds is served on resume if its caller still
// waits, else dropped; its own timers and answers run on resume, in order.
func TestNetworkPause(t *testing.T) {
	nw, l := newTestNetwork(3, NetConfig{Delay: 10 * ms})
	var order []string
	nw.At(time.Second, 1, func() { order = append(order, "timer") })
	nw.Call(1, 0, func() (func(), error) { // its answer comes while 1 is paused
		return func() { order = append(order, "reply") }, nil
	}, func(error) { order = append(order, "failed") })
	nw.Pause(1)
	l.call(0, 1) // at 0: its caller gives up at 5 s
	nw.RunUntil(4 * time.Second)
	l.call(2, 1) // at 4 s: its caller waits until 9 s
	nw.RunUntil(7 * time.Second)
	assert.Empty(t, l.served, "a paused node serves nothing")
	assert.Empty(t, order, "nor runs its timers")
	assert.Equal(t, []time.Duration{5 * time.Second}, l.failed, "its first caller timed out")

	nw.Resume(1)
	nw.RunFor(time.Minute)
	assert.Equal(t, []time.Duration{7 * time.Second}, l.served, "the request of the caller still waiting is served at once")
	assert.Equal(t, []time.Duration{7*time.Second + 10*ms}, l.replied)
	assert.Equal(t, []string{"reply", "timer"}, order, "what it held runs in the order it came")
}

// TestNetworkOrder checks the order at one instant: timers, then messages,
// then observers, each in the order scheduled.
func TestNetworkOrder(t *testing.T) {
	nw, _ := newTestNetwork(2, NetConfig{})
	var order []string
	nw.Observe(time.Second, func() { order = append(order, "observe") })
	nw.At(time.Second, 0, func() {
		order = append(order, "timer 0")
		nw.Call(0, 1, func() (func(), error) {
			order = append(order, "request")
			return func() { order = append(order, "reply") }, nil
		}, func(error) {})
	})
	nw.At(time.Second, 1, func() { order = append(order, "timer 1") })
	nw.RunUntil(time.Second)
	assert.Equal(t, []string{"timer 0", "timer 1", "request", "reply", "observe"}, order)
	assert.Equal(t, time.Second, nw.Now())
}
