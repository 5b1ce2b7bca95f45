package sim

import (
	"errors"

	"github.com/gossipfd/gossip/internal/protocol"
)

// Carrying out what the state machine asks, as the root package's shell
// does (exchange.go, gossip.go's loop, leave.go): each member's calls, with
// its pool of connections, its bound on calls in flight and its rumor
// pacer.

// maxExchangesInFlight is the root package's bound on the exchanges (and,
// apart, the rumors) a member has under way: beyond it, a message is
// skipped (config.go). The root package's overload guard (overload.go),
// which skips a round's exchange while answers take more than half an
// interval, is not modelled: a simulated call's round trip is a few
// milliseconds, so it would never act.
const maxExchangesInFlight = 8

// leaveAcks is how many peers must have taken the news that a member leaves
// before it closes (the root package's leave.go).
const leaveAcks = 3

// apply carries out member i's output, as the root package's apply does.
func (c *Cluster) apply(i int, out protocol.Output) {
	for _, ev := range out.Events {
		if c.OnEvent != nil {
			c.OnEvent(i, ev)
		}
	}
	for _, l := range out.Logs {
		if l.Level >= protocol.Warn {
			c.Stats.Warnings++
		}
	}
	if out.Rumors {
		c.askSpread(i)
	}
	for _, msg := range out.Send {
		if msg.Purpose == protocol.Probe {
			c.probe(i, msg)
			continue
		}
		c.bounded(i, msg.Purpose == protocol.Rumor, func(done func()) {
			c.send(i, msg, func(error) { done() })
		})
	}
	for _, t := range out.Contacts {
		c.bounded(i, false, func(done func()) { c.contact(i, t, done) })
	}
	for _, f := range out.FollowUps {
		c.net.At(c.net.Now()+f.After, i, func() {
			if req, ok := c.members[i].s.Request(f.To); ok {
				c.bounded(i, false, func(done func()) {
					c.send(i, protocol.Send{To: f.To, Purpose: protocol.Recover, Req: req}, func(error) { done() })
				})
			}
		})
	}
}

// bounded runs f holding one of member i's slots for exchanges (or for
// rumors), which f's done gives back; with no slot free, it skips f.
func (c *Cluster) bounded(i int, rumor bool, f func(done func())) {
	m := c.members[i]
	slots := &m.sem
	if rumor {
		slots = &m.rsem
	}
	if *slots >= maxExchangesInFlight {
		c.Stats.Skipped++
		return
	}
	*slots++
	f(func() { *slots-- })
}

// send makes member i's call for msg, merges the answer (but an
// Announce's), sends the data the peer asked for, and then calls done with
// the call's error. A refused call is reported to the protocol, as the root
// package's send does.
func (c *Cluster) send(i int, msg protocol.Send, done func(error)) {
	m := c.members[i]
	to, ok := c.index[msg.To]
	if !ok {
		to = -1
	}
	cn, dialled := m.pool.acquire(msg.To, c.net.Now(), msg.Purpose.KeepConn())
	if dialled {
		c.Stats.Dials[msg.Purpose]++
	}
	since := c.Now()
	c.Stats.Sent[msg.Purpose]++
	c.net.Call(i, to, func() (func(), error) {
		resp, out, err := c.members[to].s.HandleRequest(msg.Req, c.Now())
		c.apply(to, out)
		if err != nil {
			return nil, err
		}
		return func() { c.answered(i, msg, cn, resp, done) }, nil
	}, func(err error) {
		c.Stats.Failed[msg.Purpose]++
		m.pool.release(cn, errors.Is(err, ErrTimeout) || errors.Is(err, ErrRefused))
		if errors.Is(err, ErrRefused) {
			c.Stats.Refused++
			c.apply(i, m.s.Refused(msg.To, since, c.Now()))
		}
		done(err)
	})
}

// answered merges the answer to member i's call for msg, and sends the
// data the peer asked for, one message after the other, before done.
func (c *Cluster) answered(i int, msg protocol.Send, cn *conn, resp protocol.ExchangeResponse, done func(error)) {
	m := c.members[i]
	m.pool.release(cn, false)
	if msg.Purpose == protocol.Announce {
		done(nil)
		return
	}
	out := m.s.HandleResponse(msg.To, msg.Purpose, resp, c.Now())
	var pushes, rest []protocol.Send
	for _, s := range out.Send {
		if s.Purpose == protocol.Push {
			pushes = append(pushes, s)
		} else {
			rest = append(rest, s)
		}
	}
	out.Send = rest
	c.apply(i, out)
	var push func()
	push = func() {
		if len(pushes) == 0 {
			done(nil)
			return
		}
		p := pushes[0]
		pushes = pushes[1:]
		c.send(i, p, func(error) { push() })
	}
	push()
}

// contact makes member i's call to a seed or dead member and reports the
// outcome to the protocol. Names are addresses: nothing to resolve.
func (c *Cluster) contact(i int, t protocol.Target, done func()) {
	m := c.members[i]
	contacted := func(err error) {
		c.apply(i, m.s.Contacted(t.Name, err == nil, err, c.Now()))
		done()
	}
	req, ok := m.s.Request(t.Name)
	if !ok {
		c.apply(i, m.s.Contacted(t.Name, false, nil, c.Now()))
		done()
		return
	}
	c.send(i, protocol.Send{To: t.Name, Purpose: t.Purpose, Req: req}, contacted)
}

// askSpread signals member i's loop that rumors wait, as the root
// package's askSpread does; the loop spreads them when the pacer allows.
func (c *Cluster) askSpread(i int) {
	m := c.members[i]
	if m.signal {
		return
	}
	m.signal = true
	c.net.At(c.net.Now(), i, func() {
		m.signal = false
		if !m.waiting {
			c.spread(i)
		}
	})
}

// spread spreads member i's rumors now, or when the pacer allows.
func (c *Cluster) spread(i int) {
	m := c.members[i]
	if wait := m.pace.Wait(c.Now()); wait > 0 {
		m.waiting = true
		c.net.At(c.net.Now()+wait, i, func() {
			m.waiting = false
			c.spread(i)
		})
		return
	}
	c.apply(i, m.s.Spread(c.Now(), m.pool.held()))
}

// announce sends member i's news that it leaves, RumorFanout messages at a
// time in order, until leaveAcks of them (or all, if fewer) have been
// taken; it goes on for the propagate delay (the root package's default,
// one interval), serving, and then closes the member, as the root
// package's announce and Shutdown do.
func (c *Cluster) announce(i int, news []protocol.Send) {
	m := c.members[i]
	need := min(leaveAcks, len(news))
	if need == 0 {
		c.close(i)
		return
	}
	next, inflight, acks := 0, 0, 0
	lingering := false
	var launch func()
	launch = func() {
		msg := news[next]
		next++
		inflight++
		c.send(i, msg, func(err error) {
			inflight--
			if m.closed {
				return
			}
			if err == nil {
				if acks++; acks == need {
					lingering = true
					c.net.At(c.net.Now()+c.cfg.Interval, i, func() { c.close(i) })
				}
			}
			switch {
			case next < len(news):
				launch()
			case inflight == 0 && !lingering:
				c.close(i) // told fewer than it wished
			}
		})
	}
	for inflight < protocol.RumorFanout && next < len(news) {
		launch()
	}
}

// maxProbesInFlight is the root package's bound on the probes a member has
// under way (config.go).
const maxProbesInFlight = 16

// probe makes member i's probe msg within the probe timeout, bounded apart
// from the exchanges, and reports its outcome to the protocol, as the root
// package's probe does.
func (c *Cluster) probe(i int, msg protocol.Send) {
	m := c.members[i]
	if m.psem >= maxProbesInFlight {
		c.Stats.Skipped++
		return
	}
	m.psem++
	to, ok := c.index[msg.To]
	if !ok {
		to = -1
	}
	since := c.Now()
	c.Stats.Sent[msg.Purpose]++
	c.net.CallWithin(i, to, c.cfg.ProbeTimeout, func() (func(), error) {
		resp, out, err := c.members[to].s.HandleRequest(msg.Req, c.Now())
		c.apply(to, out)
		if err != nil {
			return nil, err
		}
		return func() {
			m.psem--
			c.apply(i, m.s.ProbeAnswered(msg.To, msg.About, resp, c.Now()))
		}, nil
	}, func(err error) {
		m.psem--
		c.Stats.Failed[msg.Purpose]++
		if errors.Is(err, ErrRefused) {
			c.Stats.Refused++
			c.apply(i, m.s.Refused(msg.To, since, c.Now()))
		}
		c.apply(i, m.s.ProbeFailed(msg.To, msg.About, c.Now()))
	})
}
