package sim

import (
	"errors"
	"math/rand/v2"
	"time"
)

// The in-memory network.
//
// A Network carries calls between nodes numbered 0..n-1 in virtual time, as
// net/rpc over TCP would: a request, then an answer, or an error for the
// caller. Each call ends for the caller exactly once: with the answer, or
// with ErrTimeout at its deadline (the RPC timeout, Trpc), or with
// ErrRefused from a crashed node. Its faults:
//
//   - Loss: a request or an answer is lost, each with its own probability,
//     and the caller times out.
//   - Delay: each message takes Delay plus a uniform random part of
//     Jitter; an answer that comes after the caller's deadline is too late.
//   - Partitions: nodes in different groups cannot reach each other; calls
//     across time out. Heal joins the groups again.
//   - Paused nodes: a paused node, like a process stopped with SIGSTOP,
//     runs nothing. Its peers' connections still open and their requests
//     wait in its socket: on Resume it serves those whose callers are still
//     waiting (the others closed their connection at their deadline), and
//     runs its own overdue timers and the answers to its own calls, in the
//     order they came. Its callers time out meanwhile.
//   - Crashed nodes: down for good. Calls to one are refused after a
//     message delay, as the kernel of a host that stays up refuses dials
//     to the port of a dead process; what was under way to or from it is
//     dropped. A node crashed with its host (CrashHost) is silent
//     instead: calls to it time out.
//
// Events at the same instant run in the order: timers, then messages, then
// observers (see At and Observe), each in the order they were scheduled. So
// with no delay and timers at the same instants (lockstep rounds), every
// node's timer runs before any message of that instant is delivered.

// Errors with which a call fails.
var (
	// ErrTimeout: no answer came before the caller's deadline.
	ErrTimeout = errors.New("sim: call timed out")
	// ErrRefused: the callee is down.
	ErrRefused = errors.New("sim: connection refused")
)

// NetConfig sets a Network's faults. The zero value is a perfect network,
// with the RPC timeout of DefaultTimeout.
type NetConfig struct {
	// RequestLoss and ResponseLoss are the probabilities that a request,
	// and an answer, is lost.
	RequestLoss  float64
	ResponseLoss float64
	// Delay is the one-way delay of every message; Jitter, if set, adds to
	// each a uniform random delay in [0, Jitter).
	Delay  time.Duration
	Jitter time.Duration
	// Timeout is how long a caller waits for an answer; zero means
	// DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout is the RPC timeout of a NetConfig that sets none: the root
// package's default Trpc.
const DefaultTimeout = 5 * time.Second

// NodeStatus is the state of a node of the network.
type NodeStatus int

// The states of a node.
const (
	Up NodeStatus = iota
	Paused
	Crashed
)

// Network is an in-memory network in virtual time. It is not safe for
// concurrent use; it runs everything on the calling goroutine.
type Network struct {
	cfg   NetConfig
	rng   *rand.Rand
	now   time.Duration // since the start
	seq   uint64
	queue eventQueue
	nodes []netNode
}

type netNode struct {
	status NodeStatus
	silent bool    // crashed with its host: calls time out rather than being refused
	group  int     // nodes talk only within a group (see Partition)
	held   []event // what came while paused, in order
}

// NewNetwork returns a network of n nodes, all up and in one group, at
// time 0, that draws its faults from rng.
func NewNetwork(n int, cfg NetConfig, rng *rand.Rand) *Network {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Network{cfg: cfg, rng: rng, nodes: make([]netNode, n)}
}

// Now returns the virtual time since the network was made.
func (nw *Network) Now() time.Duration { return nw.now }

// Config returns the network's faults.
func (nw *Network) Config() NetConfig { return nw.cfg }

// SetConfig changes the network's faults from now on; messages under way
// keep their fate.
func (nw *Network) SetConfig(cfg NetConfig) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	nw.cfg = cfg
}

// Status returns node i's state.
func (nw *Network) Status(i int) NodeStatus { return nw.nodes[i].status }

// At runs f at node i at time t (not before now): a timer of the node. It
// waits while the node is paused and is dropped if the node crashes.
func (nw *Network) At(t time.Duration, i int, f func()) {
	nw.push(event{at: max(t, nw.now), class: classTimer, node: i, f: f})
}

// Observe runs f at time t, after everything else of that instant, whatever
// the nodes' states: for measurements.
func (nw *Network) Observe(t time.Duration, f func()) {
	nw.push(event{at: max(t, nw.now), class: classObserver, node: -1, f: f})
}

// Serve is the callee's side of a call: it runs when the request arrives
// and returns what the caller runs when the answer arrives, or an error
// that the caller gets instead (a remote error).
type Serve func() (reply func(), err error)

// Call makes a call from node from to node to at the current time: serve
// runs at the callee when the request arrives, and then either the reply it
// returns runs at the caller when the answer arrives, or fail runs at the
// caller with why the call failed (ErrTimeout, ErrRefused, or serve's
// error). A callee of -1 is an address where no node listens: the call
// times out.
func (nw *Network) Call(from, to int, serve Serve, fail func(error)) {
	nw.CallWithin(from, to, nw.cfg.Timeout, serve, fail)
}

// CallWithin is Call with a timeout of its own in place of the network's.
func (nw *Network) CallWithin(from, to int, timeout time.Duration, serve Serve, fail func(error)) {
	c := &call{from: from, deadline: nw.now + timeout, fail: fail}
	nw.push(event{at: c.deadline, class: classMessage, node: from, f: func() { c.end(nil, ErrTimeout) }})
	switch {
	case to < 0:
	case nw.nodes[to].status == Crashed && !nw.nodes[to].silent:
		nw.push(event{at: nw.now + nw.latency(), class: classMessage, node: from, f: func() { c.end(nil, ErrRefused) }})
	case !nw.Reachable(from, to):
	case nw.lost(nw.cfg.RequestLoss):
	default:
		nw.push(event{at: nw.now + nw.latency(), class: classMessage, node: to, deadline: c.deadline, f: func() { nw.serve(c, to, serve) }})
	}
}

// serve runs a request that arrived at node to and sends the answer.
func (nw *Network) serve(c *call, to int, serve Serve) {
	reply, err := serve()
	if !nw.Reachable(to, c.from) || nw.lost(nw.cfg.ResponseLoss) {
		return
	}
	nw.push(event{at: nw.now + nw.latency(), class: classMessage, node: c.from, f: func() { c.end(reply, err) }})
}

// call is one call under way.
type call struct {
	from     int
	deadline time.Duration
	fail     func(error)
	done     bool
}

// end ends the call with reply, or with err, unless it ended already.
func (c *call) end(reply func(), err error) {
	if c.done {
		return
	}
	fail := c.fail
	c.done, c.fail = true, nil // the deadline event keeps c until the deadline, but not what fail holds
	if err != nil {
		fail(err)
		return
	}
	reply()
}

// Reachable reports whether a message from node i can reach node j now:
// both in one group and j not crashed.
func (nw *Network) Reachable(i, j int) bool {
	return nw.nodes[i].group == nw.nodes[j].group && nw.nodes[j].status != Crashed
}

// Partition splits the nodes into the groups given, and one more group of
// the nodes not named. Calls across groups time out until Heal.
func (nw *Network) Partition(groups ...[]int) {
	for i := range nw.nodes {
		nw.nodes[i].group = 0
	}
	for g, nodes := range groups {
		for _, i := range nodes {
			nw.nodes[i].group = g + 1
		}
	}
}

// Heal puts every node back into one group.
func (nw *Network) Heal() { nw.Partition() }

// Pause stops node i until Resume: nothing runs at it meanwhile.
func (nw *Network) Pause(i int) {
	if nw.nodes[i].status == Up {
		nw.nodes[i].status = Paused
	}
}

// Resume starts node i again after Pause: what came meanwhile runs now, in
// the order it came, but requests whose callers have given up, which are
// dropped.
func (nw *Network) Resume(i int) {
	n := &nw.nodes[i]
	if n.status != Paused {
		return
	}
	n.status = Up
	held := n.held
	n.held = nil
	for _, ev := range held {
		if ev.deadline != 0 && ev.deadline <= nw.now {
			continue
		}
		ev.at, ev.class = nw.now, classMessage // one class: they keep their order
		nw.push(ev)
	}
}

// Crash stops node i for good; calls to it are refused.
func (nw *Network) Crash(i int) {
	nw.nodes[i].status = Crashed
	nw.nodes[i].silent = false
	nw.nodes[i].held = nil
}

// CrashHost stops node i for good with its host: calls to it time out.
func (nw *Network) CrashHost(i int) {
	nw.Crash(i)
	nw.nodes[i].silent = true
}

// Restart brings a crashed node back up, with nothing pending: what a new
// process at the same address would be.
func (nw *Network) Restart(i int) {
	if nw.nodes[i].status == Crashed {
		nw.nodes[i].status, nw.nodes[i].silent = Up, false
	}
}

// RunUntil runs every event up to and including time t, and leaves the
// clock at t.
func (nw *Network) RunUntil(t time.Duration) {
	for nw.queue.Len() > 0 && nw.queue.peek().at <= t {
		nw.step()
	}
	nw.now = max(nw.now, t)
}

// RunFor runs the network for d from now.
func (nw *Network) RunFor(d time.Duration) { nw.RunUntil(nw.now + d) }

// step runs the next event.
func (nw *Network) step() {
	ev := nw.queue.pop()
	nw.now = ev.at
	if ev.node < 0 {
		ev.f()
		return
	}
	n := &nw.nodes[ev.node]
	switch n.status {
	case Crashed:
	case Paused:
		n.held = append(n.held, ev)
	default:
		ev.f()
	}
}

func (nw *Network) push(ev event) {
	nw.seq++
	ev.seq = nw.seq
	nw.queue.push(ev)
}

// latency draws one message's delay.
func (nw *Network) latency() time.Duration {
	d := nw.cfg.Delay
	if nw.cfg.Jitter > 0 {
		d += time.Duration(nw.rng.Int64N(int64(nw.cfg.Jitter)))
	}
	return d
}

// lost draws whether a message is lost with probability p.
func (nw *Network) lost(p float64) bool {
	return p > 0 && nw.rng.Float64() < p
}
