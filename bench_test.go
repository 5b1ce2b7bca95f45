package gossip

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"net/rpc"
	"testing"
)

// benchMember is a member with n-1 live peers in its table, each with data.
func benchMember(b *testing.B, n int) *Gossip {
	b.Helper()
	clk := newFakeClock()
	g, err := NewWithConfig(Config{Addr: selfAddr, Clock: clk, Logger: quietLogger(b), MaxMembers: 2 * n})
	if err != nil {
		b.Fatal(err)
	}
	g.mu.Lock()
	g.becomeLocked(selfAddr)
	g.mu.Unlock()
	d, _ := encodeData("http://10.0.0.1:8080/service", DefaultMaxDataSize)
	hb := clk.Now().UnixMicro()
	var es []Entry
	for i := 1; i < n; i++ {
		es = append(es, Entry{Addr: fmt.Sprintf("10.1.%d.%d:7946", i/256, i%256), Heartbeat: hb, Version: hb, WithData: true, Data: d})
	}
	g.mergeAt(es...)
	return g
}

// wireSize is the size of req as the net/rpc gob codec sends it on a
// connection that has already sent the types.
func wireSize(b *testing.B, req ExchangeRequest) int {
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	hdr := rpc.Request{ServiceMethod: "Gossip.Exchange", Seq: 1}
	if err := enc.Encode(&hdr); err != nil {
		b.Fatal(err)
	}
	if err := enc.Encode(req); err != nil {
		b.Fatal(err)
	}
	buf.Reset()
	enc.Encode(&hdr)
	enc.Encode(req)
	return buf.Len()
}

// BenchmarkDigest measures building and encoding the digest a member sends
// each round, and reports its size per member entry.
func BenchmarkDigest(b *testing.B) {
	for _, n := range []int{32, 128, 1000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			g := benchMember(b, n)
			g.mu.Lock()
			size := wireSize(b, ExchangeRequest{From: selfAddr, Digest: g.table.digest()})
			g.mu.Unlock()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g.mu.Lock()
				req := ExchangeRequest{From: selfAddr, Digest: g.table.digest()}
				g.mu.Unlock()
				if err := gob.NewEncoder(&bytes.Buffer{}).Encode(req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size)/float64(n), "bytes/entry")
		})
	}
}

// BenchmarkMergeDigest measures merging a peer's digest in which every
// heartbeat rose, as happens each round, and answering it.
func BenchmarkMergeDigest(b *testing.B) {
	for _, n := range []int{32, 128, 1000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			g := benchMember(b, n)
			g.mu.Lock()
			var es []Entry
			readDigest(g.table.digest(), n, func(addr []byte, hb, v int64) error {
				es = append(es, Entry{Addr: string(addr), Heartbeat: hb, Version: v})
				return nil
			})
			g.mu.Unlock()
			// Each round every heartbeat rises: digests are made ahead,
			// out of the timing.
			digests := make([][]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%len(digests) == 0 {
					b.StopTimer()
					for r := range digests {
						digests[r] = digests[r][:0]
						for _, e := range es {
							digests[r] = appendDigest(digests[r], e.Addr, e.Heartbeat+int64(i+r+1), e.Version)
						}
					}
					b.StartTimer()
				}
				d := digests[i%len(digests)]
				g.mu.Lock()
				gen, _, _, err := g.mergeUpdateLocked(d, nil, g.clock.Now(), true)
				g.table.answer(gen, false)
				g.mu.Unlock()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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
