package sim

import (
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
)

// TestPartitionHeals splits 16 members in two: each side declares the other
// dead (and no member of its own), and once the network heals, the sides merge again by contacting
// their seeds (one on each side) and the members they hold dead.
func TestPartitionHeals(t *testing.T) {
	const n = 16
	left, right := members(0, n/2), members(n/2, n)
	c := New(Config{N: n, Seed: 11, Seeds: []int{0, n / 2}, Net: NetConfig{Delay: ms, Jitter: 2 * ms}})
	e := watch(c)
	c.StartConverged()
	c.RunFor(10 * time.Second)
	tfail := int(c.Member(0).FailureTime() / time.Second)

	c.Partition(left, right)
	split := runUntil(t, c, 3*tfail, "each side holds the other dead", func() bool {
		return allSee(c, right, protocol.Dead, right...) && allSee(c, left, protocol.Dead, left...)
	})
	// Never before a suspicion. Each member then sees about half its
	// calls go unanswered, as under heavy loss, so the silence rule asks
	// for more evidence than it can get and the timeout rule waits the
	// longer time its local health gives (failure.go): 24 rounds at n = 16
	// for half the calls unanswered, 21 for 40%, 28 for 60%. Seeds 1 to 6
	// and 11 split after 20 to 26 rounds (FailureTime 15).
	assert.GreaterOrEqual(t, split, protocol.SuspectRounds(n), "not before a suspicion")
	assert.LessOrEqual(t, split, 2*tfail, "within the stretched timeout")
	assert.True(t, allSee(c, left, protocol.Alive, right...), "each side keeps its own")
	assert.True(t, allSee(c, right, protocol.Alive, left...))
	for _, j := range left {
		assert.Equal(t, n/2, e.count(protocol.Failed, j), "member %d declared dead by the other side alone", j)
	}

	c.Heal()
	healed := runUntil(t, c, 4*tfail, "all see all again", func() bool { return allSee(c, members(0, n), protocol.Alive) })
	t.Logf("split after %d rounds (FailureTime %d), merged %d rounds after healing; contacts sent %d join, %d recover",
		split, tfail, healed, c.Stats.Sent[protocol.Join], c.Stats.Sent[protocol.Recover])
	back := 0
	for j := 0; j < n; j++ {
		back += e.count(protocol.Rejoined, j) + e.count(protocol.Joined, j)
	}
	assert.Equal(t, n*n/2, back, "each member takes back each of the other side once")
	for _, i := range members(0, n) {
		for _, j := range e.of[protocol.Failed][i] {
			assert.NotEqual(t, i < n/2, j < n/2, "member %d declared %d of its own side dead", j, i)
		}
	}
}

// TestPausedMemberTakenBack pauses a member for three failure times, as
// SIGSTOP would: the others declare it dead, and take it back once it
// resumes, within a few rounds; the resumed member, which has not heard
// from the others for as long, accuses none of them (protocol's watch).
func TestPausedMemberTakenBack(t *testing.T) {
	const n, paused = 16, 5
	c := New(Config{N: n, Seed: 13, Net: NetConfig{Delay: ms, Jitter: 2 * ms}})
	e := watch(c)
	c.StartConverged()
	c.RunFor(10 * time.Second)
	tfail := c.Member(0).FailureTime()

	c.Pause(paused)
	c.RunFor(3 * tfail)
	assert.Equal(t, n-1, e.count(protocol.Failed, paused), "every other member declared it dead")
	others := append(members(0, paused), members(paused+1, n)...)
	assert.True(t, allSee(c, others, protocol.Alive, paused), "and no one else")

	before := len(e.of[protocol.Failed][paused])
	failedBefore := countBy(e, protocol.Failed, paused)
	c.Resume(paused)
	rounds := runUntil(t, c, 3*int(tfail/time.Second), "all take it back", func() bool { return allSee(c, []int{paused}, protocol.Alive) })
	assert.Equal(t, before, len(e.of[protocol.Failed][paused]), "not declared dead again")
	assert.True(t, allSee(c, members(0, n), protocol.Alive), "all see all")

	accused := countBy(e, protocol.Failed, paused) - failedBefore
	assert.Zero(t, accused, "the resumed member accuses no one")
	assert.LessOrEqual(t, rounds, 3, "taken back within a few rounds: its heartbeat counts on from the clock")
	t.Logf("paused for %v (3 × FailureTime), taken back %d rounds after resuming; on resuming it declared %d of its %d live peers dead and took back %d",
		3*tfail, rounds, accused, n-1, countBy(e, protocol.Rejoined, paused))
}

// countBy returns how many events of typ member i reported.
func countBy(e *events, typ protocol.EventType, i int) int {
	k := 0
	for _, by := range e.of[typ] {
		for _, j := range by {
			if j == i {
				k++
			}
		}
	}
	return k
}

// TestPausesAccuseNoOne pauses one member of 64 for a range of lengths
// around the failure time: whatever the length, on resuming it accuses no
// one, and it is back in every view within a few rounds.
func TestPausesAccuseNoOne(t *testing.T) {
	const n, paused = 64, 7
	for _, k := range []float64{0.5, 0.9, 1.1, 1.5, 2, 3} {
		c := New(Config{N: n, Seed: uint64(100 * k), Net: NetConfig{Delay: ms, Jitter: 2 * ms}})
		e := watch(c)
		c.StartConverged()
		c.RunFor(10 * time.Second)
		tfail := c.Member(0).FailureTime()
		c.Pause(paused)
		c.RunFor(time.Duration(k * float64(tfail)))
		c.Resume(paused)
		rounds := runUntil(t, c, 3*int(tfail/time.Second), "all see all", func() bool { return allSee(c, members(0, n), protocol.Alive) })
		assert.Zero(t, countBy(e, protocol.Failed, paused), "paused for %.1f × FailureTime: accusations by the resumed member", k)
		assert.LessOrEqual(t, rounds, 3, "paused for %.1f × FailureTime: rounds until all see all", k)
	}
}
