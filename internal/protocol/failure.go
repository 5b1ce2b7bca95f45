package protocol

import (
	"math"
	"math/bits"
	"time"
)

// The failure rules. The derivation of the failure time and of the bound on
// false reports is in the root package's failure.go and in the docs; this
// file holds the rules themselves.

// SpreadRounds is S(n) = ceil(log2 n) + 1, the rounds a heartbeat needs to
// reach n members (S(1) = 1).
func SpreadRounds(n int) int {
	if n <= 1 {
		return 1
	}
	return bits.Len(uint(n-1)) + 1
}

// FailureTime is nfailures × S(n) × interval.
func FailureTime(n int, interval time.Duration, nfailures int) time.Duration {
	return time.Duration(nfailures*SpreadRounds(n)) * interval
}

// CleanupTime is how long a dead member is remembered: twice the failure
// time, as van Renesse et al. argue.
func CleanupTime(tfail time.Duration) time.Duration { return 2 * tfail }

// MissProbability is q(n, p): the probability that a member misses a
// heartbeat that all others have for one more round.
func MissProbability(n int, loss float64) float64 {
	ok := 1 - math.Min(loss, 1)
	return (1 - ok*ok) * math.Pow(1-ok/float64(n-1), float64(n-1))
}

// TargetRounds is the failure time, in rounds, that a target probability
// of a false report asks for: S(n) rounds for a heartbeat to spread, then
// the fewest further rounds K with n(n-1) q(n, p)^K at most target.
func TargetRounds(n int, loss, target float64) int {
	s := SpreadRounds(n)
	if n < 2 || loss <= 0 {
		return s + 1
	}
	q := MissProbability(n, loss)
	k := math.Ceil(math.Log(target/(float64(n)*float64(n-1))) / math.Log(q))
	return s + max(1, int(k))
}

// FalseReportProbability bounds the probability that, in one failure time,
// any member of a cluster of n live members wrongly reports any other as
// dead, when each message is lost independently with probability loss and
// members must miss nfailures spread times: the sum of the bounds of the
// two rules that declare a member dead without a refused dial, the timeout
// rule's (TimeoutFalseReportProbability) and the silence rule's
// (SilenceFalseReportProbability), at most 1.
func FalseReportProbability(n int, loss float64, nfailures int) float64 {
	return math.Min(1, TimeoutFalseReportProbability(n, loss, nfailures)+SilenceFalseReportProbability(n, loss, nfailures))
}

// TimeoutFalseReportProbability is the timeout rule's share of
// FalseReportProbability: n(n-1) q(n, p)^K', K' the rounds the rule waits
// past S(n) at loss p, a member estimating p exactly (stretchedRounds, for
// a failure time set at the default ExpectedLoss): (nfailures-1) S(n) up to
// that loss, which is the bound this package gave before the silence rule
// existed, and more above it (see healthyTimeout).
func TimeoutFalseReportProbability(n int, loss float64, nfailures int) float64 {
	if n < 2 || loss <= 0 {
		return 0
	}
	spread := SpreadRounds(n)
	rounds := stretchedRounds(n, nfailures*spread, defaultExpectedLoss, loss)
	perPair := math.Pow(MissProbability(n, loss), float64(rounds-spread))
	return math.Min(1, float64(n)*float64(n-1)*perPair)
}

// FailureTime returns how long a member's heartbeat may stay unchanged
// before it is considered dead, for the live members this one sees now.
func (s *State) FailureTime() time.Duration {
	n := s.table.live
	if s.cfg.FalseReportTarget > 0 {
		return time.Duration(TargetRounds(n, s.cfg.ExpectedLoss, s.cfg.FalseReportTarget)) * s.cfg.Interval
	}
	return FailureTime(n, s.cfg.Interval, s.cfg.Nfailures)
}

// Local health.
//
// A member learns that a peer is alive only by watching its heartbeat rise,
// and it watches only while it runs. Stopped (SIGSTOP, a VM paused or
// migrated, a laptop lid, a long GC pause) or starved of CPU, it hears
// nothing, and when it runs again every peer's heartbeat looks as old as the
// pause: without a guard it would declare every live member dead at once,
// and its application would see every endpoint vanish and come back. The
// silence was its own. So a member that finds it has not applied the
// failure rules for more than pauseRounds intervals (it does so every round,
// and whenever its members are read) takes the time it was away, less one
// interval, off every live peer's silence: a peer that was silent before the
// pause stays exactly as suspect as it was, one that was not gets a whole
// failure time from the resume to be heard from, and nobody is accused for
// the pause itself. Cassandra does the like: its failure detector convicts no
// one for a while after its own thread stalled.
//
// Its peers, meanwhile, may have declared it dead, and would take it back
// only once its heartbeat passed the revive margin (up to two failure times
// of rounds) or they forgot it. So on resume it also counts its heartbeat on
// from the clock, in microseconds, as a restarted member does: far beyond
// any margin, it is taken back at its next exchange.

// pauseRounds is how many intervals may pass between two applications of
// the failure rules before the member counts the gap as a pause. Rounds come
// every 0.9 to 1.1 intervals.
const pauseRounds = 2

// watch notes that the failure rules are applied at now and, if the last
// time was a pause ago, takes the pause off every live peer's silence (see
// above).
func (s *State) watch(now time.Time) {
	gap := now.Sub(s.watched)
	if now.After(s.watched) {
		s.watched = now
	}
	if gap <= pauseRounds*s.cfg.Interval {
		return
	}
	away := gap - s.cfg.Interval
	clear(s.suspects) // their probes' outcomes are the pause's (see suspect.go)
	self := s.table.self
	for _, e := range s.table.list {
		if e.alive && e != self {
			if e.lastRise = e.lastRise.Add(away); e.lastRise.After(now) {
				e.lastRise = now
			}
		}
	}
	self.heartbeat = max(self.heartbeat+1, now.UnixMicro())
	level := Debug
	if away > s.FailureTime()/2 {
		level = Warn
	}
	if level == Warn || s.cfg.Debug {
		s.log(level, "gossip: this member was paused or starved of CPU; the time it was away does not count against its peers", "away", away)
	}
}

// sweep applies the failure rules at local time now: a live member whose
// heartbeat has not risen for the failure time (longer while this member's
// own calls go unanswered: see healthyTimeout) is declared dead; a dead
// one, or one that left, is forgotten after the cleanup time.
func (s *State) sweep(now time.Time) {
	tfail := s.FailureTime()
	t := &s.table
	// Backwards, so that removing (a swap with the last) skips nothing.
	for i := len(t.list) - 1; i >= 0; i-- {
		e := t.list[i]
		switch {
		case e == t.self:
		case e.alive && now.Sub(e.lastRise) > tfail:
			// The stretch is at least tfail: worked out only past it,
			// as it goes through the member's last calls.
			timeout, unanswered := s.healthyTimeout(e.addr, tfail, now)
			if now.Sub(e.lastRise) <= timeout {
				continue
			}
			t.setAlive(e, false)
			e.deadAt = now
			s.changed(Failed, e, now, false)
			s.debug(e.addr, "gossip: member failed", "silent", now.Sub(e.lastRise), "unanswered", unanswered)
		case !e.alive && now.Sub(e.deadAt) > CleanupTime(tfail):
			t.remove(e.addr)
			delete(s.retry, e.addr)
		}
	}
}

// Local health of the timeout rule.
//
// The timeout rule's bound (q(n, p) per round, root failure.go) holds at
// the loss p its failure time was set for, Config.ExpectedLoss (10% by
// default). A member that sees more loss than that, or is starved of CPU so
// that answers come too late, misses heartbeats more often than the bound
// assumes, and the same failure time then accuses live members: in the
// root package's TestNoFalseReportsUnderHeavyLoss (8 members, 30% of
// messages lost, 100 ms rounds, under the race detector) about one run in
// eight had a member declare up to three live peers dead at once, at the
// failure time to the millisecond, with its own exchanges timing out all
// around it. The silence was in its own calls.
//
// So the timeout rule asks for more silence while this member's own calls
// go unanswered more often than ExpectedLoss implies. It estimates its loss
// p̂ from f, the share of its last calls that went unanswered (reach, as
// the silence rule does) among those to live members other than the one
// judged, heard from within the failure time (see healthRate), as
// p̂ = 1 - sqrt(1 - f), and waits, past the S(n) rounds of spread, K' rounds
// instead of the failure time's K:
//
//	q(n, p̂)^K' ≤ q(n, p0)^K,   K' = ceil(K ln q(n, p0) / ln q(n, p̂))
//
// so that the bound the failure time had at p0 still holds at p̂, up to
// maxStretch failure times. It waits the failure time as before while p̂ is
// at most p0, or with fewer than healthMin calls counted. That is fewer
// than the silence rule asks (reachMin), because an estimate too high here
// only makes the rule wait longer, where there it would convict sooner: in
// the simulation at 60% loss, with reachMin, members declared live peers
// dead in the first failure time of every run, before they had made 16
// calls, and never after.
//
// At n = 32 with the defaults (K = 12 rounds) it waits 29 rounds instead of
// 18 at 30% loss, 46 at 50%, and at most maxStretch failure times, as
// memberlist's Lifeguard awareness stretches its timeouts up to 8 times
// (AwarenessMaxMultiplier). The calls counted are those to the live
// members heard from within the failure time (healthRate), so a member that
// hears from no one at all (its network gone, the minority of a partition
// that drops packets) has no estimate and waits the failure time, as
// before: it cannot tell its peers' silence from its own. A crashed
// member's refused dial, and the silence rule, which has its own guard
// (suspect.go), are not affected.

const (
	// maxStretch bounds the local-health stretch of the failure time.
	maxStretch = 8
	// healthMin is the fewest calls counted that the stretch is worked
	// out from.
	healthMin = 4
)

// healthyTimeout returns the silence after which the timeout rule declares
// the member at addr dead at now, the failure time being tfail: tfail,
// stretched while this member's calls to others go unanswered more than
// Config.ExpectedLoss implies (see above); and the share of those calls
// unanswered (healthRate, 0 without an estimate).
func (s *State) healthyTimeout(addr string, tfail time.Duration, now time.Time) (time.Duration, float64) {
	f, ok := s.healthRate(addr, tfail, now)
	if !ok {
		return tfail, 0
	}
	rounds := int(tfail / s.cfg.Interval)
	stretched := stretchedRounds(s.table.live, rounds, s.expectedLoss(), lossFromFailRate(f))
	return time.Duration(stretched) * s.cfg.Interval, f
}

// LocalHealth returns the share of this member's last calls to others
// that went unanswered (0 until healthMin were counted), and the silence
// after which the timeout rule would declare a live member dead now: the
// failure time, or longer while that share is more than
// Config.ExpectedLoss explains (see above).
func (s *State) LocalHealth(now time.Time) (unanswered float64, timeout time.Duration) {
	timeout, unanswered = s.healthyTimeout("", s.FailureTime(), now)
	return unanswered, timeout
}

// healthRate returns f for the stretch of the timeout rule judging the
// member at addr at now: the share of this member's counted calls that
// went unanswered, over the calls to live members other than addr heard
// from within the failure time tfail. The silence of the others (declared
// dead, or silent here for longer than tfail too) may be their own, several
// hosts gone at once, not the network's: counted, the calls to one would
// stretch the wait for the next, and of 3 members the one left when 2 went
// silent together would keep them for 8 failure times. A member that hears
// from no one thus has no estimate, and waits the failure time, as before
// the stretch.
func (s *State) healthRate(addr string, tfail time.Duration, now time.Time) (float64, bool) {
	return s.reach.observed(func(to string) bool {
		e := s.table.members[to]
		return to == addr || e == nil || !e.alive || now.Sub(e.lastRise) > tfail
	}, healthMin)
}

// defaultExpectedLoss is Config.ExpectedLoss when it is not set, the root
// package's default.
const defaultExpectedLoss = 0.1

// expectedLoss returns Config.ExpectedLoss, or defaultExpectedLoss.
func (s *State) expectedLoss() float64 {
	if s.cfg.ExpectedLoss > 0 {
		return s.cfg.ExpectedLoss
	}
	return defaultExpectedLoss
}

// lossFromFailRate returns the message loss p that makes a call go
// unanswered with probability f = 1 - (1-p)².
func lossFromFailRate(f float64) float64 { return 1 - math.Sqrt(1-min(max(f, 0), 1)) }

// stretchedRounds returns the rounds the timeout rule waits among n live
// members, for a failure time of rounds rounds set for loss p0, at an
// observed loss p: S(n) + K', K' as above, at least rounds and at most
// maxStretch × rounds.
func stretchedRounds(n, rounds int, p0, p float64) int {
	spread := SpreadRounds(n)
	k := rounds - spread
	if n < 2 || p <= p0 || k <= 0 {
		return rounds
	}
	limit := maxStretch * rounds
	q0, q := MissProbability(n, p0), MissProbability(n, p)
	if q >= 1 {
		return limit
	}
	if q0 <= 0 {
		return rounds
	}
	stretched := math.Ceil(float64(k) * math.Log(q0) / math.Log(q))
	if stretched >= float64(limit) {
		return limit
	}
	return min(limit, max(rounds, spread+int(stretched)))
}

// reviveMargin is how far past our record a dead member's heartbeat must be
// for us to believe it alive again: more heartbeats than it can make in a
// cleanup time, which is longer than it can have lived after we last saw
// its heartbeat rise before declaring it dead.
func (s *State) reviveMargin() int64 {
	return int64(CleanupTime(s.FailureTime()) / s.cfg.Interval)
}
