package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/gossipfd/gossip/internal/procs"
)

// runCrash runs the example command as o.n processes and, o.repeat times,
// kills o.kill of them with SIGKILL (the seed in the first round), waits
// until every survivor has dropped them, and restarts them at the same
// addresses with new endpoints.
func runCrash(ctx context.Context, o options, r *report) error {
	if o.kill < 1 || o.kill >= o.n {
		return fmt.Errorf("-kill %d: must be from 1 to n-1", o.kill)
	}
	dir, err := os.MkdirTemp("", "faults-crash-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := procs.Build(ctx, ".", dir)
	if err != nil {
		return err
	}
	ports, err := procs.FreePorts(2 * o.n)
	if err != nil {
		return err
	}
	ms := make([]procs.Member, o.n)
	ps := make([]*procs.Proc, o.n)
	defer func() {
		for _, p := range ps {
			if p != nil {
				p.Kill()
			}
		}
	}()
	for i := range ms {
		ms[i] = procs.Member{
			Bin: bin, Interval: o.interval, Log: io.Discard,
			Addr:     "127.0.0.1:" + strconv.Itoa(ports[i]),
			HTTP:     "127.0.0.1:" + strconv.Itoa(ports[o.n+i]),
			Endpoint: fmt.Sprintf("http://member-%d/life-0", i),
		}
		if i > 0 {
			ms[i].Join = ms[0].Addr
		}
		if ps[i], err = procs.Start(ms[i]); err != nil {
			return err
		}
	}
	// agree waits until every observer's view is exactly the members listed,
	// with their current endpoints.
	agree := func(observers, members []int) (time.Duration, error) {
		want := procs.View{}
		for _, i := range members {
			want[ms[i].Addr] = ms[i].Endpoint
		}
		start := time.Now()
		for {
			ok := true
			for _, i := range observers {
				v, err := procs.Members(ctx, ms[i].HTTP)
				if err != nil || fmt.Sprint(v) != fmt.Sprint(want) {
					ok = false
					break
				}
			}
			if ok {
				return time.Since(start), nil
			}
			if time.Since(start) > converge(o) {
				return 0, fmt.Errorf("views did not settle on %d members within %v", len(members), converge(o))
			}
			if err := sleep(ctx, 2*time.Millisecond); err != nil {
				return 0, err
			}
		}
	}
	every := make([]int, o.n)
	for i := range every {
		every[i] = i
	}
	if _, err := agree(every, every); err != nil {
		return err
	}
	tfail := time.Duration(gossip.Nfailures*spreadRounds(o.n)) * o.interval
	r.add("member processes", fmt.Sprintf("%d (example command), interval %v, RPC timeout %v", o.n, o.interval, gossip.Trpc))
	r.add("FailureTime(n)", tfail)
	for round := 0; round < o.repeat; round++ {
		// Kill o.kill consecutive members, the seed in the first round.
		killed := map[int]bool{}
		var dead, alive []int
		for k := 0; k < o.kill; k++ {
			i := (round*o.kill + k) % o.n
			killed[i] = true
			dead = append(dead, i)
		}
		for i := range ms {
			if !killed[i] {
				alive = append(alive, i)
			}
		}
		for _, i := range dead {
			ps[i].Kill()
		}
		detect, err := agree(alive, alive)
		if err != nil {
			return fmt.Errorf("round %d, after killing %v: %w", round+1, dead, err)
		}
		for _, i := range dead {
			ms[i].Endpoint = fmt.Sprintf("http://member-%d/life-%d", i, round+1)
			if ps[i], err = procs.Start(ms[i]); err != nil {
				return err
			}
		}
		// Time the return from the moment the restarted members answer.
		up := time.Now()
		for _, i := range dead {
			for {
				if _, err := procs.Members(ctx, ms[i].HTTP); err == nil {
					break
				}
				if time.Since(up) > converge(o) {
					return fmt.Errorf("restarted member %d does not answer", i)
				}
				if err := sleep(ctx, 2*time.Millisecond); err != nil {
					return err
				}
			}
		}
		back, err := agree(every, every)
		if err != nil {
			return fmt.Errorf("round %d, after restarting %v: %w", round+1, dead, err)
		}
		seed := ""
		if killed[0] {
			seed = " (the seed among them)"
		}
		r.add(fmt.Sprintf("round %d: SIGKILL %d%s", round+1, len(dead), seed),
			fmt.Sprintf("dropped by all survivors after %v (%.2f × FailureTime); restarted, back everywhere with new endpoints %v (%.0f rounds) after answering",
				detect.Round(time.Millisecond), float64(detect)/float64(tfail), back.Round(time.Millisecond), float64(back)/float64(o.interval)))
	}
	return nil
}

// spreadRounds is ceil(log2 n) + 1, as in the package's FailureTime.
func spreadRounds(n int) int {
	s := 1
	for m := 1; m < n; m *= 2 {
		s++
	}
	return s
}
