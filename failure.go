package gossip

import (
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
)

// The failure rules, and why.
//
// # Dissemination: push-pull, fan-out 1
//
// Each round a member opens one exchange with one live peer: chosen
// uniformly at random in a small cluster, and in a large one mostly among
// the few peers it holds connections to (see ChoosePartner in
// internal/protocol). It sends its table (push); the peer merges it and answers with
// the entries it holds newer (pull). One RPC carries information both ways,
// so push-pull costs one message pair per member per round, like push alone,
// but spreads much faster: push alone needs log2(n) + ln(n) rounds to reach
// everyone (Pittel 1987), push-pull log3(n) + O(log log n) (Karp, Schindelhauer,
// Shenker and Vöcking, "Randomized Rumor Spreading", FOCS 2000), and pull is
// what finds the last few members that no push happens to hit. A larger
// fan-out would only multiply the traffic: every heartbeat changes every
// round, so each exchange carries O(n) entries. The request is a digest
// (address, heartbeat, data version); data travels only to a peer whose
// version is older, so a steady cluster sends heartbeats only.
//
// Changes do not wait for the next round: a member that learns of a new
// member, a returning one or new data sends just those entries, at once, to
// rumorFanout peers, which do the same (internal/protocol's rumor.go). Failure detection
// rests on the periodic exchange alone; rumors only speed up joins and data.
//
// # Spread time S(n)
//
// We take the number of rounds a heartbeat needs to reach all n live members
// as
//
//	S(n) = ceil(log2 n) + 1        (S(1) = 1)
//
// It estimates the mean spread time from above: the simulation runs the
// protocol's own state machine, peer selection included, over an in-memory
// network in lockstep rounds (internal/sim, TestSpreadRoundsBoundsSimulation),
// and the mean stays below S(n) for every n from 2 to 4096 without loss
// (10.24 rounds at n = 4096 for S(n) = 13), and below S(n) too with 10% of
// messages lost at n = 1024 to 4096 (12.51 rounds at n = 4096); the test
// allows S(n) + 1 under loss.
//
// # Failure time
//
//	FailureTime(n) = Nfailures × S(n) × Tgossip
//
// With the defaults (Nfailures 3, Tgossip 1 s): 6 s for 2 members, 18 s for
// 32, 33 s for 1,000. It grows as O(log n): every member gossips once per
// round whatever n, and the table it sends grows as O(n).
//
// # Probability of a false report
//
// Take a live member i and another member j. Once a newer heartbeat of i has
// reached all members but j (S(n) rounds), j misses it in one further round
// only if j's own exchange fails (its request or the answer is lost) and no
// other member's exchange reaches j. With message loss p:
//
//	q(n, p) = (1 - (1-p)²) × (1 - (1-p)/(n-1))^(n-1)   ≤ (2p - p²) e^-(1-p)
//
// j wrongly declares i dead only if it misses the heartbeat for the remaining
// (Nfailures-1) × S(n) rounds of the failure time, so per pair and per
// failure time the probability is at most
//
//	P(n, p) = q(n, p)^((Nfailures-1) × S(n))
//
// and, by the union bound over the n(n-1) pairs, the probability that anyone
// reports anyone falsely in one failure time is at most n(n-1) P(n, p). For
// n = 32 and p = 10%: q = 0.076 and n(n-1)P = 4e-11; for p = 0 it is 0.
// FalseReportProbability adds it to the silence rule's bound (below). Rounds are not in lockstep and losses
// are not independent in practice; docs/protocol.md gives measured rates
// next to these figures.
//
// # Local health: more loss, more patience
//
// P(n, p) grows fast with p: for n = 32 and p = 50%, n(n-1)P = 0.074 per
// failure time. And a member starved of CPU, whose answers come too late,
// loses heartbeats as if its network lost them. So the timeout rule does
// not take the loss for granted. Each member estimates the loss it sees,
// p̂, from the share f of its last 64 calls to others that went unanswered
// (f = 1 - (1-p̂)², counting only calls to live members other than the one
// judged, heard from within the failure time: the silence of several
// members gone at once is theirs), and while p̂ is above
// p0 = Config.ExpectedLoss (10% by default) it waits past the spread time
// K' rounds instead of K = (Nfailures-1) × S(n):
//
//	q(n, p̂)^K' ≤ q(n, p0)^K,   K' = ceil( K × ln q(n, p0) / ln q(n, p̂) )
//
// so that the bound it had at p0 holds at the loss it sees, up to 8
// failure times (memberlist's Lifeguard stretches its timeouts up to 8
// times too, AwarenessMaxMultiplier). At n = 32: 29 rounds instead of 18 at
// 30% loss, 46 at 50%. FailureTime still returns the time at p0, which is
// what a member waits in a healthy network, and what a member that hears
// from no one at all waits (it has no calls to estimate from).
// FalseReportProbability counts the stretch, for the default ExpectedLoss:
// for n = 32 at 50% loss it is 1.7e-11 per failure time, under the 4e-11
// at 10%. It rests on a right estimate; with fewer than 4 calls counted
// the member does not stretch at all.
//
// # Silent members: suspect, then confirm
//
// FailureTime bounds how long a member that stopped may stay in the views.
// A member whose heartbeat has not risen for Ts = floor(S(n)/2) + 1 rounds
// is suspected, and each round its suspecter probes it and k = 3 others
// with a partial exchange naming it; any fresher heartbeat, or any answer
// from the suspect, clears it. It is declared dead, and a notice of silence
// spread, once probed for W = 1 round with m = 2 others answering without
// fresher news and D probes to it failed (internal/protocol's suspect.go has
// the rule and its reasons). With no loss the last member drops a silent
// one about Ts + 1 to 2 rounds after it fell silent: 5 s at n = 32 and 128
// in the benchmark, against 18 s and 24 s.
//
// A false report by this rule needs, for a live member i and another j, in
// one suspicion: j to miss i's newer heartbeats for Ts + D rounds (at most
// q^max(0, Ts+D-S(n)) once they have spread, as above), and the D probes of
// j to i to fail (f^D, with f = 1 - (1-p)² the chance that a call or its
// answer is lost). The m others must also have answered without fresher
// news, which the bound does not count: their misses are not independent
// of j's, as i's own pushes feed them all. Over the n(n-1) pairs and the
// R = Nfailures × S(n) rounds of a failure time:
//
//	n(n-1) R q^max(0, Ts+D-S(n)) f^D
//
// Each member takes f as the share of its own last 64 calls unanswered
// and D as the fewest failed probes that keep this bound at most 1e-9 (and
// f^D at most 1e-6): D = 1 with no loss; at n = 32, 7 at 5% loss; at n =
// 128, 6 at 1% and 10 at 10%. Where D would be over 2 Ts, or not short of
// the failure time (from about 9% loss at n = 32, 11% at n = 128), the rule
// sends no probes and convicts no one, and the timeout rule decides. So the
// rule's bound is at most 1e-9 per failure time for every n and loss rate,
// and FalseReportProbability returns the sum of both rules' bounds: for
// n = 128 at 10% loss, 3.8e-10 + 2.5e-14. It rests on independent losses and
// a right estimate of f; docs/protocol.md compares it with the simulation.
//
// # A failure time from a target
//
// Nfailures × S(n) spends (Nfailures-1) × S(n) rounds on missed heartbeats,
// more than the bound needs at low loss. Config.FalseReportTarget asks for
// the shortest failure time that keeps the bound below a chosen probability
// ε at an expected loss p (Config.ExpectedLoss):
//
//	FailureTime = (S(n) + K) × Tgossip,   K = ceil( ln(ε / (n(n-1))) / ln q(n, p) )
//
// For ε = 1e-6 and p = 10%: 15 rounds at n = 32 (against 18), 18 at 128
// (24), 22 at 1000 (33).
//
// # Cleanup
//
// A dead member is remembered for cleanupTime = 2 × FailureTime after it is
// declared dead, as van Renesse et al. argue, and not gossiped. Until it is
// forgotten, gossip about it is ignored unless its heartbeat is beyond what it
// could have reached before we declared it dead (reviveMargin): so stale
// gossip from members that have not yet noticed the failure cannot bring it
// back, but a restarted member, whose heartbeat starts at its start time in
// microseconds, comes back at once. Forgetting bounds memory as members come
// and go.

// FailureTime returns how long a member's heartbeat may stay unchanged
// before it is considered dead: Nfailures × S(n) × Tgossip, where n is the
// number of live members this one sees (itself included) and S(n) =
// ceil(log2 n) + 1 rounds is the time a heartbeat takes to reach them all.
// With Config.FalseReportTarget set, it is the target's failure time instead
// (see above).
func (g *Gossip) FailureTime() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failureTimeLocked()
}

func (g *Gossip) failureTimeLocked() time.Duration {
	if g.proto != nil {
		return g.proto.FailureTime()
	}
	// Not started: this member alone.
	if g.cfg.FalseReportTarget > 0 {
		return time.Duration(protocol.TargetRounds(1, g.cfg.ExpectedLoss, g.cfg.FalseReportTarget)) * g.Tgossip
	}
	return protocol.FailureTime(1, g.Tgossip, g.cfg.Nfailures)
}

// FalseReportProbability bounds the probability that, in one failure time,
// any member of a cluster of n live members wrongly reports any other as
// dead, when each message is lost independently with probability loss and
// members must miss nfailures spread times: the sum of the bounds of the
// timeout rule, stretched by local health for the default ExpectedLoss, and
// of the silence rule. See the derivations above.
func FalseReportProbability(n int, loss float64, nfailures int) float64 {
	return protocol.FalseReportProbability(n, loss, nfailures)
}
