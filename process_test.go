package gossip

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gossipfd/gossip/internal/procs"
	"github.com/gossipfd/gossip/internal/protocol"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKilledProcessesAreDroppedAndComeBack runs the example command as real
// member processes, kills two of them with SIGKILL (the seed among them),
// and restarts them at the same addresses with new data: every survivor
// drops them within the failure time, and every member sees them back, with
// their new endpoints, within a few rounds of their start.
func TestKilledProcessesAreDroppedAndComeBack(t *testing.T) {
	const (
		n        = 5
		interval = 50 * time.Millisecond
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ms := processMembers(ctx, t, n, interval, func(i int) io.Writer { return testWriter{t} })
	for i := range ms {
		ms[i].Endpoint = fmt.Sprintf("http://first-life-%d", i)
	}
	ps := make([]*procs.Proc, n)
	start := func(i int) {
		p, err := procs.Start(ms[i])
		require.NoError(t, err)
		ps[i] = p
	}
	for i := range ms {
		start(i)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.Kill()
		}
	})

	// views reads the views of the members listed; a member that does not
	// answer has an empty view.
	views := func(idx []int) []procs.View {
		out := make([]procs.View, len(idx))
		for k, i := range idx {
			out[k], _ = procs.Members(ctx, ms[i].HTTP)
		}
		return out
	}
	every := []int{0, 1, 2, 3, 4}
	want := func(idx []int) procs.View {
		v := procs.View{}
		for _, i := range idx {
			v[ms[i].Addr] = ms[i].Endpoint
		}
		return v
	}
	agree := func(observers, members []int) func() bool {
		w := fmt.Sprint(want(members))
		return func() bool {
			for _, v := range views(observers) {
				if fmt.Sprint(v) != w {
					return false
				}
			}
			return true
		}
	}
	require.Eventually(t, agree(every, every), converge, 10*time.Millisecond, "converge")

	killed, survivors := []int{0, 2}, []int{1, 3, 4}
	tfail := protocol.FailureTime(n, interval, Nfailures) // what each survivor uses until the deaths
	for _, i := range killed {
		ps[i].Kill()
	}
	kill := time.Now()
	require.Eventually(t, agree(survivors, survivors), converge, 5*time.Millisecond, "survivors drop the killed")
	detect := time.Since(kill)
	// Every survivor saw their heartbeats rise at most a round or two before
	// the kill; the HTTP polling adds a little.
	assert.LessOrEqual(t, detect, tfail+10*interval, "detection within FailureTime(%d) = %v", n, tfail)

	for _, i := range killed {
		ms[i].Endpoint = fmt.Sprintf("http://second-life-%d", i)
		start(i)
	}
	require.Eventually(t, func() bool {
		for _, i := range killed {
			if _, err := procs.Members(ctx, ms[i].HTTP); err != nil {
				return false
			}
		}
		return true
	}, converge, 5*time.Millisecond, "the restarted members answer")
	up := time.Now()
	require.Eventually(t, agree(every, every), converge, 5*time.Millisecond, "everyone sees the restarted members with their new data")
	back := time.Since(up)
	t.Logf("%d processes, interval %v: SIGKILLed %d (the seed among them) dropped by all after %v (FailureTime %v); restarted, back everywhere with new data %v (%.0f rounds) after they answered",
		n, interval, len(killed), detect.Round(time.Millisecond), tfail, back.Round(time.Millisecond), float64(back)/float64(interval))
	assert.LessOrEqual(t, back, 20*interval, "back within a few rounds")
}

// TestStoppedProcessAccusesNoOneOnResume stops one of three example
// processes with SIGSTOP for three failure times and continues it with
// SIGCONT: the others drop it and take it back, and it, having heard
// nothing for as long, reports no live member failed.
func TestStoppedProcessAccusesNoOneOnResume(t *testing.T) {
	const (
		n        = 3
		interval = 100 * time.Millisecond
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := make([]*procs.Log, n)
	ms := processMembers(ctx, t, n, interval, func(i int) io.Writer {
		logs[i] = &procs.Log{}
		return io.MultiWriter(logs[i], testWriter{t})
	})
	ps := make([]*procs.Proc, n)
	for i := range ms {
		var err error
		ps[i], err = procs.Start(ms[i])
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.Signal(syscall.SIGCONT)
			p.Kill()
		}
	})
	sees := func(i, count int) bool {
		v, err := procs.Members(ctx, ms[i].HTTP)
		return err == nil && len(v) == count
	}
	require.Eventually(t, func() bool { return sees(0, n) && sees(1, n) && sees(2, n) }, converge, 10*time.Millisecond, "converge")

	const stopped = 2
	tfail := protocol.FailureTime(n, interval, Nfailures)
	require.NoError(t, ps[stopped].Signal(syscall.SIGSTOP))
	stop := time.Now()
	require.Eventually(t, func() bool { return sees(0, n-1) && sees(1, n-1) }, converge, 10*time.Millisecond, "the others drop the stopped member")
	dropped := time.Since(stop)
	<-time.After(3*tfail - time.Since(stop)) // the pause itself: a length of the scenario, not a wait for a condition
	before := strings.Count(logs[stopped].String(), "member failed")
	require.NoError(t, ps[stopped].Signal(syscall.SIGCONT))
	resume := time.Now()
	require.Eventually(t, func() bool { return sees(0, n) && sees(1, n) && sees(2, n) }, converge, 10*time.Millisecond, "all see all again")
	back := time.Since(resume)
	// A round or two more, in which a late accusation would show.
	require.Never(t, func() bool { return strings.Count(logs[stopped].String(), "member failed") > before }, 5*interval, 10*time.Millisecond,
		"the resumed member accuses no one")
	t.Logf("stopped for %v (3 × FailureTime %v): dropped by the others after %v, back in every view %v after SIGCONT",
		3*tfail, tfail, dropped.Round(time.Millisecond), back.Round(time.Millisecond))
	assert.Less(t, back, 10*interval, "taken back within a few rounds")
}

// processMembers builds the example command and describes n member
// processes of it on free loopback ports, gossiping every interval, the
// first the others' seed, each logging to log(i). It skips the test in
// -short mode or without a go command.
func processMembers(ctx context.Context, t *testing.T, n int, interval time.Duration, log func(i int) io.Writer) []procs.Member {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the example command: not in -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command in PATH to build the example with")
	}
	bin, err := procs.Build(ctx, ".", t.TempDir())
	require.NoError(t, err)
	ports, err := procs.FreePorts(2 * n)
	require.NoError(t, err)
	ms := make([]procs.Member, n)
	for i := range ms {
		ms[i] = procs.Member{
			Bin: bin, Interval: interval,
			Addr:     "127.0.0.1:" + strconv.Itoa(ports[i]),
			HTTP:     "127.0.0.1:" + strconv.Itoa(ports[n+i]),
			Endpoint: fmt.Sprintf("http://m%d", i),
			Log:      log(i),
		}
		if i > 0 {
			ms[i].Join = ms[0].Addr
		}
	}
	return ms
}
