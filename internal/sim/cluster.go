package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/gossipfd/gossip/internal/protocol"
)

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
	// ProbeTimeout is the timeout of a probe (protocol.Probe); zero means
	// the root package's default.
	ProbeTimeout time.Duration
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
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = min(c.Interval/2, c.Net.Timeout)
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
	// Dials counts the calls that found no pooled connection to their
	// peer, by purpose: each dialled a connection of its own.
	Dials map[protocol.Purpose]int
	// Skipped counts the messages not sent for want of a slot (see
	// maxExchangesInFlight).
	Skipped int
	// Refused counts the calls refused (made to a crashed member), each
	// reported to the caller's protocol (State.Refused).
	Refused int
	// Warnings counts the log records at warning level.
	Warnings int
}

// member is one member: its protocol state and the shell's state around it.
type member struct {
	s       *protocol.State
	addr    string
	pool    pool
	pace    *protocol.Pacer
	signal  bool // a spread was asked for and not yet looked at
	waiting bool // a spread waits for the pacer
	sem     int  // exchanges in flight (the root package's sem)
	rsem    int  // rumors in flight (rsem)
	psem    int  // probes in flight (psem)
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
		Stats: Stats{Sent: map[protocol.Purpose]int{}, Failed: map[protocol.Purpose]int{}, Dials: map[protocol.Purpose]int{}},
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
			pace: protocol.NewPacer(cfg.Interval),
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
			cn, _ := m.pool.acquire(Addr(j), c.net.Now(), true)
			m.pool.release(cn, false)
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

// Crash stops member i for good, without a word, as a process dies on a
// host that stays up: calls to it are refused.
func (c *Cluster) Crash(i int) { c.close(i) }

// CrashHost stops member i for good with its host: calls to it time out,
// and only the failure time tells it is gone.
func (c *Cluster) CrashHost(i int) {
	c.members[i].closed = true
	c.net.CrashHost(i)
}

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
// news sent RumorFanout at a time until leaveAcks peers (or all) took it
// and on for one interval more, then the member closes.
func (c *Cluster) Leave(i int) {
	m := c.members[i]
	out := m.s.Leave(c.Now())
	news := out.Send
	out.Send = nil
	c.apply(i, out)
	c.announce(i, news)
}

// close closes member i: it answers no more.
func (c *Cluster) close(i int) {
	c.members[i].closed = true
	c.net.Crash(i)
}
