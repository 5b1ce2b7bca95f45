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
// Confirm. Each round while B is suspect, this member sends a probe (purpose
// Probe, a partial exchange request naming only B at the heartbeat held here)
// to B itself and to ProbeFanout other live members chosen at random. A
// callee answers a partial request with B's entry only if it holds B's
// heartbeat higher (B answers with its own, always higher): any fresher
// heartbeat clears the suspicion through the ordinary merge, since B's
// heartbeat then rises here. An answer from B itself clears it too, even
// without a higher heartbeat: B is not silent. The shell sends probes with a
// short timeout (the root package's Config.ProbeTimeout) over connections
// not kept, and reports each outcome (ProbeAnswered, ProbeFailed).
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
	for _, e := range s.table.list {
		if !e.alive || e == s.table.self || now.Sub(e.lastRise) < ts {
			continue
		}
		sp := s.suspects[e.addr]
		switch {
		case sp == nil:
			s.suspects[e.addr] = &suspicion{heartbeat: e.heartbeat}
			s.debug(e.addr, "gossip: member suspected of silence", "silent", now.Sub(e.lastRise), "evidence", s.silentProbes())
		case sp.rounds >= ConfirmRounds && sp.answers >= ProbeQuorum && sp.failed >= s.silentProbes():
			delete(s.suspects, e.addr)
			s.noticeDead(e, e.heartbeat, now, true)
			e.silent = true
			s.debug(e.addr, "gossip: member failed: silent", "silent", now.Sub(e.lastRise), "answers", sp.answers)
			continue
		}
		probe = append(probe, e)
	}
	if !s.canConvict() {
		return // the timeout rule decides first: probes would be wasted
	}
	if len(probe) > maxProbed {
		slices.SortStableFunc(probe, func(a, b *entry) int { return a.lastRise.Compare(b.lastRise) })
		probe = probe[:maxProbed]
	}
	near := s.heldLive(held)
	for _, e := range probe {
		s.probe(e, near)
	}
}

// probe sends a round of probes about the suspect e: to e itself and, until
// ProbeQuorum of them answered, to ProbeFanout other live members: those of
// held (the live peers a connection is held to) first, in random order, so
// that a probe seldom waits for a dial, and then others at random.
func (s *State) probe(e *entry, held []string) {
	sp := s.suspects[e.addr]
	sp.rounds++
	req := ExchangeRequest{From: s.addr, Cluster: s.cfg.ClusterName, Partial: true,
		Digest: AppendDigest(nil, e.addr, e.heartbeat, e.version)}
	s.out.Send = append(s.out.Send, Send{To: e.addr, Purpose: Probe, Req: req, About: e.addr})
	if sp.answers >= ProbeQuorum {
		return
	}
	near := slices.DeleteFunc(slices.Clone(held), func(a string) bool { return a == e.addr })
	far := slices.DeleteFunc(s.table.livePeers(), func(a string) bool { return a == e.addr || slices.Contains(near, a) })
	sent := 0
	for _, from := range [][]string{near, far} {
		for i := 0; sent < ProbeFanout && i < len(from); i++ {
			j := i + s.rng.IntN(len(from)-i)
			from[i], from[j] = from[j], from[i]
			s.out.Send = append(s.out.Send, Send{To: from[i], Purpose: Probe, Req: req, About: e.addr})
			sent++
		}
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
		s.reach.note(true)
	}
	if sp := s.suspectOf(about); sp != nil {
		if addr == about {
			delete(s.suspects, about)
		} else {
			sp.answers++
		}
	}
	return s.flush()
}

// ProbeFailed tells that a probe sent to addr about the member about got no
// answer within the probe timeout, at time now. Only the suspect's own
// silence counts.
func (s *State) ProbeFailed(addr, about string, now time.Time) Output {
	if addr != about {
		s.reach.note(false)
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
// holds a higher heartbeat of it that rose within Ts, or one above the
// notice's slack.
func (s *State) mergeSilent(u Entry, now time.Time, gen uint64, spread bool) {
	e := s.table.members[u.Addr]
	if e == nil || !e.alive || s.IsSelf(u.Addr) || s.checkEntry(u, now) != "" {
		s.mergeDead(u, now, gen, spread)
		return
	}
	defer s.table.markDead(e, gen, u.Heartbeat, u.Version)
	if e.heartbeat > u.Heartbeat+s.noticeSlack() || e.heartbeat > u.Heartbeat && now.Sub(e.lastRise) < s.suspectTime() {
		return // fresher news refutes it; the answer carries it back
	}
	s.noticeDead(e, u.Heartbeat, now, spread)
	e.silent = true
	delete(s.suspects, e.addr)
	s.debug(u.Addr, "gossip: member failed: notice of silence", "heartbeat", u.Heartbeat)
}

// silentDead reports whether e is remembered as dead by a notice of
// silence.
func (e *entry) silentDead() bool { return !e.alive && !e.left && e.noticed > 0 && e.silent }

// silentDigest returns the notices of silence held, for
// ExchangeRequest.Silent.
func (t *table) silentDigest() []byte {
	var d []byte
	for _, e := range t.list {
		if e.silentDead() {
			d = noticeRecord(d, e)
		}
	}
	return d
}

// silentRecords returns the notices of silence of those named, for a rumor.
func (t *table) silentRecords(names []string) []byte {
	var d []byte
	for _, addr := range names {
		if e := t.members[addr]; e != nil && e.silentDead() {
			d = noticeRecord(d, e)
		}
	}
	return d
}

// answerSilent is answerDead for the notices of silence.
func (t *table) answerSilent(gen uint64, partial bool) []byte {
	var d []byte
	t.eachAnswered(gen, partial, func(e *entry) {
		if e.silentDead() && (e.seen == gen && !e.theirLeft && !e.theirDead || e.seen != gen && !partial) {
			d = noticeRecord(d, e)
		}
	})
	return d
}

// The evidence a conviction needs.
//
// A probe to a live suspect fails when its request or its answer is lost:
// with each message lost independently with probability p, with
// probability f = 1 - (1-p)². So the failed probes to the suspect that a
// conviction needs, D, grow with the loss this member sees: the fewest with
// f^D at most silentEvidence, at least one. This member estimates f as the
// share of its calls that went unanswered, over about reachWindow calls:
// its exchanges (one a round) and its probes of members other than a
// suspect; calls to suspects do not count, so that a silent member does not
// raise the estimate. Until it has made reachMin calls it takes f as 1/2.
// With no loss D is one; at 10% loss (f = 0.19) six; at 30% (f = 0.51)
// fourteen, by when the timeout rule has usually decided: under heavy loss
// the rule gives way to the timeout. A member starved of CPU, whose calls
// time out, raises its own f and so convicts more slowly too.
const (
	silentEvidence = 1e-6
	reachWindow    = 32
	reachMin       = 2
)

// reach counts this member's calls and their answers, decayed so that
// they cover about the last reachWindow calls.
type reach struct {
	sent, answered float64
}

// note counts one call and whether it was answered.
func (r *reach) note(answered bool) {
	const keep = 1 - 1.0/reachWindow
	r.sent = r.sent*keep + 1
	r.answered *= keep
	if answered {
		r.answered++
	}
}

// failRate returns the estimated share of calls that go unanswered.
func (r *reach) failRate() float64 {
	if r.sent < reachMin {
		return 0.5
	}
	return min(1, max(0, 1-r.answered/r.sent))
}

// canConvict reports whether a suspect can be convicted before the timeout
// rule declares it dead anyway: whether Ts plus the rounds of probes a
// conviction needs, max(W, D), fall short of the failure time. Under heavy
// loss they do not, and this member sends no probes.
func (s *State) canConvict() bool {
	rounds := int(s.FailureTime() / s.cfg.Interval)
	return SuspectRounds(s.table.live)+max(ConfirmRounds, s.silentProbes()) < rounds
}

// silentProbes returns D: the failed probes to a suspect that a conviction
// needs (see above).
func (s *State) silentProbes() int {
	return evidenceFor(s.reach.failRate())
}

// evidenceFor returns D for a share f of calls unanswered.
func evidenceFor(f float64) int {
	switch {
	case f <= silentEvidence:
		return 1
	case f >= 1:
		return math.MaxInt
	}
	return max(1, int(math.Ceil(math.Log(silentEvidence)/math.Log(f))))
}

// An exchange counts as answered when its answer comes, and as unanswered
// a suspicion time after it was sent, when it is known whether its callee
// is a suspect: calls to a member that went silent, made before it was
// suspected, would otherwise count against the network.

// call is an exchange not yet answered nor counted.
type call struct {
	to string
	at time.Time
}

// calling notes an exchange sent to addr at now, and counts as unanswered
// those sent a suspicion time ago whose callee is a live member not
// suspected.
func (s *State) calling(addr string, now time.Time) {
	ts := s.suspectTime()
	k := 0
	for _, c := range s.calls {
		if now.Sub(c.at) < ts {
			break
		}
		k++
		if e := s.table.members[c.to]; e != nil && e.alive && s.suspects[c.to] == nil {
			s.reach.note(false)
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
		s.reach.note(true)
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
//     answer lost, with probability f = 1 - (1-p)², so all D with f^D, at
//     most silentEvidence by the choice of D. (The probes' answers would
//     also have carried B's heartbeat, so this is not independent of the
//     first condition: both are kept, as the first counts the gossip of
//     the others and the second A's own calls to B, disjoint messages.)
//   - Each of the m = ProbeQuorum or more others that answered held no
//     heartbeat of B newer than A's, though all of them but A's had spread
//     for Ts + D - S(n) rounds: for each, probability at most q^max(0,
//     Ts+D-S(n)) again, taken as independent of A's (an assumption: the
//     members' exchanges are, but B's own pushes feed all of them).
//
// D is what a member that estimated f exactly would ask for; a member
// whose estimate of f is low asks for fewer. A pair of members sees at most
// one suspicion starting per round, so in a failure time of R rounds the
// union bound over the pairs and the rounds gives
//
//	n(n-1) R q^((1+m) max(0, Ts+D-S(n))) f^D
//
// and 0 where Ts + D reaches R: members then send no probes (canConvict).
// For n = 32: at 5% loss D = 6 and the bound is 1e-19 per failure time;
// at 10%, D = 9 and 2e-26; at 30%, D = 21 and the rule is off (the timeout
// rule's bound is 4e-11 at 10%). Without the answerers' factor, 3e-8 and
// 9e-11. The assumptions are those of the timeout
// rule's bound (independent losses, rounds in step) and an exact estimate
// of f; the simulation's measured rates are in docs/protocol.md.
func SilenceFalseReportProbability(n int, loss float64, nfailures int) float64 {
	if n < 2 || loss <= 0 {
		return 0
	}
	f := 1 - (1-loss)*(1-loss)
	d := evidenceFor(f)
	ts, s := SuspectRounds(n), SpreadRounds(n)
	rounds := nfailures * s
	if ts+max(ConfirmRounds, d) >= rounds {
		return 0
	}
	miss := math.Pow(MissProbability(n, loss), float64((1+ProbeQuorum)*max(0, ts+d-s)))
	return math.Min(1, float64(n)*float64(n-1)*float64(rounds)*miss*math.Pow(f, float64(d)))
}
