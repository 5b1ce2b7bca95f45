package sim

import (
	"slices"
	"time"
)

// What the root package's member keeps beside its protocol state and the
// protocol reads back: the peers it holds connections to, and the pace of
// its rumors. Both are the shell's, not the protocol's, so the simulation
// keeps them as the shell does.

// pool is the connections a member holds, as the root package's clientPool
// keeps them (pool.go): at most capacity; a call to a peer reuses the
// connection held to it, else dials one, which an exchange (a purpose that
// keeps its connection) pools in place of the least recently used idle one;
// a call that fails other than by a remote error drops its connection; a
// connection idle for half the idle timeout is closed at the next round.
type pool struct {
	capacity int
	conns    []*conn // in the order they were pooled
}

// conn is one connection: pooled while in pool.conns.
type conn struct {
	addr     string
	used     time.Duration // when a call last started on it
	inflight int           // calls under way
}

// acquire returns the connection a call to addr at now goes over, counted
// in flight: the pooled one, or a new one (dialled is then set), pooled if
// keep is set and there is room or an idle one to evict.
func (p *pool) acquire(addr string, now time.Duration, keep bool) (c *conn, dialled bool) {
	for _, pc := range p.conns {
		if pc.addr == addr {
			pc.used = now
			pc.inflight++
			return pc, false
		}
	}
	c = &conn{addr: addr, used: now, inflight: 1}
	if !keep {
		return c, true
	}
	if len(p.conns) >= p.capacity {
		p.evict()
	}
	if len(p.conns) < p.capacity {
		p.conns = append(p.conns, c)
	}
	return c, true
}

// evict closes the least recently used connection with no call in flight,
// if any.
func (p *pool) evict() {
	lru := -1
	for i, c := range p.conns {
		if c.inflight == 0 && (lru < 0 || c.used < p.conns[lru].used) {
			lru = i
		}
	}
	if lru >= 0 {
		p.conns = slices.Delete(p.conns, lru, lru+1)
	}
}

// release ends a call on c; if broken, c is dropped from the pool.
func (p *pool) release(c *conn, broken bool) {
	c.inflight--
	if broken {
		p.conns = slices.DeleteFunc(p.conns, func(x *conn) bool { return x == c })
	}
}

// held returns the peers a connection is held to, in the order they were
// pooled (the root package's order is a map's; this one is repeatable).
func (p *pool) held() []string {
	out := make([]string, len(p.conns))
	for i, c := range p.conns {
		out[i] = c.addr
	}
	return out
}

// closeIdle closes the connections with no call since now-idle.
func (p *pool) closeIdle(now, idle time.Duration) {
	p.conns = slices.DeleteFunc(p.conns, func(c *conn) bool { return c.inflight == 0 && now-c.used > idle })
}
