package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"syscall"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/sirupsen/logrus"
)

// Carrying out what the protocol asks.
//
// Every input to the state machine goes through step, which holds the
// member's lock only around the state machine itself (and the queueing of
// its events, so that they keep their order). What it returns is carried out
// after the lock is released: logs written, C signalled, messages sent from
// goroutines owned by the member, seeds resolved and contacted.

// step runs f on the protocol state under the lock, with the time read
// before taking it (the Clock is the user's), and carries out its output.
// It does nothing once the member is closed or before Start.
func (g *Gossip) step(f func(s *protocol.State, now time.Time) protocol.Output) {
	now := g.clock.Now()
	g.mu.Lock()
	if g.proto == nil || g.state != stateRunning {
		g.mu.Unlock()
		return
	}
	out := f(g.proto, now)
	g.queueEvents(out)
	g.mu.Unlock()
	g.apply(out)
}

// queueEvents hands out's events to the event queue; g.mu must be held, so
// that events keep the order in which the state machine made them. The queue
// never blocks (see events.go).
func (g *Gossip) queueEvents(out protocol.Output) {
	for _, ev := range out.Events {
		g.events.push(pendingEvent{typ: EventType(ev.Type), addr: ev.Addr, heartbeat: ev.Heartbeat, data: ev.Data, at: ev.Time})
	}
}

// apply carries out an output, without the lock: logs, C, the spread
// signal, messages, contacts and follow-ups.
func (g *Gossip) apply(out protocol.Output) {
	g.writeLogs(out.Logs)
	if out.Changed {
		g.notify()
	}
	if out.Rumors {
		g.askSpread()
	}
	for _, m := range out.Send {
		switch m.Purpose {
		case protocol.Probe:
			probe := func(ctx context.Context) { g.probe(ctx, m) }
			if !g.startHeld(g.psem, m, g.cfg.ProbeTimeout, g.probed, probe) {
				g.goBounded(g.psem, probe)
			}
		case protocol.Rumor:
			g.goBounded(g.rsem, func(ctx context.Context) { g.send(ctx, m) })
		case protocol.Exchange:
			if g.overloaded() {
				g.log.WithField("peer", m.To).Debug("gossip: answers come later than half a round; skipping this round's exchange while one is under way")
				g.metrics.skipped.Add(1)
				continue
			}
			start := time.Now() // not the Clock: a round-trip time of the process
			sent := func(m protocol.Send, resp *ExchangeResponse, err error, since time.Time, inline bool) error {
				if err == nil {
					g.answered(start)
				}
				return g.sent(m, resp, err, since, inline)
			}
			send := func(ctx context.Context) {
				start := time.Now()
				if g.send(ctx, m) == nil {
					g.answered(start)
				}
			}
			if !g.startHeld(g.sem, m, g.cfg.RPCTimeout, sent, send) {
				g.goBounded(g.sem, send)
			}
		default:
			g.goBounded(g.sem, func(ctx context.Context) { g.send(ctx, m) })
		}
	}
	for _, t := range out.Contacts {
		g.goBounded(g.sem, func(ctx context.Context) { g.contact(ctx, t) })
	}
	for _, f := range out.FollowUps {
		g.followUp(f)
	}
}

// writeLogs writes the protocol's log records.
func (g *Gossip) writeLogs(logs []protocol.Log) {
	for _, l := range logs {
		log := g.log
		if len(l.Fields) > 0 {
			fields := make(logrus.Fields, len(l.Fields)/2)
			for i := 0; i+1 < len(l.Fields); i += 2 {
				fields[fmt.Sprint(l.Fields[i])] = l.Fields[i+1]
			}
			log = log.WithFields(fields)
		}
		switch l.Level {
		case protocol.Debug:
			log.Debug(l.Msg)
		case protocol.Info:
			log.Info(l.Msg)
		default:
			log.Warn(l.Msg)
		}
	}
}

// send sends one message, merges the answer (but an Announce's), and sends
// the data the peer asks for over the same connection, within ctx. A call
// whose dial was refused is reported to the protocol (see refused).
func (g *Gossip) send(ctx context.Context, m protocol.Send) error {
	var resp ExchangeResponse
	since := g.clock.Now()
	err := g.pool.call(ctx, m.To, exchangeMethod, m.Req, &resp, m.Purpose.KeepConn())
	return g.sent(m, &resp, err, since, true)
}

// startHeld starts the call of m over the connection held to m.To, if
// there is one with no call under way, within timeout, and returns at once.
// The call holds a slot of sem, and Close waits for it. Its outcome goes to
// then, with inline unset, from net/rpc's reader goroutine as the answer
// arrives (see clientPool.start): then must not wait for another call to
// m.To. It returns false if it started nothing.
//
// If the connection ends before the answer comes (the peer closed it as
// idle, or to make room for another; not a timeout), the call is made again
// by again, if set, in a goroutine of the member (goBounded), over a new
// connection: as clientPool.call tries a reused connection that turns out
// dead once more, so that the round is not lost.
func (g *Gossip) startHeld(sem chan struct{}, m protocol.Send, timeout time.Duration,
	then func(m protocol.Send, resp *ExchangeResponse, err error, since time.Time, inline bool) error,
	again func(ctx context.Context)) bool {
	select {
	case sem <- struct{}{}:
	default:
		return false
	}
	if !g.own() {
		<-sem
		return false
	}
	resp := new(ExchangeResponse)
	since := g.clock.Now()
	ok := g.pool.start(m.To, exchangeMethod, m.Req, resp, timeout, func(err error) {
		defer g.wg.Done()
		if again != nil && connLost(err) {
			<-sem
			g.log.WithField("peer", m.To).WithError(err).Debug("gossip: held connection lost; calling again")
			g.goBounded(sem, again)
			return
		}
		defer func() { <-sem }()
		then(m, resp, err, since, false)
	})
	if !ok {
		<-sem
		g.wg.Done()
	}
	return ok
}

// connLost reports whether a call over a held connection failed because the
// connection ended, rather than by a timeout or an error of the callee.
func connLost(err error) bool {
	var serverErr rpc.ServerError
	return err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &serverErr)
}

// sent carries out the outcome of an exchange sent at since: a failure is
// logged (and a refused dial reported, see refused); an answer is merged,
// but an Announce's. The data the peer asks for is sent at once from this
// goroutine if inline is set, else from a goroutine of the member (merge).
func (g *Gossip) sent(m protocol.Send, resp *ExchangeResponse, err error, since time.Time, inline bool) error {
	if err != nil {
		g.log.WithFields(logrus.Fields{"peer": m.To, "purpose": m.Purpose}).WithError(err).Debug("gossip: exchange failed")
		if !g.cfg.DisableDeathNotices && refused(err) {
			g.step(func(s *protocol.State, now time.Time) protocol.Output { return s.Refused(m.To, since, now) })
		}
		return err
	}
	if err := g.checkCluster(m.To, resp.Cluster); err != nil {
		return err
	}
	if m.Purpose == protocol.Announce {
		return nil
	}
	g.merge(func(s *protocol.State, now time.Time) protocol.Output {
		return s.HandleResponse(m.To, m.Purpose, *resp, now)
	}, inline)
	return nil
}

// probe sends a probe about a suspected member within the probe timeout,
// over a held connection if there is one and else over one not kept, and
// reports the outcome to the protocol (see probed).
func (g *Gossip) probe(ctx context.Context, m protocol.Send) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ProbeTimeout)
	defer cancel()
	var resp ExchangeResponse
	since := g.clock.Now()
	err := g.pool.call(ctx, m.To, exchangeMethod, m.Req, &resp, false)
	g.probed(m, &resp, err, since, true)
}

// probed reports the outcome of a probe sent at since to the protocol (see
// internal/protocol's suspect.go); a refused dial is reported as for any
// call. The data the peer asks for is sent as sent sends it.
func (g *Gossip) probed(m protocol.Send, resp *ExchangeResponse, err error, since time.Time, inline bool) error {
	if err == nil {
		err = g.checkCluster(m.To, resp.Cluster)
	}
	if err != nil {
		g.log.WithFields(logrus.Fields{"peer": m.To, "about": m.About}).WithError(err).Debug("gossip: probe failed")
		if errors.Is(err, errDialQueued) {
			// Held up behind other dials (say, to a silent host that
			// hang): the probe never went out, and counts neither way.
			return err
		}
		if !g.cfg.DisableDeathNotices && refused(err) {
			g.step(func(s *protocol.State, now time.Time) protocol.Output { return s.Refused(m.To, since, now) })
		}
		g.step(func(s *protocol.State, now time.Time) protocol.Output { return s.ProbeFailed(m.To, m.About, now) })
		return err
	}
	g.merge(func(s *protocol.State, now time.Time) protocol.Output {
		return s.ProbeAnswered(m.To, m.About, *resp, now)
	}, inline)
	return nil
}

// refused reports whether a call failed because its dial was refused:
// nothing listens at the peer's address any more, which is what a crashed
// process on a live host leaves (see internal/protocol's notice.go). The
// pool re-dials once when a held connection turns out dead, so a connection
// that ended and a refused re-dial both end here. A timeout, a reset, a
// closed connection or a TLS error proves nothing and does not count.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// connEnded is told that the peer at addr ended a connection this member
// dialled: its process may have died, its kernel closing its sockets. A
// dial to the address tells: refused, nothing listens there any more, and
// the protocol hears of it (Refused); accepted, the peer lives (it closed an
// idle connection, or another process took the port), and the connection
// is closed unused. The dial runs in a goroutine of the member, bounded as
// an exchange is.
func (g *Gossip) connEnded(addr string) {
	g.goBounded(g.sem, func(ctx context.Context) {
		since := g.clock.Now()
		conn, err := g.transport.Dial(ctx, addr)
		switch {
		case err == nil:
			conn.Close()
		case refused(err):
			g.log.WithField("peer", addr).Debug("gossip: a peer ended a connection, and refuses a new one")
			g.step(func(s *protocol.State, now time.Time) protocol.Output { return s.Refused(addr, since, now) })
		}
	})
}

// merging is step for the inputs that merge gossip into the table: it
// counts them and their time for Stats, and sends the data a peer asked for
// (purpose Push) at once from the calling goroutine.
func (g *Gossip) merging(f func(s *protocol.State, now time.Time) protocol.Output) { g.merge(f, true) }

// merge is merging, which sends the data asked for from the calling
// goroutine only if inline is set, else from a goroutine of the member
// started for them: never skipped, as apply may skip a message when too
// many are in flight, nor held up behind the caller.
func (g *Gossip) merge(f func(s *protocol.State, now time.Time) protocol.Output, inline bool) {
	start := time.Now()
	var pushes []protocol.Send
	g.step(func(s *protocol.State, now time.Time) protocol.Output {
		out := f(s, now)
		g.metrics.merged(start)
		rest := out.Send[:0:0]
		for _, m := range out.Send {
			if m.Purpose == protocol.Push {
				pushes = append(pushes, m)
			} else {
				rest = append(rest, m)
			}
		}
		out.Send = rest
		return out
	})
	if len(pushes) == 0 {
		return
	}
	push := func() {
		for _, m := range pushes {
			ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RPCTimeout)
			if err := g.send(ctx, m); err != nil {
				g.log.WithField("peer", m.To).WithError(err).Debug("gossip: sending data failed")
			}
			cancel()
		}
	}
	if inline {
		push()
		return
	}
	if !g.own() {
		return
	}
	go func() {
		defer g.wg.Done()
		push()
	}()
}

// contact exchanges with a seed or dead member: a seed's name may resolve to
// several addresses, each contacted but this member's own. It reports the
// outcome to the protocol, for the backoff and the operator's log.
func (g *Gossip) contact(ctx context.Context, t protocol.Target) {
	addrs, err := g.resolve(ctx, t.Name)
	if err != nil {
		err = fmt.Errorf("gossip: resolve %s: %w", t.Name, err)
		g.log.WithField("seed", t.Name).WithError(err).Debug("gossip: resolve failed")
	}
	ok := false
	for _, addr := range addrs {
		g.mu.Lock()
		var req ExchangeRequest
		can := false
		if g.proto != nil && g.state == stateRunning {
			req, can = g.proto.Request(addr)
		}
		g.mu.Unlock()
		if !can {
			continue
		}
		if serr := g.send(ctx, protocol.Send{To: addr, Purpose: t.Purpose, Req: req}); serr != nil {
			err = serr
		} else {
			ok = true
		}
	}
	g.step(func(s *protocol.State, now time.Time) protocol.Output { return s.Contacted(t.Name, ok, err, now) })
}

// followUp exchanges with f.To after f.After, from a goroutine owned by
// the member.
func (g *Gossip) followUp(f protocol.FollowUp) {
	g.mu.Lock()
	if g.state != stateRunning {
		g.mu.Unlock()
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		t := time.NewTimer(f.After)
		defer t.Stop()
		select {
		case <-t.C:
		case <-g.ctx.Done():
			return
		}
		g.mu.Lock()
		req, ok := g.proto.Request(f.To)
		g.mu.Unlock()
		if ok {
			g.goBounded(g.sem, func(ctx context.Context) {
				g.send(ctx, protocol.Send{To: f.To, Purpose: protocol.Recover, Req: req})
			})
		}
	}()
}

// resolve turns host:port into one host:port per address of host.
func (g *Gossip) resolve(ctx context.Context, name string) ([]string, error) {
	host, port, err := net.SplitHostPort(name)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) != nil {
		return []string{name}, nil
	}
	ips, err := g.resolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = net.JoinHostPort(ip, port)
	}
	return out, nil
}

// goBounded runs f in a goroutine owned by g holding a slot of sem, with a
// context bounded by the RPC timeout, or skips it if sem has no free slot: a
// slow peer must not pile up goroutines and connections.
func (g *Gossip) goBounded(sem chan struct{}, f func(ctx context.Context)) {
	select {
	case sem <- struct{}{}:
	default:
		g.log.Debug("gossip: too many exchanges in flight; skipping one")
		return
	}
	if !g.own() {
		<-sem
		return
	}
	go func() {
		defer g.wg.Done()
		defer func() { <-sem }()
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RPCTimeout)
		defer cancel()
		f(ctx)
	}()
}

// own counts one more goroutine or call of the member in g.wg, which Close
// waits for, unless the member is closed; it reports whether it did. The
// caller calls g.wg.Done when it ends.
func (g *Gossip) own() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == stateClosed {
		return false
	}
	g.wg.Add(1)
	return true
}

// debugEnabled reports whether log writes debug records, so that the
// protocol makes them only then. A logger whose level cannot be read is
// given them all.
func debugEnabled(log logrus.FieldLogger) bool {
	switch l := log.(type) {
	case *logrus.Logger:
		return l.IsLevelEnabled(logrus.DebugLevel)
	case *logrus.Entry:
		return l.Logger.IsLevelEnabled(logrus.DebugLevel)
	}
	return true
}
