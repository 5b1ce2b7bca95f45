package gossip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"

	"github.com/gossipfd/gossip/internal/protocol"
)

// Packed digests: what most of every exchange is, made small on a
// connection that carries many exchanges.
//
// A digest names every live member with its heartbeat and data version
// (internal/protocol's message.go), about 25 bytes a member with an IPv4
// address. Between two rounds on the same connection the addresses are the
// same and each heartbeat has risen by a few. So each end of a connection
// keeps, for each direction, a dictionary of the addresses sent so far in
// that direction, numbered in the order they were first sent, with the
// heartbeat and version last sent for each. A record then names a known
// address by its number and its heartbeat by its rise since last sent: one
// byte when it comes next in the dictionary's order, its version has not
// changed and it rose by at most 31. Both ends see the same messages in the
// same order, TCP being ordered and reliable, so their dictionaries agree;
// they die with the connection. A connection whose stream can no longer be
// trusted (a write or read failed, a call timed out, a packed digest did not
// parse) is closed, never reused.
//
// A packed digest is
//
//	uvarint flags | record*
//
// flags: bit 0 set means that both ends empty the dictionary before this
// message (the sender's had reached its bound); other bits must be 0. Each
// record starts with a uvarint head, whose low bits tell its kind:
//
//	new    head = prefix<<1 | 1, then uvarint len(suffix) | suffix |
//	       zigzag heartbeat−previous | uvarint heartbeat−version
//	short  head = rise<<2 | 2
//	long   head = zigzag(step)<<3 | changed<<2 | 0, then zigzag rise |
//	       [zigzag version change, if changed]
//
// A new record's address is the first prefix bytes of the previous new
// record's address in the message, then suffix; it takes the next number,
// and previous is the heartbeat of the message's previous record (0 for the
// first). A short record names the address numbered one more than the
// previous record's (the first record's previous is −1), with the same
// version as last sent and a heartbeat rise of 0 to 31. A long record names
// the number previous+1+step. Rises and changes are from the values last
// sent for the address; zigzag varints are signed (protobuf's encoding).
// errBadPacked is returned for a packed digest that does not parse or does
// not agree with the dictionary.
var errBadPacked = errors.New("gossip: malformed packed digest")

const (
	packReset = 1 << 0 // flags: the dictionary is emptied first

	kindNew   = 1 // head&1: a new record
	kindShort = 2 // head&3: a short record; else a long one
	changed   = 4 // head of a long record: the version changed
	maxRise   = 31
)

// dictEntry is one address of a dictionary, as its place in the
// dictionary's arena, and what was last sent for it. Nothing in a
// dictionary is a pointer, so the garbage collector does not scan it: a
// member keeps two dictionaries per connection, each naming every member,
// and at 1,000 members they were over a third of the heap. (A string per
// address took 48 bytes an entry and a pointer to scan. Sharing one copy of
// each address among a member's dictionaries saved about 6% of the heap at
// 128 members, but cost CPU where a cluster forms, where every new
// connection's first digest adds every address: 15% of a forming cluster
// of 1,000 with package unique, 10% with a map per member.)
type dictEntry struct {
	heartbeat, version int64
	off                uint32 // of the address in the arena
	n                  uint16 // its length, at most protocol.MaxAddrLen
}

// dict is one direction's dictionary: the addresses by number, with what
// was last sent of each. A packer looks an address up by walking from where
// the previous record's was, which finds it at once when a digest lists the
// addresses in the order it did before, as a member's digests do. Past
// findWalk steps, and a walk of the dictionary's length in all for one
// digest, it looks in an index by address, made at the first such miss:
// while a cluster forms, digests name many addresses a connection has
// not carried yet, and walking the whole dictionary for each made a digest
// cost O(n²) (1,000 members took 94 s to converge in the benchmark instead
// of 19 s). A packer drops the index after a message that did not look in
// it, as nearly every message of a steady cluster does: kept, the indexes
// held a tenth of a 128-member cluster's heap.
type dict struct {
	entries []dictEntry
	arena   []byte // the addresses, one after another
	// index maps a hash of each address to the number of its first
	// entry; nil until a lookup needs it. A hash names the wrong address
	// only if two addresses collide, which find checks.
	index  map[uint64]int32
	seed   maphash.Seed
	looked bool // the index was looked in since the last dropUnused
	spare  bool // addresses were added since the spare capacity was last dropped (grown)
}

// findWalk is how many numbers a lookup walks, whatever its budget (find).
const findWalk = 16

func (t *dict) len() int { return len(t.entries) }

// full reports whether the dictionary can take no more addresses: it holds
// max, or its arena could not number another address's place (4 GiB, which
// only a MaxMembers in the millions could reach). Packer and unpacker hold
// the same addresses, so they agree.
func (t *dict) full(max int) bool {
	return t.len() >= max || len(t.arena) > math.MaxUint32-protocol.MaxAddrLen
}

// addr returns the address numbered i, as a slice of the arena that the
// caller must not change nor keep past the next add.
func (t *dict) addr(i int) []byte {
	e := t.entries[i]
	return t.arena[e.off : e.off+uint32(e.n) : e.off+uint32(e.n)]
}

// add numbers addr, which is at most protocol.MaxAddrLen bytes long, next.
func (t *dict) add(addr []byte, hb, version int64) {
	if t.index != nil {
		if h := t.hash(addr); !t.indexed(h) {
			t.index[h] = int32(len(t.entries))
		}
	}
	t.entries = append(t.entries, dictEntry{heartbeat: hb, version: version, off: uint32(len(t.arena)), n: uint16(len(addr))})
	t.arena = append(t.arena, addr...)
}

func (t *dict) indexed(h uint64) bool { _, ok := t.index[h]; return ok }

func (t *dict) hash(addr []byte) uint64 {
	if t.seed == (maphash.Seed{}) {
		t.seed = maphash.MakeSeed()
	}
	return maphash.Bytes(t.seed, addr)
}

func (t *dict) reset() { t.entries, t.arena, t.index = t.entries[:0], t.arena[:0], nil }

// dropUnused drops the index if no lookup used it since the last call.
func (t *dict) dropUnused() {
	if !t.looked {
		t.index = nil
	}
	t.looked = false
}

// grown tells the dictionary whether a message added addresses to it. At
// the first message after growth that added none, it drops the spare
// capacity that appending left, a third of the dictionary on average: a
// dictionary lives as long as its connection, and takes new addresses
// rarely once the cluster has formed. (Dropping it after every message that
// added addresses copied the whole dictionary twice a message while a
// cluster formed, as the next address grew it again: in a profile of 1,000
// members forming, growing slices took 14% of the CPU, about half of it in
// the dictionaries, and the garbage collector 11%.)
func (t *dict) grown(added bool) {
	if added {
		t.spare = true
		return
	}
	if !t.spare {
		return
	}
	t.spare = false
	if cap(t.entries)-len(t.entries) > len(t.entries)/8 {
		t.entries = append([]dictEntry(nil), t.entries...)
	}
	if cap(t.arena)-len(t.arena) > len(t.arena)/8 {
		t.arena = append([]byte(nil), t.arena...)
	}
}

// find returns the number of addr among the first n, or -1. It walks from
// from on, wrapping around, findWalk steps and then as long as *budget
// lasts, which each further step spends; past that it looks in the index.
// A digest that names the dictionary's addresses in its order, all of them
// or only some, as an answer's digest does (the entries newer than the
// request's), then costs a walk of at most n steps in all and no index;
// only a digest out of order, or naming many addresses the dictionary
// lacks, makes one.
func (t *dict) find(addr []byte, from, n int, budget *int) int {
	k := 0
	for ; k < n && (k < findWalk || *budget > 0); k++ {
		if k >= findWalk {
			*budget--
		}
		i := from + k
		if i >= n {
			i -= n
		}
		if bytes.Equal(t.addr(i), addr) {
			return i
		}
	}
	if k == n {
		return -1
	}
	if t.index == nil {
		t.index = make(map[uint64]int32, len(t.entries))
		for i := range t.entries {
			if h := t.hash(t.addr(i)); !t.indexed(h) {
				t.index[h] = int32(i)
			}
		}
	}
	t.looked = true
	i, ok := t.index[t.hash(addr)]
	switch {
	case !ok:
		return -1
	case bytes.Equal(t.addr(int(i)), addr):
		if int(i) < n {
			return int(i)
		}
		return -1
	}
	// Two addresses share a hash: look at every one.
	for i := range n {
		if bytes.Equal(t.addr(i), addr) {
			return i
		}
	}
	return -1
}

// packer packs the digests sent in one direction of a connection. It is not
// safe for concurrent use: a codec calls it from the one goroutine, or under
// the one lock, that writes the connection.
type packer struct {
	max int // most addresses the dictionary holds
	d   dict
}

func newPacker(max int) *packer { return &packer{max: max} }

// errDictFull stops a packing that would overflow the dictionary.
var errDictFull = errors.New("dictionary full")

// pack appends the packed form of the digest d to dst and records what it
// sent. d is this member's own digest; a malformed one is an error. If the
// dictionary cannot take d's new addresses, it is emptied first, and the
// message says so.
func (p *packer) pack(dst, d []byte) ([]byte, error) {
	start := len(dst)
	known := p.d.len()
	out, err := p.packOnce(dst, d, 0)
	if errors.Is(err, errDictFull) {
		p.d.reset()
		known = 0
		out, err = p.packOnce(dst[:start], d, packReset)
		if errors.Is(err, errDictFull) {
			err = fmt.Errorf("gossip: packing a digest of over %d members", p.max)
		}
	}
	p.d.grown(p.d.len() > known)
	p.d.dropUnused()
	return out, err
}

func (p *packer) packOnce(dst, d []byte, flags uint64) ([]byte, error) {
	t := &p.d
	dst = binary.AppendUvarint(dst, flags)
	prev, prevHB := -1, int64(0)
	var prevAddr []byte
	// An address is looked for among those known before this message
	// only: an address sent twice as new takes two numbers at both ends,
	// which costs bytes but is no error, and a digest names each address
	// once. So the first digest of a connection costs no lookups.
	known := t.len()
	budget := known // of find's walks past findWalk
	err := protocol.ReadDigest(d, math.MaxInt, func(addr []byte, hb, version int64) error {
		i := -1
		if known > 0 {
			i = t.find(addr, (prev+1)%known, known, &budget)
		}
		if i < 0 {
			if t.full(p.max) {
				return errDictFull
			}
			i = t.len()
			t.add(addr, hb, version)
			shared := commonPrefix(prevAddr, addr)
			dst = binary.AppendUvarint(dst, uint64(shared)<<1|kindNew)
			dst = binary.AppendUvarint(dst, uint64(len(addr)-shared))
			dst = append(dst, addr[shared:]...)
			dst = binary.AppendUvarint(dst, zigzag(hb-prevHB))
			dst = binary.AppendUvarint(dst, uint64(hb-version))
			prevAddr = addr
			prev, prevHB = i, hb
			return nil
		}
		e := &t.entries[i]
		if i == prev+1 && version == e.version && hb >= e.heartbeat && hb-e.heartbeat <= maxRise {
			dst = binary.AppendUvarint(dst, uint64(hb-e.heartbeat)<<2|kindShort)
		} else {
			head := zigzag(int64(i-(prev+1))) << 3
			if version != e.version {
				head |= changed
			}
			dst = binary.AppendUvarint(dst, head)
			dst = binary.AppendUvarint(dst, zigzag(hb-e.heartbeat))
			if version != e.version {
				dst = binary.AppendUvarint(dst, zigzag(version-e.version))
			}
		}
		e.heartbeat, e.version = hb, version
		prev, prevHB = i, hb
		return nil
	})
	return dst, err
}

// commonPrefix returns the length of the longest common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// unpacker unpacks the digests received in one direction of a connection,
// as packer packed them. Like packer, it is not safe for concurrent use.
type unpacker struct {
	max  int // most addresses the dictionary holds, and records in one digest
	d    dict
	last int // about the length of the longest recent digest, to size the next (see unpack)
}

func newUnpacker(max int) *unpacker { return &unpacker{max: max} }

// unpack returns the digest that packed stands for, in the form of
// internal/protocol's AppendDigest, and records what it received. An error
// leaves the dictionary out of step with the peer's: the connection must be
// closed.
func (u *unpacker) unpack(packed []byte) ([]byte, error) {
	flags, packed, ok := uvarint(packed)
	if !ok || flags&^packReset != 0 {
		return nil, fmt.Errorf("%w: bad flags", errBadPacked)
	}
	if flags&packReset != 0 {
		u.d.reset()
	}
	known := u.d.len()
	// A record packs an entry into a byte or a few, and the digest spells
	// out its address: sized as the longest recent one, and a quarter
	// more, a steady connection's digest is allocated once, not grown by
	// doubling. The size decays, so that one large digest does not size
	// every later one, but slowly (by a sixteenth a message), so that the
	// few small probes and rumors between two exchanges on a connection
	// do not undo it.
	d := make([]byte, 0, max(4*len(packed), u.last+u.last/4))
	m := msgState{prev: -1, prevAddr: -1}
	for n := 0; len(packed) > 0; n++ {
		if n >= u.max {
			return nil, fmt.Errorf("%w: over %d records", errBadPacked, u.max)
		}
		var err error
		if packed, err = u.record(packed, &m); err != nil {
			return nil, err
		}
		e := u.d.entries[m.prev]
		d = protocol.AppendDigest(d, u.d.addr(m.prev), e.heartbeat, e.version)
	}
	u.d.grown(u.d.len() > known)
	u.last = max(len(d), u.last-u.last/16)
	return d, nil
}

// msgState is what a record of a message refers to in the one before it.
type msgState struct {
	prev     int   // number of the previous record
	prevHB   int64 // its heartbeat
	prevAddr int   // number of the previous new record, or -1
}

// record reads one record from the front of b, updates the dictionary and
// m, and returns the rest of b.
func (u *unpacker) record(b []byte, m *msgState) ([]byte, error) {
	head, b, ok := uvarint(b)
	if !ok {
		return nil, fmt.Errorf("%w: truncated record", errBadPacked)
	}
	if head&kindNew != 0 {
		return u.newRecord(head>>1, b, m)
	}
	t := &u.d
	var i int
	var e dictEntry
	if head&3 == kindShort {
		i = m.prev + 1
		if i >= t.len() {
			return nil, fmt.Errorf("%w: unknown address number", errBadPacked)
		}
		if head>>2 > maxRise {
			return nil, fmt.Errorf("%w: short rise over %d", errBadPacked, maxRise)
		}
		e = t.entries[i]
		e.heartbeat += int64(head >> 2) // an overflow is refused below
	} else {
		step, ok := unzigzag(head >> 3)
		if !ok || step < int64(-1-m.prev) || step >= int64(t.len()-m.prev-1) {
			return nil, fmt.Errorf("%w: unknown address number", errBadPacked)
		}
		i = m.prev + 1 + int(step)
		e = t.entries[i]
		var rise uint64
		if rise, b, ok = uvarint(b); ok {
			e.heartbeat, ok = addDelta(e.heartbeat, rise)
		}
		if ok && head&changed != 0 {
			var dv uint64
			if dv, b, ok = uvarint(b); ok {
				e.version, ok = addDelta(e.version, dv)
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: bad heartbeat or version", errBadPacked)
		}
	}
	if e.heartbeat <= 0 || e.version < 0 || e.version > e.heartbeat {
		return nil, fmt.Errorf("%w: heartbeat or version out of range", errBadPacked)
	}
	t.entries[i] = e
	m.prev, m.prevHB = i, e.heartbeat
	return b, nil
}

// newRecord reads the rest of a new record whose address shares prefix
// bytes with the previous new one.
func (u *unpacker) newRecord(prefix uint64, b []byte, m *msgState) ([]byte, error) {
	t := &u.d
	if t.full(u.max) {
		return nil, fmt.Errorf("%w: dictionary over %d addresses", errBadPacked, u.max)
	}
	var prevAddr []byte
	if m.prevAddr >= 0 {
		prevAddr = t.addr(m.prevAddr)
	}
	l, b, ok := uvarint(b)
	if !ok || prefix > uint64(len(prevAddr)) || l > uint64(len(b)) || prefix+l == 0 || prefix+l > protocol.MaxAddrLen {
		return nil, fmt.Errorf("%w: bad address", errBadPacked)
	}
	suffix := b[:l]
	b = b[l:]
	dhb, b, ok1 := uvarint(b)
	age, b, ok2 := uvarint(b)
	hb, ok3 := addDelta(m.prevHB, dhb)
	if !ok1 || !ok2 || !ok3 || hb <= 0 || age > uint64(hb) {
		return nil, fmt.Errorf("%w: bad heartbeat of a new address", errBadPacked)
	}
	var buf [protocol.MaxAddrLen]byte
	addr := append(append(buf[:0], prevAddr[:prefix]...), suffix...)
	t.add(addr, hb, hb-int64(age))
	i := t.len() - 1
	m.prev, m.prevHB, m.prevAddr = i, hb, i
	return b, nil
}

// uvarint reads a uvarint from the front of b.
func uvarint(b []byte) (uint64, []byte, bool) {
	v, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, nil, false
	}
	return v, b[k:], true
}

// zigzag maps a signed step to an unsigned one, small for small steps
// either way.
func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// unzigzag undoes zigzag; it fails for steps beyond ±2^62, which no valid
// record needs and which could overflow a number.
func unzigzag(u uint64) (int64, bool) {
	v := int64(u>>1) ^ -int64(u&1)
	return v, v > -1<<62 && v < 1<<62
}

// addDelta adds the zigzag step z to v and reports whether the sum did not
// overflow.
func addDelta(v int64, z uint64) (int64, bool) {
	d := int64(z>>1) ^ -int64(z&1)
	s := v + d
	if (d > 0 && s < v) || (d < 0 && s > v) {
		return v, false
	}
	return s, true
}
