package gossip

import (
	"bytes"
	"context"
	"encoding/gob"
	"flag"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/require"
)

// Fuzz targets. Run one with
//
//	go test -run XXX -fuzz FuzzServerCodec -fuzztime 3m
//
// Their seed corpora are in testdata/fuzz/<FuzzName>; `go test -run
// TestWriteFuzzSeeds -write-fuzz-seeds` writes the generated seeds again.
// Inputs the fuzzer found are committed next to them as regression cases.

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "write the generated fuzz seed corpora to testdata/fuzz")

// newFuzzMember is a member with no network (see newShellMember) with small
// limits, so that the fuzzer reaches them.
func newFuzzMember(t *testing.T, clk Clock) *Gossip {
	t.Helper()
	g, err := NewWithConfig(Config{
		Addr:           unitAddr,
		GossipInterval: time.Second,
		RPCTimeout:     time.Second,
		MaxMembers:     fuzzMaxMembers,
		MaxDataSize:    64,
		MaxMessageSize: 64 << 10,
		Clock:          clk,
		Logger:         quietLogger(t),
	})
	require.NoError(t, err)
	g.startShell(unitAddr)
	return g
}

const fuzzMaxMembers = 5

// FuzzServerCodec feeds arbitrary bytes to a member's server side, as a peer
// connected to its RPC port could: the size-limited frame reader, gob
// decoding of rpc.Request and of each RPC's argument, and the RPCs
// themselves. The server must not panic, must end when its input ends or
// turns bad, must not allocate out of proportion, and must keep its table
// within MaxMembers.
func FuzzServerCodec(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		g := newFuzzMember(t, newFakeClock())
		server := rpc.NewServer()
		require.NoError(t, server.RegisterName(serviceName, &service{g: g}))

		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		client, conn := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			server.ServeCodec(newServerCodec(context.Background(), conn, &inbound{}, &g.cfg, g.log))
		}()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, client) // the responses
		}()
		_, werr := client.Write(in) // fails once the server has closed its end
		client.Close()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatalf("server still running 10s after its input ended (write error %v)", werr)
		}
		<-drained

		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("serving %d bytes allocated %d bytes", len(in), alloc)
		}
		if st := g.Stats(); st.Alive+st.Failed+st.Left > fuzzMaxMembers {
			t.Errorf("table holds %d members, MaxMembers %d", st.Alive+st.Failed+st.Left, fuzzMaxMembers)
		}
	})
}

// TestWriteFuzzSeeds writes the generated seed corpora when run with
// -write-fuzz-seeds; otherwise it checks that they are there.
func TestWriteFuzzSeeds(t *testing.T) {
	for name, seeds := range map[string]map[string][]byte{
		"FuzzServerCodec": codecSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", name)
		for seed, in := range seeds {
			file := filepath.Join(dir, "seed-"+seed)
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(in)))
			if *writeFuzzSeeds {
				require.NoError(t, os.MkdirAll(dir, 0o755))
				require.NoError(t, os.WriteFile(file, []byte(content), 0o644))
				continue
			}
			// gob numbers types in the order a process meets them, so the
			// bytes differ from run to run: check only that the seed is there.
			_, err := os.Stat(file)
			require.NoError(t, err, "seed %s missing: run go test -run TestWriteFuzzSeeds -write-fuzz-seeds", file)
		}
	}
}

// codecSeeds are byte streams a peer might send: well-formed calls of every
// RPC, and malformed ones.
func codecSeeds(t *testing.T) map[string][]byte {
	stream := func(calls ...any) []byte {
		var buf bytes.Buffer
		enc := gob.NewEncoder(&buf)
		for i := 0; i < len(calls); i += 2 {
			seq := uint64(i/2 + 1)
			require.NoError(t, enc.Encode(rpc.Request{ServiceMethod: calls[i].(string), Seq: seq}))
			require.NoError(t, enc.Encode(calls[i+1]))
		}
		return buf.Bytes()
	}
	exchange := ExchangeRequest{From: "10.0.0.9:7000", Digest: protocol.AppendDigest(nil, "10.0.0.3:7000", 77, 70), Members: []Entry{
		{Addr: "10.0.0.9:7000", Heartbeat: 1_700_000_000_000_000, WithData: true, Data: []byte{1, 2, 3}},
		{Addr: "10.0.0.2:7000", Heartbeat: 42, WithData: true},
		{Addr: unitAddr, Heartbeat: 1 << 62},
	}}
	valid := stream("Gossip.Exchange", exchange)
	// Packed requests, as members send them: the second names the
	// addresses of the first by number, and repeats nothing.
	p := newPacker(fuzzMaxMembers)
	pack := func(rs ...rec) []byte {
		b, err := p.pack(nil, digestOf(rs))
		require.NoError(t, err)
		return b
	}
	first := ExchangeRequest{From: "10.0.0.9:7000", Packed: pack(rec{"10.0.0.9:7000", 1_700_000_000_000_000, 1_700_000_000_000_000},
		rec{"10.0.0.3:7000", 77, 70}, rec{unitAddr, 5, 1})}
	second := ExchangeRequest{Packed: pack(rec{"10.0.0.9:7000", 1_700_000_000_000_003, 1_700_000_000_000_000},
		rec{"10.0.0.3:7000", 90, 90}, rec{"10.0.0.4:7000", 1, 0}, rec{unitAddr, 6, 1})}
	packed := stream("Gossip.Exchange", first, "", second)
	return map[string][]byte{
		"exchange":       valid,
		"get-members":    stream("Gossip.GetMembers", GetMembersRequest{}),
		"gossip":         stream("Gossip.Gossip", GossipRequest{Members: []Member{{Addr: "10.0.0.8:7000", Heartbeat: 7, Data: "hello"}}}),
		"three-calls":    stream("Gossip.GetMembers", GetMembersRequest{}, "Gossip.Exchange", exchange, "Gossip.GetMembers", GetMembersRequest{}),
		"unknown":        stream("Gossip.Nope", GetMembersRequest{}),
		"truncated":      valid[:len(valid)-7],
		"http":           []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"huge-length":    {0xfc, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3},
		"bad-length":     {0xf0, 1, 2, 3},
		"tls-hello":      {0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00},
		"empty":          {},
		"flipped-bytes":  flip(valid, 40, 0x55),
		"packed":         packed,
		"packed-flipped": flip(packed, len(packed)-4, 0x21),
	}
}

// flip returns a copy of b with the byte at i xored with x.
func flip(b []byte, i int, x byte) []byte {
	c := append([]byte(nil), b...)
	c[i%len(c)] ^= x
	return c
}
