// Command bench runs the same scenarios on this gossip library and on
// hashicorp/memberlist, with all members in one process on 127.0.0.1, and
// prints the median of each measurement and the ratio ours/memberlist.
//
//	cd bench && go run . -runs 3 -n 8,32
//
// Scenarios, each on a fresh cluster of n members, members 1..n-1 joining
// through member 0:
//
//	converge  time from the first member's start until every member sees n
//	detect    after convergence one member is closed abruptly (no leave):
//	          a crashed process on a live host, its listener and
//	          connections closed, dials to it refused; time until the
//	          first and the last other member drop it
//	silent    the same, but the member's traffic is black-holed instead,
//	          as when its host vanishes: nothing refused or closed, every
//	          message to or from it lost, its connections and dials hang
//	          (see silence.go); it goes on running, unobserved
//	data      after convergence one member changes its data; time until
//	          the first and the last other member see the new value
//	steady    after convergence and -settle, over -steady-time: bytes and
//	          messages sent, process CPU time, all per member per second,
//	          and live heap per member (after GC, less the heap before).
//	          The settle time lets memberlist's periodic push-pull start:
//	          each node's first comes 30-60 s after it starts. It runs in
//	          a process of its own (the bench run again as a child) unless
//	          -steady-alone=false: in one process with other scenarios,
//	          what their clusters left behind changed both libraries' heap
//	          figures by up to half.
//	loss      from convergence, -loss of all messages are lost for
//	          -loss-time: live members anyone reported dead, and the
//	          (observer, member) pairs in which that happened
//	pause     the last member runs in a process of its own (the bench run
//	          again as a child); after convergence it is stopped with
//	          SIGSTOP for -pause (default 3 × this library's FailureTime
//	          at n, for both libraries) and continued with SIGCONT: the
//	          time from the stop until the last other member drops it, the
//	          time from the continue until all see it again, and the live
//	          members it reports dead once resumed, and that the others
//	          report dead, until all see it again and a third of the pause
//	          (one FailureTime by default) has passed since the continue
//	hog       after convergence, -hog busy processes (default 3 per core,
//	          the machine oversubscribed three times) run for -hog-time:
//	          live members anyone reported dead, and the pairs, as in loss
//
// Each member's view is kept by the bench from the member's own membership
// events, with the time each event was handled (this library's Events
// channel, read by one goroutine per member, rebuilding the view from
// GetMembers on a resync; memberlist's EventDelegate). A member is in its
// own view; it drops another from it when it reports it dead (or left), and
// "sees n" when its view holds n members. Scenarios wait for a condition on
// these views, checked as each event comes, so that observing n members
// costs O(events), not a read of every full view. Steady drops the views
// once converged (their n² entries would count as heap); events are then
// read but ignored. Each wait gives up after -deadline and is reported as
// a timeout.
//
// This library runs with its defaults but for -interval
// (Config.GossipInterval) and -target (Config.FalseReportTarget), so that
// a comparison with another configuration can be run and labelled; both
// are recorded in the -json Options. memberlist always runs with
// DefaultLANConfig; a join that fails is tried again a second or two
// later until it succeeds (a seed serves at most 128 push-pulls at once),
// and the failures are reported as a warning.
//
// With -sim, the command runs nothing (unless -from is given too): it draws
// the root module's simulated runs (the JSON of internal/sim's -sim.out)
// against n, next to the failure-time formula, into -sim-plot, and prints
// their medians; see simplot.go.
//
// What is counted and lost: a message is a UDP packet, or on a TCP stream
// one run of writes not interrupted by data read back, that is one request
// or one response. Bytes are payload written to sockets, headers excluded.
// With loss p each message is lost with probability p, at the sender; a lost
// message on a stream is swallowed whole and the connection stalls until
// the peer's timeout. For this library every gossip round is one request and
// one response over TCP, so a round fails with probability 1-(1-p)². For
// memberlist most messages are UDP packets, and its TCP push-pull and
// fallback probes lose messages the same way.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gossipfd/gossip"
)

func main() {
	if code, ok := runChild(); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	sizes      []int
	runs       int
	libs       []string
	scenarios  []string
	opts       options
	jsonPath   string
	plotPath   string
	markdown   bool
	cpuProfile string
	// steadyAlone runs each steady window in a child process of its own
	// (see runAlone).
	steadyAlone bool
	from        []string
	sim         []string // simulation results to plot (-sim)
	simPlot     string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	sizes := fs.String("n", "8,32,128", "comma-separated cluster `sizes`")
	fs.IntVar(&c.runs, "runs", 3, "runs of each scenario; medians are reported")
	libs := fs.String("libs", libOurs+","+libMemberlist, "comma-separated libraries")
	scenarios := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios")
	fs.DurationVar(&c.opts.lossTime, "loss-time", 60*time.Second, "how long messages are lost in the loss scenario")
	fs.Float64Var(&c.opts.loss, "loss", 0.1, "share of messages lost in the loss scenario")
	fs.DurationVar(&c.opts.pause, "pause", 0, "how long the pause scenario stops its member (0: 3 × this library's FailureTime at n, for both libraries)")
	fs.IntVar(&c.opts.hogs, "hog", 0, "busy processes the hog scenario runs (0: 3 per core)")
	fs.DurationVar(&c.opts.hogTime, "hog-time", 60*time.Second, "how long the hog scenario keeps the cores busy and counts false reports")
	fs.DurationVar(&c.opts.steadyTime, "steady-time", 10*time.Second, "measurement window of the steady scenario")
	fs.DurationVar(&c.opts.settle, "settle", 30*time.Second, "wait after convergence before the steady window (memberlist's first push-pull comes 30-60 s after start)")
	fs.DurationVar(&c.opts.deadline, "deadline", 120*time.Second, "give up waiting for an event after this long")
	fs.DurationVar(&c.opts.interval, "interval", 0, "this library's Config.GossipInterval (0: the library's default)")
	fs.Float64Var(&c.opts.target, "target", 0, "this library's Config.FalseReportTarget (0: the library's default, Nfailures decides)")
	fs.StringVar(&c.jsonPath, "json", "", "write the results as JSON to `file` (- for standard output)")
	fs.StringVar(&c.plotPath, "plot", "", "draw converge, detect and data times against n into a PNG `file`")
	fs.BoolVar(&c.markdown, "md", false, "print the table in markdown")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file` (of this process: with -steady-alone, not of the steady windows)")
	fs.BoolVar(&c.steadyAlone, "steady-alone", true, "run each steady window in a process of its own, so that its CPU and heap are of that one cluster and not also of what earlier scenarios' clusters leave behind")
	fs.StringVar(&c.opts.cpuProfile, "steady-cpuprofile", "", "write a CPU profile of each steady window to `file` (each run replaces the last one's; use -runs 1 and -libs to pick one)")
	fs.StringVar(&c.opts.memProfile, "memprofile", "", "write a heap profile to `file` at the end of each steady window, after the GC that measures heap (each run replaces the last one's; use -runs 1 and -libs to pick one)")
	from := fs.String("from", "", "run nothing: report the samples of earlier -json `files` (comma-separated) together")
	sim := fs.String("sim", "", "run nothing: draw the simulation JSON `files` (comma-separated) of the root module's -sim.out or -model.out into -sim-plot, and print their medians")
	fs.StringVar(&c.simPlot, "sim-plot", "simulation.png", "the PNG `file` -sim draws")
	quick := fs.Bool("quick", false, "smoke run: n=4, one run, short windows (explicit flags still apply)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["n"] {
			*sizes = "4"
		}
		if !set["runs"] {
			c.runs = 1
		}
		if !set["loss-time"] {
			c.opts.lossTime = 10 * time.Second
		}
		if !set["steady-time"] {
			c.opts.steadyTime = 3 * time.Second
		}
		if !set["settle"] {
			c.opts.settle = 2 * time.Second
		}
		if !set["pause"] {
			c.opts.pause = 15 * time.Second
		}
		if !set["hog-time"] {
			c.opts.hogTime = 5 * time.Second
		}
	}
	var err error
	if c.sizes, err = parseSizes(*sizes); err != nil {
		return c, err
	}
	c.from = splitList(*from)
	c.sim = splitList(*sim)
	c.libs = splitList(*libs)
	for _, l := range c.libs {
		if l != libOurs && l != libMemberlist {
			return c, fmt.Errorf("-libs: unknown library %q", l)
		}
	}
	c.scenarios = splitList(*scenarios)
	for _, s := range c.scenarios {
		if !slices.Contains(allScenarios, s) {
			return c, fmt.Errorf("-scenarios: unknown scenario %q", s)
		}
	}
	switch {
	case c.runs < 1:
		return c, fmt.Errorf("-runs must be at least 1")
	case c.opts.loss < 0 || c.opts.loss > 1:
		return c, fmt.Errorf("-loss must be between 0 and 1")
	case c.opts.deadline <= 0 || c.opts.lossTime <= 0 || c.opts.steadyTime <= 0 || c.opts.hogTime <= 0 || c.opts.settle < 0 || c.opts.pause < 0:
		return c, fmt.Errorf("durations must be positive")
	case c.opts.hogs < 0:
		return c, fmt.Errorf("-hog must not be negative")
	case c.opts.interval < 0:
		return c, fmt.Errorf("-interval must not be negative")
	case c.opts.target < 0 || c.opts.target >= 1:
		return c, fmt.Errorf("-target must be at least 0 and below 1")
	}
	return c, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			return nil, fmt.Errorf("-n: bad size %q (want integers of 2 or more)", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-n: no sizes")
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, "bench:", err)
		}
		return 2
	}
	if len(cfg.sim) > 0 {
		if err := plotSim(cfg.sim, cfg.simPlot, stdout, cfg.markdown); err != nil {
			fmt.Fprintln(stderr, "bench: -sim:", err)
			return 1
		}
		if len(cfg.from) == 0 {
			return 0
		}
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	started := time.Now()
	if cfg.runs > 0 && len(cfg.from) == 0 && slices.Contains(cfg.libs, libOurs) {
		fmt.Fprintf(stderr, "ours: %s\n", describeOurs(cfg.opts))
	}
	if cfg.runs > 0 && len(cfg.from) == 0 {
		need := filesPerMember * slices.Max(cfg.sizes)
		limit, err := raiseFileLimit()
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "warning: %v; %d members may need %d open files\n", err, slices.Max(cfg.sizes), need)
		case limit < uint64(need):
			fmt.Fprintf(stderr, "warning: open file limit %d; %d members may need %d\n", limit, slices.Max(cfg.sizes), need)
		}
	}
	baseline := runtime.NumGoroutine()
	var samples []sample
	failed := false
	if len(cfg.from) > 0 {
		cfg.runs = 0 // report only
		for _, path := range cfg.from {
			got, err := readSamples(path)
			if err != nil {
				fmt.Fprintln(stderr, "bench:", err)
				return 1
			}
			samples = append(samples, got...)
		}
	}
	// Runs outermost and libraries innermost, so that a drift in the
	// machine's load falls on both libraries alike.
	for r := 1; r <= cfg.runs && ctx.Err() == nil; r++ {
		for _, n := range cfg.sizes {
			for _, sc := range cfg.scenarios {
				for _, lib := range cfg.libs {
					if ctx.Err() != nil {
						break
					}
					t0 := time.Now()
					warn := func(w string) {
						fmt.Fprintf(stderr, "warning: run %d n=%d %s %s: %s\n", r, n, lib, sc, w)
					}
					var got []sample
					var err error
					if sc == scSteady && cfg.steadyAlone {
						got, err = runAlone(ctx, lib, sc, n, cfg.opts, warn)
					} else {
						got, err = runScenario(ctx, lib, sc, n, cfg.opts, warn)
					}
					for i := range got {
						got[i].Run = r
					}
					samples = append(samples, got...)
					fmt.Fprintf(stderr, "run %d/%d n=%d %s %s: %s (%.0fs)\n", r, cfg.runs, n, lib, sc, describe(got, err), time.Since(t0).Seconds())
					if err != nil {
						failed = true
					}
					if leaked := settleGoroutines(baseline, 10*time.Second); leaked > 0 {
						fmt.Fprintf(stderr, "warning: %d goroutines still running after the cluster closed\n", leaked)
					}
				}
			}
		}
	}
	rows := summarize(samples)
	if err := writeTable(stdout, rows, cfg.markdown); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	fmt.Fprintf(stderr, "total %s\n", time.Since(started).Round(time.Second))
	if cfg.jsonPath != "" {
		res := results{
			Date:       started.UTC().Format("2006-01-02"),
			Command:    "go run . " + strings.Join(args, " "),
			GoVersion:  runtime.Version(),
			NumCPU:     runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0),
			Options: map[string]string{
				"loss": fmt.Sprint(cfg.opts.loss), "loss-time": cfg.opts.lossTime.String(),
				"steady-time": cfg.opts.steadyTime.String(), "settle": cfg.opts.settle.String(), "steady-alone": fmt.Sprint(cfg.steadyAlone),
				"deadline": cfg.opts.deadline.String(),
				"pause":    cfg.opts.pause.String(), "hog": fmt.Sprint(hogCount(cfg.opts)), "hog-time": cfg.opts.hogTime.String(),
				"interval": oursInterval(cfg.opts).String(), "target": fmt.Sprint(cfg.opts.target),
			},
			Rows: rows, Samples: samples,
		}
		if err := writeJSONFile(cfg.jsonPath, stdout, res); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
	}
	if cfg.plotPath != "" {
		if err := writePlot(cfg.plotPath, rows); err != nil {
			fmt.Fprintln(stderr, "bench: plot:", err)
			return 1
		}
	}
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

func writeJSONFile(path string, stdout io.Writer, res results) error {
	if path == "-" {
		return writeJSON(stdout, res)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeJSON(f, res); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readSamples returns the samples of a file written by -json.
func readSamples(path string) ([]sample, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r.Samples, nil
}

// describe summarises one scenario's outcome for the progress log.
func describe(got []sample, err error) string {
	var parts []string
	for _, s := range got {
		v := formatNumber(s.Value)
		if s.TimedOut {
			v = "timeout"
		}
		parts = append(parts, s.Metric+"="+v)
	}
	if err != nil {
		parts = append(parts, "error: "+err.Error())
	}
	return strings.Join(parts, ", ")
}

// oursInterval is the gossip interval this library runs with.
func oursInterval(o options) time.Duration {
	if o.interval == 0 {
		return gossip.Tgossip
	}
	return o.interval
}

// describeOurs says how this library is configured, for the progress log.
func describeOurs(o options) string {
	interval := fmt.Sprintf("interval %v", oursInterval(o))
	if o.interval == 0 {
		interval += " (default)"
	}
	target := fmt.Sprintf("false report target %v", o.target)
	if o.target == 0 {
		target = fmt.Sprintf("no false report target (default: Nfailures %d)", gossip.Nfailures)
	}
	return interval + ", " + target
}

// settleGoroutines waits up to wait for the goroutine count to fall back to
// baseline and returns how many more there still are.
func settleGoroutines(baseline int, wait time.Duration) int {
	end := time.Now().Add(wait)
	for {
		extra := runtime.NumGoroutine() - baseline
		if extra <= 0 || time.Now().After(end) {
			return max(extra, 0)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
