package gossip

import (
	"encoding/binary"
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
	}
	var d []byte
	for _, e := range in {
		d = appendDigest(d, e.Addr, e.Heartbeat, e.Version)
	}
	var out []Entry
	require.NoError(t, readDigest(d, 10, func(addr []byte, hb, v int64) error {
		out = append(out, Entry{Addr: string(addr), Heartbeat: hb, Version: v})
		return nil
	}))
	assert.Equal(t, in, out)
	assert.ErrorIs(t, readDigest(d, 2, func([]byte, int64, int64) error { return nil }), errBadDigest, "more records than allowed")
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
		"length past end":   rec(60, "a:1234", 5, 1),
		"address too long":  rec(maxAddrLen+1, strings.Repeat("a", maxAddrLen+1), 5, 1),
		"zero heartbeat":    rec(6, "a:1234", 0, 0),
		"version below 0":   rec(6, "a:1234", 5, 6),
		"heartbeat too big": rec(6, "a:1234", math.MaxInt64+1, 0),
		"bad varint":        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		err := readDigest(d, 10, func([]byte, int64, int64) error { return nil })
		assert.ErrorIs(t, err, errBadDigest, name)
	}
}

func TestExchangeWithMalformedDigestIsRefused(t *testing.T) {
	gs := startCluster(t, 2, nil)
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	c, err := rpc.Dial("tcp", gs[0].Addr())
	require.NoError(t, err)
	defer c.Close()
	err = c.Call("Gossip.Exchange", ExchangeRequest{From: "10.9.9.9:1", Digest: []byte{0x05, 'a'}}, &ExchangeResponse{})
	assert.ErrorContains(t, err, "malformed digest")
	// The connection and the member carry on.
	var resp GetMembersResponse
	require.NoError(t, c.Call("Gossip.GetMembers", GetMembersRequest{}, &resp))
	assert.Len(t, resp.Members, 2)
}
