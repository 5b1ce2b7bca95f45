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
// A spread that finds a connection held to each of its peers costs no dial;
// one that must dial costs a TCP handshake, a goroutine on each end and gob's
// type descriptors, many times the rumor itself. In a storm (a cluster of
// 1,000 forming, every joiner's news learned by every member) a member spreads
// every RumorGap, and with rumorFanout peers chosen at random for each spread
// the simulation of 1,000 members forming through one seed made 29,048 rumor
// dials in 4 s, about 7 a member a second, far more than the exchanges' 1
// (and more than two cores could serve). So a member that knows more than
// stormMinPeers live peers and learned more than stormRumors rumors in this
// round or the last dials at most rumorDialsPerRound peers for rumors until
// its next round; the other peers of its spreads are the ones it holds
// connections to, and rumors that find no peer wait for the next round or
// are left to the periodic exchange, which carries a storm's bulk in one
// message a round. The same simulation then made 5,581 rumor dials and
// converged a round later (5 rounds against 4); internal/sim's
// TestStormDialsFewForRumors keeps it so. Outside a
// storm a change costs what it did: each member that learns it spreads it
// twice, each time to the peers it holds and as many others, chosen among
// all, as the fan-out needs. A cluster of up to stormMinPeers+1 members has
// no storm: its members' dials for a storm end within a round or two and
// cost little, and the answered calls of a forming cluster's join rumors
// are what let a member's silence rule start within seconds (suspect.go's
// reachMin calls); with one dial a round a cluster of 32 detected a silent
// member that went silent as it formed after 14 s instead of 5.
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
	// rumorDialsPerRound is how many peers a member's spreads may reach
	// by a connection not held between two of its rounds, in a storm.
	rumorDialsPerRound = 1
	// stormRumors is how many rumors a member learns at most in a round,
	// this one or the last, outside a storm.
	stormRumors = 4
	// stormMinPeers is how many live peers a member knows at most for its
	// rumors never to be a storm.
	stormMinPeers = 128
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
		if !ok {
			s.rumorsLearned[0]++
		}
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
	storm := max(s.rumorsLearned[0], s.rumorsLearned[1]) > stormRumors && s.table.livePeerCount() > stormMinPeers
	peers := s.rumorPeers(about, held, storm)
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
// held to (see ChoosePartner) and the rest chosen at random among all; in a
// storm, at most s.rumorDials of them not held (a dial each; see
// rumorDialsPerRound), and the rest among the held. Subjects make up the
// fan-out only where there are too few other live peers.
func (s *State) rumorPeers(about map[string]bool, heldAll []string, storm bool) []string {
	held := s.heldLive(heldAll)
	s.rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	out := make([]string, 0, rumorFanout)
	pickHeld := func(limit int, subjects bool) {
		for _, p := range held {
			if len(out) >= limit {
				return
			}
			if about[p] == subjects && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	// pickAny picks peers at random among all; it reports false if it
	// ran out of candidates rather than of dials.
	pickAny := func(subjects bool) bool {
		for len(out) < rumorFanout {
			p, ok := s.table.randomPeer(s.rng, func(addr string) bool {
				return about[addr] == subjects && !slices.Contains(out, addr)
			})
			if !ok {
				return false
			}
			if storm && !slices.Contains(held, p) {
				if s.rumorDials == 0 {
					return true
				}
				s.rumorDials--
			}
			out = append(out, p)
		}
		return true
	}
	pickHeld(rumorFanout-1, false)
	others := pickAny(false)
	pickHeld(rumorFanout, false)
	if !others && len(out) < rumorFanout {
		// Too few other peers: the subjects make up the rest, for the
		// rumors about the others that the message carries.
		pickHeld(rumorFanout, true)
		pickAny(true)
	}
	return out
}
