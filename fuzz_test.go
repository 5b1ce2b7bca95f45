package gossip

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

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

// newFuzzMember is a unit member (see newUnitMember) with small limits, so
// that the fuzzer reaches them.
func newFuzzMember(t *testing.T, clk Clock) *Gossip {
	t.Helper()
	g, err := NewWithConfig(Config{
		Addr:           selfAddr,
		GossipInterval: time.Second,
		RPCTimeout:     time.Second,
		MaxMembers:     fuzzMaxMembers,
		MaxDataSize:    64,
		MaxMessageSize: 64 << 10,
		Clock:          clk,
		Logger:         quietLogger(t),
	})
	require.NoError(t, err)
	g.mu.Lock()
	g.becomeLocked(selfAddr)
	g.mu.Unlock()
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
		g.mu.Lock()
		defer g.mu.Unlock()
		if n := len(g.table.members); n > fuzzMaxMembers {
			t.Errorf("table holds %d members, MaxMembers %d", n, fuzzMaxMembers)
		}
	})
}

// fuzzAddrs are the addresses FuzzMerge picks from; one is the member's own.
var fuzzAddrs = []string{selfAddr, "10.0.0.2:7000", "10.0.0.3:7000", "[::1]:7000", "10.0.0.4:7000", "10.0.0.5:7000", "no port", ""}

// FuzzMerge applies arbitrary updates, clock steps and gossip rounds to a
// member's table, driven by a fake clock. The input is a program: each op
// byte is followed by its operands (see the switch). After every step the
// table must hold at most MaxMembers entries, this member must be in it,
// alive, with a positive heartbeat, a live member's heartbeat must not have
// decreased, a dead member must come back only with a higher heartbeat, and
// every live entry must be one a peer would accept.
func FuzzMerge(f *testing.F) {
	f.Fuzz(func(t *testing.T, prog []byte) {
		clk := newFakeClock()
		g := newFuzzMember(t, clk)
		type seen struct {
			hb    int64
			alive bool
		}
		last := map[string]seen{}
		snapshot := func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			clear(last)
			for addr, e := range g.table.members {
				last[addr] = seen{e.heartbeat, e.alive}
			}
		}
		check := func(step int) {
			g.mu.Lock()
			defer g.mu.Unlock()
			tb := &g.table
			if n := len(tb.members); n > fuzzMaxMembers {
				t.Fatalf("step %d: table holds %d members, MaxMembers %d", step, n, fuzzMaxMembers)
			}
			if tb.members[selfAddr] != tb.self || !tb.self.alive || tb.self.heartbeat <= 0 {
				t.Fatalf("step %d: self entry lost, dead or with heartbeat %d", step, tb.self.heartbeat)
			}
			live := 0
			for _, e := range tb.members {
				if e.alive {
					live++
				}
			}
			if live != tb.liveCount() {
				t.Fatalf("step %d: %d live entries, liveCount %d", step, live, tb.liveCount())
			}
			for addr, e := range tb.members {
				was, ok := last[addr]
				switch {
				case !e.alive || !ok:
				case was.alive && e.heartbeat < was.hb:
					t.Fatalf("step %d: heartbeat of live %s went from %d down to %d", step, addr, was.hb, e.heartbeat)
				case !was.alive && e.heartbeat <= was.hb:
					t.Fatalf("step %d: dead %s came back with heartbeat %d, not above %d", step, addr, e.heartbeat, was.hb)
				}
				if e.alive {
					if reason := g.checkEntry(e.withData()); reason != "" {
						t.Fatalf("step %d: live entry %s would be refused by peers: %s", step, addr, reason)
					}
				}
			}
		}
		r := bytes.NewReader(prog)
		next := func() byte { b, _ := r.ReadByte(); return b }
		addr := func() string {
			b := next()
			if b < 0xf0 {
				return fuzzAddrs[int(b)%len(fuzzAddrs)]
			}
			s := make([]byte, b&0x0f)
			r.Read(s)
			return string(s)
		}
		for step := 0; r.Len() > 0 && step < 1000; step++ {
			snapshot()
			switch op := next(); op % 6 {
			case 0: // merge an entry with an absolute heartbeat and data
				a := addr()
				var hb [8]byte
				r.Read(hb[:])
				var v [8]byte
				r.Read(v[:])
				data := make([]byte, next())
				r.Read(data)
				g.mergeAt(Entry{Addr: a, Heartbeat: int64(binary.BigEndian.Uint64(hb[:])), Version: int64(binary.BigEndian.Uint64(v[:])), WithData: true, Data: data})
			case 1: // merge an entry a little above (or below) what we hold
				a := addr()
				d := int64(int8(next()))
				var hb, v int64
				if e := g.entryOf(a); e != nil {
					hb, v = e.heartbeat, e.version
				}
				g.mergeAt(Entry{Addr: a, Heartbeat: hb + d, Version: v})
			case 2: // time passes
				clk.Advance(time.Duration(next()) * 100 * time.Millisecond)
			case 3: // a gossip round's own part: count up, apply the rules
				g.mu.Lock()
				g.table.self.heartbeat++
				g.table.self.lastRise = clk.Now()
				g.sweepLocked(clk.Now())
				g.mu.Unlock()
			case 4: // the application changes its data
				g.UpdateData(strconv.Itoa(int(next())))
			case 5: // a raw digest
				d := make([]byte, next())
				r.Read(d)
				g.mu.Lock()
				g.mergeUpdateLocked(d, nil, clk.Now(), true)
				g.mu.Unlock()
			}
			check(step)
		}
		ms := g.GetMembers()
		require.NotEmpty(t, ms, "GetMembers lists this member")
	})
}

// TestWriteFuzzSeeds writes the generated seed corpora when run with
// -write-fuzz-seeds; otherwise it checks that they are there.
func TestWriteFuzzSeeds(t *testing.T) {
	for name, seeds := range map[string]map[string][]byte{
		"FuzzServerCodec": codecSeeds(t),
		"FuzzMerge":       mergeSeeds(),
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
	exchange := ExchangeRequest{From: "10.0.0.9:7000", Digest: appendDigest(nil, "10.0.0.3:7000", 77, 70), Members: []Entry{
		{Addr: "10.0.0.9:7000", Heartbeat: 1_700_000_000_000_000, WithData: true, Data: []byte{1, 2, 3}},
		{Addr: "10.0.0.2:7000", Heartbeat: 42, WithData: true},
		{Addr: selfAddr, Heartbeat: 1 << 62},
	}}
	valid := stream("Gossip.Exchange", exchange)
	return map[string][]byte{
		"exchange":      valid,
		"get-members":   stream("Gossip.GetMembers", GetMembersRequest{}),
		"gossip":        stream("Gossip.Gossip", GossipRequest{Members: []Member{{Addr: "10.0.0.8:7000", Heartbeat: 7, Data: "hello"}}}),
		"three-calls":   stream("Gossip.GetMembers", GetMembersRequest{}, "Gossip.Exchange", exchange, "Gossip.GetMembers", GetMembersRequest{}),
		"unknown":       stream("Gossip.Nope", GetMembersRequest{}),
		"truncated":     valid[:len(valid)-7],
		"http":          []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"huge-length":   {0xfc, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3},
		"bad-length":    {0xf0, 1, 2, 3},
		"tls-hello":     {0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00},
		"empty":         {},
		"flipped-bytes": flip(valid, 40, 0x55),
	}
}

// flip returns a copy of b with the byte at i xored with x.
func flip(b []byte, i int, x byte) []byte {
	c := append([]byte(nil), b...)
	c[i%len(c)] ^= x
	return c
}

// mergeSeeds are FuzzMerge programs: ordinary gossip, a failure and a
// return, a flood, and hostile heartbeats.
func mergeSeeds() map[string][]byte {
	abs := func(addr byte, hb int64, data ...byte) []byte {
		b := []byte{0, addr}
		b = binary.BigEndian.AppendUint64(b, uint64(hb))
		return append(append(b, byte(len(data))), data...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	start := time.Unix(1_700_000_000, 0).UnixMicro()
	return map[string][]byte{
		"gossip":      cat(abs(1, start), abs(2, start+5, 'x'), []byte{1, 1, 1, 2, 10, 3, 1, 2, 1}),
		"fail-return": cat(abs(1, 100), []byte{2, 255, 3, 2, 255, 3}, abs(1, start+1<<40), []byte{3}),
		"flood": cat(abs(1, 9), abs(2, 9), abs(3, 9), abs(4, 9), abs(5, 9),
			[]byte{0, 0xf9, '1', '.', '2', '.', '3', '.', '4', ':', '5'}, make([]byte, 9)),
		"self-huge":  cat(abs(0, math.MaxInt64), []byte{3, 4, 7}),
		"peer-huge":  cat(abs(1, start), abs(1, 1<<62), []byte{1, 1, 1}),
		"peer-max":   cat(abs(1, math.MaxInt64), []byte{2, 70, 3}, abs(1, 5)),
		"bad-inputs": cat(abs(6, 5), abs(7, 5), abs(1, -5), abs(1, 0), abs(2, 5, make([]byte, 100)...)),
		"empty":      {},
	}
}
