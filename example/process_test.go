package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/procs"
	multierror "github.com/hashicorp/go-multierror"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runMainEnv makes the test binary run the command instead of the tests.
const runMainEnv = "EXAMPLE_TEST_RUN_MAIN"

// proc is the command running as a process of its own.
type proc struct {
	cmd         *exec.Cmd
	log         *procs.Log
	done        chan struct{} // closed when it has exited
	err         error         // Wait's, once done
	gossip, web string        // its addresses, from its start line
}

var startLine = regexp.MustCompile(`msg="example started".* gossip="?([^" ]+)"? http="?([^" ]+)"?`)

// startProc runs the command with args on loopback ports the system picks
// and waits until it has started. The process is killed at the end of the
// test if it still runs.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{log: &procs.Log{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], append([]string{"-addr", "127.0.0.1:0", "-http", "127.0.0.1:0"}, args...)...)
	// Without the race detector's wait at exit, a process ends as soon as
	// it returns.
	p.cmd.Env = append(os.Environ(), runMainEnv+"=1", "GORACE=atexit_sleep_ms=0")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	require.Eventually(t, func() bool {
		m := startLine.FindStringSubmatch(p.log.String())
		if m != nil {
			p.gossip, p.web = m[1], m[2]
		}
		return m != nil || p.exited()
	}, waitFor, tick, "start line")
	require.NotEmpty(t, p.gossip, "the process ended before it started:\n%s", p.log)
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// members is how many live members the process's HTTP API lists, -1 if
// it does not answer.
func (p *proc) members() int {
	resp, err := httpClient.Get("http://" + p.web + "/members")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var list []json.RawMessage
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return -1
	}
	return len(list)
}

// httpClient keeps no connection open after a request.
var httpClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// wait waits for the process to exit and returns its exit status, -1 if
// a signal ended it.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit; its log:\n%s", p.gossip, p.log)
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// logLine is one line of logrus's text format.
var logLine = regexp.MustCompile(`^time="[^"]+" level=(\w+) msg=`)

// checkLog checks that every line the process wrote is one log line below
// error level, and returns its warnings.
func checkLog(t *testing.T, p *proc) (warnings []string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(p.log.String()), "\n") {
		m := logLine.FindStringSubmatch(l)
		if !assert.NotNil(t, m, "%s: not a log line: %q", p.gossip, l) {
			continue
		}
		assert.NotContains(t, []string{"error", "fatal", "panic"}, m[1], "%s: %s", p.gossip, l)
		assert.NotContains(t, l, `\n`, "%s: an error over several lines: %s", p.gossip, l)
		if m[1] == "warning" {
			warnings = append(warnings, l)
		}
	}
	return warnings
}

// startPair starts two processes, the second joined through the first,
// and waits until both list both.
func startPair(t *testing.T) (a, b *proc) {
	t.Helper()
	a = startProc(t)
	b = startProc(t, "-join", a.gossip)
	require.Eventually(t, func() bool { return a.members() == 2 && b.members() == 2 }, waitFor, tick, "joined")
	return a, b
}

// TestSignalBothAtOnce stops two members with SIGTERM at the same time:
// each may find the other gone when it tells it that it leaves, which is a
// warning, never a failure of the process.
func TestSignalBothAtOnce(t *testing.T) {
	const rounds = 8
	warned := 0
	for i := range rounds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			a, b := startPair(t)
			require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, b.cmd.Process.Signal(syscall.SIGTERM))
			for _, p := range []*proc{a, b} {
				assert.Equal(t, 0, p.wait(t), "%s exit status; its log:\n%s", p.gossip, p.log)
				ws := checkLog(t, p)
				assert.LessOrEqual(t, len(ws), 1, "%s: at most the leave's warning: %q", p.gossip, ws)
				warned += len(ws)
				assert.Contains(t, p.log.String(), `msg="gossip member closed"`, "%s", p.gossip)
			}
		})
	}
	t.Logf("%d leave warnings in %d rounds of two members", warned, rounds)
}

// TestSignalAfterPeerDied stops a member with SIGTERM after its only peer
// was killed: dials to the dead peer are refused, so the member drops it at
// once (its one warning: the member failed), has no one to tell that it
// leaves, and exits 0.
func TestSignalAfterPeerDied(t *testing.T) {
	a, b := startPair(t)
	require.NoError(t, b.cmd.Process.Kill())
	assert.Equal(t, -1, b.wait(t), "killed")
	require.Eventually(t, func() bool { return a.members() == 1 }, waitFor, tick, "the killed peer dropped")
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, a.wait(t), "exit status; log:\n%s", a.log)
	ws := checkLog(t, a)
	require.Len(t, ws, 1, "one warning: %q", ws)
	assert.Contains(t, ws[0], `msg="member failed"`)
	assert.Contains(t, ws[0], b.gossip, "names the peer")
}

// TestSignalAfterPeerStopped stops a member with SIGTERM while its only
// peer is stopped (SIGSTOP: its kernel accepts connections, nothing
// answers): the leave reaches no one, which is one warning line, and the
// process exits 0.
func TestSignalAfterPeerStopped(t *testing.T) {
	a, b := startPair(t)
	require.NoError(t, b.cmd.Process.Signal(syscall.SIGSTOP))
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 0, a.wait(t), "exit status; log:\n%s", a.log)
	require.NoError(t, b.cmd.Process.Kill())
	b.wait(t)
	ws := checkLog(t, a)
	require.Len(t, ws, 1, "one warning: %q", ws)
	assert.Contains(t, ws[0], `msg="shut down, but not cleanly"`)
	assert.Contains(t, ws[0], "leave reached 0 of 1 peers: ")
	t.Log(ws[0])
}

func TestOneLine(t *testing.T) {
	leaf1, leaf2 := errors.New("dial 10.0.0.1: refused"), errors.New("dial 10.0.0.2: timeout")
	multi := multierror.Append(nil, leaf1, leaf2)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"plain", leaf1, "dial 10.0.0.1: refused"},
		{"multierror", multi, "dial 10.0.0.1: refused; dial 10.0.0.2: timeout"},
		{"wrapped multierror", fmt.Errorf("gossip: leave reached 0 of 2 peers: %w", multi),
			"gossip: leave reached 0 of 2 peers: dial 10.0.0.1: refused; dial 10.0.0.2: timeout"},
		{"multierror of wrapped multierror", multierror.Append(nil, fmt.Errorf("leave: %w", multierror.Append(nil, leaf1))),
			"leave: dial 10.0.0.1: refused"},
		{"errors.Join", errors.Join(leaf1, fmt.Errorf("http: %w", leaf2)), "dial 10.0.0.1: refused; http: dial 10.0.0.2: timeout"},
		{"lines without structure", errors.New("first\n\tsecond"), "first second"},
	}
	for _, c := range cases {
		if got := oneLine(c.err); got != c.want {
			t.Errorf("oneLine(%s) = %q, want %q", c.name, got, c.want)
		}
	}
}
