package protocol

import (
	"math/rand/v2"
	"time"
)

// entry is one row of the membership table.
type entry struct {
	addr      string
	heartbeat int64
	version   int64     // the heartbeat at which data was set (see Entry.Version)
	data      []byte    // encoded application data; never modified in place
	lastRise  time.Time // local time the heartbeat last rose
	alive     bool
	left      bool      // it left the cluster (see leave.go); then !alive
	deadAt    time.Time // local time it was declared dead or left, if !alive
	noticed   int64     // if dead and positive, the heartbeat of the death notice it was declared dead by (see notice.go)
	silent    bool      // if noticed, the notice is one of silence (see suspect.go), not of a refused dial
	pos       int       // its index in table.list

	// What the peer of the exchange being answered holds for this member,
	// valid if seen is the exchange's mark (see State.merge).
	seen           uint64
	theirHeartbeat int64
	theirVersion   int64
	theirLeft      bool // the peer knows that the member left
	theirDead      bool // the peer holds a death notice of the member
}

// table is the membership table: every member known, alive or remembered as
// dead or left.
type table struct {
	members  map[string]*entry // by address, this member included once started
	list     []*entry          // the same entries, in an order that depends only on the operations made, so that runs are repeatable
	self     *entry
	gen      uint64    // the last mark given to an update (see State.merge)
	seen     []*entry  // the entries marked with gen
	live     int       // entries alive; changed only by put, remove and setAlive
	grew     time.Time // local time a member new to this table was last added (see suspect.go)
	answered int       // the length of the last whole answer's digest, to size the next (see answer)
}

// mark records that the update being merged under mark gen holds the
// entry e at heartbeat hb and data version v, as a live member (see
// markLeft for one that left).
func (t *table) mark(e *entry, gen uint64, hb, v int64) {
	if e.seen != gen {
		t.seen = append(t.seen, e)
	}
	e.seen, e.theirHeartbeat, e.theirVersion, e.theirLeft, e.theirDead = gen, hb, v, false, false
}

// markLeft is mark for a member the update says left at heartbeat hb.
func (t *table) markLeft(e *entry, gen uint64, hb, v int64) {
	t.mark(e, gen, hb, v)
	e.theirLeft = true
}

// newMark starts the marks of a new update and returns its gen.
func (t *table) newMark() uint64 {
	t.gen++
	clear(t.seen)
	t.seen = t.seen[:0]
	return t.gen
}

// livePeers returns the addresses of the live members other than this one.
func (t *table) livePeers() []string {
	peers := make([]string, 0, t.live)
	for _, e := range t.list {
		if e.alive && e != t.self {
			peers = append(peers, e.addr)
		}
	}
	return peers
}

// livePeerCount returns how many live members there are other than this
// one.
func (t *table) livePeerCount() int {
	if t.self != nil && t.self.alive && t.members[t.self.addr] == t.self {
		return t.live - 1
	}
	return t.live
}

// randomPeer returns a live member other than this one for which ok holds,
// chosen uniformly at random, and false if there is none. It draws entries
// at random first, which finds one in a few draws when most are live and
// allocates nothing; only if those draws fail does it go through the table.
func (t *table) randomPeer(rng *rand.Rand, ok func(addr string) bool) (string, bool) {
	if t.livePeerCount() <= 0 || len(t.list) == 0 {
		return "", false
	}
	for range randomPeerDraws {
		if e := t.list[rng.IntN(len(t.list))]; e.alive && e != t.self && ok(e.addr) {
			return e.addr, true
		}
	}
	var n int
	var pick string
	for _, e := range t.list { // reservoir sampling: uniform, one pass
		if e.alive && e != t.self && ok(e.addr) {
			if n++; rng.IntN(n) == 0 {
				pick = e.addr
			}
		}
	}
	return pick, n > 0
}

// randomPeerDraws is how many entries randomPeer draws before it goes
// through the table.
const randomPeerDraws = 8

// put adds e to the table, in place of any entry for its address.
func (t *table) put(e *entry) {
	t.remove(e.addr)
	t.members[e.addr] = e
	e.pos = len(t.list)
	t.list = append(t.list, e)
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
		last := t.list[len(t.list)-1]
		t.list[old.pos], last.pos = last, old.pos
		t.list[len(t.list)-1] = nil
		t.list = t.list[:len(t.list)-1]
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
	d := make([]byte, 0, len(t.list)*32)
	for _, e := range t.list {
		if e.alive {
			d = AppendDigest(d, e.addr, e.heartbeat, e.version)
		}
	}
	return d
}

// answer returns what the peer whose update was merged under mark gen lacks:
// the live entries newer than the update's, as a digest, and with their data
// where the update's version was older or (unless partial) the update did not
// name them.
func (t *table) answer(gen uint64, partial bool) (digest []byte, members []Entry) {
	if !partial && t.answered > 0 {
		// Sized as the last: in a steady cluster every heartbeat rises
		// every round, and the digest would otherwise grow by doubling.
		digest = make([]byte, 0, t.answered)
	}
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
			digest = AppendDigest(digest, e.addr, e.heartbeat, e.version)
		}
	}
	t.eachAnswered(gen, partial, each)
	if !partial {
		t.answered = len(digest)
	}
	if len(digest) == 0 {
		digest = nil
	}
	return digest, members
}

// answerLeft returns the records of the members that left which the peer
// whose update was merged under mark gen does not know to have left: those
// it named as live, and (unless partial) those it did not name.
func (t *table) answerLeft(gen uint64, partial bool) []byte {
	var d []byte
	t.eachAnswered(gen, partial, func(e *entry) {
		if e.left && (e.seen == gen && !e.theirLeft || e.seen != gen && !partial) {
			d = AppendDigest(d, e.addr, e.heartbeat, e.version)
		}
	})
	return d
}

// eachAnswered calls f for the entries an answer to the update merged under
// gen looks at: a partial update is answered from its own entries only, so
// that a rumor costs its size, not the table's.
func (t *table) eachAnswered(gen uint64, partial bool, f func(*entry)) {
	if partial {
		for _, e := range t.seen {
			if t.members[e.addr] == e {
				f(e)
			}
		}
		return
	}
	for _, e := range t.list {
		f(e)
	}
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

// leftDigest returns the records of the members known to have left, for
// ExchangeRequest.Left.
func (t *table) leftDigest() []byte {
	var d []byte
	for _, e := range t.list {
		if e.left {
			d = AppendDigest(d, e.addr, e.heartbeat, e.version)
		}
	}
	return d
}

// leftRecords returns the records of those named that left, for a rumor.
func (t *table) leftRecords(names []string) []byte {
	var d []byte
	for _, addr := range names {
		if e := t.members[addr]; e != nil && e.left {
			d = AppendDigest(d, addr, e.heartbeat, e.version)
		}
	}
	return d
}
