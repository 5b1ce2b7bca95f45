package protocol

import "time"

// Leaving on purpose.
//
// A member that shuts down on purpose should not wait a failure time to
// vanish from its peers' views. Leave bumps the member's heartbeat one last
// time, to h, marks its own entry as left, stops gossip rounds and tells a
// few peers at once. A member that learns that a member left at heartbeat h
// drops it from its live members, records it as left rather than failed, and
// spreads the news on as a rumor; periodic exchanges bring it to the rest.
// A member that a death notice declared dead before the news came (see
// notice.go: the leaver's closed connections and refused dials look like a
// crash) is reported as left then too, after its failure: the leave is what
// happened.
//
// The rule that keeps it gone: a left entry with heartbeat h beats every
// entry of that member with heartbeat h or less, which is all the gossip the
// leaving member ever produced, however late it arrives. A member that
// restarts at the same address starts its heartbeat at its start time in
// microseconds, far above h, and joins again at once. Left entries are
// remembered for the cleanup time, like dead ones, and then forgotten.
//
// On the wire, members that left travel as digest records in the Left field
// of ExchangeRequest and ExchangeResponse, never among the live digest or
// Members: a member built before Leave existed ignores the field, and sees
// the leaver fail after its failure time as before.

// Leave marks this member as left at time now and returns, as Output.Send of
// purpose Announce, the news for every live peer in random order: the shell
// sends them a few at a time until enough have heard (see the root
// package's leave.go). The member makes no more rounds and keeps answering
// its peers, with the news that it left. Called again, it returns the news
// again, for another try; before Start it returns nothing.
func (s *State) Leave(now time.Time) Output {
	self := s.table.self
	switch s.phase {
	case idle:
		return Output{}
	case running:
		self.heartbeat++
		s.table.setAlive(self, false)
		self.left, self.deadAt = true, now
		s.phase = left
		s.log(Info, "gossip member leaving", "heartbeat", self.heartbeat)
	}
	req := ExchangeRequest{
		From: s.addr, Cluster: s.cfg.ClusterName, Partial: true,
		Left: AppendDigest(nil, self.addr, self.heartbeat, self.version),
	}
	peers := s.table.livePeers()
	s.rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	for _, p := range peers {
		s.send(p, Announce, req)
	}
	return s.flush()
}

// mergeLeft merges the record of a member that left at heartbeat
// u.Heartbeat (see the rule above) at local time now, marking it seen
// under gen.
func (s *State) mergeLeft(u Entry, now time.Time, gen uint64, spread bool) {
	t := &s.table
	if reason := s.checkEntry(u, now); reason != "" {
		s.debug(u.Addr, "gossip: ignoring left entry", "reason", reason)
		return
	}
	if s.IsSelf(u.Addr) {
		// An earlier life of ours left; count on above it.
		self := t.self
		if s.phase == running && u.Heartbeat >= self.heartbeat {
			self.heartbeat = u.Heartbeat + 1
		}
		t.markLeft(self, gen, u.Heartbeat, u.Version)
		return
	}
	e := t.members[u.Addr]
	if e == nil {
		// Remember it, so that stale gossip about it is not taken for
		// a join.
		if len(t.members) >= s.cfg.MaxMembers {
			return
		}
		e = &entry{addr: u.Addr, heartbeat: u.Heartbeat, version: u.Version, lastRise: now, left: true, deadAt: now}
		t.put(e)
	}
	defer t.markLeft(e, gen, u.Heartbeat, u.Version)
	switch {
	case u.Heartbeat < e.heartbeat:
		// A later life of the member, or news older than ours.
	case e.left:
		e.heartbeat = u.Heartbeat
	case e.alive:
		t.setAlive(e, false)
		e.left, e.deadAt, e.heartbeat = true, now, u.Heartbeat
		s.changed(Left, e, now, spread)
		s.debug(u.Addr, "gossip: member left")
	case e.noticed > 0:
		// Declared dead by a death notice, it left in fact: a member
		// whose connection it closed on leaving dialled it before the
		// news reached it, and was refused. The leave is what happened:
		// report it, and spread the news on to the members the notice
		// reached.
		e.left, e.heartbeat, e.noticed = true, u.Heartbeat, 0
		s.emit(Left, e, now)
		if spread {
			s.rumor(e.addr, now)
		}
		s.debug(u.Addr, "gossip: member declared dead by a notice left")
	default:
		// Declared dead already, after its failure time; it left in
		// fact.
		e.left, e.heartbeat, e.noticed = true, u.Heartbeat, 0
	}
}
