package gossip

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
)

// Member is one participant as GetMembers reports it. Applications attach
// opaque data to their member with SetData; every other member sees it here.
type Member struct {
	// Addr is the member's advertised host:port, its identity.
	Addr string

	// Heartbeat is the member's heartbeat counter. It starts at the
	// member's start time in microseconds since the Unix epoch and grows by
	// one each gossip round and each data change, so a restarted member
	// always counts above its previous life.
	Heartbeat int64

	// Data is the member's application data: the value given to SetData,
	// decoded afresh for each caller. Where this process cannot decode it
	// (its type is not registered with gob here), Data is a RawData.
	Data interface{}
}

// String returns the member's address and heartbeat, and its data if any.
func (m *Member) String() string {
	if m.Data == nil {
		return fmt.Sprintf("%s hb=%d", m.Addr, m.Heartbeat)
	}
	return fmt.Sprintf("%s hb=%d data=%v", m.Addr, m.Heartbeat, m.Data)
}

// entry is one row of the membership table.
type entry struct {
	addr      string
	heartbeat int64
	data      []byte    // gob-encoded application data; never modified in place
	lastRise  time.Time // local time the heartbeat last rose
	alive     bool
	deadAt    time.Time // local time it was declared dead, if !alive
}

// table is the membership table: every member known, alive or remembered as
// dead. It is guarded by Gossip.mu.
type table struct {
	members map[string]*entry // by address, this member included
	self    *entry
}

// livePeers returns the addresses of the live members other than this one.
func (t *table) livePeers() []string {
	peers := make([]string, 0, len(t.members))
	for addr, e := range t.members {
		if e.alive && e != t.self {
			peers = append(peers, addr)
		}
	}
	return peers
}

// liveCount is the observed cluster size: live members, this one included.
func (t *table) liveCount() int {
	n := 0
	for _, e := range t.members {
		if e.alive {
			n++
		}
	}
	return n
}

// wire returns the live entries for a gossip message. If since is non-nil,
// only the entries newer than the heartbeat it gives for them are included:
// the peer that sent since has the rest.
func (t *table) wire(since map[string]int64) []Entry {
	out := make([]Entry, 0, len(t.members))
	for addr, e := range t.members {
		if !e.alive {
			continue
		}
		if hb, ok := since[addr]; ok && hb >= e.heartbeat {
			continue
		}
		out = append(out, Entry{Addr: addr, Heartbeat: e.heartbeat, Data: e.data})
	}
	return out
}

// mergeLocked merges a remote update into the table at local time now and
// reports whether the live set or any data changed. For each member it keeps
// the higher heartbeat and the data that came with it, and notes when the
// heartbeat rose. A member remembered as dead comes back only if its
// heartbeat is beyond what it could have reached before it was declared dead
// (see reviveMargin): stale gossip cannot bring it back, a restart can.
func (g *Gossip) mergeLocked(update []Entry, now time.Time) (changed bool) {
	t := &g.table
	for _, u := range update {
		if reason := g.checkEntry(u); reason != "" {
			g.log.WithField("peer", u.Addr).Debugf("gossip: ignoring entry: %s", reason)
			continue
		}
		if u.Addr == g.addr || g.aliases[u.Addr] {
			// Gossip about ourselves. If it counts higher than we do (an
			// earlier life of ours with a clock ahead of ours), count on from
			// there so that our heartbeats are not ignored.
			if u.Heartbeat >= t.self.heartbeat {
				t.self.heartbeat = u.Heartbeat + 1
			}
			continue
		}
		e := t.members[u.Addr]
		switch {
		case e == nil:
			if len(t.members) >= g.cfg.MaxMembers {
				g.log.WithField("peer", u.Addr).Debug("gossip: membership table full; ignoring new member")
				continue
			}
			t.members[u.Addr] = &entry{addr: u.Addr, heartbeat: u.Heartbeat, data: u.Data, lastRise: now, alive: true}
			g.log.WithField("peer", u.Addr).Debug("gossip: member joined")
			changed = true
		case e.alive:
			if u.Heartbeat <= e.heartbeat {
				continue
			}
			e.heartbeat, e.lastRise = u.Heartbeat, now
			if !bytes.Equal(e.data, u.Data) {
				e.data = u.Data
				changed = true
			}
		case u.Heartbeat > e.heartbeat+g.reviveMargin():
			e.heartbeat, e.data, e.lastRise, e.alive = u.Heartbeat, u.Data, now, true
			g.log.WithField("peer", u.Addr).Debug("gossip: member is back")
			changed = true
		}
	}
	return changed
}

// checkEntry returns why a received entry is unacceptable, or "".
func (g *Gossip) checkEntry(u Entry) string {
	if len(u.Addr) > maxAddrLen {
		return "address too long"
	}
	if _, _, err := net.SplitHostPort(u.Addr); err != nil {
		return "bad address: " + err.Error()
	}
	if u.Heartbeat <= 0 {
		return "heartbeat not positive"
	}
	if u.Heartbeat > g.clock.Now().Add(maxHeartbeatLead).UnixMicro() {
		return "heartbeat too far ahead of the clock"
	}
	if len(u.Data) > g.cfg.MaxDataSize {
		return fmt.Sprintf("data of %d bytes over the limit of %d", len(u.Data), g.cfg.MaxDataSize)
	}
	return ""
}

// maxAddrLen bounds a member address received from the network.
const maxAddrLen = 512

// sweepLocked applies the failure rules at local time now: a live member
// whose heartbeat has not risen for FailureTime is declared dead; a dead one
// is forgotten after the cleanup time. It reports whether the live set
// changed.
func (g *Gossip) sweepLocked(now time.Time) (changed bool) {
	tfail := g.failureTimeLocked()
	for addr, e := range g.table.members {
		switch {
		case e == g.table.self:
		case e.alive && now.Sub(e.lastRise) > tfail:
			e.alive, e.deadAt = false, now
			g.log.WithFields(logrus.Fields{"peer": addr, "silent": now.Sub(e.lastRise)}).Debug("gossip: member failed")
			changed = true
		case !e.alive && now.Sub(e.deadAt) > cleanupTime(tfail):
			delete(g.table.members, addr)
			delete(g.retry, addr)
		}
	}
	return changed
}

// GetMembers returns the live members, this one included, sorted by
// address. The result is the caller's: each call decodes the data afresh.
func (g *Gossip) GetMembers() []Member {
	g.mu.Lock()
	changed := false
	if g.state == stateRunning {
		changed = g.sweepLocked(g.clock.Now())
	}
	type row struct {
		addr string
		hb   int64
		data []byte
	}
	rows := make([]row, 0, len(g.table.members))
	for addr, e := range g.table.members {
		if e.alive {
			rows = append(rows, row{addr, e.heartbeat, e.data})
		}
	}
	g.mu.Unlock()
	if changed {
		g.notify()
	}
	out := make([]Member, len(rows))
	for i, r := range rows {
		out[i] = Member{Addr: r.addr, Heartbeat: r.hb, Data: decodeData(r.data)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// Receive merges a remote update, as a member does with the table a peer
// gossips to it. Each member's Data is encoded as SetData would; a member
// whose data cannot be encoded or is too large is skipped and logged.
func (g *Gossip) Receive(update []Member) {
	entries := make([]Entry, 0, len(update))
	for _, m := range update {
		data, err := encodeData(m.Data, g.cfg.MaxDataSize)
		if err != nil {
			g.log.WithField("peer", m.Addr).WithError(err).Warn("gossip: ignoring received member")
			continue
		}
		entries = append(entries, Entry{Addr: m.Addr, Heartbeat: m.Heartbeat, Data: data})
	}
	g.mu.Lock()
	changed := g.state == stateRunning && g.mergeLocked(entries, g.clock.Now())
	g.mu.Unlock()
	if changed {
		g.notify()
	}
}

// retryState is the backoff of a seed or dead member being contacted.
type retryState struct {
	next  time.Time
	delay time.Duration
}

// recoveryTargetsLocked returns the seeds and dead members due for a contact:
// all due seeds while we are alone (joining), else one due candidate picked at
// random. Each is marked as attempted; contact resets or extends its backoff.
func (g *Gossip) recoveryTargetsLocked(now time.Time, alone bool) []string {
	var due []string
	consider := func(name string) {
		r := g.retry[name]
		if r == nil {
			r = &retryState{delay: g.cfg.GossipInterval}
			g.retry[name] = r
		}
		if !now.Before(r.next) {
			due = append(due, name)
		}
	}
	for _, s := range g.cfg.Seeds {
		if e := g.table.members[s]; (e == nil || !e.alive) && !g.aliases[s] {
			consider(s)
		}
	}
	if !alone || len(due) == 0 {
		for addr, e := range g.table.members {
			if !e.alive {
				consider(addr)
			}
		}
	}
	if len(due) == 0 {
		return nil
	}
	if !alone {
		i := g.rng.IntN(len(due))
		due = due[i : i+1]
	}
	for _, name := range due {
		g.retry[name].next = now.Add(g.retry[name].delay)
	}
	return due
}

// retried records the outcome of contacting a seed or dead member: success
// clears its backoff, failure doubles it up to maxRetryRounds rounds.
func (g *Gossip) retried(name string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.retry[name]
	if r == nil {
		return
	}
	if ok {
		r.delay = g.cfg.GossipInterval
		r.next = time.Time{}
		return
	}
	r.delay = min(2*r.delay, maxRetryRounds*g.cfg.GossipInterval)
}

// maxRetryRounds caps the backoff of an unreachable seed, in gossip rounds.
const maxRetryRounds = 32

// maxHeartbeatLead bounds how far ahead of the local clock, in microseconds,
// a received heartbeat may be (heartbeats start at a member's start time in
// microseconds and count one per round). It leaves room for clocks that
// disagree, and keeps forged heartbeats far from overflowing.
const maxHeartbeatLead = 365 * 24 * time.Hour
