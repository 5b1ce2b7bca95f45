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
// FalseReportProbability: n(n-1) q(n, p)^((nfailures-1) S(n)), the bound
// this package gave before the silence rule existed.
func TimeoutFalseReportProbability(n int, loss float64, nfailures int) float64 {
	if n < 2 || loss <= 0 {
		return 0
	}
	q := MissProbability(n, loss)
	perPair := math.Pow(q, float64((nfailures-1)*SpreadRounds(n)))
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
// heartbeat has not risen for the failure time is declared dead; a dead
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
			t.setAlive(e, false)
			e.deadAt = now
			s.changed(Failed, e, now, false)
			s.debug(e.addr, "gossip: member failed", "silent", now.Sub(e.lastRise))
		case !e.alive && now.Sub(e.deadAt) > CleanupTime(tfail):
			t.remove(e.addr)
			delete(s.retry, e.addr)
		}
	}
}

// reviveMargin is how far past our record a dead member's heartbeat must be
// for us to believe it alive again: more heartbeats than it can make in a
// cleanup time, which is longer than it can have lived after we last saw
// its heartbeat rise before declaring it dead.
func (s *State) reviveMargin() int64 {
	return int64(CleanupTime(s.FailureTime()) / s.cfg.Interval)
}
