package gossip

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNotifyNeverBlocks(t *testing.T) {
	g := newShellMember(t, newFakeClock(), unitAddr)
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
