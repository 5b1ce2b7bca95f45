package gossip

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// The wire protocol.
//
// Members speak net/rpc with its gob encoding over one TCP connection per
// pair, reused from round to round. The service is named "Gossip":
//
//	Gossip.GetMembers(GetMembersRequest, *GetMembersResponse)
//	    the live members, as GetMembers returns them: what the stats tool and
//	    any plain net/rpc client call.
//	Gossip.Stats(StatsRequest, *StatsResponse)
//	    the member's Stats: table counts, rounds, messages and bytes sent
//	    and received, RPC errors and timeouts, merge time, FailureTime
//	    (see stats.go). Like GetMembers it only reads, and is answered
//	    whatever the cluster name.
//	Gossip.Gossip(GossipRequest, *GossipResponse)
//	    merge the members sent, as Receive does (push only, with the values
//	    of Member.Data, whose types the receiver must have registered).
//	Gossip.Exchange(ExchangeRequest, *ExchangeResponse)
//	    the members' own push-pull round. The caller sends a digest of its
//	    live table (address, heartbeat, data version: see digest.go); the
//	    callee merges it and answers with the entries it holds newer,
//	    carrying data only where the caller's version is older, and names
//	    the data it lacks (Want), which the caller sends in a second,
//	    partial request. Rumors (entries that just changed, with their
//	    data) travel as partial requests too. Members known to have left
//	    travel both ways as digest records in the separate Left field (see
//	    leave.go), which members built before it ignore.
//
// Every gob message is bounded by Config.MaxMessageSize; a peer that sends a
// larger or malformed one is disconnected. A new connection must send its
// first request within Trpc; an idle one is closed after IdleTimeout.

// serviceName is the net/rpc service name.
const serviceName = "Gossip"

// GetMembersRequest asks for a member's live members (Gossip.GetMembers).
type GetMembersRequest struct{}

// GetMembersResponse holds a member's live members, itself included.
type GetMembersResponse struct{ Members []Member }

// GossipRequest pushes members to merge (Gossip.Gossip).
type GossipRequest struct{ Members []Member }

// GossipResponse is the empty answer to a GossipRequest.
type GossipResponse struct{}

// ExchangeRequest is one member's half of a gossip round (Gossip.Exchange).
type ExchangeRequest struct {
	// From is the sender's advertised address.
	From string
	// Cluster is the sender's Config.ClusterName; a callee with another
	// name refuses the request.
	Cluster string
	// Digest holds the sender's live members, itself included, without
	// their data, in the compact form of digest.go.
	Digest []byte
	// Members are members with their data: a rumor (the entries that just
	// changed) or the data the callee asked for (ExchangeResponse.Want).
	Members []Entry
	// Partial tells that the request holds only some of the sender's
	// members. The callee then answers only about them.
	Partial bool
	// Left holds the members the sender knows to have left the cluster,
	// in the compact form of digest.go: each record's heartbeat is the one
	// the member left with (see leave.go). It is a field of its own, not a
	// flag in Digest, so that members built before it ignore it.
	Left []byte
}

// ExchangeResponse is the other half: the entries the callee holds newer
// than the request's, or that the request lacked, with data where the
// callee's is newer.
type ExchangeResponse struct {
	// From is the callee's advertised address, so that a caller learns who
	// a seed address really is (possibly itself).
	From string
	// Cluster is the callee's Config.ClusterName; a caller with another
	// name merges nothing from the response.
	Cluster string
	// Digest holds the callee's entries that are newer than the request's
	// but whose data the caller has, in the compact form of digest.go.
	Digest []byte
	// Members are the entries the caller lacks or has older data of, with
	// their data.
	Members []Entry
	// Want names the members whose data the request showed newer than the
	// callee's but did not carry; the caller sends it in a second request.
	Want []string
	// Left holds the members the callee knows to have left and the
	// request showed alive or (unless partial) did not name, as in
	// ExchangeRequest.Left.
	Left []byte
}

// Entry is one member's row on the wire.
type Entry struct {
	Addr      string
	Heartbeat int64
	// Version is the heartbeat at which the member's data was last set.
	// It grows with every data change, so a peer with an older version
	// needs the data and one with the same version has it.
	Version int64
	// WithData tells that Data is present; data travels only to peers
	// whose version is older.
	WithData bool
	// Data is the member's application data, gob-encoded (see data.go).
	Data []byte
}

// service is the receiver registered with net/rpc. Its exported methods are
// exactly the RPCs.
type service struct{ g *Gossip }

// GetMembers serves Gossip.GetMembers.
func (s *service) GetMembers(_ GetMembersRequest, resp *GetMembersResponse) error {
	resp.Members = s.g.GetMembers()
	return nil
}

// Gossip serves Gossip.Gossip.
func (s *service) Gossip(req GossipRequest, _ *GossipResponse) error {
	if s.g.cfg.ClusterName != "" {
		return errPushNeedsCluster
	}
	if len(req.Members) > s.g.cfg.MaxMembers {
		return fmt.Errorf("gossip: %d members in one message, limit %d", len(req.Members), s.g.cfg.MaxMembers)
	}
	s.g.Receive(req.Members)
	return nil
}

// Exchange serves Gossip.Exchange.
func (s *service) Exchange(req ExchangeRequest, resp *ExchangeResponse) error {
	g := s.g
	resp.Cluster = g.cfg.ClusterName
	if err := g.checkCluster(req.From, req.Cluster); err != nil {
		return err
	}
	if len(req.Members) > g.cfg.MaxMembers {
		return fmt.Errorf("gossip: %d members in one message, limit %d", len(req.Members), g.cfg.MaxMembers)
	}
	g.mu.Lock()
	resp.From = g.addr
	if req.From == g.addr {
		g.mu.Unlock()
		return nil // we dialled ourselves; the caller learns it from From
	}
	gen, changed, want, err := g.mergeExchangeLocked(req.Digest, req.Members, req.Left, g.clock.Now(), true)
	if err == nil {
		resp.Digest, resp.Members = g.table.answer(gen, req.Partial)
		resp.Left = g.table.answerLeft(gen, req.Partial)
		resp.Want = want
	}
	g.mu.Unlock()
	if changed {
		g.changed()
	}
	return err
}

// exchange runs one push-pull round with the member at addr and returns the
// callee's advertised address. The request is a digest: heartbeats and data
// versions only. The callee answers with what it holds newer, data included,
// and names the data it lacks, which a second request carries.
//
// keep tells whether a new connection to addr should be kept for later
// rounds: only for the round's chosen partner (see choosePartner). Seeds,
// dead members and rumor targets are reached over a connection already held,
// or over one closed after use, so that they do not take the place of the
// partners' connections, nor pile up on a seed that every joiner contacts.
func (g *Gossip) exchange(ctx context.Context, addr string, keep bool) (string, error) {
	g.mu.Lock()
	req := ExchangeRequest{From: g.addr, Cluster: g.cfg.ClusterName, Digest: g.table.digest(), Left: g.table.leftDigest()}
	g.mu.Unlock()
	return g.exchangeWith(ctx, addr, req, keep)
}

// exchangeWith sends req to addr, merges the answer, and sends the data the
// callee asks for.
func (g *Gossip) exchangeWith(ctx context.Context, addr string, req ExchangeRequest, keep bool) (string, error) {
	var resp ExchangeResponse
	if err := g.pool.call(ctx, addr, "Gossip.Exchange", req, &resp, keep); err != nil {
		g.log.WithField("peer", addr).WithError(err).Debug("gossip: exchange failed")
		return "", err
	}
	if err := g.checkCluster(addr, resp.Cluster); err != nil {
		return "", err
	}
	g.mu.Lock()
	if resp.From == g.addr {
		g.aliases[addr] = true
		g.mu.Unlock()
		return resp.From, nil
	}
	_, changed, _, err := g.mergeExchangeLocked(resp.Digest, resp.Members, resp.Left, g.clock.Now(), false)
	if err != nil {
		g.log.WithField("peer", addr).WithError(err).Debug("gossip: bad exchange response")
	}
	push := ExchangeRequest{From: g.addr, Cluster: g.cfg.ClusterName, Partial: true}
	if len(resp.Want) > 0 {
		push.Members = g.table.withData(resp.Want, g.cfg.MaxMembers)
	}
	g.mu.Unlock()
	if changed {
		g.changed()
	}
	if len(push.Members) > 0 {
		var presp ExchangeResponse
		if err := g.pool.call(ctx, addr, "Gossip.Exchange", push, &presp, keep); err != nil {
			g.log.WithField("peer", addr).WithError(err).Debug("gossip: sending data failed")
			return resp.From, nil
		}
		g.mu.Lock()
		_, changed, _, _ := g.mergeExchangeLocked(presp.Digest, presp.Members, presp.Left, g.clock.Now(), false)
		g.mu.Unlock()
		if changed {
			g.changed()
		}
	}
	return resp.From, nil
}

// contact exchanges with a seed or dead member: a seed's name may resolve to
// several addresses, each contacted. It records the outcome for the backoff.
// A member that is joining (it knows no live member) exchanges once more with
// each address that answered, a moment later (see followUp).
func (g *Gossip) contact(ctx context.Context, name string, joining bool) {
	addrs, err := g.resolve(ctx, name)
	if err != nil {
		g.log.WithField("seed", name).WithError(err).Debug("gossip: resolve failed")
	}
	ok := false
	for _, addr := range addrs {
		g.mu.Lock()
		skip := addr == g.addr || g.aliases[addr]
		g.mu.Unlock()
		if skip {
			continue
		}
		if from, err := g.exchange(ctx, addr, false); err == nil {
			ok = true
			if joining && from != "" && from != g.Addr() {
				g.followUp(addr)
			}
		}
	}
	g.retried(name, ok)
}

// followUp exchanges with addr, a seed that has just answered a joining
// member, again after followUpGaps rumor gaps. The joiner learned the cluster
// as the seed knew it; members joining at the same time are missing, as a
// cluster's members all are when it starts. Rumors tell it of those that
// joined after it only by chance: most members learned of them from the
// seed's answer, and only a member that learns of a member from a rumor
// passes it on. A second exchange with the seed brings the joiner up to
// date; the seed's rumors and the periodic exchange do the rest.
func (g *Gossip) followUp(addr string) {
	g.mu.Lock()
	if g.state != stateRunning {
		g.mu.Unlock()
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		t := time.NewTimer(followUpGaps * rumorGap(g.cfg.GossipInterval))
		defer t.Stop()
		select {
		case <-t.C:
			g.goExchange(func(ctx context.Context) { g.exchange(ctx, addr, false) })
		case <-g.ctx.Done():
		}
	}()
}

// followUpGaps is how many rumor gaps after joining a member exchanges with
// its seed again.
const followUpGaps = 2

// resolve turns host:port into one host:port per address of host.
func (g *Gossip) resolve(ctx context.Context, name string) ([]string, error) {
	host, port, err := net.SplitHostPort(name)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) != nil {
		return []string{name}, nil
	}
	ips, err := g.resolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
	}
	return out, nil
}

// serve accepts connections until the listener is closed, serving each with
// its own codec. Temporary accept errors are retried with backoff.
func (g *Gossip) serve(ln net.Listener) {
	defer g.wg.Done()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.WithError(err).Warnf("gossip: accept failed; retrying in %v", delay)
			select {
			case <-time.After(delay):
				continue
			case <-g.ctx.Done():
				return
			}
		}
		delay = 0
		st, evicted := g.conns.add(conn, g.cfg.MaxInboundConns)
		if evicted != nil {
			g.log.WithField("peer", evicted.RemoteAddr()).Debug("gossip: too many inbound connections; closing the one idle the longest")
			evicted.Close()
		}
		if st == nil {
			g.log.WithField("peer", conn.RemoteAddr()).Debug("gossip: too many inbound connections, all busy; closing the new one")
			conn.Close()
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer g.conns.remove(conn)
			counted := countingConn{conn, &g.metrics}
			codec := newServerCodec(g.ctx, counted, st, &g.cfg, g.log.WithField("peer", conn.RemoteAddr().String()))
			g.server.ServeCodec(countingCodec{codec, &g.metrics})
		}()
	}
}

// ErrMessageTooLarge is the reason a connection that sent a gob message over
// Config.MaxMessageSize was closed.
var ErrMessageTooLarge = errors.New("gossip: message too large")

// frameReader passes a gob stream through, checking the length that
// prefixes each gob message against a limit before gob reads the message.
type frameReader struct {
	r    *bufio.Reader
	max  uint64
	left int // bytes of the current message, its length prefix included, not yet read
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{r: bufio.NewReader(r), max: uint64(max)}
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.left == 0 {
		// A gob message starts with its length: one byte below 0x80, or
		// a byte holding minus the count of big-endian bytes that follow.
		b, err := f.r.Peek(1)
		if err != nil {
			return 0, err
		}
		n, hdr := uint64(b[0]), 1
		if b[0] >= 0x80 {
			k := -int(int8(b[0]))
			if k < 1 || k > 8 {
				return 0, fmt.Errorf("gossip: malformed gob message length")
			}
			hdr += k
			bs, err := f.r.Peek(hdr)
			if err != nil {
				return 0, err
			}
			n = 0
			for _, c := range bs[1:] {
				n = n<<8 | uint64(c)
			}
		}
		if n > f.max {
			return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, f.max)
		}
		f.left = hdr + int(n)
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= n
	return n, err
}

// serverCodec is net/rpc's gob server codec with deadlines, a message size
// limit, and a bound on requests in flight per connection.
type serverCodec struct {
	conn    net.Conn
	state   *inbound // requests under way, for connSet's eviction
	dec     *gob.Decoder
	enc     *gob.Encoder
	wbuf    *bufio.Writer
	cfg     *Config
	done    <-chan struct{}
	log     logrus.FieldLogger
	slots   chan struct{} // one per request being handled
	started bool          // a request has been read
	broken  bool          // the stream can no longer be trusted
}

// maxRequestsInFlight bounds the requests one connection has being handled.
const maxRequestsInFlight = 8

func newServerCodec(ctx context.Context, conn net.Conn, state *inbound, cfg *Config, log logrus.FieldLogger) *serverCodec {
	wbuf := bufio.NewWriter(conn)
	return &serverCodec{
		conn: conn, state: state, cfg: cfg, done: ctx.Done(), log: log,
		dec:   gob.NewDecoder(newFrameReader(conn, cfg.MaxMessageSize)),
		enc:   gob.NewEncoder(wbuf),
		wbuf:  wbuf,
		slots: make(chan struct{}, maxRequestsInFlight),
	}
}

func (c *serverCodec) ReadRequestHeader(r *rpc.Request) error {
	if c.broken {
		return io.EOF
	}
	select {
	case c.slots <- struct{}{}:
	case <-c.done:
		return io.EOF
	}
	wait := c.cfg.IdleTimeout
	if !c.started {
		wait = c.cfg.RPCTimeout
	}
	c.conn.SetReadDeadline(time.Now().Add(wait))
	if err := c.dec.Decode(r); err != nil {
		<-c.slots
		return c.fail("request header", err)
	}
	c.started = true
	c.state.begin() // net/rpc answers every request whose header it read
	return nil
}

func (c *serverCodec) ReadRequestBody(body any) error {
	c.conn.SetReadDeadline(time.Now().Add(c.cfg.RPCTimeout))
	if err := c.dec.Decode(body); err != nil {
		c.broken = true
		return c.fail("request body", err)
	}
	return nil
}

// fail logs why the connection is being dropped and returns err.
func (c *serverCodec) fail(what string, err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.As(err, &ne) && ne.Timeout():
		c.log.WithError(err).Debugf("gossip: connection timed out reading %s; closing it", what)
	default:
		c.log.WithError(err).Warnf("gossip: bad %s; closing the connection", what)
	}
	return err
}

func (c *serverCodec) WriteResponse(r *rpc.Response, body any) error {
	defer func() { <-c.slots }()
	defer c.state.end()
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.RPCTimeout))
	err := c.enc.Encode(r)
	if err == nil {
		err = c.enc.Encode(body)
	}
	if err == nil {
		err = c.wbuf.Flush()
	}
	if err != nil {
		c.log.WithError(err).Debug("gossip: writing response failed; closing the connection")
		c.conn.Close()
	}
	return err
}

func (c *serverCodec) Close() error { return c.conn.Close() }

// clientCodec is net/rpc's gob client codec with write deadlines and a
// message size limit. Calls are timed out by clientPool.call.
type clientCodec struct {
	conn    net.Conn
	dec     *gob.Decoder
	enc     *gob.Encoder
	wbuf    *bufio.Writer
	timeout time.Duration
}

func newClientCodec(conn net.Conn, cfg *Config) *clientCodec {
	wbuf := bufio.NewWriter(conn)
	return &clientCodec{
		conn: conn, timeout: cfg.RPCTimeout, wbuf: wbuf,
		dec: gob.NewDecoder(newFrameReader(conn, cfg.MaxMessageSize)),
		enc: gob.NewEncoder(wbuf),
	}
}

func (c *clientCodec) WriteRequest(r *rpc.Request, body any) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.enc.Encode(r); err != nil {
		return err
	}
	if err := c.enc.Encode(body); err != nil {
		return err
	}
	return c.wbuf.Flush()
}

func (c *clientCodec) ReadResponseHeader(r *rpc.Response) error { return c.dec.Decode(r) }
func (c *clientCodec) ReadResponseBody(body any) error          { return c.dec.Decode(body) }
func (c *clientCodec) Close() error                             { return c.conn.Close() }

// maxDialsInFlight bounds the connections a member is setting up at once;
// further calls that must dial wait for their turn, within their deadline.
// When peers are slow to accept (a host starved of CPU or out of file
// descriptors), each dial under way holds a descriptor until Trpc.
const maxDialsInFlight = 2

// clientPool keeps one net/rpc client per peer, reused across rounds. It
// holds at most Config.MaxOutboundConns; to make room for a new one it closes
// the least recently used idle client. It closes those idle for half the idle
// timeout, before the peer's side times them out.
type clientPool struct {
	transport Transport
	cfg       *Config
	clock     Clock
	metrics   *metrics
	dials     chan struct{} // bounds the dials in flight (maxDialsInFlight)

	mu      sync.Mutex // protects clients and closed
	clients map[string]*pooled
	closed  bool
}

type pooled struct {
	c        *rpc.Client
	used     time.Time
	inflight int  // calls under way
	pooled   bool // held in clients; else closed after its one call
}

func newClientPool(t Transport, cfg *Config, clock Clock, m *metrics) *clientPool {
	return &clientPool{transport: t, cfg: cfg, clock: clock, metrics: m, clients: make(map[string]*pooled),
		dials: make(chan struct{}, maxDialsInFlight)}
}

// call makes one RPC to addr, bounded by ctx, and counts it. It uses the
// pooled connection to addr if there is one, else dials one, which it keeps
// in the pool if keep is set and closes after the call if not. A pooled
// connection that turns out to be dead is replaced and the call tried once
// more.
func (p *clientPool) call(ctx context.Context, addr, method string, args, reply any, keep bool) error {
	p.metrics.sent.Add(1)
	err := p.try(ctx, addr, method, args, reply, keep)
	p.metrics.called(err)
	return err
}

func (p *clientPool) try(ctx context.Context, addr, method string, args, reply any, keep bool) error {
	for attempt := 0; ; attempt++ {
		pc, reused, err := p.get(ctx, addr, keep)
		if err != nil {
			return err
		}
		call := pc.c.Go(method, args, reply, make(chan *rpc.Call, 1))
		select {
		case <-call.Done:
			err = call.Error
		case <-ctx.Done():
			p.release(addr, pc, true)
			return fmt.Errorf("gossip: %s to %s: %w", method, addr, ctx.Err())
		}
		var serverErr rpc.ServerError
		if err == nil || errors.As(err, &serverErr) {
			p.release(addr, pc, false)
			return err
		}
		p.release(addr, pc, true)
		if !reused || attempt > 0 {
			return fmt.Errorf("gossip: %s to %s: %w", method, addr, err)
		}
	}
}

// get returns the pooled client for addr, dialling one if there is none
// (pooled if keep is set), with a call counted in flight on it.
func (p *clientPool) get(ctx context.Context, addr string, keep bool) (pc *pooled, reused bool, err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, ErrClosed
	}
	if pc := p.clients[addr]; pc != nil {
		pc.used = p.clock.Now()
		pc.inflight++
		p.mu.Unlock()
		return pc, true, nil
	}
	p.mu.Unlock()
	select {
	case p.dials <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("gossip: dial %s: waiting for another dial: %w", addr, ctx.Err())
	}
	conn, err := p.transport.Dial(ctx, addr)
	<-p.dials
	if err != nil {
		return nil, false, fmt.Errorf("gossip: dial %s: %w", addr, err)
	}
	c := rpc.NewClientWithCodec(newClientCodec(countingConn{conn, p.metrics}, p.cfg))
	// Clients are closed after unlocking: closing a connection waits for its
	// reader goroutine to notice, which on a busy machine can take long
	// enough to stall every caller waiting for the pool.
	var evicted *rpc.Client
	defer func() {
		if evicted != nil {
			evicted.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		evicted = c
		return nil, false, ErrClosed
	}
	if pc := p.clients[addr]; pc != nil { // another round dialled meanwhile
		evicted = c
		pc.used = p.clock.Now()
		pc.inflight++
		return pc, true, nil
	}
	pc = &pooled{c: c, used: p.clock.Now(), inflight: 1}
	if !keep {
		return pc, false, nil
	}
	if len(p.clients) >= p.cfg.MaxOutboundConns {
		evicted = p.evictLocked()
	}
	if len(p.clients) < p.cfg.MaxOutboundConns {
		pc.pooled = true
		p.clients[addr] = pc
	}
	return pc, false, nil
}

// evictLocked removes the least recently used client with no call in flight
// and returns it for the caller to close, or returns nil if there is none.
func (p *clientPool) evictLocked() *rpc.Client {
	var lru string
	for addr, pc := range p.clients {
		if pc.inflight == 0 && (lru == "" || pc.used.Before(p.clients[lru].used)) {
			lru = addr
		}
	}
	if lru == "" {
		return nil
	}
	c := p.clients[lru].c
	delete(p.clients, lru)
	return c
}

// release ends a call on pc; if broken, or if pc was not pooled, it closes
// the client.
func (p *clientPool) release(addr string, pc *pooled, broken bool) {
	p.mu.Lock()
	pc.inflight--
	if broken && p.clients[addr] == pc {
		delete(p.clients, addr)
		pc.pooled = false
	}
	done := !pc.pooled && pc.inflight == 0
	p.mu.Unlock()
	if broken || done {
		pc.c.Close()
	}
}

// held returns the addresses the pool holds a client for.
func (p *clientPool) held() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.clients))
	for addr := range p.clients {
		out = append(out, addr)
	}
	return out
}

// closeIdle closes the clients unused for half the idle timeout, before the
// peer's side times them out.
func (p *clientPool) closeIdle() {
	now := p.clock.Now()
	var idle []*rpc.Client
	p.mu.Lock()
	for addr, pc := range p.clients {
		if pc.inflight == 0 && now.Sub(pc.used) > p.cfg.IdleTimeout/2 {
			idle = append(idle, pc.c)
			delete(p.clients, addr)
		}
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// close closes every client and refuses new ones.
func (p *clientPool) close() {
	var all []*rpc.Client
	p.mu.Lock()
	p.closed = true
	for addr, pc := range p.clients {
		all = append(all, pc.c)
		delete(p.clients, addr)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}
