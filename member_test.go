package gossip

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const selfAddr = "10.0.0.1:7000"

// newUnitMember returns a member that believes it runs at selfAddr, with no
// network and a fake clock: the rules are driven by calling merge and sweep.
func newUnitMember(t *testing.T, clk *fakeClock) *Gossip {
	t.Helper()
	g, err := NewWithConfig(Config{Addr: selfAddr, GossipInterval: time.Second, Clock: clk, Logger: quietLogger(t)})
	require.NoError(t, err)
	g.mu.Lock()
	g.becomeLocked(selfAddr)
	g.mu.Unlock()
	return g
}

// mergeAt merges entries at the fake clock's time and signals C as the
// protocol's callers of mergeLocked do.
func (g *Gossip) mergeAt(entries ...Entry) bool {
	g.mu.Lock()
	changed, _ := g.mergeLocked(entries, g.clock.Now())
	g.mu.Unlock()
	if changed {
		g.notify()
	}
	return changed
}

func (g *Gossip) entryOf(addr string) *entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.table.members[addr]; e != nil {
		c := *e
		return &c
	}
	return nil
}

func TestNotifyNeverBlocks(t *testing.T) {
	g := newUnitMember(t, newFakeClock())
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			assert.NoError(t, g.UpdateData(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("UpdateData blocked with nobody reading C")
	}
	assert.True(t, drain(g.C), "the changes left one signal")
	assert.False(t, drain(g.C), "bursts are merged into one signal")
	assert.Equal(t, 999, g.GetMembers()[0].Data)
}

func TestMemberString(t *testing.T) {
	for _, tc := range []struct {
		m    Member
		want string
	}{
		{Member{Addr: "10.0.0.1:7000", Heartbeat: 3}, "10.0.0.1:7000 hb=3"},
		{Member{Addr: "[::1]:7000", Heartbeat: 4, Data: "x"}, "[::1]:7000 hb=4 data=x"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("Member.String() = %q, want %q", got, tc.want)
		}
	}
}
