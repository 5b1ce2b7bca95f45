package gossip

import (
	"bytes"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
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

// GetMembers returns the live members, this one included, sorted by
// address; none before Start or after Close. The result is the caller's:
// each call decodes the data afresh, but for values that cannot be modified
// (strings, numbers, booleans), which are decoded once and shared.
func (g *Gossip) GetMembers() []Member {
	now := g.clock.Now()
	g.mu.Lock()
	if g.proto == nil || g.state != stateRunning {
		g.mu.Unlock()
		return []Member{}
	}
	out := g.proto.Sweep(now)
	g.queueEvents(out)
	rows := g.proto.Members()
	g.mu.Unlock()
	g.apply(out)
	members := make([]Member, len(rows))
	for i, r := range rows {
		members[i] = Member{Addr: r.Addr, Heartbeat: r.Heartbeat, Data: g.values.value(r)}
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Addr < members[j].Addr })
	return members
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
	g.merging(func(s *protocol.State, now time.Time) protocol.Output { return s.Merge(entries, now) })
}

// valueCache keeps the decoded data of members whose data decodes to a value
// that cannot be modified (nil, a string, a bool or a number), so that it is
// decoded once and shared by every caller; other values are decoded afresh
// for each caller, who may then modify them. Decoding on use spares a member
// that never reads the data the cost of decoding every member's.
type valueCache struct {
	mu sync.Mutex // protects m
	m  map[string]cachedValue
}

type cachedValue struct {
	data    []byte // what was decoded; data is never modified in place
	value   any
	mutable bool // value is not kept: decode afresh
}

// maxCachedValues bounds the cache; past it, the cache starts again empty.
const maxCachedValues = 2 * DefaultMaxMembers

// value returns r's data decoded.
func (c *valueCache) value(r protocol.Row) any {
	if len(r.Data) == 0 {
		return nil
	}
	c.mu.Lock()
	v, ok := c.m[r.Addr]
	c.mu.Unlock()
	if ok && bytes.Equal(v.data, r.Data) {
		if v.mutable {
			return decodeData(r.Data)
		}
		return v.value
	}
	value := decodeData(r.Data)
	v = cachedValue{data: r.Data, mutable: !immutable(value)}
	if !v.mutable {
		v.value = value
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedValues {
		c.m = make(map[string]cachedValue)
	}
	c.m[r.Addr] = v
	c.mu.Unlock()
	return value
}

// immutable reports whether v can be shared by every caller.
func immutable(v any) bool {
	switch v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr,
		float32, float64, complex64, complex128:
		return true
	}
	return false
}
