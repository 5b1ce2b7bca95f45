package sim

import "time"

// HeartbeatMeter measures how long heartbeats take to spread: for every
// heartbeat that a source member makes in its rounds, the rounds from the
// round that made it until every other member that is up holds it or a
// later one. It looks at the members' tables (Lookup) a few times a round;
// a heartbeat counts as spread at the first look that finds it everywhere,
// so with lockstep rounds, and one look just before each round, the count
// is exact.
type HeartbeatMeter struct {
	// Rounds are the spread times measured, in rounds, in the order the
	// heartbeats got everywhere.
	Rounds []int
	// GaveUp counts the heartbeats not everywhere after the limit; they
	// are not in Rounds.
	GaveUp int

	c        *Cluster
	sources  []int
	pending  [][]birth // per source, the heartbeats not yet everywhere, oldest first
	limit    int       // rounds after which a heartbeat is given up on
	closed   bool      // no more heartbeats are taken
	stopped  bool      // no more looks either
	interval time.Duration
}

// birth is one heartbeat of a source and the elapsed time it was made.
type birth struct {
	hb int64
	at time.Duration
}

// MeasureHeartbeats starts measuring the heartbeats the sources make from
// now on, looking probes times a round, and giving up on a heartbeat after
// limit rounds. It takes the cluster's OnTick. The looks come just before
// each multiple of the interval over probes: with Lockstep, just before each
// round.
func (c *Cluster) MeasureHeartbeats(sources []int, probes, limit int) *HeartbeatMeter {
	m := &HeartbeatMeter{c: c, sources: sources, pending: make([][]birth, len(sources)), limit: limit, interval: c.cfg.Interval}
	src := make(map[int]int, len(sources))
	for k, s := range sources {
		src[s] = k
	}
	c.OnTick = func(i int) {
		if k, ok := src[i]; ok && !m.closed {
			row, _ := c.members[i].s.Lookup(c.members[i].addr)
			m.pending[k] = append(m.pending[k], birth{hb: row.Heartbeat, at: c.net.Now()})
		}
	}
	step := c.cfg.Interval / time.Duration(probes)
	first := (c.net.Now()/step + 1) * step
	var probe func(t time.Duration)
	probe = func(t time.Duration) {
		if m.stopped {
			return
		}
		m.look()
		c.net.Observe(t+step, func() { probe(t + step) })
	}
	c.net.Observe(first-1, func() { probe(first - 1) })
	return m
}

// Close takes no more heartbeats; those taken are still watched.
func (m *HeartbeatMeter) Close() { m.closed = true }

// Stop ends the measurement, dropping the heartbeats not yet everywhere.
func (m *HeartbeatMeter) Stop() {
	m.closed, m.stopped = true, true
	m.c.OnTick = nil
}

// Pending returns how many heartbeats are not yet everywhere.
func (m *HeartbeatMeter) Pending() int {
	n := 0
	for _, p := range m.pending {
		n += len(p)
	}
	return n
}

// look finds, for each source, the least heartbeat of it that the members
// up hold, and counts the heartbeats at or below it as spread.
func (m *HeartbeatMeter) look() {
	now := m.c.net.Now()
	for k, s := range m.sources {
		if len(m.pending[k]) == 0 {
			continue
		}
		addr := m.c.members[s].addr
		least := int64(-1)
		for j, mb := range m.c.members {
			if j == s || mb.closed || m.c.net.Status(j) != Up {
				continue
			}
			row, _ := mb.s.Lookup(addr)
			if least < 0 || row.Heartbeat < least {
				least = row.Heartbeat
			}
		}
		p := m.pending[k]
		for len(p) > 0 {
			rounds := int((now - p[0].at + m.interval - 1) / m.interval)
			if p[0].hb <= least {
				m.Rounds = append(m.Rounds, rounds)
			} else if rounds >= m.limit {
				m.GaveUp++
			} else {
				break
			}
			p = p[1:]
		}
		m.pending[k] = p
	}
}

// Mean returns the mean of the spread times measured, in rounds.
func (m *HeartbeatMeter) Mean() float64 {
	if len(m.Rounds) == 0 {
		return 0
	}
	sum := 0
	for _, r := range m.Rounds {
		sum += r
	}
	return float64(sum) / float64(len(m.Rounds))
}
