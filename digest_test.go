package gossip

import (
	"net/rpc"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
