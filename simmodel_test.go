package gossip

import (
	"math/rand/v2"
	"time"
)

// The compact model of the protocol.
//
// The simulation of sim_test.go runs the library's own table code, whose
// entries (address, heartbeat, data, times) take some 200 bytes each: n
// members hold n² of them, 20 GB at 10,000 members. The model keeps, for
// each member i and each member k, only what the failure rules and the
// exchange read: the heartbeat i holds for k, the round it last rose at i,
// the version of k's data i holds, and whether i sees k alive, dead or not
// at all. That is 10 bytes an entry, 1 GB at 10,000 members.
//
// Rounds run as simCluster.round runs them: in member order, each member
// that is up counts its heartbeat up, applies the failure rules with the
// failure time of the live members it sees, picks a partner with
// choosePartner among the peers its connection pool holds, and makes a
// push-pull exchange whose request, answer and data push are each lost
// with probability loss. What each side takes from the other is what the
// library's merge (mergeEntryLocked) takes:
//
//   - the request is a digest of the caller's live entries: the callee
//     keeps the higher heartbeat of each member it sees alive, and asks for
//     the data of those whose version is newer and of those it does not know;
//     a member it holds dead comes back only with a heartbeat beyond the
//     revive margin (reviveMargin);
//   - the answer carries the callee's live entries, with data where the
//     caller lacks them: the caller keeps the higher heartbeat and version,
//     adds a member it did not know and brings back a dead one as the
//     callee did;
//   - the push carries the data the callee asked for, if the answer came.
//
// Members declared dead are not gossiped by those that declared them, and
// are forgotten after the cleanup time. A member's own heartbeat and version
// change only when it counts a round or changes its data: the library also
// counts its own heartbeat (and data version) on when a peer shows them
// equal or higher, which changes neither when a heartbeat or a new version
// reaches a member nor when a crash is detected, which is what is measured.

// Entry states in the model.
const (
	modelAlive   uint8 = iota // seen alive: gossiped
	modelDead                 // declared dead: remembered, not gossiped
	modelUnknown              // never known, or forgotten after the cleanup time
)

// simModel is n members in the compact model. Entry k of member i is at
// index i*n+k of each table.
type simModel struct {
	n     int
	hb    []int32 // the heartbeat i holds for k
	rise  []int32 // the round it last rose at i; for a dead entry, the round k was declared dead
	ver   []uint8 // the version of k's data i holds: how many times k changed it
	state []uint8 // modelAlive, modelDead or modelUnknown
	live  []int32 // entries each member sees alive, its own included: the library's liveCount
	down  []bool  // crashed: takes no part in rounds
	pools []simPool[int32]

	now          int32 // the current round
	loss         float64
	target       float64 // Config.FalseReportTarget; 0 means Nfailures decides
	expectedLoss float64 // Config.ExpectedLoss
	rng          *rand.Rand

	died []modelReport // reports of the current round
	held []int32       // scratch: the live peers of a pool
	want []int32       // scratch: the members whose data a callee asked for
}

// modelReport is a failure report: member by declared member of dead.
type modelReport struct{ by, of int32 }

// newSimModel returns n converged members: each knows every other alive, at
// the same heartbeat, as newSimCluster starts. Each message is lost with
// probability loss; target is Config.FalseReportTarget, and Config.ExpectedLoss
// is set as newSimCluster sets it.
func newSimModel(n int, loss, target float64, seed uint64) *simModel {
	m := &simModel{
		n:     n,
		hb:    make([]int32, n*n),
		rise:  make([]int32, n*n),
		ver:   make([]uint8, n*n),
		state: make([]uint8, n*n), // all modelAlive
		live:  make([]int32, n),
		down:  make([]bool, n),
		pools: make([]simPool[int32], n),
		loss:  loss, target: target, expectedLoss: max(loss, 0.01),
		rng: rand.New(rand.NewPCG(seed, 2)),
	}
	for i := range m.hb {
		m.hb[i] = 1
	}
	for i := range m.live {
		m.live[i] = int32(n)
		m.pools[i].capacity = DefaultMaxOutboundConns
	}
	return m
}

// stateBytes is the memory of the model's tables.
func (m *simModel) stateBytes() int {
	return len(m.hb)*4 + len(m.rise)*4 + len(m.ver) + len(m.state)
}

// failRounds is the failure time, in rounds, of a member that sees live
// members alive, from the library's own functions.
func (m *simModel) failRounds(live int32) int32 {
	if m.target > 0 {
		return int32(targetRounds(int(live), m.expectedLoss, m.target))
	}
	return int32(failureTime(int(live), time.Second, Nfailures) / time.Second)
}

// cleanupRounds is how long, in rounds, member i remembers a dead member.
func (m *simModel) cleanupRounds(i int) int32 {
	return int32(cleanupTime(time.Duration(m.failRounds(m.live[i]))*time.Second) / time.Second)
}

// reviveMargin is how far past the heartbeat member i holds for a dead
// member a heartbeat must be to bring it back (Gossip.reviveMargin).
func (m *simModel) reviveMargin(i int) int32 { return m.cleanupRounds(i) }

// setData changes member i's data: a new version, with the heartbeat
// counted up, as UpdateData does. It returns the new version.
func (m *simModel) setData(i int) uint8 {
	x := i*m.n + i
	m.hb[x]++
	m.ver[x]++
	return m.ver[x]
}

// round runs one gossip round and returns the members declared dead in it,
// valid until the next round.
func (m *simModel) round() []modelReport {
	m.now++
	m.died = m.died[:0]
	for i := 0; i < m.n; i++ {
		if m.down[i] {
			continue
		}
		x := i*m.n + i
		m.hb[x]++
		m.rise[x] = m.now
		m.sweep(i)
		if m.live[i] < 2 {
			continue // no live peer
		}
		m.exchange(i, m.partner(i))
	}
	return m.died
}

// sweep applies member i's failure rules (Gossip.sweepLocked): a member
// whose heartbeat has not risen for the failure time is declared dead, and a
// dead one is forgotten after the cleanup time, both reckoned from the live
// members i saw when the sweep began.
func (m *simModel) sweep(i int) {
	tfail, cleanup := m.failRounds(m.live[i]), m.cleanupRounds(i)
	row := i * m.n
	state, rise := m.state[row:row+m.n], m.rise[row:row+m.n]
	for k := range state {
		switch {
		case state[k] == modelAlive && m.now-rise[k] > tfail:
			state[k], rise[k] = modelDead, m.now
			m.live[i]--
			m.died = append(m.died, modelReport{by: int32(i), of: int32(k)})
		case state[k] == modelDead && m.now-rise[k] > cleanup:
			state[k] = modelUnknown
		}
	}
}

// partner picks member i's exchange partner with choosePartner: among the
// peers i's pool holds that i sees alive, or any peer i sees alive.
func (m *simModel) partner(i int) int32 {
	row := i * m.n
	m.held = m.held[:0]
	for _, k := range m.pools[i].order {
		if m.state[row+int(k)] == modelAlive {
			m.held = append(m.held, k)
		}
	}
	return choosePartner(m.rng, m.held, DefaultMaxOutboundConns, func() int32 {
		for {
			k := m.rng.IntN(m.n - 1)
			if k >= i {
				k++
			}
			if m.state[row+k] == modelAlive {
				return int32(k)
			}
		}
	})
}

// exchange is member i's exchange with member j. A crashed partner, or a
// lost request or answer, drops j from i's pool, as a broken connection is.
func (m *simModel) exchange(i int, j int32) {
	if m.down[j] || m.rng.Float64() < m.loss {
		m.pools[i].drop(j)
		return // the peer is down, or the request was lost
	}
	m.request(i, int(j))
	if m.rng.Float64() < m.loss {
		m.pools[i].drop(j)
		return // the answer was lost
	}
	m.pools[i].use(j)
	m.answer(int(j), i)
	if len(m.want) > 0 && m.rng.Float64() >= m.loss {
		m.push(i, int(j))
	}
}

// request merges caller i's digest, its live entries without data, into
// callee j, and leaves in m.want the members whose data j asks for.
func (m *simModel) request(i, j int) {
	n := m.n
	si, sj := i*n, j*n
	fromState, fromHb, fromVer := m.state[si:si+n], m.hb[si:si+n], m.ver[si:si+n]
	state, hb, rise, ver := m.state[sj:sj+n], m.hb[sj:sj+n], m.rise[sj:sj+n], m.ver[sj:sj+n]
	m.want = m.want[:0]
	for k := range fromState {
		if fromState[k] != modelAlive {
			continue
		}
		if state[k] == modelAlive {
			if fromHb[k] > hb[k] {
				hb[k], rise[k] = fromHb[k], m.now
			}
			if fromVer[k] > ver[k] {
				m.want = append(m.want, int32(k))
			}
			continue
		}
		// Not alive at j: a member j does not know is added only with its
		// data, and so is one that comes back with newer data.
		if state[k] == modelUnknown || (fromVer[k] > ver[k] && fromHb[k] > hb[k]+m.reviveMargin(j)) {
			m.want = append(m.want, int32(k))
			continue
		}
		m.take(j, k, fromHb[k], fromVer[k])
	}
}

// answer merges into caller i what callee j answers: its live entries newer
// than the caller's, and with their data those the caller did not name.
func (m *simModel) answer(j, i int) {
	n := m.n
	sj, si := j*n, i*n
	fromState, fromHb, fromVer := m.state[sj:sj+n], m.hb[sj:sj+n], m.ver[sj:sj+n]
	state, hb, rise, ver := m.state[si:si+n], m.hb[si:si+n], m.rise[si:si+n], m.ver[si:si+n]
	for k := range fromState {
		if fromState[k] != modelAlive {
			continue
		}
		if state[k] == modelAlive {
			if fromHb[k] > hb[k] {
				hb[k], rise[k] = fromHb[k], m.now
			}
			if fromVer[k] > ver[k] {
				ver[k] = fromVer[k]
			}
			continue
		}
		m.take(i, k, fromHb[k], fromVer[k])
	}
}

// push merges into callee j caller i's entries, with data, for the members
// in m.want.
func (m *simModel) push(i, j int) {
	for _, k := range m.want {
		x := i*m.n + int(k)
		m.take(j, int(k), m.hb[x], m.ver[x])
	}
}

// take merges into member at an entry for member k with its data, at
// heartbeat hb and version v: a live member keeps the higher of each, an
// unknown one is added, a dead one comes back only with a heartbeat beyond
// the revive margin.
func (m *simModel) take(at, k int, hb int32, v uint8) {
	x := at*m.n + k
	switch {
	case m.state[x] == modelAlive:
		if hb > m.hb[x] {
			m.hb[x], m.rise[x] = hb, m.now
		}
	case m.state[x] == modelDead && hb <= m.hb[x]+m.reviveMargin(at):
		return // stale gossip about a member declared dead
	default: // unknown, or dead and back
		m.state[x] = modelAlive
		m.live[at]++
		m.hb[x], m.rise[x] = hb, m.now
	}
	m.ver[x] = max(m.ver[x], v)
}
