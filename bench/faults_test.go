package main

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the bench's child processes when the tests start one (the
// test binary is the executable they re-run).
func TestMain(m *testing.M) {
	if code, ok := runChild(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// connPair returns the two ends of a TCP connection on 127.0.0.1, the
// dialled one owned by member "a" and the accepted one by member "b", both
// wrapped for s.
func connPair(t *testing.T, s *silencer) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a = dialledConn(c, s, "a", "b")
	bc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	b = acceptedConn(bc, s, "b")
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// readWithin reads from c with a deadline d from now.
func readWithin(c net.Conn, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSilentConn(t *testing.T) {
	for _, who := range []string{"a", "b"} { // the dialler, the acceptor
		t.Run("silence "+who, func(t *testing.T) {
			s := newSilencer()
			a, b := connPair(t, s)
			if _, err := a.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			if got, err := readWithin(b, 5*time.Second); got != "hi" || err != nil {
				t.Fatalf("before the silence, b read %q, %v; want hi, nil", got, err)
			}
			s.silence(who)
			for _, dir := range []struct {
				name     string
				from, to net.Conn
			}{{"a to b", a, b}, {"b to a", b, a}} {
				if n, err := dir.from.Write([]byte("lost")); n != 4 || err != nil {
					t.Errorf("%s: Write after the silence = %d, %v; want 4, nil", dir.name, n, err)
				}
				start := time.Now()
				got, err := readWithin(dir.to, 200*time.Millisecond)
				if got != "" || !isTimeout(err) {
					t.Errorf("%s: Read after the silence = %q, %v; want nothing and a timeout", dir.name, got, err)
				}
				if el := time.Since(start); el < 150*time.Millisecond {
					t.Errorf("%s: Read returned after %v, before its deadline", dir.name, el)
				}
			}
			// The other end's close is lost too: a read waits for its
			// deadline rather than seeing the end of the stream.
			a.(*silentConn).Conn.Close()
			if got, err := readWithin(b, 200*time.Millisecond); got != "" || !isTimeout(err) {
				t.Errorf("Read after the other end closed = %q, %v; want a timeout, not the end of the stream", got, err)
			}
			// A local Close ends a read that waits.
			b.SetReadDeadline(time.Time{})
			errc := make(chan error, 1)
			go func() {
				_, err := b.Read(make([]byte, 1))
				errc <- err
			}()
			b.Close()
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Read ended by Close = %v, want net.ErrClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Close did not end a waiting Read")
			}
		})
	}
}

func TestSilentConnOthersUntouched(t *testing.T) {
	s := newSilencer()
	a, b := connPair(t, s)
	s.silence("c")
	a.Write([]byte("hi"))
	if got, err := readWithin(b, 5*time.Second); got != "hi" || err != nil {
		t.Errorf("b read %q, %v with another member silenced; want hi, nil", got, err)
	}
	if b.(*silentConn).quiet() {
		t.Error("the accepted end is quiet with neither end silenced")
	}
}

func TestBenchTransportDialHangs(t *testing.T) {
	s := newSilencer()
	var w wire
	server := &benchTransport{w: &w, s: s}
	ln, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client := &benchTransport{w: &w, s: s}
	c, err := client.Dial(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial before the silence: %v", err)
	}
	c.Close()
	s.silence(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	c, err = client.Dial(ctx, ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("Dial to a silenced member succeeded")
	}
	if !isTimeout(err) || time.Since(start) < 150*time.Millisecond {
		t.Errorf("Dial to a silenced member = %v after %v; want a timeout when the context ends", err, time.Since(start))
	}
}

func TestMLTransportDropsSilenced(t *testing.T) {
	s := newSilencer()
	var w wire
	logger := newMemberlist().logger
	a, err := newMLNetTransport(logger, &w, s)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := newMLNetTransport(logger, &w, s)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if _, err := a.WriteTo([]byte("one"), b.self); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.PacketCh():
		if string(p.Buf) != "one" {
			t.Errorf("packet %q, want one", p.Buf)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a packet before the silence did not arrive")
	}
	s.silence(b.self)
	if _, err := a.WriteTo([]byte("two"), b.self); err != nil {
		t.Errorf("WriteTo a silenced node = %v, want a silent loss", err)
	}
	start := time.Now()
	if c, err := a.DialTimeout(b.self, 200*time.Millisecond); err == nil {
		c.Close()
		t.Error("DialTimeout to a silenced node succeeded")
	} else if !isTimeout(err) || time.Since(start) < 150*time.Millisecond {
		t.Errorf("DialTimeout to a silenced node = %v after %v; want a timeout at the end", err, time.Since(start))
	}
	select {
	case p := <-b.PacketCh():
		t.Errorf("a silenced node received %q", p.Buf)
	case <-time.After(200 * time.Millisecond):
	}
}

// memberAddr is the address other members dial to reach member i.
func memberAddr(c cluster, i int) string {
	if ml, ok := c.(*mlCluster); ok {
		ml.mu.Lock()
		defer ml.mu.Unlock()
		return ml.addrs[i]
	}
	return c.id(i)
}

// TestKillIsACrash checks that a killed member looks crashed to the kernel:
// its port refuses connections. A silenced one's does not refuse: dials
// hang.
func TestKillIsACrash(t *testing.T) {
	for _, lib := range []string{libOurs, libMemberlist} {
		t.Run(lib, func(t *testing.T) {
			c, err := newCluster(lib, options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			if _, err := startConverged(context.Background(), c, 3, 30*time.Second); err != nil {
				t.Fatalf("no convergence: %v", err)
			}
			addr := memberAddr(c, 2)
			c.kill(2)
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err == nil {
				conn.Close()
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial to a killed member = %v, want connection refused", err)
			}
		})
	}
}

func TestOursFailureTimeMatchesTheLibrary(t *testing.T) {
	for _, o := range []options{{}, {target: 1e-6}, {interval: 200 * time.Millisecond, target: 1e-6}} {
		c := newOurs(o.interval, o.target)
		const n = 3
		if _, err := startConverged(context.Background(), c, n, 30*time.Second); err != nil {
			c.close()
			t.Fatalf("no convergence: %v", err)
		}
		if got, want := oursFailureTime(n, o), c.member(0).FailureTime(); got != want {
			t.Errorf("oursFailureTime(%d, interval %v, target %v) = %v, want the member's %v", n, o.interval, o.target, got, want)
		}
		c.close()
	}
	if got, want := pauseFor(32, options{}), 54*time.Second; got != want {
		t.Errorf("pauseFor(32) = %v, want 3 × 18s", got)
	}
	if got := pauseFor(32, options{pause: time.Second}); got != time.Second {
		t.Errorf("pauseFor with -pause 1s = %v", got)
	}
}

// procUserTicks returns the user CPU ticks of process pid, from /proc.
func procUserTicks(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	ticks, err := strconv.Atoi(f[11]) // utime, field 14 of stat
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return ticks
}

func TestHogSpins(t *testing.T) {
	hogs, err := startHogs(1)
	if err != nil {
		t.Fatal(err)
	}
	pid := hogs[0].cmd.Process.Pid
	deadline := time.Now().Add(30 * time.Second)
	for procUserTicks(t, pid) < 10 { // 100 ms of CPU at the usual 100 Hz
		if time.Now().After(deadline) {
			t.Fatal("the hog used under 10 ticks of CPU in 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	stopHogs(hogs)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("a hog took %v to end after its input closed", el)
	}
	if st := hogs[0].cmd.ProcessState; st == nil || !st.Success() {
		t.Errorf("hog exit state %v, want success", st)
	}
}

// TestMemberChild runs a member of each library as a child process joining
// an in-process cluster, stops and continues it, and closes it.
func TestMemberChild(t *testing.T) {
	for _, lib := range []string{libOurs, libMemberlist} {
		t.Run(lib, func(t *testing.T) {
			c, err := newCluster(lib, options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			obs := c.observers()
			const n = 3
			sp := newSpread(time.Now(), others(n, -1), func(s viewSet, i int) bool { return s.size(i) == n })
			w := obs.watch(sp.check)
			if err := c.start(n - 1); err != nil {
				t.Fatal(err)
			}
			obs.open(n - 1)
			ch, err := startChild(childSpec{Mode: childMember, Lib: lib, Seed: c.seed(), Name: "m2"}, observerSink{obs, n - 1})
			if err != nil {
				t.Fatal(err)
			}
			defer ch.close()
			if err := w.wait(context.Background(), 30*time.Second); err != nil {
				t.Fatalf("%d members with a child did not converge: %v", n, err)
			}
			if v := obs.snapshot(0); !slices.ContainsFunc(v, func(e viewEntry) bool { return e.id == ch.id }) {
				t.Errorf("member 0 sees %v, not the child %q", v, ch.id)
			}
			if err := ch.signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			if err := ch.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			ch.close()
			if el := time.Since(start); el > 9*time.Second {
				t.Errorf("the child took %v to end after its input closed", el)
			}
		})
	}
}

// TestFaultScenarios runs silent, pause and hog briefly on 3 members of
// each library. It takes about two minutes.
func TestFaultScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("two minutes")
	}
	o := options{deadline: 60 * time.Second, pause: 15 * time.Second, hogs: 2, hogTime: 3 * time.Second}
	for _, lib := range []string{libOurs, libMemberlist} {
		t.Run(lib, func(t *testing.T) {
			const n = 3
			got, err := runScenario(context.Background(), lib, scSilent, n, o, func(w string) { t.Log(w) })
			if err != nil || len(got) != 2 || got[0].TimedOut || got[1].TimedOut || got[0].Value > got[1].Value {
				t.Errorf("silent = %+v, %v; want first <= last, no timeout", got, err)
			}
			got, err = runScenario(context.Background(), lib, scPause, n, o, func(w string) { t.Log(w) })
			if err != nil || len(got) != 4 {
				t.Fatalf("pause = %+v, %v", got, err)
			}
			if drop := got[0]; drop.TimedOut || drop.Value > o.pause.Seconds() {
				t.Errorf("pause: others drop = %+v, want within the %v pause", drop, o.pause)
			}
			if back := got[1]; back.TimedOut {
				t.Errorf("pause: back = %+v, want the resumed member back", back)
			}
			for _, s := range got[2:] {
				if s.Value < 0 || s.Value > n-1 {
					t.Errorf("%s = %v, want a count of live members", s.Metric, s.Value)
				}
			}
			got, err = runScenario(context.Background(), lib, scHog, n, o, func(w string) { t.Log(w) })
			if err != nil || len(got) != 2 {
				t.Errorf("hog = %+v, %v", got, err)
			}
		})
	}
}

func TestRaiseFileLimit(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Skip(err)
	}
	got, err := raiseFileLimit()
	if err != nil || got != before.Max {
		t.Errorf("raiseFileLimit() = %d, %v; want the hard limit %d", got, err, before.Max)
	}
}
