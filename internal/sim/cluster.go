// Package sim runs the gossip protocol's state machine (internal/protocol)
// for many members over an in-memory network (Network), in virtual time:
// no sockets, no goroutines, no sleeps, and the same run for the same seed.
// What it measures is the code the members run; only the shell around the
// state machine is played here, as the root package plays it (exchange.go):
//
//	every round (a timer per member):
//		out := s.Tick(now, pool.held())                // heartbeat, failure rules, a partner
//	carry out an Output:
//		Events                 -> Cluster.OnEvent
//		Rumors                 -> s.Spread(now, held), paced as the shell paces it
//		Send                   -> a call over the Network, bounded per member as the shell bounds it:
//			callee: resp, out, err := s.HandleRequest(req, now)
//			caller: out := s.HandleResponse(to, purpose, resp, now)   (not for Announce),
//			        then the Push sends of out over the same call's slot
//		Contacts               -> s.Request(name), a call with the Target's purpose, then s.Contacted
//		FollowUps              -> after f.After, s.Request(f.To) and a call (Recover)
//
// The simulated shell keeps what the root package keeps beside the state:
// each member's pool of held connections (pool.go) and rumor pacer. Faults
// are the Network's: loss, delay, partitions, paused and crashed members.
//
// Run measures the spread of a heartbeat and of a data change and the
// detection of a crash (SimResult); the tests and the flags of sim_test.go
// run it over a grid of sizes and loss rates.
package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/gossipfd/gossip/internal/protocol"
)

// maxExchangesInFlight is the root package's bound on the exchanges (and,
// apart, the rumors) a member has under way: beyond it, a message is
// skipped (config.go).
const maxExchangesInFlight = 8

// leaveAcks is how many peers must have taken the news that a member leaves
// before it closes (the root package's leave.go).
const leaveAcks = 3

// Epoch is the wall-clock time of virtual time 0.
var Epoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Config describes a simulated cluster. Zero fields mean the root package's
// defaults (gossip.DefaultConfig) where one exists.
type Config struct {
	// N is the number of members.
	N int
	// Seed seeds every random choice: the members', the network's and the
	// cluster's.
	Seed uint64
	// Lockstep makes every member tick at the same instants, every
	// Interval; without it each member ticks at its own pace (the State's
	// NextTick), as members of a real cluster do.
	Lockstep bool
	// Net is the network's faults; its Timeout, if zero, is gossip.Trpc.
	Net NetConfig
	// Seeds are the members whose addresses are every member's seeds.
	Seeds []int

	// The members' protocol settings (protocol.Config).
	Interval          time.Duration
	Nfailures         int
	FalseReportTarget float64
	ExpectedLoss      float64
	MaxMembers        int // zero: the default, or N if larger
	MaxOutboundConns  int
	IdleTimeout       time.Duration
}

// withDefaults fills the zero fields of c.
func (c Config) withDefaults() Config {
	d := gossip.DefaultConfig()
	if c.Interval == 0 {
		c.Interval = d.GossipInterval
	}
	if c.Nfailures == 0 {
		c.Nfailures = d.Nfailures
	}
	if c.ExpectedLoss == 0 {
		c.ExpectedLoss = d.ExpectedLoss
	}
	if c.MaxMembers == 0 {
		c.MaxMembers = max(d.MaxMembers, c.N)
	}
	if c.MaxOutboundConns == 0 {
		c.MaxOutboundConns = d.MaxOutboundConns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.Net.Timeout == 0 {
		c.Net.Timeout = d.RPCTimeout
	}
	return c
}

// Cluster is N members, each a protocol.State with the shell's state
// around it, over a Network. It is not safe for concurrent use.
type Cluster struct {
	cfg     Config
	net     *Network
	rng     *rand.Rand // the cluster's own choices: when members start ticking
	members []*member
	index   map[string]int

	// OnEvent, if set, is called with every membership event of every
	// member, as it happens.
	OnEvent func(member int, ev protocol.Event)
	// OnTick, if set, is called after each round of each member.
	OnTick func(member int)
	// Stats counts what the members did.
	Stats Stats
}

// Stats counts the messages of a run.
type Stats struct {
	// Sent counts the calls made, by purpose.
	Sent map[protocol.Purpose]int
	// Failed counts the calls that failed, by purpose.
	Failed map[protocol.Purpose]int
	// Skipped counts the messages not sent for want of a slot (see
	// maxExchangesInFlight).
	Skipped int
	// Warnings counts the log records at warning level.
	Warnings int
}

// member is one member: its protocol state and the shell's state around it.
type member struct {
	s       *protocol.State
	addr    string
	pool    pool
	pace    pacer
	signal  bool // a spread was asked for and not yet looked at
	waiting bool // a spread waits for the pacer
	sem     int  // exchanges in flight (the root package's sem)
	rsem    int  // rumors in flight (rsem)
	next    time.Duration
	closed  bool
}

// New returns a cluster of cfg.N members, none started, at virtual time 0.
func New(cfg Config) *Cluster {
	cfg = cfg.withDefaults()
	c := &Cluster{
		cfg:   cfg,
		net:   NewNetwork(cfg.N, cfg.Net, rand.New(rand.NewPCG(cfg.Seed, 1<<32))),
		rng:   rand.New(rand.NewPCG(cfg.Seed, 1<<32+1)),
		index: make(map[string]int, cfg.N),
		Stats: Stats{Sent: map[protocol.Purpose]int{}, Failed: map[protocol.Purpose]int{}},
	}
	var seeds []string
	for _, i := range cfg.Seeds {
		seeds = append(seeds, Addr(i))
	}
	pc := protocol.Config{
		Interval:          cfg.Interval,
		Nfailures:         cfg.Nfailures,
		FalseReportTarget: cfg.FalseReportTarget,
		ExpectedLoss:      cfg.ExpectedLoss,
		MaxDataSize:       gossip.DefaultMaxDataSize,
		MaxMembers:        cfg.MaxMembers,
		MaxOutboundConns:  cfg.MaxOutboundConns,
		Seeds:             seeds,
	}
	for i := 0; i < cfg.N; i++ {
		m := &member{
			s:    protocol.New(pc, rand.New(rand.NewPCG(cfg.Seed, uint64(i))), nil),
			addr: Addr(i),
			pool: pool{capacity: cfg.MaxOutboundConns},
			pace: newPacer(protocol.RumorGap(cfg.Interval), cfg.Interval),
		}
		c.members = append(c.members, m)
		c.index[m.addr] = i
		c.net.Crash(i) // nothing listens until it starts
	}
	return c
}

// Addr returns the address of member i.
func Addr(i int) string { return fmt.Sprintf("10.%d.%d.%d:7000", i>>16&255, i>>8&255, i&255) }

// Config returns the cluster's configuration, defaults filled in.
func (c *Cluster) Config() Config { return c.cfg }

// Net returns the cluster's network, to change its faults.
func (c *Cluster) Net() *Network { return c.net }

// N returns the number of members.
func (c *Cluster) N() int { return len(c.members) }

// Member returns member i's protocol state, to read (Lookup, Members,
// Counts, FailureTime). Its input methods are the cluster's to call.
func (c *Cluster) Member(i int) *protocol.State { return c.members[i].s }

// Index returns the member at addr.
func (c *Cluster) Index(addr string) (int, bool) {
	i, ok := c.index[addr]
	return i, ok
}

// Elapsed returns the virtual time since the cluster was made.
func (c *Cluster) Elapsed() time.Duration { return c.net.Now() }

// Now returns the virtual wall-clock time, Epoch + Elapsed.
func (c *Cluster) Now() time.Time { return Epoch.Add(c.net.Now()) }

// NextTick returns the elapsed time of member i's next round.
func (c *Cluster) NextTick(i int) time.Duration { return c.members[i].next }

// RunFor runs the cluster for d of virtual time.
func (c *Cluster) RunFor(d time.Duration) { c.net.RunFor(d) }

// RunUntil runs the cluster until elapsed time t.
func (c *Cluster) RunUntil(t time.Duration) { c.net.RunUntil(t) }

// StartConverged starts every member now, each knowing every other alive
// (their Joined events are not reported), as if the cluster had been
// running for a while. With Lockstep they tick at the next multiple of the
// interval and every interval after; otherwise each first ticks at a random
// time within an interval, and then at its own pace.
func (c *Cluster) StartConverged() {
	now := c.Now()
	full := make([]protocol.Entry, len(c.members))
	for i, m := range c.members {
		m.s.Start(m.addr, now)
		c.net.Restart(i)
		row, _ := m.s.Lookup(m.addr)
		full[i] = protocol.Entry{Addr: row.Addr, Heartbeat: row.Heartbeat, Version: row.Version, WithData: true, Data: row.Data}
	}
	for _, m := range c.members {
		m.s.HandleResponse("", protocol.Exchange, protocol.ExchangeResponse{Members: full}, now)
	}
	for i := range c.members {
		first := c.cfg.Interval
		if !c.cfg.Lockstep {
			first = time.Duration(c.rng.Int64N(int64(c.cfg.Interval)))
		}
		c.scheduleTick(i, c.lockstepAfter(c.net.Now()+first))
	}
}

// FillPools gives every started member a full pool of connections to peers
// chosen at random, as a member holds after gossiping for a while (see
// protocol.ChoosePartner): a start from the pools' steady state.
func (c *Cluster) FillPools() {
	n := len(c.members)
	for i, m := range c.members {
		k := min(m.pool.capacity, n-1)
		for len(m.pool.conns) < k {
			j := c.rng.IntN(n - 1)
			if j >= i {
				j++
			}
			m.pool.release(m.pool.acquire(Addr(j), c.net.Now(), true), false)
		}
	}
}

// Start starts member i now, knowing only its seeds. It ticks at once, as
// a member does when it starts (with Lockstep, at the next multiple of the
// interval).
func (c *Cluster) Start(i int) {
	m := c.members[i]
	m.s.Start(m.addr, c.Now())
	c.net.Restart(i)
	c.scheduleTick(i, c.lockstepAfter(c.net.Now()))
}

// lockstepAfter returns t, or with Lockstep the first multiple of the
// interval from t.
func (c *Cluster) lockstepAfter(t time.Duration) time.Duration {
	if !c.cfg.Lockstep {
		return t
	}
	iv := c.cfg.Interval
	return (t + iv - 1) / iv * iv
}

func (c *Cluster) scheduleTick(i int, at time.Duration) {
	c.members[i].next = at
	c.net.At(at, i, func() { c.tick(i) })
}

// tick is member i's round, as the root package's loop and tick run it.
func (c *Cluster) tick(i int) {
	m := c.members[i]
	if !m.s.Running() {
		return
	}
	out := m.s.Tick(c.Now(), m.pool.held())
	m.pool.closeIdle(c.net.Now(), c.cfg.IdleTimeout/2)
	c.apply(i, out)
	if c.OnTick != nil {
		c.OnTick(i)
	}
	next := c.cfg.Interval
	if !c.cfg.Lockstep {
		next = m.s.NextTick()
	}
	c.scheduleTick(i, c.net.Now()+next)
}

// SetData sets member i's data now.
func (c *Cluster) SetData(i int, data []byte) {
	c.apply(i, c.members[i].s.SetData(data, c.Now()))
}

// Crash stops member i for good, without a word.
func (c *Cluster) Crash(i int) { c.close(i) }

// Pause stops member i until Resume, as SIGSTOP stops a process.
func (c *Cluster) Pause(i int) { c.net.Pause(i) }

// Resume starts member i again after Pause.
func (c *Cluster) Resume(i int) { c.net.Resume(i) }

// Partition splits the members into the groups given and one of the rest
// (see Network.Partition); Heal ends it.
func (c *Cluster) Partition(groups ...[]int) { c.net.Partition(groups...) }

// Heal ends a partition.
func (c *Cluster) Heal() { c.net.Heal() }

// Leave makes member i leave, as Shutdown does: the protocol's Leave, its
// news sent RumorFanout at a time until leaveAcks peers (or all) took it,
// then the member closes.
func (c *Cluster) Leave(i int) {
	m := c.members[i]
	out := m.s.Leave(c.Now())
	news := out.Send
	out.Send = nil
	c.apply(i, out)
	need := min(leaveAcks, len(news))
	if need == 0 {
		c.close(i)
		return
	}
	next, inflight, acks := 0, 0, 0
	var launch func()
	launch = func() {
		msg := news[next]
		next++
		inflight++
		c.send(i, msg, func(err error) {
			inflight--
			switch {
			case m.closed:
			case err == nil:
				if acks++; acks == need {
					c.close(i)
				}
			case next < len(news):
				launch()
			case inflight == 0:
				c.close(i) // told fewer than it wished
			}
		})
	}
	for inflight < protocol.RumorFanout && next < len(news) {
		launch()
	}
}

// close closes member i: it answers no more.
func (c *Cluster) close(i int) {
	c.members[i].closed = true
	c.net.Crash(i)
}

// apply carries out member i's output, as the root package's apply does.
func (c *Cluster) apply(i int, out protocol.Output) {
	for _, ev := range out.Events {
		if c.OnEvent != nil {
			c.OnEvent(i, ev)
		}
	}
	for _, l := range out.Logs {
		if l.Level >= protocol.Warn {
			c.Stats.Warnings++
		}
	}
	if out.Rumors {
		c.askSpread(i)
	}
	for _, msg := range out.Send {
		c.bounded(i, msg.Purpose == protocol.Rumor, func(done func()) {
			c.send(i, msg, func(error) { done() })
		})
	}
	for _, t := range out.Contacts {
		c.bounded(i, false, func(done func()) { c.contact(i, t, done) })
	}
	for _, f := range out.FollowUps {
		c.net.At(c.net.Now()+f.After, i, func() {
			if req, ok := c.members[i].s.Request(f.To); ok {
				c.bounded(i, false, func(done func()) {
					c.send(i, protocol.Send{To: f.To, Purpose: protocol.Recover, Req: req}, func(error) { done() })
				})
			}
		})
	}
}

// bounded runs f holding one of member i's slots for exchanges (or for
// rumors), which f's done gives back; with no slot free, it skips f.
func (c *Cluster) bounded(i int, rumor bool, f func(done func())) {
	m := c.members[i]
	slots := &m.sem
	if rumor {
		slots = &m.rsem
	}
	if *slots >= maxExchangesInFlight {
		c.Stats.Skipped++
		return
	}
	*slots++
	f(func() { *slots-- })
}

// send makes member i's call for msg, merges the answer (but an
// Announce's), sends the data the peer asked for, and then calls done with
// the call's error.
func (c *Cluster) send(i int, msg protocol.Send, done func(error)) {
	m := c.members[i]
	to, ok := c.index[msg.To]
	if !ok {
		to = -1
	}
	cn := m.pool.acquire(msg.To, c.net.Now(), msg.Purpose.KeepConn())
	c.Stats.Sent[msg.Purpose]++
	c.net.Call(i, to, func() (func(), error) {
		resp, out, err := c.members[to].s.HandleRequest(msg.Req, c.Now())
		c.apply(to, out)
		if err != nil {
			return nil, err
		}
		return func() { c.answered(i, msg, cn, resp, done) }, nil
	}, func(err error) {
		c.Stats.Failed[msg.Purpose]++
		m.pool.release(cn, errors.Is(err, ErrTimeout) || errors.Is(err, ErrRefused))
		done(err)
	})
}

// answered merges the answer to member i's call for msg, and sends the
// data the peer asked for, one message after the other, before done.
func (c *Cluster) answered(i int, msg protocol.Send, cn *conn, resp protocol.ExchangeResponse, done func(error)) {
	m := c.members[i]
	m.pool.release(cn, false)
	if msg.Purpose == protocol.Announce {
		done(nil)
		return
	}
	out := m.s.HandleResponse(msg.To, msg.Purpose, resp, c.Now())
	var pushes, rest []protocol.Send
	for _, s := range out.Send {
		if s.Purpose == protocol.Push {
			pushes = append(pushes, s)
		} else {
			rest = append(rest, s)
		}
	}
	out.Send = rest
	c.apply(i, out)
	var push func()
	push = func() {
		if len(pushes) == 0 {
			done(nil)
			return
		}
		p := pushes[0]
		pushes = pushes[1:]
		c.send(i, p, func(error) { push() })
	}
	push()
}

// contact makes member i's call to a seed or dead member and reports the
// outcome to the protocol. Names are addresses: nothing to resolve.
func (c *Cluster) contact(i int, t protocol.Target, done func()) {
	m := c.members[i]
	contacted := func(err error) {
		c.apply(i, m.s.Contacted(t.Name, err == nil, err, c.Now()))
		done()
	}
	req, ok := m.s.Request(t.Name)
	if !ok {
		c.apply(i, m.s.Contacted(t.Name, false, nil, c.Now()))
		done()
		return
	}
	c.send(i, protocol.Send{To: t.Name, Purpose: t.Purpose, Req: req}, contacted)
}

// askSpread signals member i's loop that rumors wait, as the root
// package's askSpread does; the loop spreads them when the pacer allows.
func (c *Cluster) askSpread(i int) {
	m := c.members[i]
	if m.signal {
		return
	}
	m.signal = true
	c.net.At(c.net.Now(), i, func() {
		m.signal = false
		if !m.waiting {
			c.spread(i)
		}
	})
}

// spread spreads member i's rumors now, or when the pacer allows.
func (c *Cluster) spread(i int) {
	m := c.members[i]
	if wait := m.pace.wait(c.net.Now()); wait > 0 {
		m.waiting = true
		c.net.At(c.net.Now()+wait, i, func() {
			m.waiting = false
			c.spread(i)
		})
		return
	}
	c.apply(i, m.s.Spread(c.Now(), m.pool.held()))
}
