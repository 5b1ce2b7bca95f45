// Package protocol is the gossip protocol as a state machine: the membership
// table and every rule that changes it, with no I/O.
//
// A State is driven only by its inputs. The time is passed in; requests and
// answers come in as values; what to do comes out as an Output: messages to
// send and to whom, seeds to contact, membership events, log records, and
// whether the live set changed. A State starts no goroutine, uses no channel,
// reads no clock, touches no network, file or logger, and draws its random
// numbers from the source its caller gives it. It is not safe for concurrent
// use: its caller holds one lock around it.
//
// The root package is the shell that runs a State over net/rpc: it listens,
// dials, keeps connections, times rounds, logs and notifies. The simulation
// (internal/sim) runs the same State over an in-memory network, so what it
// measures is the code that runs.
//
// One round, as the shell drives it:
//
//	out := s.Tick(now, held)          // heartbeat, failure rules, a partner
//	for _, m := range out.Send {      // the shell sends m.Req to m.To ...
//		resp, out := peer.HandleRequest(m.Req, now) // ... the peer merges and answers ...
//		out = s.HandleResponse(m.To, m.Purpose, resp, now) // ... and we merge the answer
//	}
//
// and out.Send of HandleResponse holds the data the peer asked for, if any.
package protocol

import (
	"math/rand/v2"
	"slices"
	"time"
)

// Config holds the protocol's settings. The root package fills every field
// with its default before calling New.
type Config struct {
	// Interval is the time between gossip rounds.
	Interval time.Duration
	// Nfailures is how many spread times a member must miss to be
	// considered dead (see failure.go).
	Nfailures int
	// FalseReportTarget, when positive, sets the failure time from a
	// target probability of a false report at ExpectedLoss instead.
	FalseReportTarget float64
	// ExpectedLoss is the message loss rate the failure time is set for:
	// FalseReportTarget is met at it, and the timeout rule waits longer
	// while this member sees more (see healthyTimeout). Zero means 10%.
	ExpectedLoss float64
	// MaxDataSize bounds a member's encoded data; larger entries are
	// dropped on receipt.
	MaxDataSize int
	// MaxMembers bounds the membership table and the entries of one
	// message.
	MaxMembers int
	// MaxOutboundConns is how many peers a member holds connections to,
	// and so gossips with by preference (see ChoosePartner).
	MaxOutboundConns int
	// ClusterName is put into every request and response.
	ClusterName string
	// Seeds are the names (host:port) to join through, retried with
	// backoff while they are not live members.
	Seeds []string
	// Debug asks for debug-level log records; without it only those at
	// info level and above are made, so the hot path allocates none.
	Debug bool
}

// State is one member's protocol state. See the package comment.
type State struct {
	cfg     Config
	rng     *rand.Rand
	phase   phase
	addr    string // this member's advertised address, set by Start
	table   table
	retry   map[string]*retryState // seeds and dead members being contacted (see recovery.go)
	aliases map[string]bool        // addresses found to reach this member
	rumors  map[string]rumor       // news to spread at once (see rumor.go)
	// rumorDials is how many more peers spreads may dial before the next
	// round (see rumorDialsPerRound).
	rumorDials int
	// rumorsLearned counts the rumors learned since the last round, and
	// in the round before (see stormRumors).
	rumorsLearned [2]int
	suspects      map[string]*suspicion // live members suspected of silence (see suspect.go)
	reach         reach                 // this member's calls answered, for the evidence of silence (see suspect.go)
	evidence      map[evidenceKey]int   // D already worked out (see silentProbes)
	calls         []call                // exchanges not yet counted in reach (see suspect.go)
	watched       time.Time             // when the failure rules were last applied (see watch)
	out           Output                // what the input being handled produced so far
}

type phase int

const (
	idle    phase = iota // not started
	running              // gossiping
	left                 // Leave was called: no more rounds, answers still
)

// New returns the state of a member not yet started, carrying data (encoded
// by the caller; nil for none). rng is its source of random numbers, used
// for every choice it makes.
func New(cfg Config, rng *rand.Rand, data []byte) *State {
	s := &State{
		cfg:        cfg,
		rng:        rng,
		retry:      make(map[string]*retryState),
		aliases:    make(map[string]bool),
		rumors:     make(map[string]rumor),
		rumorDials: rumorDialsPerRound,
		suspects:   make(map[string]*suspicion),
		evidence:   make(map[evidenceKey]int),
	}
	s.table.members = make(map[string]*entry)
	s.table.self = &entry{alive: true, data: data}
	return s
}

// Start makes this member the running member at addr, at time now. Its
// heartbeat starts at now in microseconds, above any heartbeat an earlier
// member at the same address can have reached (it counts one per round and
// per data change).
func (s *State) Start(addr string, now time.Time) {
	self := s.table.self
	s.addr, s.phase = addr, running
	self.addr, self.heartbeat, self.lastRise = addr, now.UnixMicro(), now
	self.version = self.heartbeat
	s.table.put(self)
	s.watched = now
}

// Addr returns the member's advertised address, or "" before Start.
func (s *State) Addr() string { return s.addr }

// Running reports whether the member has started and not left.
func (s *State) Running() bool { return s.phase == running }

// IsSelf reports whether addr is known to reach this member: its own
// address, or one found to lead back to it.
func (s *State) IsSelf(addr string) bool { return addr == s.addr || s.aliases[addr] }

// Tick is one gossip round at time now. held are the peers the caller holds
// connections to. It bumps this member's heartbeat, applies the failure
// rules (probing suspected members: Output.Send of purpose Probe, see
// suspect.go), and asks for an exchange with a live peer (Output.Send,
// purpose Exchange); now and then, and always while it knows no live peer, it also
// asks for a seed or a recently dead member to be contacted
// (Output.Contacts), so that a member joins when its seeds appear and a
// healed partition merges again.
func (s *State) Tick(now time.Time, held []string) Output {
	if s.phase != running {
		return Output{}
	}
	s.watch(now)
	self := s.table.self
	self.heartbeat++
	self.lastRise = now
	s.sweep(now)
	s.suspect(now, held)
	peers := s.table.livePeerCount()
	if peers > 0 {
		target := ChoosePartner(s.rng, s.heldLive(held), s.cfg.MaxOutboundConns, func() string {
			p, _ := s.table.randomPeer(s.rng, func(string) bool { return true })
			return p
		})
		s.send(target, Exchange, s.request())
		s.calling(target, now)
	}
	if peers <= 0 || s.rng.IntN(peers+1) == 0 {
		s.recover(now, peers <= 0)
	}
	s.rumorDials, s.rumorsLearned = rumorDialsPerRound, [2]int{0, s.rumorsLearned[0]}
	if len(s.rumors) > 0 {
		s.out.Rumors = true // those a spread had no peer for since the last round
	}
	return s.flush()
}

// NextTick returns how long to wait for the next round: the interval, give
// or take a tenth at random, so that members started together do not gossip
// in lockstep.
func (s *State) NextTick() time.Duration {
	interval := s.cfg.Interval
	jitter := time.Duration(s.rng.Int64N(int64(interval)/5 + 1))
	return interval - interval/10 + jitter
}

// Request returns a full exchange request for addr: a digest of the live
// table, the records of members that left and the death notices held. It returns false if addr is
// this member, or the member is not running.
func (s *State) Request(addr string) (ExchangeRequest, bool) {
	if s.phase != running || s.IsSelf(addr) {
		return ExchangeRequest{}, false
	}
	return s.request(), true
}

func (s *State) request() ExchangeRequest {
	return ExchangeRequest{From: s.addr, Cluster: s.cfg.ClusterName, Digest: s.table.digest(), Left: s.table.leftDigest(),
		Dead: s.table.noticeDigest(false), Silent: s.table.noticeDigest(true)}
}

// HandleRequest merges a peer's request at time now and returns the answer:
// the entries this member holds newer than the request's, with data where
// the request's version is older, and the names of the data the request
// showed newer without carrying it (Want). A request from this member's own
// address (it dialled itself) is answered with From alone. It returns an
// error for a request over the limits or with a malformed digest, having
// merged what came before the fault.
func (s *State) HandleRequest(req ExchangeRequest, now time.Time) (ExchangeResponse, Output, error) {
	resp := ExchangeResponse{From: s.addr, Cluster: s.cfg.ClusterName}
	if len(req.Members) > s.cfg.MaxMembers {
		return resp, Output{}, errTooMany(len(req.Members), s.cfg.MaxMembers)
	}
	if req.From == s.addr {
		return resp, Output{}, nil
	}
	gen, want, err := s.merge(req.Digest, req.Members, req.Left, req.Dead, req.Silent, now, true)
	if err == nil {
		resp.Digest, resp.Members = s.table.answer(gen, req.Partial)
		resp.Left = s.table.answerLeft(gen, req.Partial)
		resp.Dead = s.table.answerNotices(gen, req.Partial, false)
		resp.Silent = s.table.answerNotices(gen, req.Partial, true)
		resp.Want = want
	}
	return resp, s.flush(), err
}

// HandleResponse merges the answer of the peer at addr to a request sent
// for purpose p, at time now. If the peer asked for data, Output.Send holds
// a second request carrying it (purpose Push). If the answer shows that
// addr is this member, addr is remembered as such and nothing is merged. A
// member that was joining (purpose Join) exchanges with a seed that answered
// once more a moment later (Output.FollowUps).
func (s *State) HandleResponse(addr string, p Purpose, resp ExchangeResponse, now time.Time) Output {
	if s.addr != "" && resp.From == s.addr {
		s.aliases[addr] = true
		return Output{}
	}
	if p == Exchange || p == Rumor || p == Push {
		s.answered(addr)
	}
	if _, _, err := s.merge(resp.Digest, resp.Members, resp.Left, resp.Dead, resp.Silent, now, false); err != nil {
		s.debug(addr, "gossip: bad exchange response", "error", err)
	}
	if p != Push && len(resp.Want) > 0 && s.phase != idle {
		push := ExchangeRequest{From: s.addr, Cluster: s.cfg.ClusterName, Partial: true,
			Members: s.table.withData(resp.Want, s.cfg.MaxMembers)}
		if len(push.Members) > 0 {
			s.send(addr, Push, push)
			s.calling(addr, now)
		}
	}
	if p == Join && resp.From != "" && s.phase == running {
		s.out.FollowUps = append(s.out.FollowUps, FollowUp{To: addr, After: followUpGaps * RumorGap(s.cfg.Interval)})
	}
	return s.flush()
}

// followUpGaps is how many rumor gaps after joining a member exchanges with
// its seed again. The joiner learned the cluster as the seed knew it;
// members joining at the same time are missing, as a cluster's members all
// are when it starts. Rumors tell it of those that joined after it only by
// chance: most members learned of them from the seed's answer, and only a
// member that learns of a member from a rumor passes it on. A second
// exchange with the seed brings the joiner up to date; the seed's rumors and
// the periodic exchange do the rest.
const followUpGaps = 2

// Merge merges entries that a peer pushed (the Gossip.Gossip RPC, or
// Receive) at time now, as news to spread on.
func (s *State) Merge(entries []Entry, now time.Time) Output {
	s.merge(nil, entries, nil, nil, nil, now, true)
	return s.flush()
}

// SetData sets this member's encoded application data at time now. Its
// heartbeat counts up and versions the data, so that every member takes the
// new data; a change is spread at once.
func (s *State) SetData(data []byte, now time.Time) Output {
	self := s.table.self
	changed := !slices.Equal(self.data, data)
	self.data = data
	self.heartbeat++
	self.version = self.heartbeat
	if changed && s.phase == running {
		s.rumor(s.addr, now)
	}
	if changed {
		s.out.Changed = true
	}
	return s.flush()
}

// Sweep applies the failure rules at time now (see failure.go), as Tick
// does; the shell calls it before reading the table, so that a reader never
// sees a member alive past its failure time.
func (s *State) Sweep(now time.Time) Output {
	if s.phase == running {
		s.watch(now)
		s.sweep(now)
	}
	return s.flush()
}

// Row is one live member as Members returns it.
type Row struct {
	Addr      string
	Heartbeat int64
	Version   int64
	Data      []byte // never modified in place: the caller may keep it but not change it
}

// Members returns the live members, this one included once started, in no
// particular order.
func (s *State) Members() []Row {
	rows := make([]Row, 0, s.table.live)
	for _, e := range s.table.list {
		if e.alive {
			rows = append(rows, e.row())
		}
	}
	return rows
}

// Counts returns the members in the table: alive (this one included), dead,
// and left. Dead and left members count until they are forgotten.
func (s *State) Counts() (alive, failed, leftCount int) {
	for _, e := range s.table.list {
		switch {
		case e.alive:
			alive++
		case e.left:
			leftCount++
		default:
			failed++
		}
	}
	return alive, failed, leftCount
}

// heldLive returns those of held that are live peers.
func (s *State) heldLive(held []string) []string {
	live := make([]string, 0, len(held))
	for _, addr := range held {
		if e := s.table.members[addr]; e != nil && e.alive && e != s.table.self {
			live = append(live, addr)
		}
	}
	return live
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
// the simulation (internal/sim) runs this same code and checks the mean
// spread time against S(n) (see failure.go). A member with fewer peers than
// MaxOutboundConns holds a connection to each of them and chooses among all
// uniformly, as the paper does.

// rotateRounds is how many rounds, on average, a member with a full set of
// connections goes between two exchanges with a peer chosen among all. At
// 16 a connection carries about MaxOutboundConns × 16 exchanges (64 with
// the root package's default of 4 connections). At 8, new connections
// (dial, close, gob compiling its types on both ends) took a fifth of the
// CPU of a steady 128-member cluster; at 32 (with 6 connections) the graph
// mixed too slowly while a cluster formed through one seed, and the
// simulation saw false reports under 10% loss (internal/sim's crash and
// silent-host tests).
const rotateRounds = 16

// ChoosePartner picks a round's exchange partner: if held, the live peers a
// connection is held to, number fewer than capacity, or one round in
// rotateRounds, any live peer chosen uniformly by anyPeer; otherwise one of
// held, uniformly.
func ChoosePartner[T any](r *rand.Rand, held []T, capacity int, anyPeer func() T) T {
	if len(held) == 0 || len(held) < capacity || r.IntN(rotateRounds) == 0 {
		return anyPeer()
	}
	return held[r.IntN(len(held))]
}

// Status is what the table says of a member.
type Status int

// The statuses of Lookup.
const (
	Unknown Status = iota // not in the table: never heard of, or forgotten
	Alive
	Dead // declared dead, remembered until the cleanup time
	Gone // left the cluster, remembered until the cleanup time
)

// Lookup returns the table's row for addr, alive or remembered, and its
// status.
func (s *State) Lookup(addr string) (Row, Status) {
	e := s.table.members[addr]
	switch {
	case e == nil:
		return Row{}, Unknown
	case e.alive:
		return e.row(), Alive
	case e.left:
		return e.row(), Gone
	}
	return e.row(), Dead
}

func (e *entry) row() Row {
	return Row{Addr: e.addr, Heartbeat: e.heartbeat, Version: e.version, Data: e.data}
}
