package gossip

import (
	"fmt"
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

// benchMember is a member with n-1 live peers in its table, each with data.
func benchMember(b *testing.B, n int) *Gossip {
	b.Helper()
	clk := newFakeClock()
	g, err := NewWithConfig(Config{Addr: unitAddr, Clock: clk, Logger: quietLogger(b), MaxMembers: 2 * n})
	if err != nil {
		b.Fatal(err)
	}
	g.startShell(unitAddr)
	d, _ := encodeData("http://10.0.0.1:8080/service", DefaultMaxDataSize)
	hb := clk.Now().UnixMicro()
	var es []Entry
	for i := 1; i < n; i++ {
		es = append(es, Entry{Addr: fmt.Sprintf("10.1.%d.%d:7946", i/256, i%256), Heartbeat: hb, Version: hb, WithData: true, Data: d})
	}
	g.mergeEntries(es...)
	return g
}

// BenchmarkGetMembers measures GetMembers with string data.
func BenchmarkGetMembers(b *testing.B) {
	for _, n := range []int{32, 1000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			g := benchMember(b, n)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if len(g.GetMembers()) != n {
					b.Fatal("wrong size")
				}
			}
		})
	}
}
