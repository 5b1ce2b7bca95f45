package main

import (
	"context"
	"net"
	"runtime"
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

func TestViewFind(t *testing.T) {
	v := view{{id: "c"}, {id: "a", data: "x"}, {id: "b"}}.sort()
	if e, ok := v.find("a"); !ok || e.data != "x" {
		t.Errorf("find(a) = %+v, %v; want data x, true", e, ok)
	}
	if _, ok := v.find("d"); ok {
		t.Errorf("find(d) found an entry in %v", v)
	}
}

// TestSmoke starts three members of each library, waits for them to see
// each other and a data change, kills one and closes the rest. Without
// -short it also waits for the killed member to be dropped.
func TestSmoke(t *testing.T) {
	for _, lib := range []string{libOurs, libMemberlist} {
		t.Run(lib, func(t *testing.T) {
			before := runtime.NumGoroutine()
			ctx := context.Background()
			const n = 3
			c, err := newCluster(lib)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.start(n); err != nil {
				c.close()
				t.Fatalf("start(%d): %v", n, err)
			}
			if err := waitConverged(ctx, c, n, 30*time.Second); err != nil {
				c.close()
				t.Fatalf("%s: %d members did not converge: %v", lib, n, err)
			}
			first, last, err := dataSpread(ctx, c, n, 30*time.Second)
			if err != nil || first > last {
				t.Errorf("%s: data spread = %.2fs, %.2fs, %v; want no error and first <= last", lib, first, last, err)
			}
			if bytes, msgs := c.traffic(); bytes == 0 || msgs == 0 {
				t.Errorf("%s: traffic() = %d bytes, %d messages; want both counted", lib, bytes, msgs)
			}
			if testing.Short() {
				c.kill(n - 1)
				if v := c.view(n - 1); v != nil {
					t.Errorf("%s: view of a killed member = %v, want nil", lib, v)
				}
			} else if _, _, err := detect(ctx, c, n, 60*time.Second); err != nil {
				t.Errorf("%s: killed member not dropped by all: %v", lib, err)
			}
			c.close()
			if extra := settleGoroutines(before, 10*time.Second); extra > 0 {
				t.Errorf("%s: %d goroutines left after close", lib, extra)
			}
		})
	}
}
