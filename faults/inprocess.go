package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/gossipfd/gossip/internal/faultnet"
)

// deathWatch polls the views of the members and records every time one
// stops seeing another while both are healthy: a false report. A member
// declared dead stays so for at least the cleanup time (2 × FailureTime)
// unless it restarts, so polling once per gossip interval misses none.
type deathWatch struct {
	mu      sync.Mutex
	healthy map[string]bool
	reports []string
	times   []time.Time // when each report was seen
	stop    chan struct{}
	done    chan struct{}
}

func watchDeaths(gs []*gossip.Gossip, period time.Duration) *deathWatch {
	w := &deathWatch{healthy: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, g := range gs {
		w.healthy[g.Addr()] = true
	}
	go w.run(gs, period)
	return w
}

func (w *deathWatch) setHealthy(addr string, ok bool) {
	w.mu.Lock()
	w.healthy[addr] = ok
	w.mu.Unlock()
}

func (w *deathWatch) run(gs []*gossip.Gossip, period time.Duration) {
	defer close(w.done)
	seen := make(map[string]map[string]bool)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		for _, g := range gs {
			obs := g.Addr()
			if !w.healthy[obs] {
				delete(seen, obs)
				continue
			}
			now := map[string]bool{}
			for _, m := range g.GetMembers() {
				now[m.Addr] = true
			}
			for addr := range seen[obs] {
				if !now[addr] && w.healthy[addr] {
					w.reports = append(w.reports, fmt.Sprintf("%s dropped %s", obs, addr))
					w.times = append(w.times, time.Now())
				}
			}
			seen[obs] = now
		}
		w.mu.Unlock()
	}
}

func (w *deathWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.reports)
}

// reportTimes returns when each report was seen.
func (w *deathWatch) reportTimes() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.times...)
}

// lagWatch measures how late a timer fires in this process: when the
// machine is too busy to run the members on time, every member's heartbeat
// stops for as long, and a lag near FailureTime makes false reports that no
// message loss explains.
type lagWatch struct {
	mu     sync.Mutex
	max    time.Duration
	spikes []time.Time // when a lag over the threshold ended
	thresh time.Duration
	stop   chan struct{}
	done   chan struct{}
}

func watchLag(period, thresh time.Duration) *lagWatch {
	l := &lagWatch{thresh: thresh, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(period)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				now := time.Now() // the tick's own time is when it was due, not when it ran
				lag := now.Sub(last) - period
				last = now
				l.mu.Lock()
				l.max = max(l.max, lag)
				if lag > l.thresh {
					l.spikes = append(l.spikes, now)
				}
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *lagWatch) finish() (maxLag time.Duration, spikes []time.Time) {
	close(l.stop)
	<-l.done
	return l.max, l.spikes
}

// nearSpike counts the times that fall within window after a spike.
func nearSpike(times, spikes []time.Time, window time.Duration) int {
	n := 0
	for _, t := range times {
		for _, s := range spikes {
			if !t.Before(s) && t.Sub(s) <= window {
				n++
				break
			}
		}
	}
	return n
}

func (w *deathWatch) finish() []string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.reports...)
}

func parseMode(s string) (faultnet.Mode, error) {
	switch s {
	case "blackhole":
		return faultnet.Blackhole, nil
	case "reset":
		return faultnet.Reset, nil
	}
	return 0, fmt.Errorf("unknown -mode %q", s)
}

// converge bounds every wait for views to settle.
func converge(o options) time.Duration { return max(time.Minute, 1000*o.interval) }

func runLoss(ctx context.Context, o options, r *report) error {
	mode, err := parseMode(o.mode)
	if err != nil {
		return err
	}
	before := measure()
	c, err := startCluster(o)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := waitView(ctx, c.gs, c.addrs(), converge(o)); err != nil {
		return err
	}
	loaded := measure()
	c.fn.SetLoss(o.loss, mode)
	c.fn.SetDelay(o.delay, o.delay)
	w := watchDeaths(c.gs, o.interval)
	tfail0 := c.gs[0].FailureTime()
	lag := watchLag(o.interval/4, tfail0/3)
	start := time.Now()
	tick := time.NewTicker(o.duration / 10)
	var maxG int
	for end := start.Add(o.duration); time.Now().Before(end) && ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case <-tick.C:
			maxG = max(maxG, runtime.NumGoroutine())
			s := c.fn.Stats()
			fmt.Fprintf(os.Stderr, "%v: %d messages, %d lost, %d false reports so far\n", time.Since(start).Round(time.Second), s.Writes, s.Lost, w.count())
		}
	}
	tick.Stop()
	times := w.reportTimes()
	reports := w.finish()
	maxLag, spikes := lag.finish()
	elapsed := time.Since(start)
	s := c.fn.Stats()
	during := measure()
	c.fn.SetLoss(0, mode)
	c.fn.SetDelay(0, 0)

	tfail := c.gs[0].FailureTime()
	periods := float64(elapsed) / float64(tfail)
	perPeriod := gossip.FalseReportProbability(o.n, o.loss, gossip.Nfailures)
	r.add("members", o.n)
	r.add("gossip interval / RPC timeout", fmt.Sprintf("%v / %v", o.interval, time.Duration(o.rpcRound)*o.interval))
	r.add("loss (mode)", fmt.Sprintf("%.1f%% (%s)", 100*o.loss, mode))
	if o.delay > 0 {
		r.add("delay per message", fmt.Sprintf("%v to %v", o.delay, 2*o.delay))
	}
	r.add("run", fmt.Sprintf("%v, %.0f rounds per member", elapsed.Round(time.Second), float64(elapsed)/float64(o.interval)))
	r.add("messages (lost)", fmt.Sprintf("%d (%d, %.2f%%)", s.Writes, s.Lost, 100*float64(s.Lost)/float64(max(s.Writes, 1))))
	r.add("load held", fmt.Sprintf("%.0f messages/s, %.1f per member per round", float64(s.Writes)/elapsed.Seconds(), float64(s.Writes)/float64(o.n)/(float64(elapsed)/float64(o.interval))))
	r.add("failure time", fmt.Sprintf("%v (%.0f failure times in the run)", tfail, periods))
	r.add("false reports", len(reports))
	r.add("scheduling lag (timer lateness in this process)", fmt.Sprintf("at most %v; %d lags over FailureTime/3; %d of the false reports came within 2 × FailureTime after one",
		maxLag.Round(time.Millisecond), len(spikes), nearSpike(times, spikes, 2*tfail0)))
	r.add("predicted false reports", fmt.Sprintf("FalseReportProbability(%d, %.2f, %d) = %.2g per failure time, × %.0f = %.2g over the run", o.n, o.loss, gossip.Nfailures, perPeriod, periods, perPeriod*periods))
	r.add("connection ends open at most (both ends counted)", s.MaxOpen)
	r.add("resources: before start / converged / end of run", fmt.Sprintf("%v / %v / %v (at most %d goroutines)", before, loaded, during, maxG))
	for i, rep := range reports {
		if i == 10 {
			r.add("false report", fmt.Sprintf("… %d more", len(reports)-10))
			break
		}
		r.add("false report", rep)
	}
	if _, err := waitView(ctx, c.gs, c.addrs(), converge(o)); err != nil {
		return fmt.Errorf("after the loss: %w", err)
	}
	if len(reports) > 0 {
		return errFalseReports
	}
	return nil
}

func runPartition(ctx context.Context, o options, r *report) error {
	before := measure()
	c, err := startCluster(o)
	if err != nil {
		return err
	}
	defer c.close()
	all := c.addrs()
	if _, err := waitView(ctx, c.gs, all, converge(o)); err != nil {
		return err
	}
	left, right := c.gs[:o.n/2], c.gs[o.n/2:]
	sides := map[string]int{}
	for _, g := range right {
		sides[g.Addr()] = 1
	}
	r.add("members", fmt.Sprintf("%d, split %d/%d", o.n, len(left), len(right)))
	r.add("gossip interval / RPC timeout", fmt.Sprintf("%v / %v", o.interval, time.Duration(o.rpcRound)*o.interval))
	r.add("failure time, cleanup time (whole cluster)", fmt.Sprintf("%v, %v", c.gs[0].FailureTime(), 2*c.gs[0].FailureTime()))
	for round := 1; round <= o.repeat; round++ {
		c.fn.Partition(sides)
		cut := time.Now()
		if _, err := waitView(ctx, left, addrsOf(left), converge(o)); err != nil {
			return fmt.Errorf("left side: %w", err)
		}
		if _, err := waitView(ctx, right, addrsOf(right), converge(o)); err != nil {
			return fmt.Errorf("right side: %w", err)
		}
		dropped := time.Since(cut)
		// Hold the split past the cleanup time: 2 × FailureTime after the
		// deaths, with the FailureTime of the half, plus a margin.
		hold := dropped + 2*c.gs[0].FailureTime() + 10*o.interval
		if err := sleep(ctx, hold-time.Since(cut)); err != nil {
			return err
		}
		held := time.Since(cut)
		c.fn.Heal()
		took, err := waitView(ctx, c.gs, all, converge(o))
		if err != nil {
			return fmt.Errorf("after healing: %w", err)
		}
		r.add(fmt.Sprintf("round %d", round), fmt.Sprintf("halves dropped each other in %v; split held %v; re-merged %v after healing (%.0f rounds)",
			dropped.Round(time.Millisecond), held.Round(time.Millisecond), took.Round(time.Millisecond), float64(took)/float64(o.interval)))
	}
	after := measure()
	r.add("resources: before start / end", fmt.Sprintf("%v / %v", before, after))
	return nil
}

func addrsOf(gs []*gossip.Gossip) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Addr()
	}
	return out
}

func runOverload(ctx context.Context, o options, r *report) error {
	c, err := startCluster(o)
	if err != nil {
		return err
	}
	defer c.close()
	all := c.addrs()
	if _, err := waitView(ctx, c.gs, all, converge(o)); err != nil {
		return err
	}
	stall := o.stall
	if stall == 0 {
		stall = 20 * time.Duration(o.rpcRound) * o.interval
	}
	stalled := c.gs[len(c.gs)/2]
	var healthy []*gossip.Gossip
	for _, g := range c.gs {
		if g != stalled {
			healthy = append(healthy, g)
		}
	}
	before := peak(ctx, 50*o.interval)
	w := watchDeaths(c.gs, o.interval)
	w.setHealthy(stalled.Addr(), false)
	s0 := c.fn.Stats()
	c.fn.Stall(stalled.Addr())
	during := peak(ctx, stall)
	s := c.fn.Stats()
	dropped, derr := waitView(ctx, healthy, addrsOf(healthy), converge(o))
	c.fn.Resume(stalled.Addr())
	resumed := time.Now()
	w.setHealthy(stalled.Addr(), true)
	_, err = waitView(ctx, c.gs, all, converge(o))
	back := time.Since(resumed)
	reports := w.finish()
	after := peak(ctx, 50*o.interval)

	r.add("members", o.n)
	r.add("gossip interval / RPC timeout", fmt.Sprintf("%v / %v", o.interval, time.Duration(o.rpcRound)*o.interval))
	r.add("stall of one member's network", stall)
	if derr == nil {
		r.add("the stalled member dropped by all others", fmt.Sprintf("yes (views settled %v after the stall's end)", dropped.Round(time.Millisecond)))
	}
	r.add("back in every view after resuming", back.Round(time.Millisecond))
	r.add("false reports among the others", len(reports))
	r.add("goroutines (most over 50 rounds) before / during / after", fmt.Sprintf("%d / %d / %d", before, during, after))
	r.add("connection ends open (both ends counted): before the stall / at most", fmt.Sprintf("%d / %d", s0.Open, s.MaxOpen))
	r.add("operations that waited on the stalled member", s.StallWait)
	if err != nil {
		return fmt.Errorf("after resuming: %w", err)
	}
	if len(reports) > 0 {
		return errFalseReports
	}
	return derr
}

// peak returns the most goroutines counted over d.
func peak(ctx context.Context, d time.Duration) int {
	most := runtime.NumGoroutine()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			return most
		case <-t.C:
			most = max(most, runtime.NumGoroutine())
		}
	}
	return most
}
