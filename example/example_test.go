package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) != "" {
		main() // the command itself, for the process tests
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

const (
	interval = 20 * time.Millisecond
	waitFor  = 5 * time.Second
	tick     = 10 * time.Millisecond
)

func quietLogger() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// node is a member with its API served by httptest.
type node struct {
	g   *gossip.Gossip
	api *api
	srv *httptest.Server
}

// startNodes starts one member per Service on loopback, joined through the
// first, each with its HTTP API, and waits until all see all.
func startNodes(t *testing.T, data ...Service) []node {
	t.Helper()
	var nodes []node
	for i, d := range data {
		cfg := gossip.Config{Addr: "127.0.0.1:0", Data: d, GossipInterval: interval, RPCTimeout: time.Second, Logger: quietLogger()}
		if i > 0 {
			cfg.Seeds = []string{nodes[0].g.Addr()}
		}
		g, err := gossip.NewWithConfig(cfg)
		require.NoError(t, err, "member %d", i)
		require.NoError(t, g.Start(), "member %d", i)
		a := newAPI(g, d, quietLogger())
		srv := httptest.NewServer(a.handler())
		t.Cleanup(func() {
			a.live.close()
			srv.Close()
			g.Close()
		})
		nodes = append(nodes, node{g, a, srv})
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if len(n.g.GetMembers()) != len(nodes) {
				return false
			}
		}
		return true
	}, waitFor, tick, "%d members did not converge", len(nodes))
	return nodes
}

// runAPI runs n's api (the events' log and the live view) until the test
// ends. A member's events go to one reader: tests that watch them
// themselves do not call it.
func runAPI(t *testing.T, n node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		n.api.run(ctx, quietLogger())
	}()
	t.Cleanup(func() {
		cancel()
		<-ran
	})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "GET %s", url)
	return resp.StatusCode, string(b)
}

func TestMembers(t *testing.T) {
	nodes := startNodes(t,
		Service{Name: "web", Endpoint: "http://10.0.0.1:9001", Tags: map[string]string{"zone": "a"}},
		Service{Name: "db", Endpoint: "tcp://10.0.0.2:5432"},
	)
	code, body := get(t, nodes[1].srv.URL+"/members")
	require.Equal(t, http.StatusOK, code, body)
	var got []struct {
		Addr      string
		Heartbeat int64
		Data      Service
	}
	require.NoError(t, json.Unmarshal([]byte(body), &got), body)
	require.Len(t, got, 2, body)
	want := map[string]Service{
		nodes[0].g.Addr(): {Name: "web", Endpoint: "http://10.0.0.1:9001", Tags: map[string]string{"zone": "a"}},
		nodes[1].g.Addr(): {Name: "db", Endpoint: "tcp://10.0.0.2:5432"},
	}
	for _, m := range got {
		assert.Equal(t, want[m.Addr], m.Data, "member %s", m.Addr)
		assert.Positive(t, m.Heartbeat, "member %s", m.Addr)
	}
}

func TestServices(t *testing.T) {
	nodes := startNodes(t,
		Service{Name: "web", Endpoint: "http://a:1"},
		Service{Name: "db", Endpoint: "tcp://b:2"},
		Service{Name: "web", Endpoint: "http://c:3", Tags: map[string]string{"v": "2"}},
	)
	type endpoints struct {
		Service   string
		Endpoints []endpointJSON
	}
	cases := []struct {
		name string
		want []string
	}{
		{"web", []string{"http://a:1", "http://c:3"}},
		{"db", []string{"tcp://b:2"}},
		{"none", nil},
	}
	for _, c := range cases {
		code, body := get(t, nodes[0].srv.URL+"/services/"+c.name)
		require.Equal(t, http.StatusOK, code, "service %s: %s", c.name, body)
		var got endpoints
		require.NoError(t, json.Unmarshal([]byte(body), &got), body)
		assert.Equal(t, c.name, got.Service)
		var urls []string
		for _, e := range got.Endpoints {
			urls = append(urls, e.Endpoint)
		}
		assert.ElementsMatch(t, c.want, urls, "service %s", c.name)
		assert.NotNil(t, got.Endpoints, "service %s: endpoints is a list, never null", c.name)
	}
	// A failed member's endpoint goes away.
	nodes[2].g.Close()
	require.Eventually(t, func() bool {
		_, body := get(t, nodes[0].srv.URL+"/services/web")
		return !strings.Contains(body, "http://c:3")
	}, waitFor, tick, "closed member still listed")
}

func TestPutData(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web", Endpoint: "http://a:1"}, Service{Name: "web", Endpoint: "http://b:2"})
	put := func(body string) (int, string) {
		req, err := http.NewRequest(http.MethodPut, nodes[0].srv.URL+"/data", strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := put(`{"tags":{"zone":"b"}}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"name":"web","endpoint":"http://a:1","tags":{"zone":"b"}}`, body)
	require.Eventually(t, func() bool {
		_, body := get(t, nodes[1].srv.URL+"/services/web")
		return strings.Contains(body, `"zone": "b"`)
	}, waitFor, tick, "the other member did not see the new tags")

	cases := []struct {
		name, body string
		want       int
	}{
		{"not json", `{`, http.StatusBadRequest},
		{"unknown field", `{"colour":"red"}`, http.StatusBadRequest},
		{"too large", `{"endpoint":"` + strings.Repeat("x", 2000) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		code, body := put(c.body)
		assert.Equal(t, c.want, code, "PUT %s: %s", c.name, body)
		assert.Contains(t, body, `"error"`, "PUT %s", c.name)
	}
	nodes[0].api.mu.Lock()
	kept := nodes[0].api.data.Endpoint
	nodes[0].api.mu.Unlock()
	assert.Equal(t, "http://a:1", kept, "data kept after refused updates")
}

func TestHealthz(t *testing.T) {
	nodes := startNodes(t, Service{Name: "web"})
	code, body := get(t, nodes[0].srv.URL+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	nodes[0].g.Close()
	code, _ = get(t, nodes[0].srv.URL+"/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}

func TestIndexPage(t *testing.T) {
	nodes := startNodes(t,
		Service{Name: "web", Endpoint: "http://a:1", Tags: map[string]string{"note": "<script>x</script>"}},
		Service{Name: "db", Endpoint: "javascript:alert(1)"},
	)
	runAPI(t, nodes[0])
	var body string
	require.Eventually(t, func() bool {
		var code int
		code, body = get(t, nodes[0].srv.URL+"/")
		return code == http.StatusOK && strings.Contains(body, ">2</span> live members")
	}, waitFor, tick, "the page shows both members")
	for _, n := range nodes {
		assert.Contains(t, body, `<tr data-addr="`+n.g.Addr()+`"`)
	}
	assert.Contains(t, body, nodes[0].g.Addr()+" (this member)")
	assert.Contains(t, body, `<a href="http://a:1">`)
	assert.Contains(t, body, "&lt;script&gt;x&lt;/script&gt;", "tags are escaped")
	assert.NotContains(t, body, "<script>x", "tags are escaped")
	assert.NotContains(t, body, `href="javascript:`, "unsafe URLs are not links")
	assert.NotContains(t, body, `http-equiv="refresh"`, "updates come from /events, not reloads")
	assert.Regexp(t, `<td class="num">\d+\.\d s ago</td>`, body, "last heard, in seconds")
	code, body := get(t, nodes[0].srv.URL+"/nothing")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, body, `"error"`)
}

func TestDiffAndLogs(t *testing.T) {
	log, hook := test.NewNullLogger()
	web := Service{Name: "web", Endpoint: "http://a:1"}
	a := gossip.Member{Addr: "a:1", Heartbeat: 1, Data: web}
	b := gossip.Member{Addr: "b:1", Heartbeat: 1, Data: "plain"}
	web2 := web.clone()
	web2.Tags["zone"] = "b"
	a2 := gossip.Member{Addr: "a:1", Heartbeat: 2, Data: web2}

	logChanges(log, "a:1", diff(nil, []gossip.Member{a, b}))
	logChanges(log, "a:1", diff([]gossip.Member{a, b}, []gossip.Member{a2}))
	logChanges(log, "a:1", diff([]gossip.Member{a2}, []gossip.Member{{Addr: "a:1", Heartbeat: 9, Data: web2}}))

	type line struct {
		level logrus.Level
		msg   string
		addr  interface{}
	}
	var got []line
	for _, e := range hook.AllEntries() {
		got = append(got, line{e.Level, e.Message, e.Data["addr"]})
	}
	assert.Equal(t, []line{
		{logrus.InfoLevel, "member joined", "a:1"},
		{logrus.InfoLevel, "member joined", "b:1"},
		{logrus.InfoLevel, "member data changed", "a:1"},
		{logrus.WarnLevel, "member failed", "b:1"},
	}, got, "a heartbeat alone is not a change")
	e := hook.AllEntries()[2]
	assert.Equal(t, "zone=b", e.Data["tags"])
	assert.Equal(t, "", e.Data["old_tags"])
	assert.Equal(t, true, hook.AllEntries()[0].Data["self"])
}

func TestWatchLogsCluster(t *testing.T) {
	log, hook := test.NewNullLogger()
	nodes := startNodes(t, Service{Name: "web"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	pageAPI := newAPI(nodes[0].g, Service{}, log)
	go func() {
		defer close(done)
		watch(ctx, nodes[0].g, log, pageAPI.live.record)
	}()
	defer func() {
		cancel()
		<-done
	}()
	has := func(msg, addr string) func() bool {
		return func() bool {
			for _, e := range hook.AllEntries() {
				if e.Message == msg && e.Data["addr"] == addr {
					return true
				}
			}
			return false
		}
	}
	other, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0", Seeds: []string{nodes[0].g.Addr()},
		Data: Service{Name: "db"}, GossipInterval: interval, Logger: quietLogger()})
	require.NoError(t, err)
	require.NoError(t, other.Start())
	defer other.Close()
	require.Eventually(t, has("member joined", other.Addr()), waitFor, tick, "join logged")
	require.NoError(t, other.UpdateData(Service{Name: "db", Tags: map[string]string{"v": "2"}}))
	require.Eventually(t, has("member data changed", other.Addr()), waitFor, tick, "data change logged")
	other.Close()
	require.Eventually(t, has("member failed", other.Addr()), waitFor, tick, "failure logged")

	// The page lists the same changes, newest first, and the failed
	// member apart from the live ones.
	rec := httptest.NewRecorder()
	pageAPI.index(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	assert.Contains(t, body, "Recent changes")
	row := func(kind string) int {
		return strings.Index(body, `<td class="kind-`+kind+`">`+kind+"</td><td>"+other.Addr()+"</td>")
	}
	failed, changed, joined := row("failed"), row("data"), row("joined")
	require.True(t, failed >= 0 && changed >= 0 && joined >= 0, "page lists the join, data change and failure:\n%s", body)
	assert.True(t, failed < changed && changed < joined, "newest first")
	assert.Contains(t, html.UnescapeString(body), `tags.v: +"2"`, "the data change says what changed")
	failedTable := body[strings.Index(body, `<table id="failed">`):strings.Index(body, `<table id="left">`)]
	assert.Contains(t, failedTable, `<tr data-addr="`+other.Addr()+`">`, "listed as failed")
	members := body[strings.Index(body, `<table id="members">`):strings.Index(body, `<table id="failed">`)]
	assert.NotContains(t, members, other.Addr(), "not listed as live")
}

func TestParseConfig(t *testing.T) {
	env := map[string]string{
		"GOSSIP_ADDR":     "0.0.0.0:7000",
		"GOSSIP_JOIN":     "m1:7000,m2:7000",
		"GOSSIP_INTERVAL": "250ms",
		"GOSSIP_DEBUG":    "true",
		"GOSSIP_SERVICE":  "api",
	}
	c, err := parseConfig([]string{"-service", "web", "-tags", "zone=a, v=2"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:7000", c.addr, "from the environment")
	assert.Equal(t, []string{"m1:7000", "m2:7000"}, seeds(c.join))
	assert.Equal(t, 250*time.Millisecond, c.interval)
	assert.True(t, c.debug)
	assert.Equal(t, "web", c.service, "the flag wins over GOSSIP_SERVICE")
	assert.Equal(t, "127.0.0.1:8080", c.http, "default")
	tags, err := parseTags(c.tags)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"zone": "a", "v": "2"}, tags)

	bad := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"bad env duration", nil, map[string]string{"GOSSIP_INTERVAL": "soon"}},
		{"bad tags", []string{"-tags", "novalue"}, nil},
		{"zero interval", []string{"-interval", "0s"}, nil},
		{"stray argument", []string{"extra"}, nil},
	}
	for _, c := range bad {
		_, err := parseConfig(c.args, func(k string) string { return c.env[k] }, io.Discard)
		assert.Error(t, err, c.name)
	}
	_, err = parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "http://m1:8080", defaultEndpoint("m1:7000", "0.0.0.0:8080"))
}

func TestUsage(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, f := range []string{"addr", "advertise", "join", "http", "service", "endpoint", "tags", "interval", "debug",
		"cluster", "tls-cert", "tls-key", "tls-ca"} {
		assert.Regexp(t, `(?m)^  -`+f+`( |$)`, out.String(), "usage lists -%s", f)
		assert.Contains(t, out.String(), "(env "+envName(f)+", default ", "usage gives the env twin of -%s", f)
	}
	assert.Contains(t, out.String(), `(env GOSSIP_ADDR, default "127.0.0.1:7000")`)
}

func TestStartAndShutdown(t *testing.T) {
	first, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval}, quietLogger())
	require.NoError(t, err)
	second, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", join: first.g.Addr(),
		tags: "zone=b", interval: interval}, quietLogger())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, body := get(t, "http://"+first.httpAddr+"/services/web")
		return strings.Count(body, `"endpoint"`) == 2
	}, waitFor, tick, "both endpoints listed")
	_, body := get(t, "http://"+first.httpAddr+"/services/web")
	assert.Contains(t, body, `"endpoint": "http://`+second.httpAddr+`"`, "default endpoint is the HTTP address")
	assert.Contains(t, body, `"zone": "b"`)

	require.NoError(t, second.shutdown(time.Second))
	require.NoError(t, first.shutdown(time.Second))
	_, err = http.Get("http://" + first.httpAddr + "/healthz")
	assert.Error(t, err, "the HTTP server is closed")
}
