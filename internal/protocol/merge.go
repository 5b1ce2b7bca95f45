package protocol

import (
	"bytes"
	"fmt"
	"net"
	"time"
)

// merge merges a digest, entries, the records of members that left and
// death notices (see notice.go and suspect.go), as an exchange carries them, at local time now. It marks each entry it saw
// with a new mark, gen, and the peer's heartbeat and version, for answer. If
// spread is set, what it learns is a rumor to spread on: set it for what
// peers send us, not for the answers to our own digest, which tell us only
// how far behind we were (a member that joins would otherwise spread the
// whole table). It returns the members the update showed newer data for
// without carrying it (want), and an error for a malformed digest, having
// merged what came before.
//
// A member's heartbeat and its data are merged separately, each keeping the
// newer: the higher heartbeat, noting when it rose, and the data of the
// higher version. A member is added only with its data. A member remembered
// as dead comes back only if its heartbeat is beyond what it could have
// reached before it was declared dead (see reviveMargin) or, if declared
// dead by a death notice, beyond the notice's slack (see notice.go), and one
// that left only if its heartbeat is beyond the one it left with: stale
// gossip cannot bring any back, a restart can.
func (s *State) merge(digest []byte, update []Entry, leftRecs, deadRecs, silentRecs []byte, now time.Time, spread bool) (gen uint64, want []string, err error) {
	t := &s.table
	gen = t.newMark()
	err = ReadDigest(digest, s.cfg.MaxMembers, func(addr []byte, hb, version int64) error {
		// The common case, a known live member's heartbeat, without
		// allocating.
		if e := t.members[string(addr)]; e != nil && e.alive && e != t.self && version <= e.version {
			t.mark(e, gen, hb, version)
			if hb > e.heartbeat {
				e.heartbeat, e.lastRise = hb, now
			}
			return nil
		}
		if s.mergeEntry(Entry{Addr: string(addr), Heartbeat: hb, Version: version}, now, gen, spread) {
			want = append(want, string(addr))
		}
		return nil
	})
	for _, u := range update {
		if s.mergeEntry(u, now, gen, spread) {
			want = append(want, u.Addr)
		}
	}
	if lerr := ReadDigest(leftRecs, s.cfg.MaxMembers, func(addr []byte, hb, version int64) error {
		s.mergeLeft(Entry{Addr: string(addr), Heartbeat: hb, Version: version}, now, gen, spread)
		return nil
	}); err == nil {
		err = lerr
	}
	if derr := ReadDigest(deadRecs, s.cfg.MaxMembers, func(addr []byte, hb, version int64) error {
		s.mergeDead(Entry{Addr: string(addr), Heartbeat: hb, Version: version}, now, gen, spread)
		return nil
	}); err == nil {
		err = derr
	}
	if serr := ReadDigest(silentRecs, s.cfg.MaxMembers, func(addr []byte, hb, version int64) error {
		s.mergeSilent(Entry{Addr: string(addr), Heartbeat: hb, Version: version}, now, gen, spread)
		return nil
	}); err == nil {
		err = serr
	}
	return gen, want, err
}

// mergeEntry merges one entry (see merge). It reports whether the entry
// showed newer data without carrying it.
func (s *State) mergeEntry(u Entry, now time.Time, gen uint64, spread bool) (want bool) {
	t := &s.table
	if reason := s.checkEntry(u, now); reason != "" {
		s.debug(u.Addr, "gossip: ignoring entry", "reason", reason)
		return false
	}
	if s.IsSelf(u.Addr) {
		s.mergeSelf(u, gen)
		return false
	}
	e := t.members[u.Addr]
	if e != nil {
		defer t.mark(e, gen, u.Heartbeat, u.Version)
	}
	newData := e == nil || u.Version > e.version
	switch {
	case newData && !u.WithData && (e == nil || e.alive || s.revives(e, u.Heartbeat)):
		// Newer data we have not got: keep a live member alive, and ask
		// for the data; a new or returning member waits for it.
		if e != nil && e.alive && u.Heartbeat > e.heartbeat {
			e.heartbeat, e.lastRise = u.Heartbeat, now
		}
		return true
	case e == nil:
		s.add(u, now, gen, spread)
	case e.alive:
		if u.Heartbeat > e.heartbeat {
			e.heartbeat, e.lastRise = u.Heartbeat, now
		}
		if newData {
			e.version = u.Version
			if !bytes.Equal(e.data, u.Data) {
				e.data = u.Data
				s.changed(Updated, e, now, spread)
			}
		}
	case s.revives(e, u.Heartbeat):
		e.heartbeat, e.lastRise, e.left, e.noticed = u.Heartbeat, now, false, 0
		t.setAlive(e, true)
		if newData {
			e.version, e.data = u.Version, u.Data
		}
		s.changed(Rejoined, e, now, spread)
		s.debug(u.Addr, "gossip: member is back")
	}
	return false
}

// mergeSelf merges gossip about this member. If it counts higher than we do
// (an earlier life of ours with a clock ahead of ours, or a forgery), count
// on from there so that our heartbeats and our data win. Our own heartbeat
// and version echoed back are the common case and change nothing: bumping
// the version then would send our data again to everyone after every
// exchange.
func (s *State) mergeSelf(u Entry, gen uint64) {
	self := s.table.self
	if u.Heartbeat > self.heartbeat || u.Version > self.version {
		self.heartbeat = max(self.heartbeat, u.Heartbeat) + 1
		if u.Version > self.version {
			self.version = self.heartbeat
		}
	}
	s.table.mark(self, gen, u.Heartbeat, u.Version)
}

// add adds a member first heard of in u, unless the table is full.
func (s *State) add(u Entry, now time.Time, gen uint64, spread bool) {
	t := &s.table
	if len(t.members) >= s.cfg.MaxMembers {
		s.debug(u.Addr, "gossip: membership table full; ignoring new member")
		return
	}
	e := &entry{addr: u.Addr, heartbeat: u.Heartbeat, version: u.Version, lastRise: now, alive: true, data: u.Data}
	t.mark(e, gen, u.Heartbeat, u.Version)
	t.put(e)
	t.grew = now
	s.changed(Joined, e, now, spread)
	s.debug(u.Addr, "gossip: member joined")
}

// changed records a change of e's liveness or data: an event, a change for
// the shell to signal and, if spread, a rumor.
func (s *State) changed(typ EventType, e *entry, now time.Time, spread bool) {
	s.emit(typ, e, now)
	s.out.Changed = true
	if spread {
		s.rumor(e.addr, now)
	}
}

// checkEntry returns why a received entry is unacceptable at time now, or "".
func (s *State) checkEntry(u Entry, now time.Time) string {
	if len(u.Addr) > MaxAddrLen {
		return "address too long"
	}
	if _, _, err := net.SplitHostPort(u.Addr); err != nil {
		return "bad address: " + err.Error()
	}
	if u.Heartbeat <= 0 {
		return "heartbeat not positive"
	}
	if u.Version < 0 || u.Version > u.Heartbeat {
		return "data version outside 0..heartbeat"
	}
	if !u.WithData && len(u.Data) > 0 {
		return "data without WithData"
	}
	if u.Heartbeat > now.Add(MaxHeartbeatLead).UnixMicro() {
		return "heartbeat too far ahead of the clock"
	}
	if len(u.Data) > s.cfg.MaxDataSize {
		return fmt.Sprintf("data of %d bytes over the limit of %d", len(u.Data), s.cfg.MaxDataSize)
	}
	return ""
}

// MaxHeartbeatLead bounds how far ahead of the local clock, in microseconds,
// a received heartbeat may be (heartbeats start at a member's start time in
// microseconds and count one per round). It leaves room for clocks that
// disagree, and keeps forged heartbeats far from overflowing.
const MaxHeartbeatLead = 365 * 24 * time.Hour
