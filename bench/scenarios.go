package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
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
	scSilent   = "silent"
	scPause    = "pause"
	scHog      = "hog"
)

var allScenarios = []string{scConverge, scDetect, scSilent, scData, scSteady, scLoss, scPause, scHog}

// The metrics the scenarios measure, in table order, and their units.
var metrics = []struct{ name, unit, scenario string }{
	{"converge", "s", scConverge},
	{"detect first", "s", scDetect},
	{"detect last", "s", scDetect},
	{"silent: detect first", "s", scSilent},
	{"silent: detect last", "s", scSilent},
	{"data first", "s", scData},
	{"data last", "s", scData},
	{"bytes/member/s", "B", scSteady},
	{"msgs/member/s", "", scSteady},
	{"CPU ms/member/s", "ms", scSteady},
	{"heap KiB/member", "KiB", scSteady},
	{"loss: members reported dead", "", scLoss},
	{"loss: false (observer, member) pairs", "", scLoss},
	{"pause: others drop", "s", scPause},
	{"pause: back", "s", scPause},
	{"pause: false reports by the resumed member", "", scPause},
	{"pause: false reports by the others", "", scPause},
	{"hog: members reported dead", "", scHog},
	{"hog: false (observer, member) pairs", "", scHog},
}

// options are the scenario parameters shared by every run.
type options struct {
	deadline   time.Duration // for each wait
	settle     time.Duration // after convergence, before the steady window
	steadyTime time.Duration
	lossTime   time.Duration
	loss       float64
	pause      time.Duration // how long the pause scenario stops its member; 0 for 3 × FailureTime
	hogs       int           // busy processes of the hog scenario; 0 for 3 per core
	hogTime    time.Duration
	interval   time.Duration // this library's GossipInterval; 0 for its default
	target     float64       // this library's FalseReportTarget; 0 for its default
	memProfile string        // if set, a heap profile is written here after each steady window
	cpuProfile string        // if set, a CPU profile of each steady window is written here
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
// rather than an error. Joins that failed, though the cluster converged
// later, are reported to warn.
func runScenario(ctx context.Context, lib, sc string, n int, o options, warn func(string)) ([]sample, error) {
	c, err := newCluster(lib, o)
	if err != nil {
		return nil, err
	}
	defer c.close()
	defer func() {
		if f := joinFailures(c); f != "" && warn != nil {
			warn(f)
		}
	}()
	var heap0 uint64
	if sc == scSteady {
		heap0 = settledHeap(ctx)
	}
	out := func(metric string, v float64, err error) sample {
		return sample{Lib: lib, N: n, Metric: metric, Value: v, TimedOut: errors.Is(err, errTimeout)}
	}
	if sc == scPause { // its own start: the last member is a process of its own
		r, err := pauseRun(ctx, c, lib, n, o)
		if err != nil {
			return nil, err
		}
		return []sample{out("pause: others drop", r.drop, r.dropErr), out("pause: back", r.back, r.backErr),
			out("pause: false reports by the resumed member", float64(r.byVictim), nil),
			out("pause: false reports by the others", float64(r.byOthers), nil)}, nil
	}
	converged, err := startConverged(ctx, c, n, o.deadline)
	if sc == scConverge || err != nil {
		if err != nil && !errors.Is(err, errTimeout) {
			return nil, err
		}
		if sc != scConverge {
			return nil, fmt.Errorf("%s: no convergence within %v%s", sc, o.deadline, withJoinFailures(c))
		}
		return []sample{out("converge", converged, err)}, nil
	}
	switch sc {
	case scDetect:
		first, last, err := detect(ctx, c, n, o.deadline)
		return []sample{out("detect first", first, err), out("detect last", last, err)}, ignoreTimeout(err)
	case scSilent:
		first, last, err := silentDetect(ctx, c, n, o.deadline)
		return []sample{out("silent: detect first", first, err), out("silent: detect last", last, err)}, ignoreTimeout(err)
	case scData:
		first, last, err := dataSpread(ctx, c, n, o.deadline)
		return []sample{out("data first", first, err), out("data last", last, err)}, ignoreTimeout(err)
	case scSteady:
		return steady(ctx, c, n, o, heap0, out)
	case scLoss:
		members, pairs, err := lossRun(ctx, c, n, o)
		return []sample{out("loss: members reported dead", float64(members), nil),
			out("loss: false (observer, member) pairs", float64(pairs), nil)}, err
	case scHog:
		members, pairs, err := hogRun(ctx, c, n, o)
		return []sample{out("hog: members reported dead", float64(members), nil),
			out("hog: false (observer, member) pairs", float64(pairs), nil)}, err
	}
	return nil, fmt.Errorf("unknown scenario %q", sc)
}

// joinFailures describes the joins that failed in c, if any, for an error
// message.
func joinFailures(c cluster) string {
	ml, ok := c.(*mlCluster)
	if !ok {
		return ""
	}
	errs := ml.joinErrors()
	if len(errs) == 0 {
		return ""
	}
	first := strings.Join(strings.Fields(errs[0].Error()), " ") // memberlist's errors span lines
	return fmt.Sprintf("%d join attempts failed, the first: %s", len(errs), first)
}

// withJoinFailures is joinFailures after a semicolon, or "".
func withJoinFailures(c cluster) string {
	if f := joinFailures(c); f != "" {
		return "; " + f
	}
	return ""
}

func ignoreTimeout(err error) error {
	if errors.Is(err, errTimeout) {
		return nil
	}
	return err
}

// startConverged starts n members and waits until every one sees n members.
// It returns the seconds from the start until the last of them did, or
// until it gave up.
func startConverged(ctx context.Context, c cluster, n int, deadline time.Duration) (float64, error) {
	sp := newSpread(time.Now(), others(n, -1), func(s viewSet, i int) bool {
		return s.size(i) == n
	})
	w := c.observers().watch(sp.check) // before start, so that no change is missed
	if err := c.start(n); err != nil {
		w.stop()
		return 0, err
	}
	err := w.wait(ctx, deadline)
	if err != nil {
		return time.Since(sp.t0).Seconds(), err
	}
	return sp.last.Seconds(), nil
}

// detect kills the last member and times how long the others take to drop
// it.
func detect(ctx context.Context, c cluster, n int, deadline time.Duration) (first, last float64, err error) {
	return dropTime(ctx, c, n, deadline, c.kill)
}

// dataSpread changes the data of the middle member and times how long the
// others take to see it.
func dataSpread(ctx context.Context, c cluster, n int, deadline time.Duration) (first, last float64, err error) {
	i := n / 2
	id := c.id(i)
	value := fmt.Sprintf("data-%d", time.Now().UnixNano())
	sp := newSpread(time.Now(), others(n, i), func(s viewSet, i int) bool {
		e, ok := s.lookup(i, id)
		return ok && e.data == value
	})
	w := c.observers().watch(sp.check)
	if err := c.setData(i, value); err != nil {
		w.stop()
		return 0, 0, err
	}
	err = w.wait(ctx, deadline)
	first, last = sp.seconds(err, deadline)
	return first, last, err
}

// others returns 0..n-1 without skip; skip -1 skips none.
func others(n, skip int) []int {
	out := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if i != skip {
			out = append(out, i)
		}
	}
	return out
}

// steady measures traffic, CPU and heap over a window after convergence,
// without observing: the views are dropped first, so that their n² entries
// do not count in the members' heap.
func steady(ctx context.Context, c cluster, n int, o options, heap0 uint64, out func(string, float64, error) sample) ([]sample, error) {
	c.observers().closeAll()
	if err := sleep(ctx, o.settle); err != nil {
		return nil, err
	}
	stop, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return nil, err
	}
	b0, m0 := c.traffic()
	cpu0, t0 := cpuTime(), time.Now()
	if err := sleep(ctx, o.steadyTime); err != nil {
		stop()
		return nil, err
	}
	b1, m1 := c.traffic()
	cpu1, el := cpuTime(), time.Since(t0).Seconds()
	if err := stop(); err != nil {
		return nil, err
	}
	heap1 := heapLive()
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return nil, err
		}
	}
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
	c.setLoss(o.loss)
	defer c.setLoss(0)
	return falseReports(ctx, c, n, o.lossTime)
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

// writeHeapProfile writes a heap profile (as of the last GC) to path,
// replacing the file of an earlier window.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("-memprofile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-memprofile: %w", err)
	}
	return nil
}

// startCPUProfile starts a CPU profile written to path, replacing the file
// of an earlier window, and returns what stops it; with no path it does
// nothing.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-steady-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-steady-cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("-steady-cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// settledHeap returns the live heap once it has stopped falling, for up to
// 10 s: the clusters of earlier scenarios in the process may still be
// letting go of memory (goroutines ending, connections closing) when this
// one starts, and what they free during the window would be taken off this
// cluster's heap. It does not remove the whole difference: in a table run
// with it, this library's heap at 128 was still 216 to 279 KiB a member,
// against 280 to 285 in runs of the steady scenario alone. So the steady
// scenario runs in a process of its own by default (runAlone), where this
// wait finds nothing to settle; it matters with -steady-alone=false.
func settledHeap(ctx context.Context) uint64 {
	h := heapLive()
	for range 20 {
		if sleep(ctx, 500*time.Millisecond) != nil {
			break
		}
		next := heapLive()
		if next+next/200 >= h { // fell by under 0.5%
			return min(h, next)
		}
		h = next
	}
	return h
}

// heapLive returns the bytes of the objects alive after a garbage
// collection (HeapAlloc then). Not HeapInuse, the spans holding them: how
// full the spans are depends on what ran in the process before, so the
// difference of two HeapInuse readings ran from 201 to 476 KiB a member for
// the same code at n = 128, lower when other scenarios had run before in
// the process (their freed objects leave spans with room that the new
// cluster fills without taking new spans), and the two libraries' ratio
// with it.
func heapLive() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
