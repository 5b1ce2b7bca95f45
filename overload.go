package gossip

import (
	"slices"
	"sync"
	"time"
)

// Overload.
//
// A member sends an exchange every round whether or not its last one has
// been answered, up to maxExchangesInFlight, so that a peer that does not
// answer (a lost message, a host gone) costs it no round. When the process
// itself is overloaded, that is the wrong choice: every member's calls wait
// for a core, answers come later than a round, the calls in flight pile up,
// and at the RPC timeout their connections are closed and dialled again,
// which adds to the load. 1,000 members in one process on two cores were
// caught that way for minutes while forming, with most calls timing out.
//
// The two cases differ in how long the answers that do come take: a lost
// message makes a call time out, but the others are answered in
// milliseconds; an overloaded process answers all of them late. So a member
// keeps the round-trip times of its last rttSamples answered exchanges, and
// once even the shortest of them has stayed above half an interval for
// overloadRounds intervals, it skips a round's exchange while it has one
// under way. The cluster then gossips as fast as the process can answer,
// with few calls in flight, instead of timing them out.
//
// A skipped round counts as a call unanswered, in the share that local
// health and the silence rule work from (internal/protocol's suspect.go): a
// member that skips rounds gossips less than the failure time assumes, as
// under loss, and must wait longer before it declares anyone dead. Not
// counted, 1,000 members in one process saturated at 1.8 cores reported 567
// live members dead (2,302 pairs) over 5 minutes without any loss; counted,
// 24 (71 pairs; see docs/performance.md, 1,000 members).
//
// The shortest, not a mean: with messages lost, a few answers come late
// (behind a retried call, or a busy connection), and at a short interval a
// mean of them crossed the threshold in the 30%-loss test; the shortest of
// eight stayed under a millisecond. For overloadRounds, not at once: a
// cluster of 128 forming in one process is overloaded for a moment, and
// skipping rounds just after it formed delayed the first notice of a
// crashed member by a second. In a network whose round-trip time is over
// half a round, where a member's exchanges take longer than a round anyway,
// it sends one exchange at a time.

const (
	// rttSamples is how many answered exchanges the overload guard looks
	// at.
	rttSamples = 8
	// overloadRounds is how many intervals the answers must have been slow
	// for before rounds are skipped.
	overloadRounds = 3
)

// rtt holds the round-trip times of the last rttSamples answered
// exchanges, safe for concurrent use.
type rtt struct {
	mu        sync.Mutex
	last      [rttSamples]time.Duration
	n         int       // samples held, up to rttSamples
	next      int       // where the next one goes
	slowSince time.Time // since when the shortest has been above the threshold; zero if it is not
}

// observe adds an answered call's round-trip time d at now; slow is the
// threshold.
func (r *rtt) observe(d time.Duration, now time.Time, slow time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last[r.next] = d
	r.next = (r.next + 1) % rttSamples
	r.n = min(r.n+1, rttSamples)
	switch {
	case slices.Min(r.last[:r.n]) <= slow:
		r.slowSince = time.Time{}
	case r.slowSince.IsZero():
		r.slowSince = now
	}
}

// min returns the shortest round-trip time held, 0 before any answer.
func (r *rtt) min() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return 0
	}
	return slices.Min(r.last[:r.n])
}

// slowFor returns how long, at now, the shortest round-trip time held has
// been above the threshold: 0 if it is not.
func (r *rtt) slowFor(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.slowSince.IsZero() {
		return 0
	}
	return now.Sub(r.slowSince)
}

// answered records an answered exchange that was sent at start.
func (g *Gossip) answered(start time.Time) {
	now := time.Now() // not the Clock: a round-trip time of the process
	g.rtt.observe(now.Sub(start), now, g.cfg.GossipInterval/2)
}

// overloaded reports whether the round's exchange should be skipped: one is
// under way, and for overloadRounds intervals every recent answer has come
// more than half an interval after its call.
func (g *Gossip) overloaded() bool {
	return len(g.sem) > 0 && g.rtt.slowFor(time.Now()) >= overloadRounds*g.cfg.GossipInterval
}
