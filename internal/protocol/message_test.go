package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"net/rpc"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDigestRoundTrip(t *testing.T) {
	in := []Entry{
		{Addr: "10.0.0.1:7000", Heartbeat: 1, Version: 0},
		{Addr: "[::1]:7000", Heartbeat: math.MaxInt64, Version: math.MaxInt64},
		{Addr: "host.example:1", Heartbeat: 1_700_000_000_000_042, Version: 1_700_000_000_000_000},
		{Addr: strings.Repeat("a", MaxAddrLen), Heartbeat: 5, Version: 5},
		{Addr: "", Heartbeat: 5, Version: 1},
	}
	d := digestOf(in...)
	var out []Entry
	require.NoError(t, ReadDigest(d, 10, func(addr []byte, hb, v int64) error {
		out = append(out, Entry{Addr: string(addr), Heartbeat: hb, Version: v})
		return nil
	}))
	assert.Equal(t, in, out)
	assert.ErrorIs(t, ReadDigest(d, 2, func([]byte, int64, int64) error { return nil }), ErrBadDigest, "more records than allowed")
	assert.NoError(t, ReadDigest(nil, 0, func([]byte, int64, int64) error { return nil }), "an empty digest")
}

func TestMalformedDigests(t *testing.T) {
	rec := func(l uint64, addr string, hb, age uint64) []byte {
		b := binary.AppendUvarint(nil, l)
		b = append(b, addr...)
		b = binary.AppendUvarint(b, hb)
		return binary.AppendUvarint(b, age)
	}
	good := rec(6, "a:1234", 5, 1)
	for name, d := range map[string][]byte{
		"truncated":         good[:len(good)-1],
		"no heartbeat":      good[:7],
		"length past end":   rec(60, "a:1234", 5, 1),
		"address too long":  rec(MaxAddrLen+1, strings.Repeat("a", MaxAddrLen+1), 5, 1),
		"zero heartbeat":    rec(6, "a:1234", 0, 0),
		"version below 0":   rec(6, "a:1234", 5, 6),
		"heartbeat too big": rec(6, "a:1234", math.MaxInt64+1, 0),
		"bad varint":        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"good then bad":     append(append([]byte(nil), good...), 0x05, 'a'),
	} {
		err := ReadDigest(d, 10, func([]byte, int64, int64) error { return nil })
		assert.ErrorIs(t, err, ErrBadDigest, name)
	}
}

func TestReadDigestStopsAtCallerError(t *testing.T) {
	stop := errors.New("stop")
	d := digestOf(Entry{Addr: "a:1", Heartbeat: 1}, Entry{Addr: "b:1", Heartbeat: 1})
	n := 0
	err := ReadDigest(d, 10, func([]byte, int64, int64) error { n++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n, "records read after the error")
}

func TestAppendDigestSize(t *testing.T) {
	// An entry takes its address plus about ten bytes.
	d := AppendDigest(nil, "10.0.0.1:7000", 1_700_000_000_000_042, 1_700_000_000_000_000)
	if got, want := len(d), 1+13+8+1; got != want {
		t.Errorf("len(AppendDigest(13-byte address, µs heartbeat, age 42)) = %d, want %d", got, want)
	}
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
	if err := enc.Encode(&hdr); err != nil {
		b.Fatal(err)
	}
	if err := enc.Encode(req); err != nil {
		b.Fatal(err)
	}
	return buf.Len()
}

// BenchmarkDigest measures building and encoding the request a member sends
// each round, and reports its size per member entry.
func BenchmarkDigest(b *testing.B) {
	for _, n := range []int{32, 128, 1000} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			m := benchMember(b, n)
			req, ok := m.Request(stranger)
			if !ok {
				b.Fatal("no request")
			}
			size := wireSize(b, req)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req, _ := m.Request(stranger)
				if err := gob.NewEncoder(&bytes.Buffer{}).Encode(req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size)/float64(n), "bytes/entry")
		})
	}
}
