package gossip

import (
	"context"
	"fmt"
	"time"

	multierror "github.com/hashicorp/go-multierror"
)

// Leaving on purpose.
//
// A member that shuts down on purpose should not wait FailureTime to vanish
// from its peers' views. Leave bumps the member's heartbeat one last time,
// to h, marks its own entry as left, stops gossip rounds and tells a few
// peers at once. A member that learns that a member left at heartbeat h
// drops it from GetMembers, records it as left rather than failed, and
// spreads the news on as a rumor; periodic exchanges bring it to the rest.
//
// The rule that keeps it gone: a left entry with heartbeat h beats every
// entry of that member with heartbeat h or less, which is all the gossip the
// leaving member ever produced, however late it arrives. A member that
// restarts at the same address starts its heartbeat at its start time in
// microseconds, far above h, and joins again at once. Left entries are
// remembered for the cleanup time, like dead ones, and then forgotten.
//
// On the wire, members that left travel as digest records in the Left field
// of ExchangeRequest and ExchangeResponse (see rpc.go), never among the
// live digest or Members: a member built before Leave existed ignores the
// field, and sees the leaver fail after FailureTime as before.

// leaveAcks is how many peers must have heard of a leave for Leave to
// succeed (fewer if fewer are known); each tells rumorFanout more.
const leaveAcks = 3

// Leave announces that this member is leaving the cluster for good and
// waits until three peers (or all its live peers, if fewer) have heard
// it, or ctx is done. It bumps the member's heartbeat and marks it as left,
// then stops its gossip rounds; the member keeps answering its peers, with
// the news that it left, until Close, and its own GetMembers no longer
// lists it. Every member then drops it from
// GetMembers within a few round trips, much sooner than FailureTime, and
// reports it as left (EventLeft), not failed.
//
// Leave returns an error naming the peers that could not be told if too few
// answered, or ctx.Err() (wrapped) if ctx ended first; the member has left
// all the same, and calling Leave again retries the announcement. It returns
// nil at once if the member was never started, and ErrClosed after Close.
// After Leave, the member should be closed: Shutdown does both.
func (g *Gossip) Leave(ctx context.Context) error {
	g.mu.Lock()
	switch g.state {
	case stateNew:
		g.mu.Unlock()
		return nil
	case stateClosed:
		g.mu.Unlock()
		return ErrClosed
	case stateRunning:
		self := g.table.self
		self.heartbeat++
		g.table.setAlive(self, false)
		self.left, self.deadAt = true, g.clock.Now()
		g.state = stateLeft
		g.log.WithField("heartbeat", self.heartbeat).Info("gossip member leaving")
	}
	self := g.table.self
	req := ExchangeRequest{
		From: g.addr, Cluster: g.cfg.ClusterName, Partial: true,
		Left: appendDigest(nil, self.addr, self.heartbeat, self.version),
	}
	peers := g.table.livePeers()
	g.rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	g.mu.Unlock()
	return g.announce(ctx, peers, req)
}

// announce sends req to peers, rumorFanout at a time in order, until
// leaveAcks of them (or all, if fewer) have taken it.
func (g *Gossip) announce(ctx context.Context, peers []string, req ExchangeRequest) error {
	need := min(leaveAcks, len(peers))
	if need == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.ctx, cancel)()
	results := make(chan error, len(peers))
	next, inflight := 0, 0
	launch := func() bool {
		g.mu.Lock()
		if g.state == stateClosed {
			g.mu.Unlock()
			return false
		}
		g.wg.Add(1)
		g.mu.Unlock()
		peer := peers[next]
		next++
		inflight++
		go func() {
			defer g.wg.Done()
			cctx, cancel := context.WithTimeout(ctx, g.cfg.RPCTimeout)
			defer cancel()
			var resp ExchangeResponse
			err := g.pool.call(cctx, peer, "Gossip.Exchange", req, &resp, false)
			if err == nil {
				err = g.checkCluster(peer, resp.Cluster)
			}
			results <- err
		}()
		return true
	}
	for inflight < rumorFanout && next < len(peers) && launch() {
	}
	acks := 0
	var errs *multierror.Error
	for inflight > 0 {
		err := <-results
		inflight--
		if err != nil {
			errs = multierror.Append(errs, err)
			if ctx.Err() == nil && next < len(peers) {
				launch()
			}
			continue
		}
		if acks++; acks == need {
			cancel() // the rest are not needed; wait for them to end
		}
	}
	if acks >= need {
		g.log.WithField("told", acks).Debug("gossip: leave announced")
		return nil
	}
	if err := ctx.Err(); err != nil && g.ctx.Err() == nil {
		return fmt.Errorf("gossip: leave reached %d of %d peers: %w", acks, need, err)
	}
	if g.ctx.Err() != nil {
		return fmt.Errorf("gossip: leave reached %d of %d peers: %w", acks, need, ErrClosed)
	}
	return fmt.Errorf("gossip: leave reached %d of %d peers: %w", acks, need, errs.ErrorOrNil())
}

// Shutdown leaves the cluster (Leave), bounded by ctx, then closes the
// member (Stop), like http.Server.Shutdown. It returns Leave's error joined
// with Stop's; the member is closed either way. Use it where the member
// stops on purpose, so that the others drop it at once instead of after
// FailureTime; use Close where it should look like a failure.
func (g *Gossip) Shutdown(ctx context.Context) error {
	var errs *multierror.Error
	if err := g.Leave(ctx); err != nil {
		errs = multierror.Append(errs, err)
	}
	if err := g.Stop(); err != nil {
		errs = multierror.Append(errs, err)
	}
	return errs.ErrorOrNil()
}

// mergeLeftLocked merges the record of a member that left at heartbeat
// u.Heartbeat (see the rule above) at local time now, marking it seen
// under gen. It reports whether the live set changed.
func (g *Gossip) mergeLeftLocked(u Entry, now time.Time, gen uint64, spread bool) (changed bool) {
	t := &g.table
	if reason := g.checkEntry(u); reason != "" {
		g.log.WithField("peer", u.Addr).Debugf("gossip: ignoring left entry: %s", reason)
		return false
	}
	if u.Addr == g.addr || g.aliases[u.Addr] {
		// An earlier life of ours left; count on above it.
		self := t.self
		if g.state == stateRunning && u.Heartbeat >= self.heartbeat {
			self.heartbeat = u.Heartbeat + 1
		}
		t.markLeft(self, gen, u.Heartbeat, u.Version)
		return false
	}
	e := t.members[u.Addr]
	if e == nil {
		// Remember it, so that stale gossip about it is not taken for
		// a join.
		if len(t.members) >= g.cfg.MaxMembers {
			return false
		}
		e = &entry{addr: u.Addr, heartbeat: u.Heartbeat, version: u.Version, lastRise: now, left: true, deadAt: now}
		t.put(e)
	}
	defer t.markLeft(e, gen, u.Heartbeat, u.Version)
	switch {
	case u.Heartbeat < e.heartbeat:
		// A later life of the member, or news older than ours.
	case e.left:
		e.heartbeat = u.Heartbeat
	case e.alive:
		t.setAlive(e, false)
		e.left, e.deadAt, e.heartbeat = true, now, u.Heartbeat
		g.emitLocked(EventLeft, e, now)
		g.log.WithField("peer", u.Addr).Debug("gossip: member left")
		if spread {
			g.rumorLocked(u.Addr)
		}
		return true
	default:
		// Declared dead already; it left in fact.
		e.left, e.heartbeat = true, u.Heartbeat
	}
	return false
}

// reviveMarginOf is how far past e's heartbeat a member's heartbeat must be
// to bring e back: none for a member that left, which counts no further;
// reviveMargin for one declared dead.
func (g *Gossip) reviveMarginOf(e *entry) int64 {
	if e.left {
		return 0
	}
	return g.reviveMargin()
}

// leftDigest returns the records of the members known to have left, for
// ExchangeRequest.Left.
func (t *table) leftDigest() []byte {
	var d []byte
	for addr, e := range t.members {
		if e.left {
			d = appendDigest(d, addr, e.heartbeat, e.version)
		}
	}
	return d
}

// leftRecords returns the records of those named that left, for a rumor.
func (t *table) leftRecords(names []string) []byte {
	var d []byte
	for _, addr := range names {
		if e := t.members[addr]; e != nil && e.left {
			d = appendDigest(d, addr, e.heartbeat, e.version)
		}
	}
	return d
}

// answerLeft returns the records of the members that left which the peer
// whose update was merged under mark gen does not know to have left: those
// it named as live, and (unless partial) those it did not name. A partial
// update is answered from its own entries only, as answer does.
func (t *table) answerLeft(gen uint64, partial bool) []byte {
	var d []byte
	each := func(e *entry) {
		if e.left && (e.seen == gen && !e.theirLeft || e.seen != gen && !partial) {
			d = appendDigest(d, e.addr, e.heartbeat, e.version)
		}
	}
	if partial {
		for _, e := range t.seen {
			if t.members[e.addr] == e {
				each(e)
			}
		}
		return d
	}
	for _, e := range t.members {
		each(e)
	}
	return d
}
