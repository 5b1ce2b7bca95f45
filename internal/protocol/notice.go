package protocol

import "time"

// Crashed processes: death notices.
//
// A process that crashes on a host that stays up leaves a trace that the
// failure time need not wait for: the kernel closes its connections and
// refuses every dial to its port. A refused dial (ECONNREFUSED) means that
// nothing listens at that address any more; a timeout means only that
// nothing answered, which loss, a partition, a pause or a slow peer also
// cause, so a timeout proves nothing and is left to the failure time.
//
// When a call to a live member is refused (the shell reports it with
// Refused), this member declares it dead at once and spreads a death notice
// as a rumor: the member's address and h, its heartbeat as this member last
// saw it. A member that receives the notice declares it dead too, and
// spreads the notice on, if the heartbeat it holds is at most h + K, where
// K = noticeSlackSpreads × S(n) rounds: heartbeats the dead process made
// before it died may have reached some members after the noticer last heard
// of it, and they must not refute the notice. A heartbeat above h + K is
// fresher than the notice: it refutes it. The holder keeps the member alive,
// and its answer carries that heartbeat back. A member declared dead by a
// notice comes back as soon as a heartbeat above h + K reaches it (not after
// the revive margin of a death by timeout): a restarted process counts from
// its start time in microseconds, far above. A member that hears a notice
// about itself refutes it by counting its heartbeat on above h + K and up
// to the clock, as a restarted member does.
//
// A call that was under way while the member's heartbeat rose is not taken
// as a notice (see Refused): the dial may have been refused before a new
// process started at the address, whose heartbeats then arrived.
//
// On the wire, notices travel as digest records in the Dead field of
// ExchangeRequest and ExchangeResponse, whose heartbeat is h: a member built
// before notices existed ignores the field, and sees the member fail after
// its failure time as before. A full request carries every notice its
// sender holds; an answer carries those the requester lacks (see
// table.answerNotices). A notice is held as long as the dead member is
// remembered, the cleanup time.

// noticeSlackSpreads is K in spread times: a heartbeat reaches every member
// within 3 S(n) rounds in the simulation's runs (internal/sim's tests), so
// no member holds one more than that above the noticer's.
const noticeSlackSpreads = 3

// noticeSlack returns K, in heartbeats (see above).
func (s *State) noticeSlack() int64 {
	return int64(noticeSlackSpreads * SpreadRounds(s.table.live))
}

// Refused tells that a call to addr, started at since, found nothing
// listening at that address (the dial was refused) at time now. If addr is a
// live member whose heartbeat has not risen since the call started, it is
// declared dead at once and a death notice is spread (see above).
func (s *State) Refused(addr string, since, now time.Time) Output {
	e := s.table.members[addr]
	if s.phase != running || s.IsSelf(addr) || e == nil || !e.alive || e.lastRise.After(since) {
		return s.flush()
	}
	s.noticeDead(e, e.heartbeat, now, true)
	s.debug(addr, "gossip: member failed: connection refused", "heartbeat", e.heartbeat)
	return s.flush()
}

// noticeDead declares e dead by a notice at heartbeat h, at time now, and
// spreads the notice on if spread is set.
func (s *State) noticeDead(e *entry, h int64, now time.Time, spread bool) {
	s.table.setAlive(e, false)
	e.deadAt, e.noticed, e.silent = now, h, false
	s.changed(Failed, e, now, spread)
}

// mergeDead merges a death notice of a member at heartbeat u.Heartbeat
// (see above) at local time now, marking it seen under gen.
func (s *State) mergeDead(u Entry, now time.Time, gen uint64, spread bool) {
	t := &s.table
	if reason := s.checkEntry(u, now); reason != "" {
		s.debug(u.Addr, "gossip: ignoring death notice", "reason", reason)
		return
	}
	k := s.noticeSlack()
	if s.IsSelf(u.Addr) {
		self := t.self
		if s.phase == running && self.heartbeat <= u.Heartbeat+k {
			self.heartbeat = max(self.heartbeat+1, u.Heartbeat+k+1, now.UnixMicro())
			self.lastRise = now
			s.log(Info, "gossip: refuting a notice that this member died", "heartbeat", self.heartbeat)
		}
		t.markDead(self, gen, u.Heartbeat, u.Version)
		return
	}
	e := t.members[u.Addr]
	if e == nil {
		return // never known alive here: nothing to declare
	}
	defer t.markDead(e, gen, u.Heartbeat, u.Version)
	switch {
	case e.left:
	case e.alive && e.heartbeat <= u.Heartbeat+k:
		s.noticeDead(e, u.Heartbeat, now, spread)
		s.debug(u.Addr, "gossip: member failed: death notice", "heartbeat", u.Heartbeat)
	case e.alive:
		// Our heartbeat is fresher: it refutes the notice, and the
		// answer carries it back.
	case e.noticed > 0:
		e.noticed = max(e.noticed, u.Heartbeat)
	}
}

// revives reports whether heartbeat hb of a member remembered as dead or
// left, e, brings it back: above the heartbeat it left with, above a death
// notice's heartbeat by more than the slack K, or above the heartbeat it was
// declared dead at by the revive margin (see failure.go).
func (s *State) revives(e *entry, hb int64) bool {
	switch {
	case e.left:
		return hb > e.heartbeat
	case e.noticed > 0:
		// Above our own record too: the slack shrinks with the live
		// members.
		return hb > max(e.heartbeat, e.noticed+s.noticeSlack())
	}
	return hb > e.heartbeat+s.reviveMargin()
}

// noticeRecord appends e's death notice to d.
func noticeRecord(d []byte, e *entry) []byte {
	return AppendDigest(d, e.addr, e.noticed, min(e.version, e.noticed))
}

// heldNotice reports whether e is remembered as dead by a notice of the
// kind given: of silence (suspect.go) if silent, else of a refused dial.
func (e *entry) heldNotice(silent bool) bool {
	return !e.alive && !e.left && e.noticed > 0 && e.silent == silent
}

// noticeDigest returns the notices of the kind given held, for
// ExchangeRequest.Dead or Silent.
func (t *table) noticeDigest(silent bool) []byte {
	var d []byte
	for _, e := range t.list {
		if e.heldNotice(silent) {
			d = noticeRecord(d, e)
		}
	}
	return d
}

// noticeRecords returns the notices of the kind given of those named, for
// a rumor.
func (t *table) noticeRecords(names []string, silent bool) []byte {
	var d []byte
	for _, addr := range names {
		if e := t.members[addr]; e != nil && e.heldNotice(silent) {
			d = noticeRecord(d, e)
		}
	}
	return d
}

// answerNotices returns the notices of the kind given that the peer whose
// update was merged under mark gen lacks: of the members it named as live,
// and (unless partial) of those it did not name.
func (t *table) answerNotices(gen uint64, partial, silent bool) []byte {
	var d []byte
	t.eachAnswered(gen, partial, func(e *entry) {
		if e.heldNotice(silent) && (e.seen == gen && !e.theirLeft && !e.theirDead || e.seen != gen && !partial) {
			d = noticeRecord(d, e)
		}
	})
	return d
}

// markDead is mark for a member the update holds a death notice of at
// heartbeat hb.
func (t *table) markDead(e *entry, gen uint64, hb, v int64) {
	t.mark(e, gen, hb, v)
	e.theirDead = true
}
