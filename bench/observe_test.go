package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// record is a condition that never holds and notes every change.
func record(log *[]string) condition {
	return func(s viewSet, ch *change) bool {
		if ch == nil {
			*log = append(*log, "scan")
		} else if ch.gone {
			*log = append(*log, fmt.Sprintf("%d-%s", ch.observer, ch.id))
		} else {
			*log = append(*log, fmt.Sprintf("%d+%s=%s", ch.observer, ch.id, ch.data))
		}
		return false
	}
}

func TestObserversChanges(t *testing.T) {
	o := newObservers()
	var log []string
	w := o.watch(record(&log))
	o.set(0, "a", "") // not open yet: ignored
	o.open(1)
	o.set(1, "a", "")
	o.set(1, "a", "") // no change
	o.set(1, "a", "x")
	o.set(1, "b", "")
	o.remove(1, "a")
	o.remove(1, "a") // no change
	o.reset(1, map[string]string{"c": "y"})
	o.close(1)
	o.set(1, "d", "") // closed: ignored
	w.stop()
	o.open(2)
	o.set(2, "e", "") // no longer watched
	want := "scan 1+a= 1+a=x 1+b= 1-a 1-b 1+c=y"
	if got := strings.Join(log, " "); got != want {
		t.Errorf("changes = %s\nwant %s", got, want)
	}
	if v := o.snapshot(1); v != nil {
		t.Errorf("snapshot of a closed observer = %v, want nil", v)
	}
	if v := o.snapshot(2); len(v) != 1 || v[0].id != "e" {
		t.Errorf("snapshot(2) = %v, want [e]", v)
	}
	o.closeAll()
	o.set(2, "f", "")
	if v := o.snapshot(2); v != nil {
		t.Errorf("snapshot(2) after closeAll = %v, want nil", v)
	}
}

func TestSpreadTimesFirstAndLast(t *testing.T) {
	o := newObservers()
	for i := 0; i < 3; i++ {
		o.open(i)
	}
	o.set(0, "x", "v") // already held when watching starts
	sp := newSpread(time.Now(), []int{0, 1, 2}, func(s viewSet, i int) bool {
		e, ok := s.lookup(i, "x")
		return ok && e.data == "v"
	})
	w := o.watch(sp.check)
	o.set(1, "x", "old")
	o.set(2, "x", "v")
	if sp.seen != 2 {
		t.Fatalf("seen = %d after two of three, want 2", sp.seen)
	}
	time.Sleep(5 * time.Millisecond)
	o.set(1, "x", "v")
	if err := w.wait(context.Background(), time.Second); err != nil {
		t.Fatalf("wait: %v", err)
	}
	first, last := sp.seconds(nil, time.Second)
	if first < 0 || last < first+0.004 {
		t.Errorf("first, last = %.4fs, %.4fs; want 0 <= first and last at least 5 ms later", first, last)
	}
}

func TestWaitEnds(t *testing.T) {
	o := newObservers()
	o.open(0)
	sp := newSpread(time.Now(), []int{0, 1}, func(s viewSet, i int) bool { return s.size(i) == 1 })
	w := o.watch(sp.check)
	err := w.wait(context.Background(), 20*time.Millisecond)
	if !errors.Is(err, errTimeout) {
		t.Fatalf("wait for a condition that cannot hold = %v, want errTimeout", err)
	}
	if first, last := sp.seconds(err, 20*time.Millisecond); first != 0.02 || last != 0.02 {
		t.Errorf("seconds after a timeout = %v, %v; want the deadline for both", first, last)
	}
	if len(o.watchers) != 0 {
		t.Errorf("%d watchers left after wait", len(o.watchers))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.watch(record(new([]string))).wait(ctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled context = %v, want context.Canceled", err)
	}
}
