package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gossipfd/gossip"
)

// member is one row of a member's GetMembers answer, its data decoded
// generically.
type member struct {
	Addr      string
	Heartbeat int64
	Data      any
}

// observation is what one queried address answered.
type observation struct {
	Addr    string
	Members []member  // nil if Err
	Stats   *counters // nil if Err, or if the member does not serve Gossip.Stats
	Err     error
	Took    time.Duration
}

// counters is a member's gossip.Stats, as Gossip.Stats answers it.
type counters struct {
	Alive, Failed, Left            int64
	FailureTime                    time.Duration
	Unanswered                     float64       // share of its last calls unanswered (local health)
	Timeout                        time.Duration // the timeout rule's wait now: FailureTime, or longer
	Rounds                         uint64
	MessagesSent, MessagesReceived uint64
	BytesSent, BytesReceived       uint64
	RPCErrors, RPCTimeouts         uint64
	ExchangesSkipped               uint64
	Merges                         uint64
	MergeTime, LastMergeTime       time.Duration
	EventOverruns                  uint64
}

// parseCounters reads a decoded StatsResponse; fields it lacks stay zero,
// so that members of other versions still show what they have.
func parseCounters(v any) (*counters, error) {
	resp, ok := v.(Struct)
	if !ok {
		return nil, fmt.Errorf("the Stats answer is a %T, not a struct", v)
	}
	sv, _ := resp.Get("Stats")
	s, ok := sv.(Struct)
	if !ok {
		return nil, fmt.Errorf("the Stats answer holds a %T, not a struct", sv)
	}
	var c counters
	i := func(name string) int64 {
		switch x, _ := s.Get(name); x := x.(type) {
		case int64:
			return x
		case uint64:
			return int64(x)
		}
		return 0
	}
	u := func(name string) uint64 { return uint64(i(name)) }
	f := func(name string) float64 {
		x, _ := s.Get(name)
		v, _ := x.(float64)
		return v
	}
	c.Alive, c.Failed, c.Left = i("Alive"), i("Failed"), i("Left")
	c.FailureTime = time.Duration(i("FailureTime"))
	c.Unanswered, c.Timeout = f("Unanswered"), time.Duration(i("Timeout"))
	c.Rounds = u("Rounds")
	c.MessagesSent, c.MessagesReceived = u("MessagesSent"), u("MessagesReceived")
	c.BytesSent, c.BytesReceived = u("BytesSent"), u("BytesReceived")
	c.RPCErrors, c.RPCTimeouts = u("RPCErrors"), u("RPCTimeouts")
	c.ExchangesSkipped = u("ExchangesSkipped")
	c.Merges = u("Merges")
	c.MergeTime, c.LastMergeTime = time.Duration(i("MergeTime")), time.Duration(i("LastMergeTime"))
	c.EventOverruns = u("EventOverruns")
	return &c, nil
}

// errNotGossip marks an address that answered, but not as a gossip member.
var errNotGossip = errors.New("not a gossip member")

// httpAnswer is the error of an answer that is an HTTP response: the
// address is a web server's, most likely a member's HTTP API.
type httpAnswer struct{ status string }

func (e httpAnswer) Error() string { return fmt.Sprintf("an HTTP server answered %q", e.status) }

// seqBase is added to the sequence numbers of requests on the wire and
// taken off those of the answers, which echo them. An HTTP server, the
// likeliest wrong address, reads a request line up to a line end, and our
// first request would hold none: gob leaves out the zero sequence number
// of the first call. Sequence number 10 is written as the byte 0x0a, a
// line end, so an HTTP server answers the first request at once (400 Bad
// Request) rather than wait for a request line that never ends.
const seqBase = 10

// rawCodec is a net/rpc client codec that sends requests with encoding/gob
// and reads responses with the generic Decoder, so that no application type
// need be known. A response body is stored into a *any.
type rawCodec struct {
	conn net.Conn
	rbuf *bufio.Reader // the Decoder reads through it too
	dec  *Decoder
	enc  *gob.Encoder
	wbuf *bufio.Writer
	http atomic.Pointer[httpAnswer] // an HTTP answer read, if any
}

func newRawCodec(conn net.Conn) *rawCodec {
	rbuf := bufio.NewReader(conn)
	wbuf := bufio.NewWriter(conn)
	return &rawCodec{conn: conn, rbuf: rbuf, dec: NewDecoder(rbuf, gossip.DefaultMaxMessageSize), enc: gob.NewEncoder(wbuf), wbuf: wbuf}
}

func (c *rawCodec) WriteRequest(r *rpc.Request, body any) error {
	wire := *r
	wire.Seq += seqBase
	if err := c.enc.Encode(&wire); err != nil {
		return err
	}
	if err := c.enc.Encode(body); err != nil {
		return err
	}
	return c.wbuf.Flush()
}

// ReadResponseHeader reads an rpc.Response: struct{ServiceMethod string;
// Seq uint64; Error string}. An answer that starts as an HTTP response
// ("HTTP/1.1 400 Bad Request") is an httpAnswer.
func (c *rawCodec) ReadResponseHeader(r *rpc.Response) error {
	if b, err := c.rbuf.Peek(len("HTTP/")); err == nil && string(b) == "HTTP/" {
		line, _ := c.rbuf.ReadSlice('\n') // the status line, or the buffer's worth
		h := httpAnswer{status: strings.TrimSpace(string(line))}
		c.http.Store(&h)
		return h
	}
	v, err := c.dec.Decode()
	if err != nil {
		return err
	}
	s, ok := v.(Struct)
	if !ok {
		return fmt.Errorf("response header is a %T, not a struct", v)
	}
	method, _ := s.Get("ServiceMethod")
	seq, _ := s.Get("Seq")
	msg, _ := s.Get("Error")
	r.ServiceMethod, _ = method.(string)
	r.Error, _ = msg.(string)
	r.Seq, ok = seq.(uint64)
	if !ok || r.Seq < seqBase {
		return fmt.Errorf("response header without a sequence number")
	}
	r.Seq -= seqBase
	return nil
}

func (c *rawCodec) ReadResponseBody(body any) error {
	v, err := c.dec.Decode()
	if err != nil {
		return err
	}
	if p, ok := body.(*any); ok {
		*p = v
	}
	return nil
}

func (c *rawCodec) Close() error { return c.conn.Close() }

// httpAnswer returns the HTTP answer read, or nil. An answer that came
// before the request was sent fails the call with rpc.ErrShutdown, not
// with the answer.
func (c *rawCodec) httpAnswer() error {
	if h := c.http.Load(); h != nil {
		return *h
	}
	return nil
}

// query calls Gossip.GetMembers on addr, with TLS if o.tls is not nil,
// giving up after o.timeout, dial and TLS handshake included. It never
// blocks past the timeout or ctx.
func query(ctx context.Context, addr string, o options) observation {
	start := time.Now()
	members, stats, err := getMembers(ctx, addr, o.timeout, o.tls)
	return observation{Addr: addr, Members: members, Stats: stats, Err: err, Took: time.Since(start)}
}

// getMembers calls Gossip.GetMembers on addr and then, on the same
// connection, Gossip.Stats; a member that does not serve Stats (an older
// version) gives nil counters, not an error.
func getMembers(ctx context.Context, addr string, timeout time.Duration, tlsConfig *tls.Config) ([]member, *counters, error) {
	members, client, conn, err := callGetMembers(ctx, addr, timeout, tlsConfig)
	if err != nil {
		return nil, nil, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn.SetDeadline(time.Now().Add(timeout))
	var reply any
	call := client.Go("Gossip.Stats", gossip.StatsRequest{}, &reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		return members, nil, nil
	}
	if call.Error != nil {
		return members, nil, nil
	}
	stats, err := parseCounters(reply)
	if err != nil {
		return members, nil, nil
	}
	return members, stats, nil
}

// callGetMembers calls Gossip.GetMembers on addr and returns the client,
// still open, for the caller to close.
func callGetMembers(ctx context.Context, addr string, timeout time.Duration, tlsConfig *tls.Config) (members []member, client *rpc.Client, conn net.Conn, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := dial(ctx, addr, tlsConfig)
	if err != nil {
		var slow slowStep
		if errors.As(err, &slow) {
			return nil, nil, nil, fmt.Errorf("no answer within %v (%s)", timeout, string(slow))
		}
		return nil, nil, nil, err
	}
	counted := &readCounter{Conn: raw}
	codec := newRawCodec(counted)
	c := rpc.NewClientWithCodec(codec)
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	var reply any
	call := c.Go("Gossip.GetMembers", gossip.GetMembersRequest{}, &reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			return nil, nil, nil, fmt.Errorf("no answer within %v", timeout)
		}
		return nil, nil, nil, ctx.Err()
	}
	var netErr net.Error
	var serverErr rpc.ServerError
	switch err := call.Error; {
	case err == nil:
	case errors.As(err, &netErr) && netErr.Timeout():
		return nil, nil, nil, fmt.Errorf("no answer within %v", timeout)
	case tlsConfig != nil && isTLSAlert(counted.err()):
		// Over TLS 1.3 the member checks our certificate after our
		// handshake ends: a refusal arrives at the first read, which may
		// come before the call is sent (the call then fails with
		// rpc.ErrShutdown), so look at what the read said.
		return nil, nil, nil, fmt.Errorf("TLS refused by the member (is -tls-cert signed by its CA?): %v", counted.err())
	case counted.n.Load() == 0 && tlsConfig == nil:
		// A member with TLS closes a plain connection without a word.
		return nil, nil, nil, fmt.Errorf("closed the connection without answering (%v); "+
			"if the cluster uses TLS, give -tls-cert, -tls-key and -tls-ca", err)
	case codec.httpAnswer() != nil:
		return nil, nil, nil, fmt.Errorf("%w: %v (the HTTP API's address? give the gossip one)", errNotGossip, codec.httpAnswer())
	case errors.As(err, &serverErr):
		return nil, nil, nil, fmt.Errorf("%w: %v", errNotGossip, err)
	case errors.Is(err, rpc.ErrShutdown):
		return nil, nil, nil, fmt.Errorf("%w: it closed the connection", errNotGossip)
	default:
		return nil, nil, nil, fmt.Errorf("%w: bad answer: %v", errNotGossip, err)
	}
	members, err = parseMembers(reply)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", errNotGossip, err)
	}
	return members, c, counted, nil
}

// dial connects to addr, and with tlsConfig not nil completes a TLS
// handshake, within ctx. The connection's deadline is ctx's. A step that
// ran out of time ends it with a slowStep.
func dial(ctx context.Context, addr string, tlsConfig *tls.Config) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, slowStep("dial")
		}
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if tlsConfig == nil {
		return conn, nil
	}
	tc := tls.Client(conn, tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		var netErr net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
			return nil, slowStep("TLS handshake")
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, fmt.Errorf("TLS handshake: closed the connection (does the member use TLS?): %v", err)
		}
		return nil, fmt.Errorf("TLS handshake: %v", err)
	}
	return tc, nil
}

// isTLSAlert tells whether err is a TLS alert the peer sent, which
// crypto/tls reports as a *net.OpError whose Op is "remote error".
func isTLSAlert(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "remote error"
}

// slowStep is the error of a step of dial that ran out of time.
type slowStep string

func (s slowStep) Error() string { return string(s) + " timed out" }

// readCounter is a connection that counts the bytes read from it and keeps
// the first read error.
type readCounter struct {
	net.Conn
	n atomic.Int64

	mu      sync.Mutex // protects readErr
	readErr error
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	if err != nil {
		c.mu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// err returns the first read error, or nil.
func (c *readCounter) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

// parseMembers reads a decoded GetMembersResponse: struct{Members []struct{
// Addr string; Heartbeat int64; Data interface{}}}.
func parseMembers(v any) ([]member, error) {
	s, ok := v.(Struct)
	if !ok {
		return nil, fmt.Errorf("response is a %T, not a struct", v)
	}
	list, ok := s.Get("Members")
	rows, isList := list.([]any)
	if !ok || !isList {
		return nil, fmt.Errorf("response has no list of members")
	}
	members := make([]member, 0, len(rows))
	for _, r := range rows {
		rs, ok := r.(Struct)
		addr, _ := rs.Get("Addr")
		hb, _ := rs.Get("Heartbeat")
		data, _ := rs.Get("Data")
		m := member{Data: data}
		m.Addr, _ = addr.(string)
		m.Heartbeat, _ = hb.(int64)
		if !ok || m.Addr == "" {
			return nil, fmt.Errorf("malformed member in response")
		}
		members = append(members, m)
	}
	return members, nil
}

// options are how collect queries.
type options struct {
	tls      *tls.Config   // to dial members with; nil for plain TCP
	timeout  time.Duration // per address, dial, TLS handshake and call
	all      bool          // also query every member learned of
	parallel int           // queries in flight at most
}

// maxQueried bounds how many addresses one collect queries with -all.
const maxQueried = gossip.DefaultMaxMembers

// collect queries addrs, at most o.parallel at once, and with o.all every
// member the answers name too. It returns one observation per address
// queried, sorted by address.
func collect(ctx context.Context, addrs []string, o options) []observation {
	if o.parallel < 1 {
		o.parallel = 1
	}
	queued := make(map[string]bool)
	var queue []string
	add := func(a string) {
		if !queued[a] && len(queued) < maxQueried {
			queued[a] = true
			queue = append(queue, a)
		}
	}
	for _, a := range addrs {
		add(a)
	}
	results := make(chan observation)
	running := 0
	var obs []observation
	for len(queue) > 0 || running > 0 {
		for running < o.parallel && len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			running++
			go func() { results <- query(ctx, a, o) }()
		}
		r := <-results
		running--
		obs = append(obs, r)
		if o.all && ctx.Err() == nil {
			for _, m := range r.Members {
				add(m.Addr)
			}
		}
	}
	sort.Slice(obs, func(i, j int) bool { return obs[i].Addr < obs[j].Addr })
	return obs
}
