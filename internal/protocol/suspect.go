package protocol

import (
	"math"
	"slices"
	"time"
)

// Silent members: suspect, then confirm.
//
// A member whose host is gone (powered off, cut off by a firewall that drops
// packets, a cable pulled) leaves no trace: nothing refuses a dial, every
// message to it vanishes and every call to it hangs until its timeout. Only
// its silence tells, and the timeout rule (failure.go) waits a whole failure
// time for it, Nfailures × S(n) rounds, because the rule sees nothing but
// its own table: a heartbeat it has not seen rise may simply not have
// reached it yet. So this member asks.
//
// Suspect. A live peer B whose heartbeat has not risen here for Ts =
// SuspectRounds(n) rounds, floor(S(n)/2) + 1, is suspect (no event; a debug
// record at most). In the simulation (internal/sim, TestStaleness) the
// heartbeat of a live member is that stale at another member at about 1 of
// 300 looks with no loss at n = 32, 1 of 11 at 30% loss: suspicion is
// cheap and common, and convicts no one by itself.
//
// A member whose table took a member new to it within the last Ts rounds
// starts no suspicion: while a cluster forms or grows fast, the heartbeats
// of the members it just learned of may not flow here yet (a member that
// joins learns every other from its seed, with heartbeats as stale as the
// seed's copy). Without this, 1,000 members forming in one process on two
// cores sent 14,000 probes in their first 20 s, against 17,000 exchanges;
// none with it. It counts from the last new member, not from when
// each member was learned, so that a member silent soon after the cluster
// formed is still suspected Ts rounds after its last heartbeat; a cluster
// that takes a new member every Ts rounds or sooner, for as long as that
// lasts, finds its silent members by the timeout rule.
//
// Confirm. Each round while B is suspect, this member sends a probe (purpose
// Probe, a partial exchange request naming only B at the heartbeat held here)
// to ProbeFanout other live members chosen at random, and to B itself. A
// callee answers a partial request with B's entry only if it holds B's
// heartbeat higher (B answers with its own, always higher): any fresher
// heartbeat clears the suspicion through the ordinary merge, since B's
// heartbeat then rises here. An answer from B itself clears it too, even
// without a higher heartbeat: B is not silent. The shell sends probes with a
// short timeout (the root package's Config.ProbeTimeout) over connections
// not kept, and reports each outcome (ProbeAnswered, ProbeFailed).
//
// The others are asked first, and B only once the first of them has
// answered or failed, if B is still suspect then. Most suspicions of a
// live member end there: its heartbeat is late at this member only, and an
// other, asked over a connection this member already holds, carries a
// fresher one. The probe to B would need a connection of its own, dialled
// and closed for one call (a TCP handshake and gob's type descriptors on
// both sides); in a steady 128-member cluster such probes made half of the
// connections dialled. B is probed at once when no other is asked
// (ProbeQuorum of them answered in earlier rounds, or there is none), and
// at the next round, with the others, if no outcome of theirs came. A
// silent B is thus probed a round trip to a held peer later, well within
// the round: the rule's rounds and its bound are unchanged. (Asking one
// other first and the rest only after it, which would save two probes of
// three, made false reports: 83 in 60 simulated runs at 10% loss, against
// none, as the share of unanswered calls is then estimated from fewer
// calls.)
//
// B is declared dead at the round where it has been suspect through
// ConfirmRounds rounds of probes, W, and meanwhile at least ProbeQuorum
// others, m, answered without fresher news and a probe to B itself failed.
// The answers are the local health check: a member that reaches no one (cut
// off itself, or too starved of CPU to hear answers within the probe
// timeout) convicts no one this way, and falls back to the timeout rule. A
// member that finds its rounds were interrupted (a pause: see watch) drops
// its suspicions, so that the time it was away accuses no one.
//
// Probes are load, and a member whose own view is stale sends them where
// they help least. So a member probes no one while more than half of the
// live members are suspect at once (it is more likely cut off or behind
// than they are all silent: the minority side of a partition, a member
// starved of CPU), nor while its own calls fail so often that a conviction
// needs more than 2 Ts failed probes (see canConvict). In both cases the
// timeout rule decides. Without these, 1,000 members forming in one process
// on two cores sent 2.5 probes for every exchange, nearly all of which
// timed out, and took 54 to 129 s to converge.
//
// The death then spreads as a notice of silence (the Silent field of the
// messages; notice.go's machinery: rumors, notice records held for the
// cleanup time, revival above the notice's heartbeat plus notice.go's
// slack K). Its acceptance is stricter than a refused dial's, which is
// strong evidence: a receiver that holds B's heartbeat above the notice's,
// h, and saw it rise within the last Ts rounds refutes the notice (keeps B
// alive; its answers carry the fresher heartbeat), because it has evidence
// that the noticer lacked; one that holds nothing above h, or whose own
// view is as stale as a suspicion, takes it. A heartbeat above h + K always
// refutes, as for every notice, and B itself refutes a notice about it by
// counting its heartbeat on from the clock (notice.go).
//
// The probability of a false report under this rule, and the assumptions
// it rests on, are derived below SilenceFalseReportProbability.

// The rule's parameters (see above, and docs/protocol.md for the
// measurements that chose them).
const (
	// ProbeFanout is k: the members other than the suspect asked each
	// round.
	ProbeFanout = 3
	// ProbeQuorum is m: the answers without fresher news that a
	// conviction needs.
	ProbeQuorum = 2
	// ConfirmRounds is W: the rounds of probes before a conviction.
	ConfirmRounds = 1
	// maxProbed bounds the suspects probed in one round (the stalest
	// first), so that a partition or heavy loss, which make many members
	// suspect at once, cost at most maxProbed × (ProbeFanout + 1) small
	// messages a round.
	maxProbed = 4
)

// SuspectRounds is Ts: the rounds without a rise of a member's heartbeat
// after which it is suspect, floor(S(n)/2) + 1.
func SuspectRounds(n int) int { return SpreadRounds(n)/2 + 1 }

// suspicion is what this member holds on a suspect.
type suspicion struct {
	heartbeat int64 // the suspect's heartbeat when suspected; a higher one ends the suspicion
	rounds    int   // rounds of probes sent
	answers   int   // answers from others without fresher news
	failed    int   // probes to the suspect itself that failed
	// due holds the probe to the suspect itself until one of the others
	// asked this round answers or fails (see Confirm above).
	due *Send
}

// suspectTime returns Ts as a duration.
func (s *State) suspectTime() time.Duration {
	return time.Duration(SuspectRounds(s.table.live)) * s.cfg.Interval
}

// suspect applies the rule at the round at time now, held being the peers
// a connection is held to: it drops the
// suspicions that ended, convicts the suspects confirmed, starts the new
// suspicions and probes up to maxProbed suspects (see above).
func (s *State) suspect(now time.Time, held []string) {
	ts := s.suspectTime()
	for addr, sp := range s.suspects {
		if e := s.table.members[addr]; e == nil || !e.alive || e.heartbeat != sp.heartbeat || now.Sub(e.lastRise) < ts {
			delete(s.suspects, addr)
		}
	}
	var probe []*entry
	growing := now.Sub(s.table.grew) < ts
	for _, e := range s.table.list {
		if !e.alive || e == s.table.self || now.Sub(e.lastRise) < ts {
			continue
		}
		sp := s.suspects[e.addr]
		if sp == nil && growing {
			continue
		}
		// D and canConvict, once per suspect: a forming cluster of 1,000
		// has hundreds of suspects a round.
		d := s.silentProbes(e.addr)
		convicts := s.canConvict(d)
		switch {
		case sp == nil:
			s.suspects[e.addr] = &suspicion{heartbeat: e.heartbeat}
			if s.cfg.Debug {
				s.debug(e.addr, "gossip: member suspected of silence", "silent", now.Sub(e.lastRise), "evidence", d)
			}
		case sp.rounds >= ConfirmRounds && sp.answers >= ProbeQuorum && sp.failed >= d && convicts:
			delete(s.suspects, e.addr)
			s.noticeDead(e, e.heartbeat, now, true)
			e.silent = true
			s.debug(e.addr, "gossip: member failed: silent", "silent", now.Sub(e.lastRise), "answers", sp.answers)
			continue
		}
		if convicts {
			// Where the rule cannot convict, probes would only add load:
			// on a member starved of CPU, whose calls time out, they
			// make its peers late too, and more of them suspect.
			probe = append(probe, e)
		}
	}
	if len(probe) > maxProbed {
		slices.SortStableFunc(probe, func(a, b *entry) int { return a.lastRise.Compare(b.lastRise) })
		probe = probe[:maxProbed]
	}
	if len(s.suspects) > s.table.live/2 {
		probe = nil
	}
	near := s.heldLive(held)
	for _, e := range probe {
		s.probe(e, near)
	}
}

// probe sends a round of probes about the suspect e: to e itself and, until
// ProbeQuorum of them answered, to ProbeFanout other live members: those of
// held (the live peers a connection is held to) first, in random order, so
// that a probe seldom waits for a dial, and then others at random. The
// probe to e goes out once an other's outcome is in (probeDue), or now if
// no other is asked or the last round's outcomes never came.
func (s *State) probe(e *entry, held []string) {
	sp := s.suspects[e.addr]
	sp.rounds++
	late := sp.due != nil
	sp.due = nil
	req := ExchangeRequest{From: s.addr, Cluster: s.cfg.ClusterName, Partial: true,
		Digest: AppendDigest(nil, e.addr, e.heartbeat, e.version)}
	direct := Send{To: e.addr, Purpose: Probe, Req: req, About: e.addr}
	if sp.answers >= ProbeQuorum {
		s.out.Send = append(s.out.Send, direct)
		return
	}
	near := slices.DeleteFunc(slices.Clone(held), func(a string) bool { return a == e.addr })
	far := slices.DeleteFunc(s.table.livePeers(), func(a string) bool { return a == e.addr || slices.Contains(near, a) })
	var others []Send
	for _, from := range [][]string{near, far} {
		for i := 0; len(others) < ProbeFanout && i < len(from); i++ {
			j := i + s.rng.IntN(len(from)-i)
			from[i], from[j] = from[j], from[i]
			others = append(others, Send{To: from[i], Purpose: Probe, Req: req, About: e.addr})
		}
	}
	if len(others) == 0 || late {
		s.out.Send = append(append(s.out.Send, others...), direct)
		return
	}
	s.out.Send = append(s.out.Send, others...)
	sp.due = &direct
}

// probeDue sends the probe to the suspect about that waits for an outcome
// of the others' (see Confirm above), if the suspicion still holds.
func (s *State) probeDue(about string) {
	if sp := s.suspectOf(about); sp != nil && sp.due != nil {
		s.out.Send = append(s.out.Send, *sp.due)
		sp.due = nil
	}
}

// ProbeAnswered merges the answer of the peer at addr to a probe about the
// member about, at time now. A fresher heartbeat in it ends the suspicion
// (through the merge); an answer from the suspect itself ends it too; one
// from another member without fresher news counts towards a conviction.
// Nothing in the answer is spread as a rumor, as for any answer.
func (s *State) ProbeAnswered(addr, about string, resp ExchangeResponse, now time.Time) Output {
	if s.addr != "" && resp.From == s.addr {
		s.aliases[addr] = true
		return s.flush()
	}
	if _, _, err := s.merge(resp.Digest, resp.Members, resp.Left, resp.Dead, resp.Silent, now, false); err != nil {
		s.debug(addr, "gossip: bad probe response", "error", err)
	}
	if addr != about {
		s.reach.note(addr, true)
	}
	if sp := s.suspectOf(about); sp != nil {
		if addr == about {
			delete(s.suspects, about)
		} else {
			sp.answers++
			s.probeDue(about)
		}
	}
	return s.flush()
}

// ProbeFailed tells that a probe sent to addr about the member about got no
// answer within the probe timeout, at time now. Only the suspect's own
// silence counts.
func (s *State) ProbeFailed(addr, about string, now time.Time) Output {
	if addr != about {
		s.reach.note(addr, false)
		s.probeDue(about)
	}
	if sp := s.suspectOf(about); sp != nil && addr == about {
		sp.failed++
	}
	return s.flush()
}

// LastRise returns the local time the heartbeat of the live member at addr
// last rose here, and whether it is a live member.
func (s *State) LastRise(addr string) (time.Time, bool) {
	if e := s.table.members[addr]; e != nil && e.alive {
		return e.lastRise, true
	}
	return time.Time{}, false
}

// suspectOf returns the suspicion on addr if it still holds: the member
// alive, its heartbeat not risen since.
func (s *State) suspectOf(addr string) *suspicion {
	sp := s.suspects[addr]
	if e := s.table.members[addr]; sp == nil || e == nil || !e.alive || e.heartbeat != sp.heartbeat {
		return nil
	}
	return sp
}

// mergeSilent merges a notice that the member u.Addr was found silent at
// heartbeat u.Heartbeat (see above) at local time now, marking it seen
// under gen. Anything but a live peer is handled as a refused dial's
// notice is (mergeDead); a live peer is declared dead unless this member
// holds a higher heartbeat of it that rose within Ts, or one more than Ts
// rounds' heartbeats above the notice's: the member lived well after its
// noticer last heard of it. (Such a notice comes, for one, from the other
// side of a partition that healed: made there when the sides lost each
// other, it reaches members that heard from the member all along, if a
// little less lately than Ts. The slack of a refused dial's notice, 3 S(n),
// let 3 of 16 members in the simulation take such notices about members of
// their own side.)
func (s *State) mergeSilent(u Entry, now time.Time, gen uint64, spread bool) {
	e := s.table.members[u.Addr]
	if e == nil || !e.alive || s.IsSelf(u.Addr) || s.checkEntry(u, now) != "" {
		s.mergeDead(u, now, gen, spread)
		return
	}
	defer s.table.markDead(e, gen, u.Heartbeat, u.Version)
	if e.heartbeat > u.Heartbeat+int64(SuspectRounds(s.table.live)) || e.heartbeat > u.Heartbeat && now.Sub(e.lastRise) < s.suspectTime() {
		return // fresher news refutes it; the answer carries it back
	}
	s.noticeDead(e, u.Heartbeat, now, spread)
	e.silent = true
	delete(s.suspects, e.addr)
	s.debug(u.Addr, "gossip: member failed: notice of silence", "heartbeat", u.Heartbeat)
}

// The evidence a conviction needs.
//
// A probe to a live suspect fails when its request or its answer is lost:
// with each message lost independently with probability p, with
// probability f = 1 - (1-p)². So the failed probes to the suspect that a
// conviction needs, D, grow with the loss this member sees: the fewest, at
// least one, that make D failed probes alone a one-in-a-million event
// (f^D at most probeEvidence) and keep the bound of
// SilenceFalseReportProbability, computed for the live members this one
// sees, its failure time and its own f, at most silenceTarget. This member
// estimates f as the share of its last reachWindow calls that went
// unanswered (its exchanges, one a round, its rumors and pushes, and its
// probes of members other than a suspect), leaving out, for the evidence
// against a suspect, the calls to that suspect: its own silence is not the
// network's. Until it has made reachMin such calls it takes f as 1/2: with
// fewer, a network that loses one message in ten shows no loss at all too
// often (0.81^16, 3%, for 16 calls), and one failed probe would convict. In
// the simulation, with 8 calls as the minimum and the last 32 counted, 3
// live members of 128 at 10% loss were convicted in a run of 28 rounds;
// with 16 and 64, none in 8 runs each at 0, 10 and 20% loss at n = 32 and
// 128. A new cluster counts its joins' rumors, so the rule is ready within
// seconds of its start. A member that hears from no
// one, and so suspects everyone, still counts its unanswered calls to them:
// its f is high, and it convicts no one. With no
// loss D is one; at n = 32, 7 at 5% loss and 9 at 10% (f = 0.19), more than
// 2 Ts = 8, so the rule gives way to the timeout there (canConvict); at
// n = 128, 6 at 1% and 10 at 10%; at 30% at n = 32 no D short of the
// failure time would do. A member starved of
// CPU, whose calls time out, raises its own f and so convicts more slowly
// too.
const (
	silenceTarget = 1e-9
	probeEvidence = 1e-6
	reachWindow   = 64
	reachMin      = 16
)

// reach holds the outcomes of this member's last reachWindow calls that
// were counted, and to whom.
type reach struct {
	out  [reachWindow]outcome
	n    int // outcomes held, at most reachWindow
	next int // where the next goes
}

type outcome struct {
	to       string
	answered bool
}

// note counts one call to addr and whether it was answered.
func (r *reach) note(addr string, answered bool) {
	r.out[r.next] = outcome{addr, answered}
	r.next = (r.next + 1) % reachWindow
	r.n = min(r.n+1, reachWindow)
}

// failRate returns the estimated share of calls that go unanswered, over
// the calls to members other than except: a suspect's own silence must not
// count as the network's when the evidence against it is weighed.
func (r *reach) failRate(except string) float64 {
	if f, ok := r.observed(func(addr string) bool { return addr == except }, reachMin); ok {
		return f
	}
	return 0.5
}

// observed returns the share of the counted calls that went unanswered,
// leaving out the calls to every member that skip names, and false while
// fewer than least were counted: unlike failRate it assumes nothing
// without evidence.
func (r *reach) observed(skip func(addr string) bool, least int) (float64, bool) {
	sent, failed := 0, 0
	for _, o := range r.out[:r.n] {
		if !skip(o.to) {
			sent++
			if !o.answered {
				failed++
			}
		}
	}
	if sent < least {
		return 0, false
	}
	return float64(failed) / float64(sent), true
}

// canConvict reports whether a suspect whose conviction needs d failed
// probes (D, silentProbes) can be convicted soon enough to be worth its
// probes: whether D is at most 2 Ts, and Ts plus max(W, D) fall short of the
// failure time. Under loss or overload they do not (at n = 32 from about 9%
// of messages lost, at n = 128 from 11%, at 1,000 from 10%): the rule convicts no one,
// and this member sends no probes. (Their answers might carry a suspect's fresher heartbeat
// and spare it the timeout rule: in the simulation at 50% loss, no false
// report in 83 failure times with them, 6 without. But on members starved
// of CPU, whose calls time out as under loss, the extra calls made every
// member later still, and 16 members at 20 ms rounds under the race
// detector fell into a storm of timeouts.)
func (s *State) canConvict(d int) bool {
	return convictsBefore(SuspectRounds(s.table.live), d, s.failureRounds())
}

// failureRounds returns the failure time in rounds.
func (s *State) failureRounds() int { return int(s.FailureTime() / s.cfg.Interval) }

// convictsBefore reports whether a suspicion after ts rounds, confirmed by
// d failed probes, one a round, with d at most 2 ts, ends before a failure
// time of rounds.
func convictsBefore(ts, d, rounds int) bool {
	return d <= 2*ts && ts+max(ConfirmRounds, d) < rounds
}

// silentProbes returns D: the failed probes to a suspect that a conviction
// needs (see above).
func (s *State) silentProbes(about string) int {
	k := evidenceKey{s.table.live, s.failureRounds(), s.reach.failRate(about)}
	d, ok := s.evidence[k]
	if !ok {
		if len(s.evidence) >= maxEvidenceMemo {
			clear(s.evidence)
		}
		d = evidenceFor(k.n, k.rounds, k.f)
		s.evidence[k] = d
	}
	return d
}

// evidenceKey is what D depends on; State.evidence remembers D for the
// few keys a member meets, since each suspect of each round asks for it
// (a forming cluster of 1,000 has hundreds of suspects a round).
type evidenceKey struct {
	n, rounds int
	f         float64
}

// maxEvidenceMemo bounds State.evidence: f takes at most a few thousand
// values (ratios of counts up to reachWindow), n and the failure time few.
const maxEvidenceMemo = 1024

// evidenceFor returns D for n live members, a failure time of rounds
// rounds and a share f of calls unanswered: the fewest failed probes, at
// least one and with f^D at most probeEvidence, that keep silenceBound at
// most silenceTarget, or math.MaxInt if none short of the failure time
// does.
func evidenceFor(n, rounds int, f float64) int {
	switch {
	case f <= 0:
		return 1
	case f >= 1:
		return math.MaxInt
	}
	// Never fewer than make D failed probes alone a one-in-a-million
	// event for this member: the bound leans on q as well as on f, and an
	// error in the estimate of f weighs on both.
	d := max(1, int(math.Ceil(math.Log(probeEvidence)/math.Log(f))))
	for ; d < rounds; d++ {
		if silenceBound(n, rounds, f, d) <= silenceTarget {
			return d
		}
	}
	return math.MaxInt
}

// silenceBound is the bound of SilenceFalseReportProbability for n live
// members, a failure time of rounds rounds, a share f of calls unanswered
// and D = d: n(n-1) R q^max(0, Ts+d-S(n)) f^d, q for the loss p that f
// implies, f = 1 - (1-p)².
func silenceBound(n, rounds int, f float64, d int) float64 {
	if n < 2 || f <= 0 {
		return 0
	}
	loss := 1 - math.Sqrt(1-min(f, 1))
	stale := max(0, SuspectRounds(n)+d-SpreadRounds(n))
	miss := math.Pow(MissProbability(n, loss), float64(stale))
	return math.Min(1, float64(n)*float64(n-1)*float64(rounds)*miss*math.Pow(f, float64(d)))
}

// An exchange counts as answered when its answer comes, and as unanswered
// a suspicion time after it was sent, unless its callee was declared dead
// or left meanwhile.

// call is an exchange not yet answered nor counted.
type call struct {
	to string
	at time.Time
}

// calling notes an exchange sent to addr at now, and counts as unanswered
// those sent a suspicion time ago whose callee is still a live member.
func (s *State) calling(addr string, now time.Time) {
	ts := s.suspectTime()
	k := 0
	for _, c := range s.calls {
		if now.Sub(c.at) < ts {
			break
		}
		k++
		if e := s.table.members[c.to]; e != nil && e.alive {
			s.reach.note(c.to, false)
		}
	}
	s.calls = append(s.calls[:0], s.calls[k:]...)
	if len(s.calls) < 4*reachWindow { // a bound, whatever the clock does
		s.calls = append(s.calls, call{to: addr, at: now})
	}
}

// answered counts the oldest exchange with addr not yet answered as
// answered.
func (s *State) answered(addr string) {
	if i := slices.IndexFunc(s.calls, func(c call) bool { return c.to == addr }); i >= 0 {
		s.calls = slices.Delete(s.calls, i, i+1)
		s.reach.note(addr, true)
	}
}

// SilenceFalseReportProbability bounds the probability that, in one failure
// time of nfailures spread times, the silence rule makes any member of a
// cluster of n live members wrongly declare any other dead, when each
// message is lost independently with probability loss.
//
// A member A convicts a live member B only if all of these go wrong in one
// suspicion:
//
//   - A has missed every newer heartbeat of B for Ts + D rounds, Ts to be
//     suspected and D more to gather D failed probes, one a round (W = 1
//     round is less than D or equal to it). Once a heartbeat has reached
//     all members but A, which takes S(n) rounds, A misses it for one more
//     round with probability at most q(n, p) (MissProbability), so this
//     has probability at most q^max(0, Ts+D-S(n)).
//   - The D probes of A to B failed: each does so, its request or its
//     answer lost, with probability f = 1 - (1-p)², so all D with f^D.
//     (The probes' answers would also have carried B's heartbeat, so this
//     is not independent of the first condition: both are kept, as the
//     first counts the gossip of the others and the second A's own calls
//     to B, disjoint messages.)
//   - Each of the m = ProbeQuorum or more others that answered held no
//     heartbeat of B newer than A's. This is not counted in the bound: the
//     members' exchanges are independent, but B's own pushes feed all of
//     them, so their misses are not independent of A's. It is a margin the
//     bound does not claim.
//
// A pair of members sees at most one suspicion starting per round, so in a
// failure time of R rounds the union bound over the pairs and the rounds
// gives
//
//	n(n-1) R q^max(0, Ts+D-S(n)) f^D
//
// D is chosen (evidenceFor) as the fewest that keep this at most
// silenceTarget, 1e-9, by a member that estimated f exactly (and no fewer
// than f^D at most 1e-6); where that D is over 2 Ts or not short of the
// failure time, the rule convicts no one (canConvict) and the bound is 0.
// So the bound is at most 1e-9 per failure time for every n and loss: for
// n = 32, D = 7 and 1.1e-10 at 5% loss, and 0 from about 9% (the rule is
// off); for n = 128, D = 6 at 1% and 10 at 10%; for n = 1,000, D = 8 at 1%,
// and 0 at 30% (D would be 22). The assumptions are those of the
// timeout rule's bound (independent losses, rounds in step) and an exact
// estimate of f; the simulation's measured rates are in docs/protocol.md.
func SilenceFalseReportProbability(n int, loss float64, nfailures int) float64 {
	if n < 2 || loss <= 0 {
		return 0
	}
	f := 1 - (1-loss)*(1-loss)
	rounds := nfailures * SpreadRounds(n)
	d := evidenceFor(n, rounds, f)
	if !convictsBefore(SuspectRounds(n), d, rounds) {
		return 0
	}
	return silenceBound(n, rounds, f, d)
}
