package main

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) != "" {
		main() // the command itself, for TestExitStatus; exits
	}
	goleak.VerifyTestMain(m)
}

// runMainEnv makes the test binary run the command instead of the tests.
const runMainEnv = "STATS_TEST_RUN_MAIN"

// TestExitStatus runs the command as a process: the status a shell sees.
func TestExitStatus(t *testing.T) {
	ms := startCluster(t, "a")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := ln.Addr().String()
	ln.Close()
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"answered", []string{ms[0].Addr()}, 0},
		{"help", []string{"-h"}, 0},
		{"no answer", []string{refused}, 1},
		{"no address", nil, 2},
		{"unknown flag", []string{"-bogus", ms[0].Addr()}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], c.args...)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			out, err := cmd.CombinedOutput()
			got := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				got = exit.ExitCode()
			} else {
				require.NoError(t, err, "stats %q", c.args)
			}
			assert.Equal(t, c.want, got, "stats %q exit status; output:\n%s", c.args, out)
		})
	}
}

// endpoint is application data of a type stats has never heard of: it is
// registered here only because the members run in this process.
type endpoint struct {
	Service string
	URL     string
	Tags    map[string]string
}

// The example registers its type as main.Service; a test binary's package
// main has a longer path, so name it as a real program would.
func init() { gob.RegisterName("main.endpoint", endpoint{}) }

// unknownData returns data of a type no process has registered: the encoding
// of a point with its registered name changed. The members relay it as
// gossip.RawData.
func unknownData(t *testing.T) gossip.RawData {
	b := encode(t, struct{ V any }{point{X: 9, Y: 8}})
	b = bytes.Replace(b, []byte("test.point"), []byte("test.pOint"), 1)
	return gossip.RawData{Type: "test.pOint", Gob: b}
}

// startCluster starts members on loopback, one per data value, joined
// through the first, and waits until every member sees them all.
func startCluster(t *testing.T, data ...any) []*gossip.Gossip {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	var members []*gossip.Gossip
	for i, d := range data {
		cfg := gossip.Config{Addr: "127.0.0.1:0", Data: d, GossipInterval: 20 * time.Millisecond, RPCTimeout: time.Second, Logger: log}
		if i > 0 {
			cfg.Seeds = []string{members[0].Addr()}
		}
		g, err := gossip.NewWithConfig(cfg)
		require.NoError(t, err, "member %d", i)
		require.NoError(t, g.Start(), "member %d", i)
		t.Cleanup(g.Close)
		members = append(members, g)
	}
	require.Eventually(t, func() bool {
		for _, g := range members {
			if len(g.GetMembers()) != len(members) {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, "cluster of %d did not converge", len(members))
	return members
}

// noEnv is an empty environment.
func noEnv(string) string { return "" }

// runStats runs the command with args and no environment.
func runStats(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, noEnv, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTable(t *testing.T) {
	ms := startCluster(t,
		endpoint{Service: "web", URL: "http://10.0.0.1:9001", Tags: map[string]string{"zone": "a"}},
		map[string]string{"role": "db"},
		unknownData(t),
		nil,
	)
	code, out, errOut := runStats(t, "-all", "-timeout", "2s", ms[0].Addr())
	require.Equal(t, 0, code, "stderr: %s", errOut)
	lines := strings.Split(out, "\n")
	assert.Regexp(t, `^MEMBER\s+HEARTBEAT\s+SEEN BY\s+LAG\s+TYPE\s+DATA$`, lines[0])
	row := func(g *gossip.Gossip) string {
		for _, l := range lines {
			if strings.HasPrefix(l, g.Addr()+" ") {
				return l
			}
		}
		t.Fatalf("no row for %s in:\n%s", g.Addr(), out)
		return ""
	}
	assert.Regexp(t, `\s4/4\s+\d+\s+main\.endpoint\s+\{Service:web URL:http://10\.0\.0\.1:9001 Tags:map\[zone:a\]\}$`, row(ms[0]))
	assert.Regexp(t, `\s4/4\s+\d+\s+map\[string\]string\s+map\[role:db\]$`, row(ms[1]))
	assert.Regexp(t, `\s4/4\s+\d+\s+test\.pOint\s+\{X:9 Y:8\}$`, row(ms[2]))
	assert.Regexp(t, `\s4/4\s+\d+\s+-\s+-$`, row(ms[3]))
	assert.Regexp(t, `(?m)^queried:\s+4\s+\(4 answered\)$`, out)
	assert.Regexp(t, `(?m)^members seen:\s+4\s*$`, out)
	assert.Regexp(t, `(?m)^seen by all:\s+4\s*$`, out)
	assert.Regexp(t, `(?m)^disagreement:\s+0\s*$`, out)
	assert.Regexp(t, `(?m)^no answer:\s+0\s*$`, out)
	assert.Regexp(t, `(?m)^heartbeat lag:\s+\d+\s+\(min \d+, median \d+, max \d+ rounds between observers\)$`, out)
	// Each member's own counters, from Gossip.Stats.
	assert.Regexp(t, `(?m)^OBSERVER\s+ALIVE\s+FAILED\s+LEFT\s+FAILURE TIME\s+TIMEOUT\s+UNANSWERED\s+ROUNDS\s+SKIPPED\s+RPCS OUT/IN\s+BYTES OUT/IN`, out)
	for _, g := range ms {
		// The timeout is at least the failure time; the unanswered share a
		// percentage; no round skipped on a quiet loopback.
		ft := g.FailureTime().String()
		assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(g.Addr())+`\s+4\s+0\s+0\s+`+regexp.QuoteMeta(ft)+`\s+\S+s\s+\d+%\s+\d+\s+0\s+\d+/\d+\s+\d+/\d+\s+\d+ \(\d+\)`, out)
	}
}

func TestJSON(t *testing.T) {
	ms := startCluster(t, endpoint{Service: "api", URL: "http://h:1"}, "plain")
	code, out, errOut := runStats(t, "-json", ms[0].Addr(), ms[1].Addr())
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var got struct {
		Members []struct {
			Addr      string
			Heartbeat int64
			SeenBy    int `json:"seen_by"`
			Observers int
			Type      string
			Data      any
			DataText  string `json:"data_text"`
		}
		Observers []struct {
			Addr, Error string
			Stats       struct {
				FailureTime, Timeout time.Duration
				Unanswered           float64
				ExchangesSkipped     uint64
			}
		}
		Summary struct {
			Queried      int
			Answered     int
			MembersSeen  int `json:"members_seen"`
			SeenByAll    int `json:"seen_by_all"`
			Disagreement []string
			NoAnswer     []string `json:"no_answer"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, got.Members, 2, out)
	byAddr := map[string]int{ms[0].Addr(): 0, ms[1].Addr(): 1}
	for _, m := range got.Members {
		assert.Equal(t, 2, m.SeenBy, "member %s", m.Addr)
		assert.Equal(t, 2, m.Observers, "member %s", m.Addr)
		assert.Positive(t, m.Heartbeat, "member %s", m.Addr)
		switch byAddr[m.Addr] {
		case 0:
			assert.Equal(t, "main.endpoint", m.Type)
			assert.Equal(t, map[string]any{"Service": "api", "URL": "http://h:1", "Tags": map[string]any{}}, m.Data)
			assert.Equal(t, "{Service:api URL:http://h:1 Tags:map[]}", m.DataText)
		case 1:
			assert.Equal(t, "string", m.Type)
			assert.Equal(t, "plain", m.Data)
		}
	}
	require.Len(t, got.Observers, 2, out)
	for _, o := range got.Observers {
		assert.Positive(t, o.Stats.FailureTime, "%s: its counters", o.Addr)
		assert.GreaterOrEqual(t, o.Stats.Timeout, o.Stats.FailureTime, "%s: the timeout rule's wait", o.Addr)
		assert.GreaterOrEqual(t, o.Stats.Unanswered, 0.0, "%s", o.Addr)
	}
	assert.Equal(t, 2, got.Summary.Queried)
	assert.Equal(t, 2, got.Summary.Answered)
	assert.Equal(t, 2, got.Summary.MembersSeen)
	assert.Equal(t, 2, got.Summary.SeenByAll)
	assert.Empty(t, got.Summary.Disagreement)
	assert.Empty(t, got.Summary.NoAnswer)
}

func TestDisagreementAndNoAnswer(t *testing.T) {
	ms := startCluster(t, "a", "b")
	// A member the others list but that does not answer: a listener that
	// never serves, kept alive in the view of ms[0] by pushing it its
	// rising heartbeat. (A closed member would be dropped at once: dials to
	// it are refused.)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dead := ln.Addr().String()
	c, err := rpc.Dial("tcp", ms[0].Addr())
	require.NoError(t, err)
	defer c.Close()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for hb := int64(1); ; hb++ {
			c.Call("Gossip.Gossip", gossip.GossipRequest{Members: []gossip.Member{{Addr: dead, Heartbeat: hb, Data: "c"}}}, &gossip.GossipResponse{})
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-done }()
	require.Eventually(t, func() bool { return len(ms[0].GetMembers()) == 3 }, 5*time.Second, 5*time.Millisecond, "the silent member listed")
	code, out, errOut := runStats(t, "-all", "-timeout", "500ms", ms[0].Addr())
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, errOut, "stats: "+dead+": ", "one line naming the silent member")
	assert.Regexp(t, `(?m)^no answer:\s+1\s+`+dead+`$`, out)

	// Build a disagreement directly: one observer sees a member the other does not.
	r := buildReport([]observation{
		{Addr: "x:1", Members: []member{{Addr: "x:1", Heartbeat: 10}, {Addr: "y:1", Heartbeat: 7}}},
		{Addr: "y:1", Members: []member{{Addr: "x:1", Heartbeat: 8}, {Addr: "y:1", Heartbeat: 9}, {Addr: "z:1", Heartbeat: 3}}},
		{Addr: "z:1", Err: io.EOF},
	}, time.Now())
	var buf bytes.Buffer
	require.NoError(t, writeTable(&buf, r))
	assert.Regexp(t, `(?m)^disagreement:\s+1\s+z:1 \(seen by 1/2\)$`, buf.String())
	assert.Regexp(t, `(?m)^x:1\s+10\s+2/2\s+2\s`, buf.String())
	assert.Regexp(t, `(?m)^heartbeat lag:\s+2\s+\(min 0, median 2, max 2 rounds`, buf.String())
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	code, out, errOut := runStats(t, "-timeout", "1s", addr)
	assert.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	require.Len(t, lines, 2, "one error and the verdict: %q", errOut)
	assert.Contains(t, lines[0], "stats: "+addr+": ")
	assert.Contains(t, lines[0], "refused")
	assert.Equal(t, "stats: no address answered", lines[1])
	assert.Empty(t, out, "no table, summary or header without an answer")

	// -json still prints the object, with the observer's error.
	code, out, _ = runStats(t, "-json", "-timeout", "1s", addr)
	assert.Equal(t, 1, code)
	var got struct {
		Observers []struct{ Addr, Error string }
		Summary   struct{ Answered int }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, got.Observers, 1, out)
	assert.Contains(t, got.Observers[0].Error, "refused")
	assert.Zero(t, got.Summary.Answered)
}

func TestNotGossip(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()

	// A web server that answers before reading anything: the answer is
	// taken for HTTP whatever made it. It reads the request before it
	// closes, as closing with the request unread would reset the
	// connection, and the answer with it.
	eager := listen(t, func(c net.Conn) {
		c.Write([]byte("HTTP/1.0 503 Service Unavailable\r\n\r\n"))
		io.Copy(io.Discard, c)
	})
	garbage := listen(t, func(c net.Conn) {
		c.Write([]byte("\x05hello garbage that is not gob at all\xff\xff\xff"))
	})
	silent := listen(t, func(c net.Conn) {
		io.Copy(io.Discard, c) // reads, never answers
	})

	// The timeout is long: an answer other than "no answer within" came
	// before it, without waiting for the other side's own timeout.
	cases := []struct {
		name, addr, timeout, want string
	}{
		// net/http reads a request line up to a line end, which the first
		// request holds (see seqBase), and answers 400 at once.
		{"http server", strings.TrimPrefix(web.URL, "http://"), "30s", `not a gossip member: an HTTP server answered "HTTP/1.1 400 Bad Request" (the HTTP API's address? give the gossip one)`},
		{"eager http", eager, "30s", `not a gossip member: an HTTP server answered "HTTP/1.0 503 Service Unavailable"`},
		{"garbage", garbage, "30s", "not a gossip member"},
		{"silent", silent, "300ms", "no answer within 300ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runStats(t, "-timeout", c.timeout, c.addr)
			assert.Equal(t, 1, code, "stats %s", c.addr)
			assert.Empty(t, out, "stats %s", c.addr)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			require.Len(t, lines, 2, "stderr: %q", errOut)
			assert.Contains(t, lines[0], "stats: "+c.addr+": "+c.want)
			assert.Equal(t, "stats: no address answered", lines[1])
		})
	}
}

// TestNotGossipBesideMembers: a wrong address among good ones costs one
// error line; the table shows the members that answered.
func TestNotGossipBesideMembers(t *testing.T) {
	ms := startCluster(t, "a")
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	webAddr := strings.TrimPrefix(web.URL, "http://")
	code, out, errOut := runStats(t, "-timeout", "30s", ms[0].Addr(), webAddr)
	assert.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, "stats: "+webAddr+": not a gossip member: an HTTP server answered \"HTTP/1.1 400 Bad Request\" (the HTTP API's address? give the gossip one)\n", errOut)
	assert.Regexp(t, `(?m)^queried:\s+2\s+\(1 answered\)$`, out)
	assert.Regexp(t, `(?m)^no answer:\s+1\s+`+regexp.QuoteMeta(webAddr)+`$`, out)
}

// listen serves each connection with f on a loopback listener, closed at
// the end of the test with every connection.
func listen(t *testing.T, f func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() {
				f(c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestWatch(t *testing.T) {
	ms := startCluster(t, "w")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int)
	go func() { done <- run(ctx, []string{"-watch", "20ms", ms[0].Addr()}, noEnv, out, io.Discard) }()
	require.Eventually(t, func() bool {
		return strings.Count(out.String(), "\x1b[H\x1b[2J") >= 2
	}, 5*time.Second, 10*time.Millisecond, "two refreshes")
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not stop on cancel")
	}
	assert.Contains(t, out.String(), "interrupt to stop")
}

func TestUsage(t *testing.T) {
	code, _, errOut := runStats(t)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "stats: no address given")
	code, _, errOut = runStats(t, "-bogus", "127.0.0.1:1")
	assert.Equal(t, 2, code)
	assert.Equal(t, 1, strings.Count(errOut, "flag provided but not defined: -bogus"), "said once: %s", errOut)
	code, _, errOut = runStats(t, "-timeout", "0s", "127.0.0.1:1")
	assert.Equal(t, 2, code)
	assert.Equal(t, "stats: -timeout must be positive\n", errOut)
	code, _, errOut = runStats(t, "-h")
	assert.Equal(t, 0, code)
	for _, f := range []string{"-all", "-timeout", "-parallel", "-json", "-watch", "-tls-cert", "-tls-key", "-tls-ca", "-tls-server-name"} {
		assert.Contains(t, errOut, f, "usage names %s", f)
	}
	for _, env := range envFlags {
		assert.Contains(t, errOut, "(env "+env+", default ", "usage names %s and a default", env)
	}
	assert.NotContains(t, errOut, "-cluster", "GetMembers is answered whatever the cluster name")
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
