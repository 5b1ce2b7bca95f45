package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sse is one server-sent event as a client reads it.
type sse struct {
	event string
	data  string
}

// follow opens GET /events and returns its events, in a channel closed when
// the stream ends, and a function that closes the stream.
func follow(t *testing.T, url string) (<-chan sse, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	out := make(chan sse, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var e sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.event != "" {
					out <- e
				}
				e = sse{}
			case strings.HasPrefix(line, "event: "):
				e.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return out, stop
}

// next returns the next event of the given type, skipping others, or fails
// the test after waitFor.
func next(t *testing.T, events <-chan sse, event string) sse {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case e, ok := <-events:
			require.True(t, ok, "the stream ended while waiting for %q", event)
			if e.event == event {
				return e
			}
		case <-deadline:
			require.FailNow(t, "no event", "no %q event within %v", event, waitFor)
		}
	}
}

// nextChange returns the next change event of the given kind about addr.
func nextChange(t *testing.T, events <-chan sse, kind, addr string) changeMsg {
	t.Helper()
	for {
		var c changeMsg
		e := next(t, events, "change")
		require.NoError(t, json.Unmarshal([]byte(e.data), &c), e.data)
		if c.Change.Kind == kind && c.Change.Addr == addr {
			return c
		}
	}
}

func TestEventsStream(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web", Endpoint: "http://a:1"}, Service{Name: "db", Endpoint: "tcp://b:2"})
	nodes[0].api.live.tick = 20 * time.Millisecond
	runAPI(t, nodes[0])
	require.Eventually(t, func() bool { return len(nodes[0].api.live.snapshot().Members) == 2 }, waitFor, tick, "the view has both members")

	events, _ := follow(t, nodes[0].srv.URL)
	var v view
	require.NoError(t, json.Unmarshal([]byte(next(t, events, "view").data), &v))
	require.Len(t, v.Members, 2, "the view starts with both members")
	assert.Equal(t, nodes[0].g.Addr(), v.Self)
	assert.Positive(t, v.FailureMs)
	for _, m := range v.Members {
		assert.Equal(t, m.Addr == v.Self, m.Self, m.Addr)
		assert.NotEmpty(t, m.Started, m.Addr)
	}

	// Heard times come every tick, for every live member, in milliseconds.
	var h struct {
		HeardMs map[string]int64 `json:"heard_ms"`
	}
	require.NoError(t, json.Unmarshal([]byte(next(t, events, "heard").data), &h))
	assert.Len(t, h.HeardMs, 2)
	assert.Less(t, h.HeardMs[nodes[1].g.Addr()], int64(waitFor/time.Millisecond))

	// A join, a data change and a failure come as changes, in order.
	other, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0", Seeds: []string{nodes[0].g.Addr()},
		Data: Service{Name: "cache", Tags: map[string]string{"zone": "a"}}, GossipInterval: interval, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, other.Start())
	defer other.Close()
	c := nextChange(t, events, "joined", other.Addr())
	require.NotNil(t, c.Member)
	assert.Equal(t, "cache", c.Member.Service)
	assert.Equal(t, "zone=a", c.Member.Tags)

	require.NoError(t, other.UpdateData(Service{Name: "cache", Tags: map[string]string{"zone": "b"}}))
	c = nextChange(t, events, "data", other.Addr())
	assert.Equal(t, `tags.zone: "a" → "b"`, c.Change.Detail)
	assert.Equal(t, "zone=b", c.Member.Tags)

	other.Close()
	c = nextChange(t, events, "failed", other.Addr())
	assert.Nil(t, c.Member)
	require.NotNil(t, c.Gone)
	assert.Equal(t, "failed", c.Gone.Kind)
	assert.NotEmpty(t, c.Gone.LastHeard)
	v = nodes[0].api.live.snapshot()
	assert.Len(t, v.Members, 2, "gone from the live list")
	require.Len(t, v.Failed, 1, "listed as failed")
	assert.Equal(t, other.Addr(), v.Failed[0].Addr)
}

func TestEventsLeaveApart(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web"}, Service{Name: "web"})
	runAPI(t, nodes[0])
	events, _ := follow(t, nodes[0].srv.URL)
	next(t, events, "view")
	addr := nodes[1].g.Addr()
	require.NoError(t, nodes[1].g.Shutdown(context.Background()))
	c := nextChange(t, events, "left", addr)
	require.NotNil(t, c.Gone)
	v := nodes[0].api.live.snapshot()
	assert.Empty(t, v.Failed, "a leave is not a failure")
	require.Len(t, v.Left, 1)
	assert.Equal(t, addr, v.Left[0].Addr)
}

// TestEventsEnd: a stream ends when its client goes, when the server shuts
// down and when the member closes; none is left behind (goleak checks the
// goroutines in TestMain).
func TestEventsEnd(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web"})
	runAPI(t, nodes[0])
	l := nodes[0].api.live
	clients := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.clients)
	}
	ended := func(events <-chan sse) func() bool {
		return func() bool {
			for {
				select {
				case _, ok := <-events:
					if !ok {
						return true
					}
				default:
					return false
				}
			}
		}
	}

	events, stop := follow(t, nodes[0].srv.URL)
	next(t, events, "view")
	assert.Equal(t, 1, clients())
	stop()
	require.Eventually(t, func() bool { return clients() == 0 }, waitFor, tick, "the client went")

	events, _ = follow(t, nodes[0].srv.URL)
	next(t, events, "view")
	nodes[0].g.Close()
	require.Eventually(t, ended(events), waitFor, tick, "the member closed")
	code, body := get(t, nodes[0].srv.URL+"/events")
	assert.Equal(t, http.StatusServiceUnavailable, code, "after the member closed: %s", body)
	assert.Contains(t, body, `"error"`)

	other := startNodes(t, Service{Name: "web"})
	runAPI(t, other[0])
	events, _ = follow(t, other[0].srv.URL)
	next(t, events, "view")
	other[0].api.live.close()
	require.Eventually(t, ended(events), waitFor, tick, "the server shut down")
}

// TestEventsSlowClient: a client that does not read is dropped once its
// queue is full, and the others go on.
func TestEventsSlowClient(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web"})
	l := nodes[0].api.live
	slow, _ := l.subscribe()
	fast, _ := l.subscribe()
	defer l.unsubscribe(fast)
	for i := 0; i < clientQueue+1; i++ {
		l.mu.Lock()
		l.broadcastLocked("heard", i)
		l.mu.Unlock()
		<-fast.ch
	}
	select {
	case <-slow.lost:
	default:
		t.Fatal("a client that fell behind by more than its queue is not marked lost")
	}
	select {
	case <-fast.lost:
		t.Fatal("a client that keeps up is marked lost")
	default:
	}
	l.mu.Lock()
	_, kept := l.clients[slow]
	l.mu.Unlock()
	assert.False(t, kept, "the slow client is dropped")
}

func TestDataChange(t *testing.T) {
	web := Service{Name: "web", Endpoint: "http://a:1", Tags: map[string]string{"zone": "a", "v": "1"}}
	cases := []struct {
		name     string
		old, cur interface{}
		want     string
	}{
		{"tag changed", web, Service{Name: "web", Endpoint: "http://a:1", Tags: map[string]string{"zone": "b", "v": "1"}}, `tags.zone: "a" → "b"`},
		{"tag added and removed", web, Service{Name: "web", Endpoint: "http://a:1", Tags: map[string]string{"zone": "a", "w": ""}}, `tags.v: -"1"; tags.w: +""`},
		{"endpoint", web, Service{Name: "web", Endpoint: "http://a:2", Tags: web.Tags}, `endpoint: "http://a:1" → "http://a:2"`},
		{"name set", Service{}, Service{Name: "db"}, `name: +"db"`},
		{"nothing", web, web.clone(), "no visible change"},
		{"not a Service", "x", "y", "x → y"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, dataChange(c.old, c.cur), c.name)
	}
}

// TestEventsOutliveServerTimeouts: a stream lasts beyond the server's read
// and write timeouts, which are for one request and one response.
func TestEventsOutliveServerTimeouts(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web"})
	nodes[0].api.live.tick = 20 * time.Millisecond
	runAPI(t, nodes[0])
	const timeout = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: nodes[0].api.handler(), ReadTimeout: timeout, WriteTimeout: timeout}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	defer func() {
		srv.Close()
		<-served
	}()
	srv.RegisterOnShutdown(nodes[0].api.live.close)

	events, _ := follow(t, "http://"+ln.Addr().String())
	next(t, events, "view")
	begin := time.Now()
	for time.Since(begin) < 5*timeout {
		next(t, events, "heard")
	}

	// Shutdown ends the stream rather than waiting for it.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx), "shutdown with a stream open")
}
