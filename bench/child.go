package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/hashicorp/memberlist"
	"github.com/sirupsen/logrus"
)

// The bench runs itself again as a child process to run one member in a
// process of its own, which the pause scenario stops with SIGSTOP, and to
// keep cores busy, for the hog scenario. The environment variable childEnv
// holds the child's childSpec in JSON; main (and the tests' TestMain) run
// the child when it is set. A child ends when its standard input ends, and
// is killed if the bench dies (Linux's parent-death signal).
const childEnv = "GOSSIP_BENCH_CHILD"

// The kinds of child.
const (
	childMember = "member" // one member, reporting its view on stdout
	childSpin   = "spin"   // one thread spinning
	childRun    = "run"    // the bench itself, with Args (see runAlone)
)

// childSpec says what a child runs.
type childSpec struct {
	Mode     string
	Lib      string        `json:",omitempty"` // member: the library
	Seed     string        `json:",omitempty"` // member: the address it joins through
	Name     string        `json:",omitempty"` // member: memberlist's node name
	Interval time.Duration `json:",omitempty"` // member: this library's GossipInterval
	Target   float64       `json:",omitempty"` // member: this library's FalseReportTarget
	Args     []string      `json:",omitempty"` // run: the command line
}

// childLine is one line a member child writes on its standard output: its
// own identity once it runs, and each change of its view.
type childLine struct {
	Ev      string            // "self", "set", "gone" or "reset"
	ID      string            `json:",omitempty"`
	Data    string            `json:",omitempty"`
	Members map[string]string `json:",omitempty"` // reset
}

// runChild runs the child the environment asks for, if any, and returns its
// exit code; ok is false if this process is no child.
func runChild() (code int, ok bool) {
	env := os.Getenv(childEnv)
	if env == "" {
		return 0, false
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(env), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "bench child: %s: %v\n", childEnv, err)
		return 2, true
	}
	var err error
	switch spec.Mode {
	case childSpin:
		spin()
	case childMember:
		err = runMember(spec, os.Stdin, os.Stdout)
	case childRun:
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return run(ctx, spec.Args, io.Discard, os.Stderr), true
	default:
		err = fmt.Errorf("unknown mode %q", spec.Mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1, true
	}
	return 0, true
}

// spin keeps one core busy until standard input ends.
func spin() {
	runtime.GOMAXPROCS(1)
	var stop sync.WaitGroup
	stop.Add(1)
	go func() {
		defer stop.Done()
		io.Copy(io.Discard, os.Stdin)
	}()
	done := make(chan struct{})
	go func() {
		stop.Wait()
		close(done)
	}()
	for x := 0; ; x++ {
		if x%(1<<20) == 0 {
			select {
			case <-done:
				return
			default:
			}
		}
	}
}

// lineSink writes a member's view changes as childLines.
type lineSink struct {
	mu  sync.Mutex // one line at a time
	enc *json.Encoder
}

func (s *lineSink) write(l childLine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enc.Encode(l) // a closed stdout means the bench is gone; so will we be
}

func (s *lineSink) set(id, data string) { s.write(childLine{Ev: "set", ID: id, Data: data}) }
func (s *lineSink) remove(id string)    { s.write(childLine{Ev: "gone", ID: id}) }
func (s *lineSink) reset(members map[string]string) {
	s.write(childLine{Ev: "reset", Members: members})
}

// runMember runs one member of spec.Lib joining through spec.Seed, writes
// its identity and its view's changes to out, and closes it, without
// leaving, when in ends.
func runMember(spec childSpec, in io.Reader, out io.Writer) error {
	sink := &lineSink{enc: json.NewEncoder(out)}
	switch spec.Lib {
	case libOurs:
		l := logrus.New()
		l.SetOutput(io.Discard)
		g, err := gossip.NewWithConfig(gossip.Config{
			Addr:              "127.0.0.1:0",
			Seeds:             []string{spec.Seed},
			Logger:            l,
			GossipInterval:    spec.Interval,
			FalseReportTarget: spec.Target,
		})
		if err != nil {
			return err
		}
		events := g.Events()
		if err := g.Start(); err != nil {
			g.Close()
			return err
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			readEvents(g, events, sink)
		}()
		sink.set(g.Addr(), "") // a member is in its own view
		sink.write(childLine{Ev: "self", ID: g.Addr()})
		io.Copy(io.Discard, in)
		g.Close()
		wg.Wait()
		return nil
	case libMemberlist:
		logger := log.New(io.Discard, "", 0)
		t, err := newMLNetTransport(logger, &wire{}, newSilencer())
		if err != nil {
			return err
		}
		m, err := memberlist.Create(mlConfig(spec.Name, t, &metaDelegate{}, mlEvents{sink}, logger))
		if err != nil {
			t.Shutdown()
			return err
		}
		sink.write(childLine{Ev: "self", ID: spec.Name})
		if _, err := m.Join([]string{spec.Seed}); err != nil {
			m.Shutdown()
			return fmt.Errorf("join: %w", err)
		}
		io.Copy(io.Discard, in)
		return m.Shutdown()
	}
	return fmt.Errorf("unknown library %q", spec.Lib)
}

// child is a child process of the bench.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	id    string        // a member's identity
	done  chan struct{} // closed when its output has been read to the end
}

// startChild starts a child running spec. A member child's view changes go
// to sink; startChild returns once it has said who it is.
func startChild(spec childSpec, sink viewSink) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = childProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	var stdout io.Reader
	if spec.Mode == childMember {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s child: %w", spec.Mode, err)
	}
	if stdout == nil {
		close(c.done)
		return c, nil
	}
	self := make(chan string, 1)
	go func() {
		defer close(c.done)
		readChild(stdout, sink, self)
	}()
	select {
	case c.id = <-self:
		return c, nil
	case <-c.done:
		err = errors.New("it ended before saying who it is")
	case <-time.After(30 * time.Second):
		err = errors.New("it did not say who it is within 30s")
	}
	c.close()
	return nil, fmt.Errorf("%s child: %w", spec.Lib, err)
}

// readChild applies a member child's lines to sink, and sends its identity
// on self, until its output ends.
func readChild(r io.Reader, sink viewSink, self chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	for sc.Scan() {
		var l childLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			continue
		}
		switch l.Ev {
		case "self":
			self <- l.ID
		case "set":
			sink.set(l.ID, l.Data)
		case "gone":
			sink.remove(l.ID)
		case "reset":
			sink.reset(l.Members)
		}
	}
	io.Copy(io.Discard, r) // a line too long: read on to the end
}

// signal sends sig to the child.
func (c *child) signal(sig os.Signal) error { return c.cmd.Process.Signal(sig) }

// close ends the child: it continues it if stopped, closes its input, and
// kills it if it has not ended 10 s later.
func (c *child) close() {
	c.cmd.Process.Signal(syscall.SIGCONT)
	c.stdin.Close()
	exited := make(chan struct{})
	go func() {
		<-c.done
		c.cmd.Wait()
		close(exited)
	}()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-exited
	}
}

// startHogs starts k children, each keeping a core busy. Close them with
// stopHogs.
func startHogs(k int) ([]*child, error) {
	var hogs []*child
	for i := 0; i < k; i++ {
		c, err := startChild(childSpec{Mode: childSpin}, nil)
		if err != nil {
			stopHogs(hogs)
			return nil, err
		}
		hogs = append(hogs, c)
	}
	return hogs, nil
}

// stopHogs ends the hog children and waits for them.
func stopHogs(hogs []*child) {
	var wg sync.WaitGroup
	for _, c := range hogs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close()
		}()
	}
	wg.Wait()
}

// runAlone runs scenario sc of lib at n in a child process of its own (the
// bench again, with the same options) and returns its samples. The steady
// scenario runs so by default (-steady-alone): its CPU and heap are then
// those of one cluster, not also of what the clusters of earlier scenarios
// leave behind in the process (goroutines and timers ending, memory let go
// of during the window). The child's warnings are passed to warn.
func runAlone(ctx context.Context, lib, sc string, n int, o options, warn func(string)) ([]sample, error) {
	f, err := os.CreateTemp("", "bench-alone-*.json")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	args := []string{"-libs", lib, "-n", strconv.Itoa(n), "-runs", "1", "-scenarios", sc, "-steady-alone=false", "-json", path,
		"-steady-time", o.steadyTime.String(), "-settle", o.settle.String(), "-deadline", o.deadline.String(),
		"-interval", o.interval.String(), "-target", strconv.FormatFloat(o.target, 'g', -1, 64)}
	if o.memProfile != "" {
		args = append(args, "-memprofile", o.memProfile)
	}
	if o.cpuProfile != "" {
		args = append(args, "-steady-cpuprofile", o.cpuProfile)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(childSpec{Mode: childRun, Args: args})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = childProcAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	runErr := cmd.Run()
	var said []string // the child's progress and error lines
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		switch {
		case strings.HasPrefix(line, "warning: "):
			warn(strings.TrimPrefix(line, "warning: "))
		case strings.HasPrefix(line, "run "), strings.HasPrefix(line, "bench"):
			said = append(said, line)
		}
	}
	samples, err := readSamples(path)
	if runErr != nil {
		return samples, fmt.Errorf("%s in a process of its own: %w (%s)", sc, runErr, strings.Join(said, "; "))
	}
	if err != nil {
		return nil, fmt.Errorf("%s in a process of its own: %w", sc, err)
	}
	return samples, nil
}
