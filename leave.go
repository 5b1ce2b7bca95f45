package gossip

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	multierror "github.com/hashicorp/go-multierror"
)

// Leaving on purpose: the rules are the protocol's (internal/protocol's
// leave.go); here the news is carried to enough peers.

// leaveAcks is how many peers must have heard of a leave for Shutdown to
// report it told the cluster (fewer if fewer are known); each tells
// RumorFanout more.
const leaveAcks = 3

// Shutdown leaves the cluster, then closes the member, like
// http.Server.Shutdown: it marks the member as left, stops its gossip
// rounds, and tells its live peers, a few at a time, until three of them (or
// all, if fewer) have heard the news. It then goes on telling the others,
// and keeps serving, answering every peer that calls with the news, for
// Config.LeavePropagateDelay (one gossip interval by default); then it
// closes the member as Close does. ctx bounds the whole. Every member then
// drops it from GetMembers within a few round trips, much sooner than
// FailureTime, and reports it as left (EventLeft), not failed. A peer that
// the news had not reached when the member closed sees its connections end
// and its port refuse them, as after a crash, and reports it failed
// (EventFailed), then left (EventLeft) when the news arrives.
//
// Shutdown returns an error, on one line, if the member could not tell
// enough peers (naming how many it told) or ctx ended first (wrapping
// ctx.Err()), joined with any error met while closing; the member is closed
// either way. It returns nil for a member never started, and ErrClosed for
// one already closed. Use Close instead where the member should look like a
// crash.
func (g *Gossip) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	state := g.state
	g.mu.Unlock()
	if state == stateClosed {
		return ErrClosed
	}
	var errs *multierror.Error
	if state == stateRunning {
		if err := g.leave(ctx); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	if err := g.close(); err != nil {
		errs = multierror.Append(errs, err)
	}
	switch {
	case errs == nil:
		return nil
	case len(errs.Errors) == 1:
		return errs.Errors[0]
	}
	errs.ErrorFormat = oneLine
	return errs
}

// leave marks the member as left and tells its peers.
func (g *Gossip) leave(ctx context.Context) error {
	now := g.clock.Now()
	g.mu.Lock()
	if g.proto == nil || g.state != stateRunning {
		g.mu.Unlock()
		return nil
	}
	out := g.proto.Leave(now)
	g.queueEvents(out)
	g.mu.Unlock()
	news := out.Send
	out.Send = nil
	g.apply(out)
	return g.announce(ctx, news)
}

// announce sends the news, protocol.RumorFanout messages at a time in
// order, until leaveAcks of them (or all, if fewer) have been taken; then
// it goes on for the propagate delay (see linger), and waits out the rest
// of it.
//
// Why not stop at the acks: when many members stop at once (a scale-down),
// the peers that took the news are often leaving too, and a member that
// left passes nothing on; a peer that has not heard the news when this
// member closes would report it failed (see Shutdown).
func (g *Gossip) announce(ctx context.Context, news []protocol.Send) error {
	need := min(leaveAcks, len(news))
	if need == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.ctx, cancel)()
	results := make(chan error, len(news))
	next, inflight := 0, 0
	launch := func() bool {
		g.mu.Lock()
		if g.state == stateClosed {
			g.mu.Unlock()
			return false
		}
		g.wg.Add(1)
		g.mu.Unlock()
		m := news[next]
		next++
		inflight++
		go func() {
			defer g.wg.Done()
			cctx, cancel := context.WithTimeout(ctx, g.cfg.RPCTimeout)
			defer cancel()
			results <- g.send(cctx, m)
		}()
		return true
	}
	for inflight < protocol.RumorFanout && next < len(news) && launch() {
	}
	acks := 0
	var errs *multierror.Error
	var lingering <-chan time.Time // fires at the end of the delay, once enough took the news
	for inflight > 0 {
		select {
		case err := <-results:
			inflight--
			if err != nil {
				errs = multierror.Append(errs, err)
			} else if acks++; acks == need {
				t := time.NewTimer(g.leavePropagateDelay())
				defer t.Stop()
				lingering = t.C
			}
			if ctx.Err() == nil && next < len(news) {
				launch()
			}
		case <-lingering:
			lingering = nil
			cancel() // no more time to tell the rest; wait for those under way
		}
	}
	if acks >= need {
		g.log.WithField("told", acks).Debug("gossip: leave announced")
		if lingering != nil {
			select { // the rest of the delay, serving
			case <-lingering:
			case <-ctx.Done():
			}
		}
		return nil
	}
	var cause error
	switch {
	case g.ctx.Err() != nil:
		cause = ErrClosed
	case ctx.Err() != nil:
		cause = ctx.Err()
	default:
		errs.ErrorFormat = oneLine
		cause = errs
	}
	return fmt.Errorf("gossip: leave reached %d of %d peers: %w", acks, need, cause)
}

// leavePropagateDelay is Config.LeavePropagateDelay with its default
// applied; 0 for none.
func (g *Gossip) leavePropagateDelay() time.Duration {
	switch d := g.cfg.LeavePropagateDelay; {
	case d == 0:
		return g.cfg.GossipInterval
	case d < 0:
		return 0
	default:
		return d
	}
}

// oneLine formats errors on one line, for logs that an operator reads line
// by line.
func oneLine(errs []error) string {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}
