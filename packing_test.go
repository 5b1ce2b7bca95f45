package gossip

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"io"
	"net"
	"net/rpc"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoService answers Gossip.Exchange with the request's digest, and keeps
// the requests it was given.
type echoService struct {
	mu   sync.Mutex
	reqs []ExchangeRequest
}

func (s *echoService) Exchange(req ExchangeRequest, resp *ExchangeResponse) error {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	*resp = ExchangeResponse{From: "server:1", Cluster: req.Cluster, Digest: req.Digest}
	return nil
}

func (s *echoService) last() ExchangeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[len(s.reqs)-1]
}

// writeCounter counts the bytes written to a connection, and those read
// in read if set.
type writeCounter struct {
	net.Conn
	n    *atomic.Int64
	read *atomic.Int64
}

func (c writeCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.read != nil {
		c.read.Add(int64(n))
	}
	return n, err
}

func (c writeCounter) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// servePair serves an echoService over one end of a pipe with a member's
// server codec and returns the other end, and the service.
func servePair(t *testing.T, written *atomic.Int64) (net.Conn, *echoService) {
	t.Helper()
	cfg, err := testConfig(t).withDefaults()
	require.NoError(t, err)
	svc := &echoService{}
	server := rpc.NewServer()
	require.NoError(t, server.RegisterName(serviceName, svc))
	client, conn := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		server.ServeCodec(newServerCodec(context.Background(), writeCounter{conn, written, nil}, &inbound{}, &cfg, cfg.Logger))
	}()
	t.Cleanup(func() {
		client.Close()
		<-done
	})
	return client, svc
}

func TestMembersPackDigestsOnAConnection(t *testing.T) {
	var sent, answered, ignored atomic.Int64
	conn, svc := servePair(t, &ignored)
	cfg, err := testConfig(t).withDefaults()
	require.NoError(t, err)
	c := rpc.NewClientWithCodec(newClientCodec(writeCounter{conn, &sent, &answered}, &cfg, nil))
	defer c.Close()

	const n = 128
	rs := members(n, 1_700_000_000_000_000)
	for round := 0; round < 4; round++ {
		for i := range rs {
			rs[i].heartbeat++
		}
		sent.Store(0)
		answered.Store(0)
		req := ExchangeRequest{From: "client:1", Cluster: "c", Digest: digestOf(rs)}
		var resp ExchangeResponse
		require.NoError(t, c.Call(exchangeMethod, req, &resp))
		got := svc.last()
		assert.Equal(t, req.From, got.From, "round %d", round)
		assert.Equal(t, req.Cluster, got.Cluster)
		assert.Equal(t, recsOf(t, req.Digest), recsOf(t, got.Digest))
		assert.Empty(t, got.Packed)
		assert.Equal(t, "server:1", resp.From)
		assert.Equal(t, "c", resp.Cluster)
		assert.Equal(t, recsOf(t, req.Digest), recsOf(t, resp.Digest))
		assert.Empty(t, resp.Packed)
		t.Logf("round %d: request %d bytes, response %d bytes", round, sent.Load(), answered.Load())
		if round == 0 {
			assert.Less(t, sent.Load(), int64(20*n), "the first request sends the addresses, shortened")
		} else {
			// A byte a member, and the messages' own overhead.
			assert.Less(t, sent.Load(), int64(n+20), "round %d request", round)
			assert.Less(t, answered.Load(), int64(n+20), "round %d response", round)
		}
	}
}

func TestPlainClientsGetPlainDigests(t *testing.T) {
	var answered atomic.Int64
	conn, svc := servePair(t, &answered)
	c := rpc.NewClient(conn)
	defer c.Close()
	rs := members(3, 100)
	for i := 0; i < 3; i++ {
		req := ExchangeRequest{From: "plain:1", Digest: digestOf(rs)}
		var resp ExchangeResponse
		require.NoError(t, c.Call(exchangeMethod, req, &resp))
		assert.Equal(t, req.Digest, svc.last().Digest)
		assert.Equal(t, "plain:1", svc.last().From)
		assert.Equal(t, req.Digest, resp.Digest, "a plain client gets a plain digest")
		assert.Empty(t, resp.Packed)
		assert.Equal(t, "server:1", resp.From)
	}
}

// rawExchange writes one Gossip.Exchange request on w as a client would.
func rawExchange(t *testing.T, enc *gob.Encoder, seq uint64, req ExchangeRequest) {
	t.Helper()
	require.NoError(t, enc.Encode(rpc.Request{ServiceMethod: exchangeMethod, Seq: seq}))
	require.NoError(t, enc.Encode(req))
}

func TestMalformedPackedDigestClosesTheConnection(t *testing.T) {
	var answered atomic.Int64
	cases := map[string][]byte{
		"unknown number": {0, 9 << 2, 2},
		"bad flags":      {0x40},
		"truncated":      {0, kindNew, 5, 'a'},
	}
	for name, packed := range cases {
		t.Run(name, func(t *testing.T) {
			conn, svc := servePair(t, &answered)
			var stream bytes.Buffer
			enc := gob.NewEncoder(&stream)
			p := newPacker(100)
			first, err := p.pack(nil, digestOf(members(3, 10)))
			require.NoError(t, err)
			rawExchange(t, enc, 1, ExchangeRequest{From: "x:1", Packed: first})
			rawExchange(t, enc, 2, ExchangeRequest{From: "x:1", Packed: packed})
			rawExchange(t, enc, 3, ExchangeRequest{From: "x:1", Packed: first})
			go conn.Write(stream.Bytes())

			// Requests are served concurrently: answers come in any order.
			dec := gob.NewDecoder(conn)
			errs := make(map[uint64]string)
			for i := 0; i < 2; i++ {
				var hdr rpc.Response
				require.NoError(t, dec.Decode(&hdr))
				errs[hdr.Seq] = hdr.Error
				if hdr.Error == "" {
					require.NoError(t, dec.Decode(&ExchangeResponse{}))
				} else {
					require.NoError(t, dec.Decode(&struct{}{}))
				}
			}
			assert.Empty(t, errs[1])
			assert.Contains(t, errs[2], "malformed packed digest")
			// Nothing more: the server closed the connection.
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			err = dec.Decode(&rpc.Response{})
			assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe), "got %v", err)
			assert.Len(t, svc.reqs, 1, "only the good request was served")
		})
	}
}

func TestClientClosesConnectionOnMalformedPackedAnswer(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	cfg, err := testConfig(t).withDefaults()
	require.NoError(t, err)
	c := rpc.NewClientWithCodec(newClientCodec(client, &cfg, nil))
	defer c.Close()
	go func() {
		dec, enc := gob.NewDecoder(server), gob.NewEncoder(server)
		var hdr rpc.Request
		var req ExchangeRequest
		if dec.Decode(&hdr) != nil || dec.Decode(&req) != nil {
			return
		}
		enc.Encode(rpc.Response{Seq: hdr.Seq})
		enc.Encode(ExchangeResponse{From: "s:1", Packed: []byte{0, 4 << 2, 1}})
	}()
	err = c.Call(exchangeMethod, ExchangeRequest{From: "c:1"}, &ExchangeResponse{})
	assert.ErrorContains(t, err, "malformed packed digest")
	// The codec closed the connection. Whether net/rpc's reader has seen
	// it yet (ErrShutdown) or not (the write fails on the closed pipe),
	// the next call does not reach the server.
	err = c.Call(exchangeMethod, ExchangeRequest{From: "c:1"}, &ExchangeResponse{})
	assert.True(t, errors.Is(err, rpc.ErrShutdown) || errors.Is(err, io.ErrClosedPipe), "the connection is not used again: got %v", err)
}

// OldExchangeRequest and OldExchangeResponse are Gossip.Exchange's messages as members
// built before packing know them.
type OldExchangeRequest struct {
	From, Cluster string
	Digest        []byte
	Members       []Entry
}

type OldExchangeResponse struct {
	From, Cluster string
	Digest        []byte
}

type oldService struct{ got chan OldExchangeRequest }

func (s *oldService) Exchange(req OldExchangeRequest, resp *OldExchangeResponse) error {
	s.got <- req
	*resp = OldExchangeResponse{From: "old:1", Digest: req.Digest}
	return nil
}

func TestMembersFallBackToPlainWithOldMembers(t *testing.T) {
	svc := &oldService{got: make(chan OldExchangeRequest, 10)}
	server := rpc.NewServer()
	require.NoError(t, server.RegisterName(serviceName, svc))
	client, conn := net.Pipe()
	go server.ServeConn(conn)
	cfg, err := testConfig(t).withDefaults()
	require.NoError(t, err)
	c := rpc.NewClientWithCodec(newClientCodec(client, &cfg, nil))
	defer c.Close()

	d := digestOf(members(3, 100))
	var resp ExchangeResponse
	require.NoError(t, c.Call(exchangeMethod, ExchangeRequest{From: "new:1", Digest: d}, &resp))
	got := <-svc.got
	assert.Equal(t, "new:1", got.From)
	assert.Empty(t, got.Digest, "the old member cannot read the first, packed request")
	assert.Equal(t, "old:1", resp.From)
	for i := 0; i < 2; i++ {
		require.NoError(t, c.Call(exchangeMethod, ExchangeRequest{From: "new:1", Digest: d}, &resp))
		got = <-svc.got
		assert.Equal(t, "new:1", got.From)
		assert.Equal(t, d, got.Digest, "later requests are plain")
		assert.Equal(t, d, resp.Digest)
	}
}
