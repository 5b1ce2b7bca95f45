package gossip

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rec is one digest record, for tests.
type rec struct {
	addr               string
	heartbeat, version int64
}

func digestOf(rs []rec) []byte {
	var d []byte
	for _, r := range rs {
		d = protocol.AppendDigest(d, r.addr, r.heartbeat, r.version)
	}
	return d
}

func recsOf(t *testing.T, d []byte) []rec {
	t.Helper()
	var rs []rec
	require.NoError(t, protocol.ReadDigest(d, math.MaxInt, func(addr []byte, hb, v int64) error {
		rs = append(rs, rec{string(addr), hb, v})
		return nil
	}))
	return rs
}

// roundTrip packs d with p, unpacks it with u, and checks that it came
// back unchanged; it returns the packed size.
func roundTrip(t *testing.T, p *packer, u *unpacker, d []byte) int {
	t.Helper()
	packed, err := p.pack(nil, d)
	require.NoError(t, err)
	got, err := u.unpack(packed)
	require.NoError(t, err)
	require.Equal(t, recsOf(t, d), recsOf(t, got))
	return len(packed)
}

func members(n int, hb int64) []rec {
	rs := make([]rec, n)
	for i := range rs {
		// Members that started within a second, with their data set
		// about when they started.
		start := hb + int64(i)*7919
		rs[i] = rec{fmt.Sprintf("10.0.%d.%d:7946", i/256, i%256), start + 60, start + 1}
	}
	return rs
}

func TestPackSteadyRecordsTakeOneByte(t *testing.T) {
	const n = 128
	p, u := newPacker(4096), newUnpacker(4096)
	rs := members(n, 1_700_000_000_000_000) // heartbeats of microsecond clocks
	first := roundTrip(t, p, u, digestOf(rs))
	assert.Less(t, first, 13*n, "the first digest sends every address, but shortened")
	assert.Greater(t, first, 4*n)
	for round := 0; round < 5; round++ {
		for i := range rs {
			rs[i].heartbeat += int64(1 + i%3)
		}
		assert.Equal(t, 1+n, roundTrip(t, p, u, digestOf(rs)), "round %d", round)
	}
}

func TestPackerKeepsIndexOnlyWhileLookupsNeedIt(t *testing.T) {
	const n = 64
	p, u := newPacker(4096), newUnpacker(4096)
	rs := members(n, 1000)
	roundTrip(t, p, u, digestOf(rs))
	assert.Nil(t, p.d.index, "a first digest looks nothing up")

	shuffled := append([]rec(nil), rs...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	roundTrip(t, p, u, digestOf(shuffled))
	assert.NotNil(t, p.d.index, "a digest out of the dictionary's order needs the index")
	roundTrip(t, p, u, digestOf(shuffled))
	assert.NotNil(t, p.d.index, "in the order of the previous digest, but not of the dictionary")

	for range 2 {
		roundTrip(t, p, u, digestOf(rs))
	}
	assert.Nil(t, p.d.index, "a digest in the dictionary's order drops it")
	var sparse []rec
	for i := 0; i < n; i += findWalk + 5 {
		sparse = append(sparse, rs[i])
	}
	roundTrip(t, p, u, digestOf(sparse))
	assert.Nil(t, p.d.index, "some addresses, far apart but in the dictionary's order, as an answer names them")
	roundTrip(t, p, u, digestOf(append(shuffled, rec{"10.9.9.9:1", 5, 0})))
	assert.NotNil(t, p.d.index, "made again when needed")
}

// A dictionary finds an address whose hash the index gives to another one,
// as when two addresses collide, by looking at every address.
func TestDictFindsAnAddressPastAHashCollision(t *testing.T) {
	var d dict
	for i := range 40 {
		d.add([]byte(fmt.Sprintf("10.0.0.%d:7000", i)), 1, 0)
	}
	budget := 0
	b := []byte("10.0.0.33:7000")
	require.Equal(t, 33, d.find(b, 0, d.len(), &budget), "past the walk, through the index")
	d.index[d.hash(b)] = 5 // the hash of 33's address now names 5's
	assert.Equal(t, 33, d.find(b, 0, d.len(), &budget), "a colliding hash")
	assert.Equal(t, -1, d.find(b, 0, 30, &budget), "among the first 30 only")
	assert.Equal(t, -1, d.find([]byte("10.0.0.99:7000"), 0, d.len(), &budget), "an address it lacks")
}

// Nothing a dictionary holds per address is a pointer, so that the garbage
// collector need not scan dictionaries.
func TestDictEntriesHoldNoPointers(t *testing.T) {
	for _, f := range reflect.VisibleFields(reflect.TypeFor[dictEntry]()) {
		switch f.Type.Kind() {
		case reflect.Int64, reflect.Uint32, reflect.Uint16:
		default:
			t.Errorf("dictEntry.%s is a %v", f.Name, f.Type)
		}
	}
}

func TestPackChanges(t *testing.T) {
	p, u := newPacker(64), newUnpacker(64)
	rs := members(10, 1000)
	roundTrip(t, p, u, digestOf(rs))

	cases := map[string]func([]rec) []rec{
		"nothing changes": func(rs []rec) []rec { return rs },
		"empty digest":    func([]rec) []rec { return nil },
		"version changes": func(rs []rec) []rec { rs[3].version = rs[3].heartbeat; return rs },
		"heartbeat falls": func(rs []rec) []rec { rs[4].heartbeat -= 50; return rs },
		"members dropped": func(rs []rec) []rec { return append(rs[:2:2], rs[5:]...) },
		"reversed": func(rs []rec) []rec {
			out := make([]rec, len(rs))
			for i, r := range rs {
				out[len(rs)-1-i] = r
			}
			return out
		},
		"shuffled": func(rs []rec) []rec {
			out := append([]rec(nil), rs...)
			rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
			return out
		},
		"new members among old": func(rs []rec) []rec {
			return append([]rec{{"[::1]:7000", 1, 0}}, append(rs, rec{"10.9.9.9:1", math.MaxInt64, 0})...)
		},
		"huge jumps": func(rs []rec) []rec {
			rs[0].heartbeat, rs[0].version = math.MaxInt64, math.MaxInt64
			rs[1].heartbeat, rs[1].version = 1, 1
			return rs
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			d := digestOf(change(append([]rec(nil), rs...)))
			roundTrip(t, p, u, d)
			roundTrip(t, p, u, d)
		})
	}
}

func TestPackResetsAFullDictionary(t *testing.T) {
	const max = 8
	p, u := newPacker(max), newUnpacker(max)
	for gen := 0; gen < 5; gen++ {
		var rs []rec
		for i := 0; i < 5; i++ {
			rs = append(rs, rec{fmt.Sprintf("10.0.%d.%d:1", gen, i), 100, 0})
		}
		roundTrip(t, p, u, digestOf(rs))
		assert.LessOrEqual(t, p.d.len(), max)
		assert.LessOrEqual(t, u.d.len(), max)
	}
	_, err := p.pack(nil, digestOf(members(max+1, 5)))
	assert.Error(t, err, "a digest of more new members than the bound")
}

func TestUnpackRefusesMalformed(t *testing.T) {
	base := func() *unpacker {
		u := newUnpacker(4)
		_, err := u.unpack(packedOf(t, newPacker(4), []rec{{"a:1", 10, 5}, {"b:1", 20, 0}}))
		require.NoError(t, err)
		return u
	}
	newRec := func(prefix uint64, suffix string, dhb int64, age uint64) []byte {
		b := binary.AppendUvarint(nil, prefix<<1|kindNew)
		b = binary.AppendUvarint(b, uint64(len(suffix)))
		b = append(b, suffix...)
		b = binary.AppendUvarint(b, zigzag(dhb))
		return binary.AppendUvarint(b, age)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	long := func(step int64, ver bool) byte {
		b := byte(zigzag(step) << 3)
		if ver {
			b |= changed
		}
		return b
	}
	cases := map[string][]byte{
		"empty":                 {},
		"unknown flag":          {2},
		"truncated flags":       {0x80},
		"truncated record":      {0, 0x80},
		"long, no heartbeat":    {0, long(0, false)},
		"long, no version":      {0, long(0, true), 0},
		"long, unknown number":  {0, long(2, false), 1},
		"long, number below 0":  {0, long(-1, false), 1},
		"short past the end":    {0, kindShort, kindShort, kindShort},
		"short rise too big":    binary.AppendUvarint([]byte{0}, (maxRise+1)<<2|kindShort),
		"heartbeat to zero":     {0, long(0, false), zigzagByte(-10)},
		"version above":         {0, long(0, true), 0, zigzagByte(6)},
		"version below zero":    {0, long(0, true), 0, zigzagByte(-6)},
		"new, empty address":    cat([]byte{0}, newRec(0, "", 1, 0)),
		"new, prefix too long":  cat([]byte{0}, newRec(1, "c:1", 1, 0)),
		"new, zero heartbeat":   cat([]byte{0}, newRec(0, "c:1", 0, 0)),
		"new, below zero":       cat([]byte{0}, newRec(0, "c:1", -1, 0)),
		"new, age over":         cat([]byte{0}, newRec(0, "c:1", 5, 6)),
		"new, truncated":        cat([]byte{0}, newRec(0, "c:1", 5, 0)[:5]),
		"new, address too long": cat([]byte{0}, newRec(0, string(make([]byte, protocol.MaxAddrLen+1)), 5, 0)),
		"new, long prefix":      cat([]byte{0}, newRec(0, string(make([]byte, protocol.MaxAddrLen)), 5, 0), newRec(protocol.MaxAddrLen, "x", 0, 0)),
		"dictionary over max":   cat([]byte{0}, newRec(0, "c:1", 1, 0), newRec(0, "d:1", 0, 0), newRec(0, "e:1", 0, 0)),
		"records over max":      {0, kindShort, long(-1, false), 0, long(-1, false), 0, long(-1, false), 0, long(-1, false), 0},
		"heartbeat overflow":    cat([]byte{0, long(0, false)}, binary.AppendUvarint(nil, zigzag(math.MaxInt64-5))),
		"short overflow":        cat([]byte{0, long(1, false)}, binary.AppendUvarint(nil, zigzag(math.MaxInt64-30)), []byte{long(-2, false), 0, maxRise<<2 | kindShort}),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := base().unpack(in)
			assert.ErrorIs(t, err, errBadPacked)
		})
	}
}

func zigzagByte(v int64) byte { return byte(zigzag(v)) }

func packedOf(t *testing.T, p *packer, rs []rec) []byte {
	t.Helper()
	b, err := p.pack(nil, digestOf(rs))
	require.NoError(t, err)
	return b
}

// FuzzUnpack feeds arbitrary packed digests to an unpacker that has seen
// one digest: it must not panic, and what it returns must be a digest the
// protocol reads, within the bounds.
func FuzzUnpack(f *testing.F) {
	p := newPacker(fuzzMaxMembers)
	first := packedOf(&testing.T{}, p, []rec{{"10.0.0.1:7000", 1 << 50, 1 << 49}, {"10.0.0.2:7000", 7, 7}})
	next := packedOf(&testing.T{}, p, []rec{{"10.0.0.1:7000", 1<<50 + 3, 1 << 49}, {"10.0.0.3:7000", 1, 0}, {"10.0.0.2:7000", 9, 8}})
	f.Add(next)
	f.Add([]byte{1})
	f.Add([]byte{0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		u := newUnpacker(fuzzMaxMembers)
		_, err := u.unpack(first)
		require.NoError(t, err)
		d, err := u.unpack(in)
		if err != nil {
			return
		}
		n := 0
		require.NoError(t, protocol.ReadDigest(d, fuzzMaxMembers, func([]byte, int64, int64) error { n++; return nil }))
		require.LessOrEqual(t, u.d.len(), fuzzMaxMembers)
	})
}

// FuzzPackRoundTrip packs a sequence of digests that the input makes (a
// byte per record: which of eight addresses, how the heartbeat and version
// move, a zero byte ending a digest) with a small dictionary, and checks
// that each comes back unchanged: the two ends never fall out of step,
// whatever the order, the resets and the jumps.
func FuzzPackRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3, 0, 1, 2, 3, 0, 3, 2, 1, 0})
	f.Add([]byte{0x11, 0x22, 0x33, 0x44, 0x55, 0, 0x66, 0x77, 0x18, 0, 0xf1, 0xe2})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 5
		p, u := newPacker(limit), newUnpacker(limit)
		hb := make(map[string]rec)
		var rs []rec
		seen := make(map[string]bool)
		flush := func() {
			if len(rs) > limit {
				rs = rs[:limit]
			}
			roundTrip(t, p, u, digestOf(rs))
			rs, seen = rs[:0], make(map[string]bool)
		}
		for _, b := range in {
			if b == 0 {
				flush()
				continue
			}
			addr := fmt.Sprintf("10.0.0.%d:%d", b&7, 7000+int(b&7)*1000)
			if seen[addr] {
				continue
			}
			seen[addr] = true
			r, ok := hb[addr]
			if !ok {
				r = rec{addr, 1_700_000_000_000_000 + int64(b)*12345, 1_700_000_000_000_000}
			}
			switch b >> 3 & 3 {
			case 0:
				r.heartbeat++
			case 1:
				r.heartbeat += int64(b) * 1000
			case 2:
				r.heartbeat, r.version = r.heartbeat+int64(b), r.heartbeat
			case 3:
				r.heartbeat = max(r.version, r.heartbeat-int64(b))
			}
			hb[addr] = r
			rs = append(rs, r)
		}
		flush()
	})
}

func TestDictDropsSpareCapacityOnceSettled(t *testing.T) {
	p, u := newPacker(1000), newUnpacker(1000)
	all := members(200, 1)
	for n := 10; n <= len(all); n += 10 {
		roundTrip(t, p, u, digestOf(all[:n]))
	}
	for _, d := range []*dict{&p.d, &u.d} {
		assert.True(t, d.spare, "growing: the spare capacity is kept for the next addresses")
	}
	roundTrip(t, p, u, digestOf(all)) // adds nothing
	for _, d := range []*dict{&p.d, &u.d} {
		assert.False(t, d.spare)
		assert.LessOrEqual(t, cap(d.entries)-len(d.entries), len(d.entries)/8, "entries fitted")
		assert.LessOrEqual(t, cap(d.arena)-len(d.arena), len(d.arena)/8, "arena fitted")
	}
}

// BenchmarkPackForming packs and unpacks the digests of one connection
// while a cluster of 1,000 forms: each adds 5 addresses to the last.
func BenchmarkPackForming(b *testing.B) {
	all := members(1000, 1)
	var ds [][]byte
	for n := 5; n <= len(all); n += 5 {
		ds = append(ds, digestOf(all[:n]))
	}
	b.ReportAllocs()
	for b.Loop() {
		p, u := newPacker(1000), newUnpacker(1000)
		var buf []byte
		for _, d := range ds {
			var err error
			if buf, err = p.pack(buf[:0], d); err != nil {
				b.Fatal(err)
			}
			if _, err := u.unpack(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestUnpackAllocatesASteadyDigestOnce(t *testing.T) {
	const n = 128
	p, u := newPacker(4096), newUnpacker(4096)
	rs := members(n, 1_700_000_000_000_000)
	// Each round an exchange's digest of every member, then a probe's
	// naming one, over the same connection.
	var packed [][]byte
	for round := range 12 {
		for i := range rs {
			rs[i].heartbeat++
		}
		for _, d := range [][]byte{digestOf(rs), digestOf(rs[round : round+1])} {
			b, err := p.pack(nil, d)
			require.NoError(t, err)
			packed = append(packed, b)
		}
	}
	next := 0
	unpack := func() {
		for range 2 {
			_, err := u.unpack(packed[next])
			require.NoError(t, err)
			next++
		}
	}
	unpack()
	allocs := testing.AllocsPerRun(10, unpack)
	// A steady record is a byte and its digest entry some twenty: sized
	// by the packed length alone, the exchange's digest would grow by
	// doubling, and sized by the probe's just before, too.
	assert.Equal(t, 2.0, allocs, "each digest allocated once")
}
