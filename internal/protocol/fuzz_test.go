package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzMerge's seed corpus is in testdata/fuzz/FuzzMerge; `go test -run
// TestWriteFuzzSeeds -write-fuzz-seeds` writes the generated seeds again.
// Inputs the fuzzer found are committed next to them as regression cases.
// Run it with
//
//	go test -run '^$' -fuzz '^FuzzMerge$' -fuzztime 3m

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "write the generated fuzz seed corpora to testdata/fuzz")

// fuzzMaxMembers is FuzzMerge's MaxMembers, small so that the fuzzer
// reaches it.
const fuzzMaxMembers = 5

// fuzzAddrs are the addresses FuzzMerge picks from; one is the member's own.
var fuzzAddrs = []string{selfAddr, "10.0.0.2:7000", "10.0.0.3:7000", "[::1]:7000", "10.0.0.4:7000", "10.0.0.5:7000", "no port", ""}

// The operations of a FuzzMerge program: an op byte (modulo fuzzOps) is
// followed by its operands. An address operand is one byte: below 0xf0 it
// picks from fuzzAddrs, otherwise its low four bits are the length of the
// address bytes that follow.
const (
	opEntry     = iota // addr, heartbeat (8 bytes), version (8 bytes), data length, data: Merge an entry with data
	opNudge            // addr, int8: a peer's request with the entry we hold, heartbeat moved by the int8, no data
	opTime             // byte: time passes, byte × 100 ms
	opTick             // a gossip round
	opSetData          // byte: the application sets its data
	opDigest           // length, bytes: a peer's request with a raw digest
	opLeft             // addr, int8, byte: a peer's request saying addr left at the heartbeat we hold moved by the int8; partial if the byte is odd
	opResponse         // addr, purpose, length, bytes: addr's answer with a raw digest, wanting the data of fuzzAddrs
	opSpread           // a spread of rumors
	opLeave            // this member leaves
	opContacted        // addr, byte: the outcome of contacting addr, a success if the byte is odd
	opRefused          // addr, byte: a call to addr made byte × 100 ms ago was refused
	opDead             // addr, int8, byte: a peer's request with a death notice of addr at the heartbeat we hold moved by the int8; partial if the byte is odd
	fuzzOps
)

// FuzzMerge drives a member's state with arbitrary inputs: entries,
// digests, records of members that left and death notices from peers'
// requests and answers, refused calls, rounds, spreads, data changes, a
// leave, and time passing. The
// input is a program of the operations above. After every step the table
// must hold at most MaxMembers entries, in a list and a map that agree, with
// a live count that counts them; this member must be in it with a positive
// heartbeat, alive until it leaves; a live member's heartbeat must not have
// decreased, a dead member must come back only with a higher heartbeat,
// and every live peer must be one a peer would accept. Every message must
// go to a live peer but a push, which answers its asker, and no event may be
// about this member.
func FuzzMerge(f *testing.F) {
	f.Fuzz(func(t *testing.T, prog []byte) {
		m := newMember(t, func(c *Config) {
			c.MaxMembers = fuzzMaxMembers
			c.MaxDataSize = 64
			c.Seeds = []string{"10.0.0.5:7000", "seed.example:7000"}
			c.Debug = true
		})
		type seen struct {
			hb    int64
			alive bool
		}
		last := map[string]seen{}
		snapshot := func() {
			clear(last)
			for addr, e := range m.table.members {
				last[addr] = seen{e.heartbeat, e.alive}
			}
		}
		checkOutput := func(step int, out Output) {
			for _, s := range out.Send {
				if m.IsSelf(s.To) {
					t.Fatalf("step %d: %s message to this member", step, s.Purpose)
				}
				if s.Purpose == Push {
					continue
				}
				if e := m.table.members[s.To]; e == nil || !e.alive {
					t.Fatalf("step %d: %s message to %s, not a live peer", step, s.Purpose, s.To)
				}
				if len(s.Req.Members) > maxRumorEntries {
					t.Fatalf("step %d: %s message with %d members", step, s.Purpose, len(s.Req.Members))
				}
			}
			for _, ev := range out.Events {
				if m.IsSelf(ev.Addr) {
					t.Fatalf("step %d: event %v about this member", step, ev.Type)
				}
			}
			for _, c := range out.Contacts {
				if c.Purpose != Join && c.Purpose != Recover {
					t.Fatalf("step %d: contact of %s for %s", step, c.Name, c.Purpose)
				}
			}
		}
		check := func(step int) {
			tb := &m.table
			if n := len(tb.members); n > fuzzMaxMembers {
				t.Fatalf("step %d: table holds %d members, MaxMembers %d", step, n, fuzzMaxMembers)
			}
			if len(tb.list) != len(tb.members) {
				t.Fatalf("step %d: %d entries listed, %d mapped", step, len(tb.list), len(tb.members))
			}
			live := 0
			for i, e := range tb.list {
				if e.pos != i || tb.members[e.addr] != e {
					t.Fatalf("step %d: entry %d (%s) at position %d, mapped %p, is %p", step, i, e.addr, e.pos, tb.members[e.addr], e)
				}
				if e.alive {
					live++
				}
			}
			if live != tb.live {
				t.Fatalf("step %d: %d live entries, live count %d", step, live, tb.live)
			}
			alive, failed, left := m.Counts()
			if alive != live || alive+failed+left != len(tb.members) || len(m.Members()) != live {
				t.Fatalf("step %d: Counts() = %d, %d, %d and %d Members() for %d entries, %d live", step, alive, failed, left, len(m.Members()), len(tb.members), live)
			}
			if tb.members[selfAddr] != tb.self || tb.self.heartbeat <= 0 || tb.self.alive != m.Running() {
				t.Fatalf("step %d: self entry lost, with heartbeat %d, or alive %v while running %v", step, tb.self.heartbeat, tb.self.alive, m.Running())
			}
			if highest := m.now.Add(MaxHeartbeatLead).UnixMicro() + int64(step) + 1; tb.self.heartbeat > highest {
				t.Fatalf("step %d: own heartbeat %d beyond %d", step, tb.self.heartbeat, highest)
			}
			if len(m.rumors) > fuzzMaxMembers {
				t.Fatalf("step %d: %d rumors, MaxMembers %d", step, len(m.rumors), fuzzMaxMembers)
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
				if e.alive && e != tb.self {
					if reason := m.checkEntry(e.withData(), m.now); reason != "" {
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
		held := func(a string) (hb, v int64) {
			if e := m.table.members[a]; e != nil {
				return e.heartbeat, e.version
			}
			return 0, 0
		}
		request := func(req ExchangeRequest) Output {
			_, out, _ := m.HandleRequest(req, m.now)
			return out
		}
		for step := 0; r.Len() > 0 && step < 1000; step++ {
			snapshot()
			var out Output
			switch op := next(); op % fuzzOps {
			case opEntry:
				a := addr()
				var hb, v [8]byte
				r.Read(hb[:])
				r.Read(v[:])
				data := make([]byte, next())
				r.Read(data)
				out = m.mergeAt(Entry{Addr: a, Heartbeat: int64(binary.BigEndian.Uint64(hb[:])), Version: int64(binary.BigEndian.Uint64(v[:])), WithData: true, Data: data})
			case opNudge:
				a := addr()
				hb, v := held(a)
				out = request(ExchangeRequest{From: stranger, Partial: true, Members: []Entry{{Addr: a, Heartbeat: hb + int64(int8(next())), Version: v}}})
			case opTime:
				m.advance(time.Duration(next()) * 100 * time.Millisecond)
			case opTick:
				out = m.Tick(m.now, nil)
			case opSetData:
				out = m.SetData([]byte(strconv.Itoa(int(next()))), m.now)
			case opDigest:
				d := make([]byte, next())
				r.Read(d)
				out = request(ExchangeRequest{From: stranger, Digest: d})
			case opLeft:
				a := addr()
				hb, v := held(a)
				hb += int64(int8(next()))
				out = request(ExchangeRequest{From: stranger, Partial: next()%2 == 1, Left: AppendDigest(nil, a, hb, min(v, hb))})
			case opResponse:
				a := addr()
				p := Purpose(next()%6 + 1)
				d := make([]byte, next())
				r.Read(d)
				out = m.HandleResponse(a, p, ExchangeResponse{From: a, Digest: d, Want: fuzzAddrs}, m.now)
			case opSpread:
				out = m.Spread(m.now, fuzzAddrs)
			case opLeave:
				out = m.Leave(m.now)
			case opContacted:
				a := addr()
				out = m.Contacted(a, next()%2 == 1, errors.New("refused"), m.now)
			case opRefused:
				a := addr()
				out = m.Refused(a, m.now.Add(-time.Duration(next())*100*time.Millisecond), m.now)
			case opDead:
				a := addr()
				hb, v := held(a)
				hb += int64(int8(next()))
				out = request(ExchangeRequest{From: stranger, Partial: next()%2 == 1, Dead: AppendDigest(nil, a, hb, min(v, hb))})
			}
			checkOutput(step, out)
			check(step)
		}
	})
}

// TestWriteFuzzSeeds writes the generated seed corpus when run with
// -write-fuzz-seeds; otherwise it checks that the seeds are there and up to
// date.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzMerge")
	for seed, in := range mergeSeeds() {
		file := filepath.Join(dir, "seed-"+seed)
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(in)))
		if *writeFuzzSeeds {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(file, []byte(content), 0o644))
			continue
		}
		got, err := os.ReadFile(file)
		require.NoError(t, err, "seed %s missing: run go test -run TestWriteFuzzSeeds -write-fuzz-seeds", file)
		require.Equal(t, content, string(got), "seed %s out of date: run go test -run TestWriteFuzzSeeds -write-fuzz-seeds", file)
	}
}

// mergeSeeds are FuzzMerge programs: ordinary gossip, a failure and a
// return, a flood, hostile heartbeats, a leave and a return, rumors,
// answers, and death notices.
func mergeSeeds() map[string][]byte {
	entry := func(addr byte, hb, version int64, data ...byte) []byte {
		b := []byte{opEntry, addr}
		b = binary.BigEndian.AppendUint64(b, uint64(hb))
		b = binary.BigEndian.AppendUint64(b, uint64(version))
		return append(append(b, byte(len(data))), data...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	start := t0.UnixMicro()
	digest := digestOf(Entry{Addr: "10.0.0.2:7000", Heartbeat: start + 9, Version: start}, Entry{Addr: "10.0.0.7:7000", Heartbeat: 5, Version: 5})
	return map[string][]byte{
		"gossip": cat(entry(1, start, start), entry(2, start+5, start+5, 'x'),
			[]byte{opNudge, 1, 1, opNudge, 2, 1, opTime, 10, opTick, opNudge, 2, 1}),
		"fail-return": cat(entry(1, 100, 100), []byte{opTime, 255, opTick, opTime, 255, opTick},
			entry(1, start+1<<40, start+1<<40), []byte{opTick}),
		"flood": cat(entry(1, 9, 9), entry(2, 9, 9), entry(3, 9, 9), entry(4, 9, 9), entry(5, 9, 9),
			[]byte{opEntry, 0xf9, '1', '.', '2', '.', '3', '.', '4', ':', '5'}, make([]byte, 17)),
		"self-huge":  cat(entry(0, math.MaxInt64, 0), []byte{opTick, opSetData, 7}),
		"peer-huge":  cat(entry(1, start, start), entry(1, 1<<62, 0), []byte{opNudge, 1, 1}),
		"peer-max":   cat(entry(1, math.MaxInt64, 0), []byte{opTime, 70, opTick}, entry(1, 5, 5)),
		"bad-inputs": cat(entry(6, 5, 5), entry(7, 5, 5), entry(1, -5, 0), entry(1, 0, 0), entry(2, 5, 5, make([]byte, 100)...), entry(1, 5, 6)),
		"leave-return": cat(entry(1, 100, 90), []byte{opLeft, 1, 1, 0, opNudge, 1, 0, opLeft, 1, 0x80, 1},
			entry(1, start, start, 'n'), []byte{opTime, 255, opTick, opTime, 255, opTick}),
		"rumors": cat(entry(1, start, start), entry(2, start, start), []byte{opSetData, 1, opSpread, opTime, 1, opSpread, opSpread}),
		"response": cat(entry(1, start, start), []byte{opResponse, 1, 3, byte(len(digest))}, digest,
			[]byte{opResponse, 0, 3, 0, opDigest, byte(len(digest))}, digest, []byte{opTick}),
		"leave": cat(entry(1, start, start), []byte{opLeave, opTick, opLeave, opLeft, 0, 5, 0}, entry(2, start, start), []byte{opSpread}),
		"self": cat([]byte{opNudge, 0, 5, opLeft, 0, 1, 0, opTick, opNudge, 0, 0xff},
			[]byte{opContacted, 5, 0, opTime, 20, opTick, opContacted, 5, 0, opContacted, 5, 1}),
		"notice": cat(entry(1, start, start), entry(2, start, start), []byte{opRefused, 1, 0, opSpread, opDead, 2, 3, 1, opDead, 0, 0, 0},
			entry(1, start+3, start), []byte{opNudge, 1, 0x7f, opTick, opDead, 3, 0, 0, opLeft, 2, 1, 1, opDead, 2, 0, 0, opTime, 255, opTick}),
		"empty": {},
	}
}
