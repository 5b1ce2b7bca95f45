// Command faults runs gossip members under injected faults for as long as
// asked and prints what it measured, as a Markdown table:
//
//	go run ./faults -scenario loss -n 32 -loss 0.1 -duration 10m
//	go run ./faults -scenario partition -n 32 -repeat 3
//	go run ./faults -scenario overload -n 32 -stall 5s
//	go run ./faults -scenario crash -n 8 -kill 2 -repeat 5
//
// The loss, partition and overload scenarios run in-process members on a
// fault-injecting network (internal/faultnet) over real TCP on loopback; the
// crash scenario builds the example command and runs it as processes, killed
// with SIGKILL and restarted at the same address. Run it from the module's
// directory. The scenarios:
//
//   - loss: every message is lost with probability -loss for -duration;
//     counts false reports (a live member declared dead by another) and
//     compares them with what FalseReportProbability predicts.
//   - partition: splits the members in two halves, holds the split until
//     each half has forgotten the other (past the cleanup time), heals it and
//     times the re-merge; -repeat times.
//   - overload: stalls one member's network for -stall; counts false reports
//     among the others and the goroutines and connections at the peak.
//   - crash: kills -kill member processes, times until every survivor has
//     dropped them and, once restarted with new endpoints, until every member
//     sees them back; -repeat times.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/gossipfd/gossip/internal/faultnet"
	"github.com/sirupsen/logrus"
)

type options struct {
	scenario string
	n        int
	interval time.Duration
	rpcRound int
	duration time.Duration
	loss     float64
	mode     string
	delay    time.Duration
	stall    time.Duration
	kill     int
	repeat   int
	seed     uint64
}

func main() {
	var o options
	flag.StringVar(&o.scenario, "scenario", "loss", "`name`: loss, partition, overload or crash")
	flag.IntVar(&o.n, "n", 32, "number of members")
	flag.DurationVar(&o.interval, "interval", 20*time.Millisecond, "gossip interval")
	flag.IntVar(&o.rpcRound, "trpc-rounds", 5, "RPC timeout in gossip intervals (5 as with the package defaults)")
	flag.DurationVar(&o.duration, "duration", time.Minute, "how long to run the loss scenario")
	flag.Float64Var(&o.loss, "loss", 0.1, "share of messages lost")
	flag.StringVar(&o.mode, "mode", "blackhole", "how a lost message shows: blackhole (the peer waits, the RPC times out) or reset (the connection is closed)")
	flag.DurationVar(&o.delay, "delay", 0, "delay added to every message, plus up to as much again at random")
	flag.DurationVar(&o.stall, "stall", 0, "how long the overload scenario stalls a member; 0 means 20 RPC timeouts")
	flag.IntVar(&o.kill, "kill", 2, "member processes the crash scenario kills at once")
	flag.IntVar(&o.repeat, "repeat", 3, "rounds of the partition and crash scenarios")
	flag.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "seed of the fault injection")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &report{}
	r.add("command", "go run ./faults "+strings.Join(os.Args[1:], " "))
	var err error
	switch o.scenario {
	case "loss":
		err = runLoss(ctx, o, r)
	case "partition":
		err = runPartition(ctx, o, r)
	case "overload":
		err = runOverload(ctx, o, r)
	case "crash":
		err = runCrash(ctx, o, r)
	default:
		err = fmt.Errorf("unknown scenario %q", o.scenario)
	}
	r.print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
}

// report collects the figures to print, in order.
type report struct{ rows [][2]string }

func (r *report) add(name string, value any) {
	r.rows = append(r.rows, [2]string{name, fmt.Sprint(value)})
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, value)
}

func (r *report) print(w io.Writer) {
	fmt.Fprintln(w, "| measure | value |")
	fmt.Fprintln(w, "|---|---|")
	for _, row := range r.rows {
		fmt.Fprintf(w, "| %s | %s |\n", row[0], strings.ReplaceAll(row[1], "|", `\|`))
	}
}

// cluster is n in-process members on a fault-injecting network.
type cluster struct {
	fn *faultnet.Net
	gs []*gossip.Gossip
}

func startCluster(o options) (*cluster, error) {
	c := &cluster{fn: faultnet.New(gossip.TCPTransport{}, o.seed)}
	log := logrus.New()
	log.SetOutput(io.Discard)
	for i := 0; i < o.n; i++ {
		cfg := gossip.Config{
			Addr:           "127.0.0.1:0",
			GossipInterval: o.interval,
			RPCTimeout:     time.Duration(o.rpcRound) * o.interval,
			Logger:         log,
		}
		cfg.Transport = c.fn.Node(cfg.Addr)
		if i > 0 {
			cfg.Seeds = []string{c.gs[0].Addr()}
		}
		g, err := gossip.NewWithConfig(cfg)
		if err == nil {
			err = g.Start()
		}
		if err != nil {
			c.close()
			return nil, err
		}
		c.gs = append(c.gs, g)
	}
	return c, nil
}

func (c *cluster) close() {
	for _, g := range c.gs {
		g.Close()
	}
}

func (c *cluster) addrs() []string {
	out := make([]string, len(c.gs))
	for i, g := range c.gs {
		out[i] = g.Addr()
	}
	return out
}

// waitView waits until every member of observers sees exactly the members
// of want, and returns how long it took.
func waitView(ctx context.Context, observers []*gossip.Gossip, want []string, within time.Duration) (time.Duration, error) {
	start := time.Now()
	set := make(map[string]bool, len(want))
	for _, a := range want {
		set[a] = true
	}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		ok := true
		for _, g := range observers {
			ms := g.GetMembers()
			if len(ms) != len(set) {
				ok = false
				break
			}
			for _, m := range ms {
				if !set[m.Addr] {
					ok = false
					break
				}
			}
			if !ok {
				break
			}
		}
		if ok {
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return 0, fmt.Errorf("views did not reach the %d members wanted within %v", len(want), within)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

// resources is the process's goroutines and live heap.
type resources struct {
	goroutines int
	heap       uint64
}

func measure() resources {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return resources{runtime.NumGoroutine(), m.HeapAlloc}
}

func (r resources) String() string {
	return fmt.Sprintf("%d goroutines, %.1f MiB heap", r.goroutines, float64(r.heap)/(1<<20))
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errFalseReports = errors.New("false reports")
