package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"
)

// The scenarios, each run on a fresh cluster.
const (
	scConverge = "converge"
	scDetect   = "detect"
	scData     = "data"
	scSteady   = "steady"
	scLoss     = "loss"
)

var allScenarios = []string{scConverge, scDetect, scData, scSteady, scLoss}

// The metrics the scenarios measure, in table order, and their units.
var metrics = []struct{ name, unit, scenario string }{
	{"converge", "s", scConverge},
	{"detect first", "s", scDetect},
	{"detect last", "s", scDetect},
	{"data first", "s", scData},
	{"data last", "s", scData},
	{"bytes/member/s", "B", scSteady},
	{"msgs/member/s", "", scSteady},
	{"CPU ms/member/s", "ms", scSteady},
	{"heap KiB/member", "KiB", scSteady},
	{"loss: members reported dead", "", scLoss},
	{"loss: false (observer, member) pairs", "", scLoss},
}

// options are the scenario parameters shared by every run.
type options struct {
	deadline   time.Duration // for each wait
	settle     time.Duration // after convergence, before the steady window
	steadyTime time.Duration
	lossTime   time.Duration
	loss       float64
}

// sample is one measurement of one run.
type sample struct {
	Lib      string
	N        int
	Run      int
	Metric   string
	Value    float64
	TimedOut bool `json:",omitempty"`
}

// errTimeout marks a wait that reached its deadline.
var errTimeout = errors.New("deadline reached")

// runScenario runs scenario sc with n members of lib on a fresh cluster and
// returns its samples. A wait that times out gives samples marked TimedOut
// rather than an error.
func runScenario(ctx context.Context, lib, sc string, n int, o options) ([]sample, error) {
	c, err := newCluster(lib)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var heap0 uint64
	if sc == scSteady {
		heap0 = heapInuse()
	}
	out := func(metric string, v float64, err error) sample {
		return sample{Lib: lib, N: n, Metric: metric, Value: v, TimedOut: errors.Is(err, errTimeout)}
	}
	t0 := time.Now()
	if err := c.start(n); err != nil {
		return nil, err
	}
	err = waitConverged(ctx, c, n, o.deadline)
	if sc == scConverge || err != nil {
		if err != nil && !errors.Is(err, errTimeout) {
			return nil, err
		}
		if sc != scConverge {
			return nil, fmt.Errorf("%s: no convergence within %v", sc, o.deadline)
		}
		return []sample{out("converge", time.Since(t0).Seconds(), err)}, nil
	}
	switch sc {
	case scDetect:
		first, last, err := detect(ctx, c, n, o.deadline)
		return []sample{out("detect first", first, err), out("detect last", last, err)}, ignoreTimeout(err)
	case scData:
		first, last, err := dataSpread(ctx, c, n, o.deadline)
		return []sample{out("data first", first, err), out("data last", last, err)}, ignoreTimeout(err)
	case scSteady:
		return steady(ctx, c, n, o, heap0, out)
	case scLoss:
		members, pairs, err := lossRun(ctx, c, n, o)
		return []sample{out("loss: members reported dead", float64(members), nil),
			out("loss: false (observer, member) pairs", float64(pairs), nil)}, err
	}
	return nil, fmt.Errorf("unknown scenario %q", sc)
}

func ignoreTimeout(err error) error {
	if errors.Is(err, errTimeout) {
		return nil
	}
	return err
}

// poll calls done every pollEvery until it returns true, the deadline
// passes (errTimeout) or ctx ends.
func poll(ctx context.Context, deadline time.Duration, done func() bool) error {
	end := time.Now().Add(deadline)
	for {
		if done() {
			return nil
		}
		if time.Now().After(end) {
			return errTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// waitConverged waits until every live member sees n members.
func waitConverged(ctx context.Context, c cluster, n int, deadline time.Duration) error {
	pending := make([]int, 0, n)
	for i := 0; i < n; i++ {
		pending = append(pending, i)
	}
	return poll(ctx, deadline, func() bool {
		left := pending[:0]
		for _, i := range pending {
			if len(c.view(i)) != n {
				left = append(left, i)
			}
		}
		pending = left
		return len(pending) == 0
	})
}

// detect kills the last member and times how long the others take to drop it.
func detect(ctx context.Context, c cluster, n int, deadline time.Duration) (first, last float64, err error) {
	victim := n - 1
	id := c.id(victim)
	t0 := time.Now()
	c.kill(victim)
	return timeSpread(ctx, c, t0, others(n, victim), deadline, func(v view) bool {
		_, ok := v.find(id)
		return !ok
	})
}

// dataSpread changes the data of the middle member and times how long the
// others take to see it.
func dataSpread(ctx context.Context, c cluster, n int, deadline time.Duration) (first, last float64, err error) {
	i := n / 2
	id := c.id(i)
	value := fmt.Sprintf("data-%d", time.Now().UnixNano())
	t0 := time.Now()
	if err := c.setData(i, value); err != nil {
		return 0, 0, err
	}
	return timeSpread(ctx, c, t0, others(n, i), deadline, func(v view) bool {
		e, ok := v.find(id)
		return ok && e.data == value
	})
}

// others returns 0..n-1 without skip.
func others(n, skip int) []int {
	out := make([]int, 0, n-1)
	for i := 0; i < n; i++ {
		if i != skip {
			out = append(out, i)
		}
	}
	return out
}

// timeSpread polls the views of members until seen holds for each, and
// returns the seconds from t0 until it first and last held. On timeout, the
// unknown times are the deadline.
func timeSpread(ctx context.Context, c cluster, t0 time.Time, members []int, deadline time.Duration, seen func(view) bool) (first, last float64, err error) {
	first = -1
	pending := append([]int(nil), members...)
	err = poll(ctx, deadline, func() bool {
		left := pending[:0]
		for _, i := range pending {
			if !seen(c.view(i)) {
				left = append(left, i)
				continue
			}
			d := time.Since(t0).Seconds()
			if first < 0 {
				first = d
			}
			last = d
		}
		pending = left
		return len(pending) == 0
	})
	if err != nil {
		if first < 0 {
			first = deadline.Seconds()
		}
		last = deadline.Seconds()
	}
	return first, last, err
}

// steady measures traffic, CPU and heap over a window after convergence,
// without reading the views meanwhile.
func steady(ctx context.Context, c cluster, n int, o options, heap0 uint64, out func(string, float64, error) sample) ([]sample, error) {
	if err := sleep(ctx, o.settle); err != nil {
		return nil, err
	}
	b0, m0 := c.traffic()
	cpu0, t0 := cpuTime(), time.Now()
	if err := sleep(ctx, o.steadyTime); err != nil {
		return nil, err
	}
	b1, m1 := c.traffic()
	cpu1, el := cpuTime(), time.Since(t0).Seconds()
	heap1 := heapInuse()
	per := float64(n) * el
	heap := (float64(heap1) - float64(heap0)) / float64(n) / 1024
	return []sample{
		out("bytes/member/s", float64(b1-b0)/per, nil),
		out("msgs/member/s", float64(m1-m0)/per, nil),
		out("CPU ms/member/s", (cpu1-cpu0).Seconds()*1000/per, nil),
		out("heap KiB/member", heap, nil),
	}, nil
}

// lossRun loses o.loss of all messages for o.lossTime from convergence and
// counts the live members that anyone reported dead, and the (observer,
// member) pairs in which that happened.
func lossRun(ctx context.Context, c cluster, n int, o options) (members, pairs int, err error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = c.id(i)
	}
	dead := make(map[string]bool)
	type pair struct{ observer, member int }
	falsePairs := make(map[pair]bool)
	c.setLoss(o.loss)
	defer c.setLoss(0)
	err = poll(ctx, o.lossTime, func() bool {
		for i := 0; i < n; i++ {
			v := c.view(i)
			if len(v) == n {
				continue
			}
			for j, id := range ids {
				if _, ok := v.find(id); !ok {
					dead[id] = true
					falsePairs[pair{i, j}] = true
				}
			}
		}
		return false
	})
	if errors.Is(err, errTimeout) {
		err = nil // the window ended
	}
	return len(dead), len(falsePairs), err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapInuse is the heap in use after a garbage collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
