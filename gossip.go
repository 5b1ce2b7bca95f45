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
// NewWithConfig and Start return errors; Shutdown leaves the cluster, so that
// the others drop the member at once, and closes it; C is closed then, which
// ends the loop:
//
//	g, err := gossip.NewWithConfig(gossip.Config{
//		Addr:  "10.0.0.1:7000",
//		Seeds: []string{"10.0.0.2:7000"},
//		Data:  "http://10.0.0.1:8080",
//	})
//	if err != nil {
//		return err
//	}
//	if err := g.Start(); err != nil { // binds the address, joins in the background
//		return err
//	}
//	go func() {
//		<-ctx.Done()
//		g.Shutdown(context.Background()) // leave, then close: C is closed
//	}()
//	for range g.C { // signalled on every change
//		for _, m := range g.GetMembers() {
//			fmt.Println(m.Addr, m.Data)
//		}
//	}
//
// The original package's form works too, for code written against it: New
// never fails, Run blocks until Close and logs the error it cannot return,
// SetData logs where UpdateData returns, and Close closes without leaving.
// These are the only pairs: New or NewWithConfig; Run or Start; Close or
// Shutdown; SetData or UpdateData.
//
// Events tells what changed (a member joined, changed its data, failed, left
// or came back) where C only tells that something did, and Stats returns the
// member's counters, also served to any net/rpc client as Gossip.Stats.
// Data of types other than Go's basic ones must be registered with
// gob.Register in every process that decodes it.
//
// # Structure
//
// The protocol's state and rules live in internal/protocol, a state machine
// with no I/O: it takes the time, requests and answers as inputs and gives
// back what to send, events and log records. This package is its shell: it
// listens (server.go), serves net/rpc (rpc.go, codec.go), dials and keeps
// connections (pool.go), carries out what the state machine asks
// (exchange.go), times rounds and spreads (this file), and
// delivers events (events.go) and C. Any Go program can read a live member
// with a plain net/rpc client:
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

	"github.com/gossipfd/gossip/internal/protocol"
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
// until Close or Shutdown, one of which must be called to release them.
type Gossip struct {
	// C receives true whenever the set of live members or any member's data
	// changes. It has a buffer of one and is never blocked on: a slow or absent
	// reader misses only duplicate signals, and should call GetMembers after
	// each one. C is closed when the member is closed, so that a loop
	// ranging over it ends.
	C chan bool

	// DebugOutput turns on protocol debug logs when the member uses its own
	// logger (Config.Logger nil). Set it before Start or Run.
	DebugOutput bool

	// Tgossip is the gossip interval and Trpc the deadline of one RPC. New
	// and NewWithConfig set them from the Config (whose zero values mean the
	// package variables of the same names); they may be changed between New
	// and Start (or Run) and are read once there.
	Tgossip time.Duration
	Trpc    time.Duration

	cfg       Config // defaults applied; fixed after Start
	initErr   error  // a Config error of New, reported by Start
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
	stopErr error
	sem     chan struct{} // bounds outgoing exchanges in flight
	rsem    chan struct{} // bounds outgoing rumors in flight, apart, so that they never hold up a round
	psem    chan struct{} // bounds outgoing probes in flight, apart
	rtt     rtt           // of answered exchanges, for the overload guard (see overload.go)
	spread  chan struct{} // signalled when there are rumors to spread
	events  *eventQueue   // see Events
	metrics metrics       // see Stats
	values  valueCache    // decoded data (see member.go)

	server *rpc.Server
	pool   *clientPool
	conns  connSet

	mismatch logLimit // rate-limits warnings about other clusters' members

	cmu     sync.Mutex // protects cClosed; held while sending on C
	cClosed bool

	mu    sync.Mutex // protects everything below
	state int
	ln    net.Listener
	data  []byte          // this member's encoded data until Start; then the protocol holds it
	proto *protocol.State // nil until Start
}

const (
	stateNew      = iota
	stateStarting // Start is binding the address
	stateRunning  // started; Shutdown may have left the cluster
	stateClosed
)

// New returns a member that will listen on addr, carry data and join the
// cluster through the seed addresses otherNodes. It never fails: an invalid
// argument is reported when Run starts the member. NewWithConfig and Start
// return errors instead.
func New(addr string, data interface{}, otherNodes []string) *Gossip {
	g, _ := newGossip(Config{Addr: addr, Data: data, Seeds: otherNodes})
	return g
}

// NewWithConfig returns a member configured by cfg, not yet started, or an
// error if cfg is invalid or cfg.Data cannot be encoded. cfg is not
// modified.
func NewWithConfig(cfg Config) (*Gossip, error) {
	g, err := newGossip(cfg)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// newGossip returns a member and the error of its configuration, if any; the
// member then fails to start with that error.
func newGossip(cfg Config) (*Gossip, error) {
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
		psem:      make(chan struct{}, maxProbesInFlight),
		spread:    make(chan struct{}, 1),
		events:    newEventQueue(cfg.EventBuffer),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
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
		g.data, err = encodeData(cfg.Data, cfg.MaxDataSize)
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
	if err := g.starting(); err != nil {
		return err
	}
	// The Transport, the Logger and the Clock are the user's: called
	// without the lock.
	ln, addr, err := g.listen()
	var server *rpc.Server
	if err == nil {
		server = rpc.NewServer()
		if rerr := server.RegisterName(serviceName, &service{g: g}); rerr != nil {
			ln.Close()
			err = fmt.Errorf("gossip: register rpc service: %w", rerr)
		}
	}
	if err != nil {
		g.mu.Lock()
		if g.state == stateStarting {
			g.state = stateNew
		}
		g.mu.Unlock()
		return err
	}
	log := g.log.WithField("member", addr)
	pcfg := g.protocolConfig(debugEnabled(log))
	now := g.clock.Now()

	g.mu.Lock()
	if g.state == stateClosed {
		g.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	g.server, g.ln, g.state, g.log = server, ln, stateRunning, log
	g.pool = newClientPool(g.transport, &g.cfg, g.clock, &g.metrics)
	if !g.cfg.DisableDeathNotices {
		g.pool.ended = g.connEnded
	}
	g.proto = protocol.New(pcfg, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), g.data)
	g.proto.Start(addr, now)
	g.data = nil
	g.wg.Add(3)
	g.mu.Unlock()

	go g.serve(ln)
	go g.loop()
	go func() {
		defer g.wg.Done()
		g.events.run(g.ctx, g.clock)
	}()
	log.WithFields(logrus.Fields{"seeds": g.cfg.Seeds, "interval": g.cfg.GossipInterval}).Info("gossip member started")
	return nil
}

// starting checks that the member may start, and marks it as starting.
func (g *Gossip) starting() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.initErr != nil:
		return g.initErr
	case g.state == stateStarting || g.state == stateRunning:
		return ErrStarted
	case g.state == stateClosed:
		return ErrClosed
	case g.Tgossip <= 0 || g.Trpc <= 0:
		return fmt.Errorf("gossip: Tgossip (%v) and Trpc (%v) must be positive", g.Tgossip, g.Trpc)
	}
	g.cfg.GossipInterval, g.cfg.RPCTimeout = g.Tgossip, g.Trpc
	if g.ownLog != nil && g.DebugOutput {
		g.ownLog.SetLevel(logrus.DebugLevel)
	}
	g.state = stateStarting
	return nil
}

// protocolConfig is the protocol's share of the configuration.
func (g *Gossip) protocolConfig(debug bool) protocol.Config {
	return protocol.Config{
		Interval:          g.cfg.GossipInterval,
		Nfailures:         g.cfg.Nfailures,
		FalseReportTarget: g.cfg.FalseReportTarget,
		ExpectedLoss:      g.cfg.ExpectedLoss,
		MaxDataSize:       g.cfg.MaxDataSize,
		MaxMembers:        g.cfg.MaxMembers,
		MaxOutboundConns:  g.cfg.MaxOutboundConns,
		ClusterName:       g.cfg.ClusterName,
		Seeds:             g.cfg.Seeds,
		Debug:             debug,
	}
}

// Run starts the member and returns only after Close. If the member cannot
// start, Run logs the reason and returns at once; Start returns it instead.
func (g *Gossip) Run() {
	if err := g.Start(); err != nil {
		if !errors.Is(err, ErrClosed) {
			g.log.WithError(err).Error("gossip member did not start")
		}
		return
	}
	<-g.done
}

// Addr returns the member's advertised address, its identity in the cluster,
// once Start has succeeded; before that, the configured address.
func (g *Gossip) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proto != nil {
		return g.proto.Addr()
	}
	return g.cfg.Addr
}

// Done returns a channel that is closed when the member has been closed and
// all its goroutines have ended.
func (g *Gossip) Done() <-chan struct{} { return g.done }

// Close stops the member without leaving the cluster: it closes the listener
// and every connection, stops every goroutine, closes C and Events, and makes
// Run return. The others drop the member after FailureTime, as for a crash;
// Shutdown leaves first. Close is safe to call more than once; errors met
// while closing are logged (Shutdown returns them).
func (g *Gossip) Close() {
	if err := g.close(); err != nil {
		g.log.WithError(err).Warn("closing gossip member")
	}
}

// close is Close returning the errors met; later calls return the first
// call's result.
func (g *Gossip) close() error {
	g.once.Do(func() {
		g.mu.Lock()
		g.state = stateClosed
		ln, pool := g.ln, g.pool
		g.mu.Unlock()
		g.cancel()
		var err error
		if ln != nil {
			if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
				err = fmt.Errorf("gossip: close listener: %w", cerr)
			}
		}
		g.conns.closeAll()
		if pool != nil {
			pool.close()
		}
		g.wg.Wait()
		g.events.closeOut() // run has ended, or never started
		g.cmu.Lock()
		g.cClosed = true
		close(g.C)
		g.cmu.Unlock()
		g.stopErr = err
		close(g.done)
		if ln != nil {
			g.log.Info("gossip member closed")
		}
	})
	<-g.done
	return g.stopErr
}

// loop runs one gossip round every interval, with a little jitter so that
// members started together do not gossip in lockstep (protocol's NextTick).
// Between rounds it spreads rumors as they come, paced by a protocol.Pacer.
func (g *Gossip) loop() {
	defer g.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	pace := protocol.NewPacer(g.cfg.GossipInterval)
	var (
		held  *time.Timer // a spread waiting for the pacer, if any
		heldC <-chan time.Time
	)
	defer func() {
		if held != nil {
			held.Stop()
		}
	}()
	spread := func() {
		if wait := pace.Wait(time.Now()); wait > 0 {
			held = time.NewTimer(wait)
			heldC = held.C
			return
		}
		g.spreadRumors()
	}
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			g.tick()
			g.mu.Lock()
			next := g.proto.NextTick()
			g.mu.Unlock()
			t.Reset(next)
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

// tick runs one gossip round (protocol's Tick) and carries out what it asks.
func (g *Gossip) tick() {
	held := g.pool.held()
	now := g.clock.Now()
	g.mu.Lock()
	if g.state != stateRunning || !g.proto.Running() {
		g.mu.Unlock()
		return
	}
	g.metrics.rounds.Add(1)
	out := g.proto.Tick(now, held)
	g.queueEvents(out)
	g.mu.Unlock()
	g.pool.closeIdle()
	g.apply(out)
}

// spreadRumors spreads the rumors waiting (protocol's Spread).
func (g *Gossip) spreadRumors() {
	held := g.pool.held()
	g.step(func(s *protocol.State, now time.Time) protocol.Output { return s.Spread(now, held) })
}

// notify signals C without ever blocking.
func (g *Gossip) notify() {
	g.cmu.Lock()
	defer g.cmu.Unlock()
	if g.cClosed {
		return
	}
	select {
	case g.C <- true:
	default:
	}
}

// askSpread asks the loop for a spread, without blocking.
func (g *Gossip) askSpread() {
	select {
	case g.spread <- struct{}{}:
	default:
	}
}
