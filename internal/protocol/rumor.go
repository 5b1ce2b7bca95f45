package protocol

import (
	"slices"
	"time"
)

// Rumor spreading.
//
// On top of the periodic exchange (anti-entropy), a member that learns of a
// new member, a member back from the dead, a member that left (see leave.go),
// a member found dead by a refused dial (see notice.go) or new data sends just those entries at once to rumorFanout peers (see
// rumorPeers), and once more at the next spread. Each member that learns
// something from them does the same, so a change reaches most members in a
// few round trips rather than in log(n) rounds, and the periodic exchange
// brings it to any it missed. A rumor message holds only the changed
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
	// Interval/rumorGapDivisor, at most maxRumorGap; rumors arriving
	// meanwhile go together. The shell paces spreads (see RumorGap).
	rumorGapDivisor = 10
	maxRumorGap     = 50 * time.Millisecond
	// maxRumorEntries bounds one rumor message. Of a burst of more changes
	// than that (a storm: a cluster starting, a partition healing) the rest
	// is dropped and left to the periodic exchange, which carries bulk
	// changes far more cheaply than rumors would.
	maxRumorEntries = 64
)

// RumorFanout is how many peers one spread goes to.
const RumorFanout = rumorFanout

// RumorGap is the least time between two spreads from one member.
func RumorGap(interval time.Duration) time.Duration {
	return min(interval/rumorGapDivisor, maxRumorGap)
}

// rumor is a pending rumor about one member.
type rumor struct {
	sends int       // spreads still to carry it
	since time.Time // when it was learned
}

// rumor records that the entry of addr is news to spread, rumorSends times
// from now.
func (s *State) rumor(addr string, now time.Time) {
	if _, ok := s.rumors[addr]; ok || len(s.rumors) < s.cfg.MaxMembers {
		s.rumors[addr] = rumor{sends: rumorSends, since: now}
		s.out.Rumors = true
	}
}

// Spread sends the news waiting to be spread, at time now: up to
// maxRumorEntries rumors to rumorFanout live peers (see rumorPeers), as
// Output.Send of purpose Rumor; held are the peers the caller holds
// connections to. Output.Rumors tells that rumors remain for another spread,
// which the caller makes at least a RumorGap later. A rumor that has waited
// longer than a spread time S(n) is dropped unsent: by then the periodic
// exchange has carried it.
func (s *State) Spread(now time.Time, held []string) Output {
	if s.phase != running || len(s.rumors) == 0 {
		return s.flush()
	}
	more := s.spread(now, held)
	out := s.flush()
	out.Rumors = more
	return out
}

func (s *State) spread(now time.Time, held []string) (more bool) {
	stale := now.Add(-time.Duration(SpreadRounds(s.table.live)) * s.cfg.Interval)
	names := make([]string, 0, min(len(s.rumors), maxRumorEntries))
	for addr := range s.rumors {
		names = append(names, addr)
	}
	slices.Sort(names) // so that runs are repeatable
	about := make(map[string]bool, min(len(names), maxRumorEntries))
	kept := names[:0]
	for _, addr := range names {
		e := s.table.members[addr]
		switch {
		case e == nil || !e.alive && !e.left && e.noticed == 0 || s.rumors[addr].since.Before(stale):
			delete(s.rumors, addr) // nothing to tell, or told already
		case len(kept) == maxRumorEntries:
			delete(s.rumors, addr) // a storm: left to the periodic exchange
		default:
			kept = append(kept, addr)
			about[addr] = true
		}
	}
	names = kept
	peers := s.rumorPeers(about, held)
	for _, addr := range names {
		if len(peers) == 0 || len(peers) == 1 && peers[0] == addr {
			continue // only its subject to tell: keep it for a later spread
		}
		r := s.rumors[addr]
		if r.sends--; r.sends <= 0 {
			delete(s.rumors, addr)
			continue
		}
		s.rumors[addr] = r
		more = true
	}
	req := ExchangeRequest{
		From: s.addr, Cluster: s.cfg.ClusterName, Partial: true,
		Members: s.table.withData(names, s.cfg.MaxMembers),
		Left:    s.table.leftRecords(names),
		Dead:    s.table.noticeRecords(names, false),
		Silent:  s.table.noticeRecords(names, true),
	}
	if len(req.Members) == 0 && len(req.Left) == 0 && len(req.Dead) == 0 && len(req.Silent) == 0 || len(peers) == 0 {
		return more
	}
	s.debug("", "gossip: spreading rumors", "rumors", len(names), "peers", len(peers))
	for _, p := range peers {
		s.send(p, Rumor, req)
		s.calling(p, now)
	}
	return more
}

// rumorPeers picks up to rumorFanout live peers: peers that no rumor is
// about first, and among those, up to rumorFanout-1 that a connection is
// held to (see ChoosePartner) and the rest chosen at random among all. A
// storm of changes thus costs about one dial a spread instead of
// rumorFanout, and still reaches beyond the peers a member talks to.
func (s *State) rumorPeers(about map[string]bool, heldAll []string) []string {
	peers := s.table.livePeers()
	s.rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	held := s.heldLive(heldAll)
	s.rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
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
