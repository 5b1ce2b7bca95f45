package gossip

import (
	"context"
	"errors"
	"fmt"
	"net/rpc"
	"sync"
	"sync/atomic"
	"time"
)

// maxDialsInFlight bounds the connections a member is setting up at once;
// further calls that must dial wait for their turn, within their deadline.
// When peers are slow to accept (a host starved of CPU or out of file
// descriptors), each dial under way holds a descriptor until Trpc.
const maxDialsInFlight = 2

// errDialQueued is the reason of a call that ended while it waited for a
// dial of its own to start: it never reached the network, so its failure
// says nothing of the peer.
var errDialQueued = errors.New("waiting for another dial")

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
	// ended, if set, is called with the address of a peer that ended a
	// connection of the pool (see clientCodec), from net/rpc's reader
	// goroutine: it must not block.
	ended func(addr string)

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

// start starts a call to addr over the connection the pool holds to it,
// if it holds one with no call under way, and returns without waiting for
// the answer. done is called once, with the call's error: from net/rpc's
// reader goroutine once the answer has been read into reply, when timeout
// has passed, or when the connection ends. done must not wait for another
// call over the same connection: the answer would never be read. start
// returns false, and calls nothing, if it started no call: no such
// connection, or one that turned out dead (which it closes).
//
// It saves the goroutines of call: one to make the call and wait for the
// answer, which net/rpc's reader must wake. On an idle member each wakes a
// thread (see docs/performance.md).
func (p *clientPool) start(addr, method string, args, reply any, timeout time.Duration, done func(error)) bool {
	now := p.clock.Now()
	p.mu.Lock()
	pc := p.clients[addr]
	if p.closed || pc == nil || pc.inflight > 0 {
		p.mu.Unlock()
		return false
	}
	pc.used = now
	pc.inflight++
	p.mu.Unlock()

	h := &callHook{}
	var timer atomic.Pointer[time.Timer]
	h.end = func(err error) {
		if t := timer.Load(); t != nil {
			t.Stop()
		}
		var serverErr rpc.ServerError
		broken := err != nil && !errors.As(err, &serverErr)
		p.release(addr, pc, broken)
		if err != nil {
			err = fmt.Errorf("gossip: %s to %s: %w", method, addr, err)
		}
		p.metrics.called(err)
		done(err)
	}
	timer.Store(time.AfterFunc(timeout, func() { h.finish(context.DeadlineExceeded) }))
	pc.c.Go(method, &hookedArgs{args: args, hook: h}, reply, make(chan *rpc.Call, 1))
	if !h.written && h.done.CompareAndSwap(false, true) {
		// Not sent: the connection had ended, or the write failed.
		timer.Load().Stop()
		p.release(addr, pc, true)
		return false
	}
	p.metrics.sent.Add(1)
	return true
}

// get returns the pooled client for addr, dialling one if there is none
// (pooled if keep is set), with a call counted in flight on it.
func (p *clientPool) get(ctx context.Context, addr string, keep bool) (pc *pooled, reused bool, err error) {
	now := p.clock.Now() // before the lock: the Clock is the user's
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, false, ErrClosed
	}
	if pc := p.clients[addr]; pc != nil {
		pc.used = now
		pc.inflight++
		p.mu.Unlock()
		return pc, true, nil
	}
	p.mu.Unlock()
	select {
	case p.dials <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("gossip: dial %s: %w: %w", addr, errDialQueued, ctx.Err())
	}
	conn, err := p.transport.Dial(ctx, addr)
	<-p.dials
	if err != nil {
		return nil, false, fmt.Errorf("gossip: dial %s: %w", addr, err)
	}
	var ended func()
	if p.ended != nil {
		ended = func() { p.ended(addr) }
	}
	c := rpc.NewClientWithCodec(newClientCodec(countingConn{conn, p.metrics}, p.cfg, ended))
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
		pc.used = now
		pc.inflight++
		return pc, true, nil
	}
	pc = &pooled{c: c, used: now, inflight: 1}
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
