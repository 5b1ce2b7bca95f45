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
	version   int64     // the heartbeat at which data was set (see Entry.Version)
	data      []byte    // gob-encoded application data; never modified in place
	shared    any       // data decoded, if it is immutable and so can be shared (see value)
	decoded   bool      // shared holds the data
	mutable   bool      // the data decodes to a value that cannot be shared
	lastRise  time.Time // local time the heartbeat last rose
	alive     bool
	left      bool      // it left the cluster (see leave.go); then !alive
	deadAt    time.Time // local time it was declared dead or left, if !alive

	// What the peer of the exchange being answered holds for this member,
	// valid if seen is the exchange's mark (see mergeUpdateLocked).
	seen           uint64
	theirHeartbeat int64
	theirVersion   int64
	theirLeft      bool // the peer knows that the member left
}

// table is the membership table: every member known, alive or remembered as
// dead. It is guarded by Gossip.mu.
type table struct {
	members map[string]*entry // by address, this member included
	self    *entry
	gen     uint64   // the last mark given to an update (see mergeUpdateLocked)
	seen    []*entry // the entries marked with gen
	live    int      // entries alive (see liveCount); changed only by put, remove and setAlive
}

// mark records that the update being merged under mark gen holds the
// entry e at heartbeat hb and data version v, as a live member (see
// markLeft for one that left).
func (t *table) mark(e *entry, gen uint64, hb, v int64) {
	if e.seen != gen {
		t.seen = append(t.seen, e)
	}
	e.seen, e.theirHeartbeat, e.theirVersion, e.theirLeft = gen, hb, v, false
}

// markLeft is mark for a member the update says left at heartbeat hb.
func (t *table) markLeft(e *entry, gen uint64, hb, v int64) {
	t.mark(e, gen, hb, v)
	e.theirLeft = true
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
func (t *table) liveCount() int { return t.live }

// put adds e to the table, in place of any entry for its address.
func (t *table) put(e *entry) {
	t.remove(e.addr)
	t.members[e.addr] = e
	if e.alive {
		t.live++
	}
}

// remove forgets the entry for addr, if any.
func (t *table) remove(addr string) {
	if old := t.members[addr]; old != nil {
		if old.alive {
			t.live--
		}
		delete(t.members, addr)
	}
}

// setAlive marks e, an entry of the table, alive or not.
func (t *table) setAlive(e *entry, alive bool) {
	switch {
	case alive && !e.alive:
		t.live++
	case !alive && e.alive:
		t.live--
	}
	e.alive = alive
}

// digest returns the live entries, without their data, as a digest: the
// first half of an exchange.
func (t *table) digest() []byte {
	d := make([]byte, 0, len(t.members)*32)
	for addr, e := range t.members {
		if e.alive {
			d = appendDigest(d, addr, e.heartbeat, e.version)
		}
	}
	return d
}

// answer returns what the peer whose update was merged under mark gen lacks:
// the live entries newer than the update's, as a digest, and with their data
// where the update's version was older or (unless partial) the update did not
// name them.
func (t *table) answer(gen uint64, partial bool) (digest []byte, members []Entry) {
	each := func(e *entry) {
		switch {
		case e.left:
		case !e.alive:
		case e.seen != gen:
			if !partial {
				members = append(members, e.withData())
			}
		case e.version > e.theirVersion:
			members = append(members, e.withData())
		case e.heartbeat > e.theirHeartbeat:
			digest = appendDigest(digest, e.addr, e.heartbeat, e.version)
		}
	}
	if partial {
		// Only the update's own entries: a rumor costs its size, not the
		// table's.
		for _, e := range t.seen {
			if t.members[e.addr] == e {
				each(e)
			}
		}
		return digest, members
	}
	for _, e := range t.members {
		each(e)
	}
	return digest, members
}

// withData returns the live entries named, data included, at most max.
func (t *table) withData(names []string, max int) []Entry {
	var out []Entry
	for _, addr := range names {
		if e := t.members[addr]; e != nil && e.alive && len(out) < max {
			out = append(out, e.withData())
		}
	}
	return out
}

// withData returns the entry for the wire, data included.
func (e *entry) withData() Entry {
	return Entry{Addr: e.addr, Heartbeat: e.heartbeat, Version: e.version, WithData: true, Data: e.data}
}

// mergeLocked merges a remote update into the table at local time now. It
// reports whether the live set or any data changed, and which members the
// update showed newer data for without carrying it (want).
func (g *Gossip) mergeLocked(update []Entry, now time.Time) (changed bool, want []string) {
	_, changed, want, _ = g.mergeUpdateLocked(nil, update, now, true)
	return changed, want
}

// mergeUpdateLocked merges a digest and entries, as an exchange carries
// them, at local time now. It marks each entry it saw with a new mark, gen,
// and the peer's heartbeat and version, for answer. If spread is set, what
// it learns is a rumor to spread on: set it for what peers send us, not for
// the answers to our own digest, which tell us only how far behind we were
// (a member that joins would otherwise spread the whole table). It returns an
// error for a malformed digest, having merged what came before.
//
// A member's heartbeat and its data are merged separately, each keeping the
// newer: the higher heartbeat, noting when it rose, and the data of the
// higher version. A member is added only with its data. A member remembered
// as dead comes back only if its heartbeat is beyond what it could have
// reached before it was declared dead (see reviveMargin), and one that left
// only if its heartbeat is beyond the one it left with: stale gossip cannot
// bring either back, a restart can.
func (g *Gossip) mergeUpdateLocked(digest []byte, update []Entry, now time.Time, spread bool) (gen uint64, changed bool, want []string, err error) {
	return g.mergeExchangeLocked(digest, update, nil, now, spread)
}

// mergeExchangeLocked is mergeUpdateLocked with the records of members that
// left (ExchangeRequest.Left), merged last by mergeLeftLocked.
func (g *Gossip) mergeExchangeLocked(digest []byte, update []Entry, left []byte, now time.Time, spread bool) (gen uint64, changed bool, want []string, err error) {
	defer g.metrics.merged(time.Now())
	t := &g.table
	t.gen++
	gen = t.gen
	clear(t.seen)
	t.seen = t.seen[:0]
	merge := func(u Entry) {
		c, w := g.mergeEntryLocked(u, now, gen, spread)
		changed = changed || c
		if w {
			want = append(want, u.Addr)
		}
	}
	err = readDigest(digest, g.cfg.MaxMembers, func(addr []byte, hb, version int64) error {
		// The common case, a known live member's heartbeat, without
		// allocating.
		if e := t.members[string(addr)]; e != nil && e.alive && e != t.self && version <= e.version {
			t.mark(e, gen, hb, version)
			if hb > e.heartbeat {
				e.heartbeat, e.lastRise = hb, now
			}
			return nil
		}
		merge(Entry{Addr: string(addr), Heartbeat: hb, Version: version})
		return nil
	})
	for _, u := range update {
		merge(u)
	}
	if lerr := readDigest(left, g.cfg.MaxMembers, func(addr []byte, hb, version int64) error {
		changed = g.mergeLeftLocked(Entry{Addr: string(addr), Heartbeat: hb, Version: version}, now, gen, spread) || changed
		return nil
	}); err == nil {
		err = lerr
	}
	return gen, changed, want, err
}

// mergeEntryLocked merges one entry (see mergeUpdateLocked). It reports
// whether the live set or the member's data changed, and whether the entry
// showed newer data without carrying it.
func (g *Gossip) mergeEntryLocked(u Entry, now time.Time, gen uint64, spread bool) (changed, want bool) {
	t := &g.table
	if reason := g.checkEntry(u); reason != "" {
		g.log.WithField("peer", u.Addr).Debugf("gossip: ignoring entry: %s", reason)
		return false, false
	}
	if u.Addr == g.addr || g.aliases[u.Addr] {
		// Gossip about ourselves. If it counts higher than we do (an
		// earlier life of ours with a clock ahead of ours, or a forgery),
		// count on from there so that our heartbeats and our data win.
		// Our own heartbeat and version echoed back are the common case
		// and change nothing: bumping the version then would send our
		// data again to everyone after every exchange.
		self := t.self
		if u.Heartbeat > self.heartbeat || u.Version > self.version {
			self.heartbeat = max(self.heartbeat, u.Heartbeat) + 1
			if u.Version > self.version {
				self.version = self.heartbeat
			}
		}
		t.mark(self, gen, u.Heartbeat, u.Version)
		return false, false
	}
	e := t.members[u.Addr]
	if e != nil {
		defer t.mark(e, gen, u.Heartbeat, u.Version)
	}
	newData := e == nil || u.Version > e.version
	switch {
	case newData && !u.WithData && (e == nil || e.alive || u.Heartbeat > e.heartbeat+g.reviveMarginOf(e)):
		// Newer data we have not got: keep a live member alive, and ask
		// for the data; a new or returning member waits for it.
		if e != nil && e.alive && u.Heartbeat > e.heartbeat {
			e.heartbeat, e.lastRise = u.Heartbeat, now
		}
		return false, true
	case e == nil:
		if len(t.members) >= g.cfg.MaxMembers {
			g.log.WithField("peer", u.Addr).Debug("gossip: membership table full; ignoring new member")
			return false, false
		}
		e = &entry{addr: u.Addr, heartbeat: u.Heartbeat, version: u.Version, lastRise: now, alive: true}
		t.mark(e, gen, u.Heartbeat, u.Version)
		e.setData(u.Data)
		t.put(e)
		g.emitLocked(EventJoined, e, now)
		g.log.WithField("peer", u.Addr).Debug("gossip: member joined")
		if spread {
			g.rumorLocked(u.Addr)
		}
		return true, false
	case e.alive:
		if u.Heartbeat > e.heartbeat {
			e.heartbeat, e.lastRise = u.Heartbeat, now
		}
		if newData {
			e.version = u.Version
			if !bytes.Equal(e.data, u.Data) {
				e.setData(u.Data)
				g.emitLocked(EventUpdated, e, now)
				if spread {
					g.rumorLocked(u.Addr)
				}
				return true, false
			}
		}
	case u.Heartbeat > e.heartbeat+g.reviveMarginOf(e):
		e.heartbeat, e.lastRise, e.left = u.Heartbeat, now, false
		t.setAlive(e, true)
		if newData {
			e.version = u.Version
			e.setData(u.Data)
		}
		g.emitLocked(EventRejoined, e, now)
		g.log.WithField("peer", u.Addr).Debug("gossip: member is back")
		if spread {
			g.rumorLocked(u.Addr)
		}
		return true, false
	}
	return false, false
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
	if u.Version < 0 || u.Version > u.Heartbeat {
		return "data version outside 0..heartbeat"
	}
	if !u.WithData && len(u.Data) > 0 {
		return "data without WithData"
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
// whose heartbeat has not risen for FailureTime is declared dead; a dead one,
// or one that left, is forgotten after the cleanup time. It reports whether the live set
// changed.
func (g *Gossip) sweepLocked(now time.Time) (changed bool) {
	tfail := g.failureTimeLocked()
	for addr, e := range g.table.members {
		switch {
		case e == g.table.self:
		case e.alive && now.Sub(e.lastRise) > tfail:
			g.table.setAlive(e, false)
			e.deadAt = now
			g.emitLocked(EventFailed, e, now)
			g.log.WithFields(logrus.Fields{"peer": addr, "silent": now.Sub(e.lastRise)}).Debug("gossip: member failed")
			changed = true
		case !e.alive && now.Sub(e.deadAt) > cleanupTime(tfail):
			g.table.remove(addr)
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
		addr  string
		hb    int64
		data  []byte
		value any
		ok    bool // value is set
	}
	rows := make([]row, 0, len(g.table.members))
	for addr, e := range g.table.members {
		if e.alive {
			r := row{addr: addr, hb: e.heartbeat, data: e.data}
			r.value, r.ok = e.value()
			rows = append(rows, r)
		}
	}
	g.mu.Unlock()
	if changed {
		g.notify()
	}
	out := make([]Member, len(rows))
	for i, r := range rows {
		out[i] = Member{Addr: r.addr, Heartbeat: r.hb, Data: r.value}
		if !r.ok {
			out[i].Data = decodeData(r.data)
		}
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
		// A Member carries no data version: take its data as of its
		// heartbeat.
		entries = append(entries, Entry{Addr: m.Addr, Heartbeat: m.Heartbeat, Version: m.Heartbeat, WithData: true, Data: data})
	}
	g.mu.Lock()
	changed := false
	if g.state == stateRunning {
		changed, _ = g.mergeLocked(entries, g.clock.Now())
	}
	g.mu.Unlock()
	if changed {
		g.changed()
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
			if !e.alive && !e.left {
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
