package gossip

import (
	"fmt"
	"testing"
)

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
