package gossip

import (
	"bytes"
	"encoding/gob"
	"io"
	"net"
	"net/rpc"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closedWithin reports whether c was closed by the server within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		return true // EOF
	}
	ne, ok := err.(net.Error)
	return !ok || !ne.Timeout()
}

func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	gs := startCluster(t, 3, func(i int, c *Config) {
		c.RPCTimeout = 300 * time.Millisecond
		c.MaxMessageSize = 64 << 10
		c.MaxDataSize = 1 << 10
	})
	requireView(t, gs, addrsOf(gs...), converge, "converge")
	target := gs[0]

	dial := func() net.Conn {
		c, err := net.Dial("tcp", target.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	var header bytes.Buffer
	require.NoError(t, gob.NewEncoder(&header).Encode(rpc.Request{ServiceMethod: "Gossip.Exchange", Seq: 1}))

	cases := map[string][]byte{
		"garbage":              []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"oversized length":     {0xfc, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3},
		"bad length prefix":    {0xf0, 1, 2, 3},
		"header then garbage":  append(header.Bytes(), 0x05, 0xff, 0xff, 0xff, 0xff, 0xff),
		"just over the limit":  append([]byte{0xfd, 0x01, 0x00, 0x01}, make([]byte, 100)...),
		"never speaks (empty)": nil,
	}
	for name, payload := range cases {
		c := dial()
		if payload != nil {
			_, err := c.Write(payload)
			require.NoError(t, err, name)
		}
		assert.True(t, closedWithin(c, 10*time.Second), "%s: connection not closed", name)
	}

	// The member still answers and gossips.
	rc := plainClient(t, target.Addr())
	var resp GetMembersResponse
	require.NoError(t, rc.Call("Gossip.GetMembers", GetMembersRequest{}, &resp))
	assert.Len(t, resp.Members, 3)
	require.NoError(t, gs[2].UpdateData("still gossiping"))
	assert.Eventually(t, func() bool { return dataString(target, gs[2].Addr()) == "still gossiping" }, converge, 5*time.Millisecond)
	requireView(t, gs, addrsOf(gs...), converge, "nobody was dropped")
}
