package gossip

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
)

// Rumor spreading.
//
// On top of the periodic exchange (anti-entropy), a member that learns of a
// new member, a member back from the dead, a member that left (see leave.go)
// or new data sends just those entries at once to rumorFanout peers (see
// rumorPeersLocked), and once more at the next spread. Each member that
// learns something from them does the same, so a change reaches most members
// in a few round trips rather than in log(n) rounds, and the periodic
// exchange brings it to any it missed. A rumor message holds only the changed
// entries, so the cost of a change is O(n) messages of O(1) entries.
//
// Every member that learns a rumor sends it to c = rumorFanout × rumorSends
// peers. For such an epidemic the share of members that no copy reaches, s,
// solves s = exp(-c(1-s)) (Demers et al., "Epidemic Algorithms for
// Replicated Database Maintenance", PODC 1987): about 2% for c = 4, 0.03% for
// c = 8. With c = 8 a change reaches all of 128 members by rumors alone in
// about 96% of cases and all of 1,000 in about 70%; the rest learn it at
// their next exchange.
//
// A rumor is about one member, its subject; sending it to the subject itself
// tells it nothing. A spread picks its peers among the members its rumors are
// not about where there are enough, and a rumor counts as sent only once it
// has gone to a peer other than its subject. So the first joiner of a new
// cluster, the seed's only peer, does not use up the rumor about itself, and
// the rumor goes out when the next member joins.
const (
	rumorFanout = 4
	// rumorSends is how many spreads of a member carry each rumor it
	// learned.
	rumorSends = 2
	// The least time between two spreads from one member is
	// GossipInterval/rumorGapDivisor, at most maxRumorGap; rumors arriving
	// meanwhile go together.
	rumorGapDivisor = 10
	maxRumorGap     = 50 * time.Millisecond
	// rumorBurst is how many spreads a member makes at once before
	// rumorBudget holds it to rumorRate a round.
	rumorBurst = 8
	rumorRate  = 1
	// maxRumorEntries bounds one rumor message. Of a burst of more changes
	// than that (a storm: a cluster starting, a partition healing) the rest
	// is dropped and left to the periodic exchange, which carries bulk
	// changes far more cheaply than rumors would.
	maxRumorEntries = 64
)

// rumorGap is the least time between two spreads from one member.
func rumorGap(interval time.Duration) time.Duration {
	return min(interval/rumorGapDivisor, maxRumorGap)
}

// rumor is a pending rumor about one member.
type rumor struct {
	sends int       // spreads still to carry it
	since time.Time // when it was learned
}

// rumorBudget rations a member's spreads: rumorBurst at once, then rumorRate
// per GossipInterval. A single change spreads at once; a storm of changes (a
// thousand members joining) costs each member at most rumorRate × rumorFanout
// messages a round, each of up to maxRumorEntries entries, on top of its
// exchange, and the periodic exchange carries the rest.
type rumorBudget struct {
	tokens float64
	last   time.Time
	per    time.Duration // to earn one spread
}

// take spends one spread and returns 0, or returns how long until one is
// earned.
func (b *rumorBudget) take(now time.Time) time.Duration {
	if !b.last.IsZero() {
		b.tokens = min(rumorBurst, b.tokens+float64(now.Sub(b.last))/float64(b.per))
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.per))
}

// rumorLocked records that the entry of addr is news to spread, rumorSends
// times from now.
func (g *Gossip) rumorLocked(addr string) {
	if _, ok := g.rumors[addr]; ok || len(g.rumors) < g.cfg.MaxMembers {
		g.rumors[addr] = rumor{sends: rumorSends, since: g.clock.Now()}
	}
}

// changed signals C and asks the loop to spread the rumors.
func (g *Gossip) changed() {
	g.notify()
	g.askSpread()
}

// askSpread asks the loop for a spread, without blocking.
func (g *Gossip) askSpread() {
	select {
	case g.spread <- struct{}{}:
	default:
	}
}

// spreadRumors sends up to maxRumorEntries pending rumors to rumorFanout
// live peers (see rumorPeersLocked), and drops the rest. It reports whether
// rumors remain for another spread. A rumor that has waited longer than a
// spread time S(n) is dropped unsent: by then the periodic exchange has
// carried it.
func (g *Gossip) spreadRumors() (more bool) {
	g.mu.Lock()
	if g.state != stateRunning || len(g.rumors) == 0 {
		g.mu.Unlock()
		return false
	}
	n := g.table.liveCount()
	stale := g.clock.Now().Add(-time.Duration(spreadRounds(n)) * g.cfg.GossipInterval)
	names := make([]string, 0, min(len(g.rumors), maxRumorEntries))
	about := make(map[string]bool, cap(names))
	for addr, r := range g.rumors {
		e := g.table.members[addr]
		switch {
		case e == nil || !e.alive && !e.left || r.since.Before(stale):
			delete(g.rumors, addr) // nothing to tell, or told already
		case len(names) == maxRumorEntries:
			delete(g.rumors, addr) // a storm: left to the periodic exchange
		default:
			names = append(names, addr)
			about[addr] = true
		}
	}
	peers := g.rumorPeersLocked(about)
	for _, addr := range names {
		if len(peers) == 0 || len(peers) == 1 && peers[0] == addr {
			continue // only its subject to tell: keep it for a later spread
		}
		r := g.rumors[addr]
		if r.sends--; r.sends <= 0 {
			delete(g.rumors, addr)
			continue
		}
		g.rumors[addr] = r
		more = true
	}
	req := ExchangeRequest{
		From: g.addr, Cluster: g.cfg.ClusterName, Partial: true,
		Members: g.table.withData(names, g.cfg.MaxMembers),
		Left:    g.table.leftRecords(names),
	}
	g.mu.Unlock()
	if len(req.Members) == 0 && len(req.Left) == 0 || len(peers) == 0 {
		return more
	}
	g.log.WithFields(logrus.Fields{"rumors": len(names), "peers": len(peers)}).Debug("gossip: spreading rumors")
	for _, p := range peers {
		g.goBounded(g.rsem, func(ctx context.Context) { g.exchangeWith(ctx, p, req, false) })
	}
	return more
}

// rumorPeersLocked picks up to rumorFanout live peers: peers that no rumor
// is about first, and among those, up to rumorFanout-1 that a connection is
// held to (see choosePartner) and the rest chosen at random among all. A
// storm of changes thus costs about one dial a spread instead of
// rumorFanout, and still reaches beyond the peers a member talks to.
func (g *Gossip) rumorPeersLocked(about map[string]bool) []string {
	peers := g.table.livePeers()
	g.rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	var held []string
	if g.pool != nil {
		held = g.heldLiveLocked()
		g.rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	}
	out := make([]string, 0, rumorFanout)
	picked := make(map[string]bool, rumorFanout)
	pick := func(from []string, limit int, subjects bool) {
		for _, p := range from {
			if len(out) >= limit {
				return
			}
			if !picked[p] && about[p] == subjects {
				out = append(out, p)
				picked[p] = true
			}
		}
	}
	pick(held, rumorFanout-1, false)
	pick(peers, rumorFanout, false)
	pick(peers, rumorFanout, true)
	return out
}
