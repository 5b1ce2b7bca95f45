package main

import (
	"context"
	"net"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// nopConn is a connection that reads one byte per call and discards what is
// written.
type nopConn struct{ net.Conn }

func (nopConn) Read(p []byte) (int, error)  { return 1, nil }
func (nopConn) Write(p []byte) (int, error) { return len(p), nil }

// lostConn is a connection that must not be written to.
type lostConn struct{ nopConn }

func (lostConn) Write(p []byte) (int, error) {
	panic("lostConn: a lost message reached the network")
}

func TestStreamConnLosesWholeMessages(t *testing.T) {
	var w wire
	w.setLoss(1)
	c := &streamConn{Conn: lostConn{}, w: &w}
	for _, s := range []string{"a", "bc"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Errorf("Write(%q) on a lost message = %d, %v; want %d, nil", s, n, err, len(s))
		}
	}
	if bytes, msgs := w.traffic(); bytes != 3 || msgs != 1 {
		t.Errorf("traffic() = %d bytes, %d messages; want 3, 1 (lost messages count as sent)", bytes, msgs)
	}
}

// TestSmoke starts three members of each library, waits for them to see
// each other and a data change, checks the views built from events against
// the libraries' own, kills one and closes the rest. Without -short it also
// waits for the killed member to be dropped.
func TestSmoke(t *testing.T) {
	for _, lib := range []string{libOurs, libMemberlist} {
		t.Run(lib, func(t *testing.T) {
			before := runtime.NumGoroutine()
			ctx := context.Background()
			const n = 3
			c, err := newCluster(lib, options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := startConverged(ctx, c, n, 30*time.Second); err != nil {
				c.close()
				t.Fatalf("%s: %d members did not converge: %v", lib, n, err)
			}
			first, last, err := dataSpread(ctx, c, n, 30*time.Second)
			if err != nil || first > last {
				t.Errorf("%s: data spread = %.2fs, %.2fs, %v; want no error and first <= last", lib, first, last, err)
			}
			for i := 0; i < n; i++ {
				checkObserved(t, c, i)
			}
			if bytes, msgs := c.traffic(); bytes == 0 || msgs == 0 {
				t.Errorf("%s: traffic() = %d bytes, %d messages; want both counted", lib, bytes, msgs)
			}
			if testing.Short() {
				c.kill(n - 1)
				if v := c.view(n - 1); v != nil {
					t.Errorf("%s: view of a killed member = %v, want nil", lib, v)
				}
				if v := c.observers().snapshot(n - 1); v != nil {
					t.Errorf("%s: observed view of a killed member = %v, want nil", lib, v)
				}
			} else if _, _, err := detect(ctx, c, n, 60*time.Second); err != nil {
				t.Errorf("%s: killed member not dropped by all: %v", lib, err)
			} else {
				for i := 0; i < n-1; i++ {
					checkObserved(t, c, i)
				}
			}
			c.close()
			if extra := settleGoroutines(before, 10*time.Second); extra > 0 {
				t.Errorf("%s: %d goroutines left after close", lib, extra)
			}
		})
	}
}

// checkObserved checks that member i's view built from its events is the
// library's own view. An event may trail the change it reports by a
// little, so it tries for a second.
func checkObserved(t *testing.T, c cluster, i int) {
	t.Helper()
	var got, want view
	for try := 0; try < 100; try++ {
		got, want = c.observers().snapshot(i), c.view(i)
		if reflect.DeepEqual(got, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("member %d: observed view %v, library's view %v", i, got, want)
}

// TestSteadyAlone runs the steady scenario of this library in a process of
// its own, as the bench does by default, and reads back its samples; a
// scenario that fails in the child is an error naming the child's reason.
func TestSteadyAlone(t *testing.T) {
	o := options{steadyTime: time.Second, settle: 0, deadline: 30 * time.Second}
	var warnings []string
	got, err := runAlone(context.Background(), libOurs, scSteady, 3, o, func(w string) { warnings = append(warnings, w) })
	if err != nil {
		t.Fatalf("runAlone: %v (warnings %q)", err, warnings)
	}
	metrics := map[string]float64{}
	for _, s := range got {
		if s.Lib != libOurs || s.N != 3 {
			t.Errorf("sample %+v: want lib %s, n 3", s, libOurs)
		}
		metrics[s.Metric] = s.Value
	}
	for _, m := range []string{"bytes/member/s", "msgs/member/s", "CPU ms/member/s", "heap KiB/member"} {
		if v, ok := metrics[m]; !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want a positive figure", m, v, ok)
		}
	}

	o.deadline = time.Millisecond // too short to converge
	if _, err := runAlone(context.Background(), libOurs, scSteady, 3, o, func(string) {}); err == nil || !strings.Contains(err.Error(), "no convergence") {
		t.Errorf("runAlone with a deadline of 1ms: error %v, want one saying there was no convergence", err)
	}
}
