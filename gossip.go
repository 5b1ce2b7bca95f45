// Package gossip is a gossip-based service discovery and failure detection
// library, after van Renesse, Minsky and Hayden, "A Gossip-Style Failure
// Detection Service" (Middleware 1998).
//
// Every member keeps a heartbeat counter for every member it knows. Each gossip
// round it bumps its own counter and exchanges its table with a random peer;
// both sides keep the higher counter of every member. A member whose counter
// has not risen for FailureTime is considered dead. FailureTime grows with the
// observed cluster size so that the probability of a false report stays known
// and small (see failure.go). Each member also carries opaque application data,
// shared with everyone and read back with GetMembers.
//
// # Usage
//
//	g, err := gossip.NewWithConfig(gossip.Config{
//		Addr:  "10.0.0.1:7000",
//		Seeds: []string{"10.0.0.2:7000"},
//		Data:  "http://10.0.0.1:8080",
//	})
//	if err != nil { ... }
//	if err := g.Start(); err != nil { ... } // binds the address, joins in the background
//	defer g.Shutdown(ctx)                   // leaves, so the others drop it at once, and closes
//	for range g.C {                         // signalled on every change
//		for _, m := range g.GetMembers() {
//			fmt.Println(m.Addr, m.Data)
//		}
//	}
//
// Events tells what changed (a member joined, changed its data, failed, left
// or came back) where C only tells that something did, and Stats returns the
// member's counters, also served to any net/rpc client as Gossip.Stats.
// The original package's form, New followed by Run, works too: New never fails
// and Run logs the error it cannot return. Data of types other than Go's basic
// ones must be registered with gob.Register in every process that decodes it.
//
// Members talk net/rpc with gob over TCP; see rpc.go and the README for the wire
// format. Any Go program can read a live member with a plain net/rpc client:
//
//	c, _ := rpc.Dial("tcp", "10.0.0.1:7000")
//	var resp gossip.GetMembersResponse
//	err := c.Call("Gossip.GetMembers", gossip.GetMembersRequest{}, &resp)
package gossip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/rpc"
	"sync"
	"time"

	multierror "github.com/hashicorp/go-multierror"
	"github.com/sirupsen/logrus"
)

// Package defaults, read by New and NewWithConfig when a Config field is zero.
// Change them before creating members; they are not safe to change while
// members are being created.
var (
	// Nfailures is how many propagation periods (see FailureTime) a member
	// must miss to be considered dead.
	Nfailures = 3

	// Tgossip is the default gossip interval.
	Tgossip = 1 * time.Second

	// Trpc is the default deadline of one RPC, dial included.
	Trpc = 5 * time.Second
)

// Errors returned by this package. Match them with errors.Is.
var (
	// ErrClosed is returned by calls on a member that has been closed.
	ErrClosed = errors.New("gossip: member closed")
	// ErrStarted is returned by Start on a member that is already running.
	ErrStarted = errors.New("gossip: member already started")
)

// Gossip is one member of a cluster. Its methods are safe for concurrent use.
// A Gossip holds a listener, connections and goroutines from Start (or Run)
// until Close, which must be called to release them.
type Gossip struct {
	// C receives true whenever the set of live members or any member's data
	// changes. It has a buffer of one and is never blocked on: a slow or absent
	// reader misses only duplicate signals, and should call GetMembers after
	// each one. C is never closed; use Done to learn that the member stopped.
	C chan bool

	// DebugOutput turns on protocol debug logs when the member uses its own
	// logger (Config.Logger nil). Set it before Start or Run.
	DebugOutput bool

	// Tgossip is the gossip interval and Trpc the deadline of one RPC. New
	// and NewWithConfig set them from the Config; they may be changed
	// between New and Start (or Run) and are read once there.
	Tgossip time.Duration
	Trpc    time.Duration

	cfg       Config // defaults applied; fixed after Start
	initErr   error  // a Config error, reported by Start
	log       logrus.FieldLogger
	ownLog    *logrus.Logger // non-nil when the logger is our own
	clock     Clock
	transport Transport
	resolver  Resolver

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	done    chan struct{} // closed when Close has finished
	wg      sync.WaitGroup
	once    sync.Once
	stop    error
	sem     chan struct{} // bounds outgoing exchanges in flight
	rsem    chan struct{} // bounds outgoing rumors in flight, apart, so that they never hold up a round
	spread  chan struct{} // signalled when there are rumors to spread
	events  *eventQueue   // see Events
	metrics metrics       // see Stats

	server *rpc.Server
	pool   *clientPool
	conns  connSet

	mismatch logLimit // rate-limits warnings about other clusters' members

	mu      sync.Mutex // protects everything below
	state   int
	addr    string // this member's advertised address, set by Start
	ln      net.Listener
	table   table
	rng     *rand.Rand
	retry   map[string]*retryState // seed names and dead addresses being retried
	aliases map[string]bool        // addresses found to reach this member
	rumors  map[string]rumor       // members newly joined, back, left or with new data, to spread at once (see rumor.go)
}

const (
	stateNew = iota
	stateRunning
	stateLeft // Leave was called: no more rounds, answers until Close
	stateClosed
)

// New returns a member that will listen on addr, carry data and join the
// cluster through the seed addresses otherNodes. It never fails: an invalid
// argument is reported when Run starts the member. Prefer NewWithConfig and
// Start, which return errors.
func New(addr string, data interface{}, otherNodes []string) *Gossip {
	g, _ := NewWithConfig(Config{Addr: addr, Data: data, Seeds: otherNodes})
	return g
}

// NewWithConfig returns a member configured by cfg, not yet started. It
// validates cfg and encodes cfg.Data, and returns an error if either fails;
// the returned member is then unusable but safe to Close. cfg is not modified.
func NewWithConfig(cfg Config) (*Gossip, error) {
	cfg, err := cfg.withDefaults()
	g := &Gossip{
		C:         make(chan bool, 1),
		Tgossip:   cfg.GossipInterval,
		Trpc:      cfg.RPCTimeout,
		cfg:       cfg,
		clock:     cfg.Clock,
		transport: cfg.Transport,
		resolver:  cfg.Resolver,
		done:      make(chan struct{}),
		sem:       make(chan struct{}, maxExchangesInFlight),
		rsem:      make(chan struct{}, maxExchangesInFlight),
		spread:    make(chan struct{}, 1),
		events:    newEventQueue(cfg.EventBuffer),
		rumors:    make(map[string]rumor),
		retry:     make(map[string]*retryState),
		aliases:   make(map[string]bool),
		rng:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.table.members = make(map[string]*entry)
	if cfg.Logger != nil {
		g.log = cfg.Logger
	} else {
		g.ownLog = logrus.New()
		if cfg.Debug {
			g.ownLog.SetLevel(logrus.DebugLevel)
		}
		g.log = g.ownLog
	}
	g.DebugOutput = cfg.Debug
	if err == nil {
		var data []byte
		if data, err = encodeData(cfg.Data, cfg.MaxDataSize); err == nil {
			g.table.self = &entry{alive: true}
			g.table.self.setData(data)
		}
	}
	g.initErr = err
	return g, err
}

// Start binds the member's address, starts its goroutines and returns; the
// member then joins its seeds in the background, retrying them with backoff
// until one answers. Start returns an error if the configuration is invalid,
// the address cannot be bound, the member was already started (ErrStarted) or
// closed (ErrClosed).
func (g *Gossip) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.initErr != nil:
		return g.initErr
	case g.state == stateRunning:
		return ErrStarted
	case g.state == stateClosed:
		return ErrClosed
	}
	if g.Tgossip <= 0 || g.Trpc <= 0 {
		return fmt.Errorf("gossip: Tgossip (%v) and Trpc (%v) must be positive", g.Tgossip, g.Trpc)
	}
	g.cfg.GossipInterval, g.cfg.RPCTimeout = g.Tgossip, g.Trpc
	if g.ownLog != nil && g.DebugOutput {
		g.ownLog.SetLevel(logrus.DebugLevel)
	}
	ln, err := g.transport.Listen(g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gossip: listen on %s: %w", g.cfg.Addr, err)
	}
	addr, err := advertiseAddr(g.cfg.AdvertiseAddr, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	g.server = rpc.NewServer()
	if err := g.server.RegisterName(serviceName, &service{g: g}); err != nil {
		ln.Close()
		return fmt.Errorf("gossip: register rpc service: %w", err)
	}
	g.ln = ln
	g.pool = newClientPool(g.transport, &g.cfg, g.clock, &g.metrics)
	g.becomeLocked(addr)

	g.wg.Add(3)
	go g.serve(ln)
	go g.loop()
	go func() {
		defer g.wg.Done()
		g.events.run(g.ctx, g.clock)
	}()
	g.log.WithFields(logrus.Fields{"seeds": g.cfg.Seeds, "interval": g.cfg.GossipInterval}).Info("gossip member started")
	return nil
}

// becomeLocked makes this member the running member at addr. Its heartbeat
// starts at the clock in microseconds, above any heartbeat an earlier member
// at the same address can have reached (it counts one per round).
func (g *Gossip) becomeLocked(addr string) {
	now := g.clock.Now()
	g.addr, g.state = addr, stateRunning
	g.log = g.log.WithField("member", addr)
	self := g.table.self
	self.addr, self.heartbeat, self.lastRise = addr, now.UnixMicro(), now
	self.version = self.heartbeat
	g.table.put(self)
}

// Run starts the member and returns only after Close. If the member cannot
// start, Run logs the reason and returns at once; use Start or RunContext to
// get the error instead.
func (g *Gossip) Run() {
	if err := g.Start(); err != nil {
		if !errors.Is(err, ErrClosed) {
			g.log.WithError(err).Error("gossip member did not start")
		}
		return
	}
	<-g.done
}

// RunContext starts the member and blocks until ctx is done or Close is
// called, then closes the member. It returns the start error, ctx.Err() or
// ErrClosed, joined with any error from closing.
func (g *Gossip) RunContext(ctx context.Context) error {
	if err := g.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		if err := g.Stop(); err != nil {
			return multierror.Append(ctx.Err(), err)
		}
		return ctx.Err()
	case <-g.ctx.Done():
		<-g.done
		return ErrClosed
	}
}

// Addr returns the member's advertised address, its identity in the cluster,
// once Start has succeeded; before that, the configured address.
func (g *Gossip) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.addr != "" {
		return g.addr
	}
	return g.cfg.Addr
}

// Done returns a channel that is closed when the member has been closed and
// all its goroutines have ended.
func (g *Gossip) Done() <-chan struct{} { return g.done }

// Close stops the member: it closes the listener and every connection, stops
// every goroutine and makes Run return. It is safe to call more than once.
// Errors from closing are logged; Stop returns them instead. Close does not
// leave the cluster: the others drop the member after FailureTime, as for a
// crash. Shutdown leaves first.
func (g *Gossip) Close() {
	if err := g.Stop(); err != nil {
		g.log.WithError(err).Warn("closing gossip member")
	}
}

// Stop is Close that returns the errors met while closing, collected with
// go-multierror. Later calls return the first call's result.
func (g *Gossip) Stop() error {
	g.once.Do(func() {
		g.mu.Lock()
		g.state = stateClosed
		ln, pool := g.ln, g.pool
		g.mu.Unlock()
		g.cancel()
		var errs *multierror.Error
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = multierror.Append(errs, fmt.Errorf("gossip: close listener: %w", err))
			}
		}
		g.conns.closeAll()
		if pool != nil {
			pool.close()
		}
		g.wg.Wait()
		g.events.closeOut() // run has ended, or never started
		g.stop = errs.ErrorOrNil()
		close(g.done)
		if ln != nil {
			g.log.Info("gossip member closed")
		}
	})
	<-g.done
	return g.stop
}

// loop runs one gossip round every interval, with a little jitter so that
// members started together do not gossip in lockstep. Between rounds it
// spreads rumors as they come, with a short gap between spreads.
func (g *Gossip) loop() {
	defer g.wg.Done()
	interval := g.cfg.GossipInterval
	gap := rumorGap(interval)
	budget := rumorBudget{tokens: rumorBurst, per: interval / rumorRate}
	t := time.NewTimer(0)
	defer t.Stop()
	var (
		nextSpread time.Time
		held       *time.Timer // a spread waiting for the gap or the budget, if any
		heldC      <-chan time.Time
	)
	defer func() {
		if held != nil {
			held.Stop()
		}
	}()
	spread := func() {
		now := time.Now()
		wait := nextSpread.Sub(now)
		if wait <= 0 {
			wait = budget.take(now)
		}
		if wait > 0 {
			if held == nil {
				held = time.NewTimer(wait)
				heldC = held.C
			}
			return
		}
		if g.spreadRumors() {
			g.askSpread()
		}
		nextSpread = now.Add(gap)
	}
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			g.tick()
			g.mu.Lock()
			jitter := time.Duration(g.rng.Int64N(int64(interval)/5 + 1))
			g.mu.Unlock()
			t.Reset(interval - interval/10 + jitter)
		case <-g.spread:
			if held == nil {
				spread()
			}
		case <-heldC:
			held, heldC = nil, nil
			spread()
		}
	}
}

// tick is one gossip round: bump our heartbeat, apply the failure rules, and
// exchange tables with a random live peer. Now and then (always while we know
// no live peer) it also contacts a seed or a recently dead member, so that a
// member joins when its seeds appear and a healed partition merges again.
func (g *Gossip) tick() {
	now := g.clock.Now()
	g.mu.Lock()
	if g.state != stateRunning {
		g.mu.Unlock()
		return
	}
	g.metrics.rounds.Add(1)
	g.table.self.heartbeat++
	g.table.self.lastRise = now
	changed := g.sweepLocked(now)
	peers := g.table.livePeers()
	var target string
	if len(peers) > 0 {
		target = choosePartner(g.rng, g.heldLiveLocked(), g.cfg.MaxOutboundConns, func() string { return peers[g.rng.IntN(len(peers))] })
	}
	var recover []string
	if len(peers) == 0 || g.rng.IntN(len(peers)+1) == 0 {
		recover = g.recoveryTargetsLocked(now, len(peers) == 0)
	}
	g.mu.Unlock()
	if changed {
		g.notify()
	}
	g.pool.closeIdle()
	if target != "" {
		g.goExchange(func(ctx context.Context) { g.exchange(ctx, target, true) })
	}
	joining := len(peers) == 0
	for _, name := range recover {
		g.goExchange(func(ctx context.Context) { g.contact(ctx, name, joining) })
	}
}

// Peer selection.
//
// The paper's member gossips each round with a peer chosen uniformly at
// random. With n members and connections reused from round to round, that
// needs n-1 connections per member, or a dial nearly every round once n
// exceeds the connections kept (Config.MaxOutboundConns): at n = 1,000, a
// TCP handshake, a goroutine on each side and gob's type descriptors for
// every exchange. So a member holding a full set of connections exchanges
// with one of those peers, chosen uniformly, and only one round in
// rotateRounds (on average) with a peer chosen uniformly among all; that
// peer's connection then takes the place of the one least recently used. The
// peers a member talks to thus form a random graph of out-degree
// MaxOutboundConns whose edges are replaced one every rotateRounds rounds,
// so an edge lives about MaxOutboundConns × rotateRounds rounds. That is
// long next to the spread time, which is what saves the dials, and short next
// to a member's life, so every pair of members is linked now and then.
// Heartbeats spread over such a graph about as fast as over the complete one:
// the simulations (sim_test.go, failure_test.go) use this same function and
// check the mean spread time against S(n) (see failure.go). A member with
// fewer peers than MaxOutboundConns holds a connection to each of them and
// chooses among all uniformly, as the paper does.

// rotateRounds is how many rounds, on average, a member with a full set of
// connections goes between two exchanges with a peer chosen among all.
const rotateRounds = 8

// choosePartner picks a round's exchange partner: if held, the live peers a
// connection is held to, number fewer than capacity, or one round in
// rotateRounds, any live peer chosen uniformly by anyPeer; otherwise one of
// held, uniformly.
func choosePartner[T any](r *rand.Rand, held []T, capacity int, anyPeer func() T) T {
	if len(held) == 0 || len(held) < capacity || r.IntN(rotateRounds) == 0 {
		return anyPeer()
	}
	return held[r.IntN(len(held))]
}

// heldLiveLocked returns the live peers that the member holds a connection
// to.
func (g *Gossip) heldLiveLocked() []string {
	held := g.pool.held()
	live := held[:0]
	for _, addr := range held {
		if e := g.table.members[addr]; e != nil && e.alive && e != g.table.self {
			live = append(live, addr)
		}
	}
	return live
}

// goExchange runs f in a goroutine owned by g, unless maxExchangesInFlight
// exchanges are already under way (a slow peer must not pile them up).
func (g *Gossip) goExchange(f func(ctx context.Context)) { g.goBounded(g.sem, f) }

// goBounded runs f in a goroutine owned by g holding a slot of sem, or skips
// it if sem has no free slot.
func (g *Gossip) goBounded(sem chan struct{}, f func(ctx context.Context)) {
	select {
	case sem <- struct{}{}:
	default:
		g.log.Debug("gossip: too many exchanges in flight; skipping one")
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer func() { <-sem }()
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RPCTimeout)
		defer cancel()
		f(ctx)
	}()
}

// notify signals C without ever blocking.
func (g *Gossip) notify() {
	select {
	case g.C <- true:
	default:
	}
}

// advertiseAddr picks the address a member is known by: the configured one,
// or the listener's, with an unspecified host replaced by an interface address.
func advertiseAddr(configured string, bound net.Addr) (string, error) {
	if configured != "" {
		return configured, nil
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return "", fmt.Errorf("gossip: listener address %q: %w", bound, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsUnspecified() {
		return bound.String(), nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("gossip: listening on %s: find an address to advertise: %w", bound, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			return net.JoinHostPort(n.IP.String(), port), nil
		}
	}
	return "", fmt.Errorf("gossip: listening on %s and no interface address to advertise; set Config.AdvertiseAddr", bound)
}
