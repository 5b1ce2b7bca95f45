package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/gossipfd/gossip/internal/protocol"
)

// The fault scenarios: a member that goes silent, one paused and resumed,
// and the machine's cores oversubscribed. See main.go for what each
// measures.

// silentDetect silences the last member and times how long the others take
// to drop it.
func silentDetect(ctx context.Context, c cluster, n int, deadline time.Duration) (first, last float64, err error) {
	return dropTime(ctx, c, n, deadline, c.silence)
}

// pauseResult is what the pause scenario measures.
type pauseResult struct {
	drop, back       float64 // seconds
	dropErr, backErr error   // errTimeout if the wait gave up
	byVictim         int     // live members the resumed member reported dead
	byOthers         int     // live members the others reported dead
}

// pauseFor is how long the pause scenario stops its member: o.pause, or by
// default three times this library's FailureTime at n members, for both
// libraries alike, so that both face the same fault.
func pauseFor(n int, o options) time.Duration {
	if o.pause > 0 {
		return o.pause
	}
	return 3 * oursFailureTime(n, o)
}

// oursFailureTime is this library's FailureTime with n live members and the
// bench's configuration (the same rule as Gossip.FailureTime, which a test
// checks it against).
func oursFailureTime(n int, o options) time.Duration {
	interval := oursInterval(o)
	if o.target > 0 {
		return time.Duration(protocol.TargetRounds(n, gossip.DefaultConfig().ExpectedLoss, o.target)) * interval
	}
	return protocol.FailureTime(n, interval, gossip.Nfailures)
}

// pauseRun runs n-1 members in this process and the last in a child process
// of its own, waits for convergence, stops the child with SIGSTOP for
// pauseFor(n, o) and continues it with SIGCONT. It measures the time from
// the stop until the last other member drops it, the time from the
// continue until every other member sees it again, and the live members
// that the resumed member reports dead, from the continue until everyone
// sees it again and at least one FailureTime has passed (pause / 3 by
// default), and that the others report dead, from the stop to the same end.
func pauseRun(ctx context.Context, c cluster, lib string, n int, o options) (pauseResult, error) {
	var res pauseResult
	victim := n - 1
	obs := c.observers()
	conv := newSpread(time.Now(), others(n, -1), func(s viewSet, i int) bool { return s.size(i) == n })
	w := obs.watch(conv.check)
	if err := c.start(n - 1); err != nil {
		w.stop()
		return res, err
	}
	obs.open(victim)
	ch, err := startChild(childSpec{
		Mode: childMember, Lib: lib, Seed: c.seed(), Name: fmt.Sprintf("m%d", victim),
		Interval: o.interval, Target: o.target,
	}, observerSink{obs, victim})
	if err != nil {
		w.stop()
		return res, err
	}
	defer ch.close()
	if err := w.wait(ctx, o.deadline); err != nil {
		return res, fmt.Errorf("pause: no convergence: %w%s", err, withJoinFailures(c))
	}
	id := ch.id
	live := make(map[string]bool, n-1)
	for i := 0; i < victim; i++ {
		live[c.id(i)] = true
	}
	// False reports: live members dropped, by the victim once resumed and
	// by the others from the stop.
	var resumed atomic.Bool
	byVictim, byOthers := map[string]bool{}, map[string]bool{}
	reports := obs.watch(func(s viewSet, ch *change) bool {
		if ch != nil && ch.gone && live[ch.id] {
			if ch.observer != victim {
				byOthers[ch.id] = true
			} else if resumed.Load() {
				byVictim[ch.id] = true
			}
		}
		return false
	})
	defer reports.stop()

	pause := pauseFor(n, o)
	stopped := time.Now()
	drop := newSpread(stopped, others(n, victim), func(s viewSet, i int) bool {
		_, ok := s.lookup(i, id)
		return !ok
	})
	dw := obs.watch(drop.check)
	if err := ch.signal(syscall.SIGSTOP); err != nil {
		dw.stop()
		return res, fmt.Errorf("pause: stop: %w", err)
	}
	res.dropErr = dw.wait(ctx, pause)
	_, res.drop = drop.seconds(res.dropErr, pause)
	if err := ignoreTimeout(res.dropErr); err != nil {
		return res, err
	}
	if err := sleep(ctx, time.Until(stopped.Add(pause))); err != nil {
		return res, err
	}

	continued := time.Now()
	back := newSpread(continued, others(n, victim), func(s viewSet, i int) bool {
		_, ok := s.lookup(i, id)
		return ok
	})
	bw := obs.watch(back.check)
	resumed.Store(true)
	if err := ch.signal(syscall.SIGCONT); err != nil {
		bw.stop()
		return res, fmt.Errorf("pause: continue: %w", err)
	}
	res.backErr = bw.wait(ctx, o.deadline)
	_, res.back = back.seconds(res.backErr, o.deadline)
	if err := ignoreTimeout(res.backErr); err != nil {
		return res, err
	}
	if err := sleep(ctx, time.Until(continued.Add(pause/3))); err != nil {
		return res, err
	}
	reports.stop()
	res.byVictim, res.byOthers = len(byVictim), len(byOthers)
	return res, nil
}

// hogCount is how many busy processes the hog scenario runs: o.hogs, or by
// default three per core.
func hogCount(o options) int {
	if o.hogs > 0 {
		return o.hogs
	}
	return 3 * runtime.NumCPU()
}

// hogRun starts hogCount(o) busy processes once the cluster has converged
// and counts, over o.hogTime, the live members that anyone reported dead and
// the (observer, member) pairs in which that happened.
func hogRun(ctx context.Context, c cluster, n int, o options) (members, pairs int, err error) {
	hogs, err := startHogs(hogCount(o))
	if err != nil {
		return 0, 0, fmt.Errorf("hog: %w", err)
	}
	defer stopHogs(hogs)
	return falseReports(ctx, c, n, o.hogTime)
}

// dropTime applies fault to the last member and times how long the others
// take to drop it.
func dropTime(ctx context.Context, c cluster, n int, deadline time.Duration, fault func(i int)) (first, last float64, err error) {
	victim := n - 1
	id := c.id(victim)
	sp := newSpread(time.Now(), others(n, victim), func(s viewSet, i int) bool {
		_, ok := s.lookup(i, id)
		return !ok
	})
	w := c.observers().watch(sp.check)
	fault(victim)
	err = w.wait(ctx, deadline)
	first, last = sp.seconds(err, deadline)
	return first, last, err
}

// falseReports counts, over window, the members that anyone reported dead
// (all are alive) and the (observer, member) pairs in which that happened.
// A member is reported dead when an observer's view drops it.
func falseReports(ctx context.Context, c cluster, n int, window time.Duration) (members, pairs int, err error) {
	index := make(map[string]int, n)
	for i := 0; i < n; i++ {
		index[c.id(i)] = i
	}
	dead := make(map[string]bool)
	type pair struct{ observer, member int }
	falsePairs := make(map[pair]bool)
	w := c.observers().watch(func(s viewSet, ch *change) bool {
		if ch == nil { // views missing members already, if any
			for i := 0; i < n; i++ {
				if !s.observing(i) || s.size(i) == n {
					continue
				}
				for id, j := range index {
					if _, ok := s.lookup(i, id); !ok {
						dead[id] = true
						falsePairs[pair{i, j}] = true
					}
				}
			}
		} else if j, ok := index[ch.id]; ok && ch.gone {
			dead[ch.id] = true
			falsePairs[pair{ch.observer, j}] = true
		}
		return false // until the window ends
	})
	err = w.wait(ctx, window)
	if errors.Is(err, errTimeout) {
		err = nil // the window ended
	}
	return len(dead), len(falsePairs), err
}
