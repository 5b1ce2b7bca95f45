package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveDNS serves DNS for g on a free loopback port until the test ends.
func serveDNS(t *testing.T, g *gossip.Gossip) *dnsServer {
	t.Helper()
	s, err := startDNS(g.GetMembers, dnsConfig{addr: "127.0.0.1:0"}, quietLogger())
	require.NoError(t, err, "start DNS")
	t.Cleanup(func() { assert.NoError(t, s.close(), "close DNS") })
	return s
}

// ask sends one question to server over network ("udp" or "tcp"), with an
// EDNS0 record offering edns bytes if edns > 0.
func ask(server, network, name string, qtype, edns uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	m := query(name, qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return nil, fmt.Errorf("%s %s over %s: %w", name, dns.TypeToString[qtype], network, err)
	}
	return r, nil
}

// srvSet renders SRV answers as "port target" lines, sorted.
func srvSet(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			out = append(out, fmt.Sprintf("%d %s", s.Port, s.Target))
		}
	}
	sort.Strings(out)
	return out
}

// addrSet renders A and AAAA records as addresses, sorted.
func addrSet(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch a := rr.(type) {
		case *dns.A:
			out = append(out, a.A.String())
		case *dns.AAAA:
			out = append(out, a.AAAA.String())
		}
	}
	sort.Strings(out)
	return out
}

// webAt is a web Service on host:port.
func webAt(host string, port int) Service {
	return Service{Name: "web", Endpoint: "http://" + net.JoinHostPort(host, strconv.Itoa(port))}
}

func TestDNSAnswersLiveInstances(t *testing.T) {
	nodes := startNodes(t, webAt("127.0.0.11", 9001), webAt("127.0.0.12", 9002), webAt("127.0.0.13", 9003),
		Service{Name: "db", Endpoint: "tcp://127.0.0.14:5432"})
	s := serveDNS(t, nodes[0].g)
	srvOf := func(ns ...node) []string {
		var out []string
		for _, n := range ns {
			_, port := splitEndpoint(n.api.data.Endpoint)
			out = append(out, fmt.Sprintf("%d %s.node.gossip.", port, nodeLabel(n.g.Addr())))
		}
		sort.Strings(out)
		return out
	}

	// check asks for SRV (both names) and A over UDP, and compares them
	// with what the live members in want advertise.
	check := func(c *assert.CollectT, want []node, ips []string) {
		for _, name := range []string{"web.service.gossip.", "_web._tcp.gossip."} {
			r, err := ask(s.addr, "udp", name, dns.TypeSRV, 0)
			if !assert.NoError(c, err) {
				return
			}
			assert.Equal(c, dns.RcodeSuccess, r.Rcode, name)
			assert.True(c, r.Authoritative, name)
			assert.Equal(c, srvOf(want...), srvSet(r), "%s SRV", name)
			assert.Equal(c, ips, addrSet(r.Extra), "%s SRV: the targets' addresses", name)
		}
		r, err := ask(s.addr, "udp", "web.service.gossip.", dns.TypeA, 0)
		if assert.NoError(c, err) {
			assert.Equal(c, ips, addrSet(r.Answer), "web A")
		}
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		check(c, nodes[:3], []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"})
	}, waitFor, tick, "three web instances")

	r, err := ask(s.addr, "tcp", nodeLabel(nodes[3].g.Addr())+".node.gossip.", dns.TypeA, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"127.0.0.14"}, addrSet(r.Answer), "a member by name, over TCP")
	r, err = ask(s.addr, "udp", "none.service.gossip.", dns.TypeSRV, 0)
	require.NoError(t, err)
	assert.Equal(t, dns.RcodeNameError, r.Rcode, "unknown service")
	r, err = ask(s.addr, "udp", "example.com.", dns.TypeA, 0)
	require.NoError(t, err)
	assert.Equal(t, dns.RcodeRefused, r.Rcode, "another zone")

	// A killed member is gone once the member serving DNS drops it.
	nodes[2].g.Close()
	begin := time.Now()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		check(c, nodes[:2], []string{"127.0.0.11", "127.0.0.12"})
	}, waitFor, tick, "the killed member is gone")
	t.Logf("killed member gone from DNS after %v (FailureTime %v)", time.Since(begin), nodes[0].g.FailureTime())

	// One that leaves is gone at once.
	// (Shutdown reports the closed member it could not tell.)
	err = nodes[1].g.Shutdown(context.Background())
	t.Logf("leaving: %v", err)
	begin = time.Now()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		check(c, nodes[:1], []string{"127.0.0.11"})
	}, waitFor, tick, "the member that left is gone")
	t.Logf("member that left gone from DNS after %v", time.Since(begin))
}

// startMany starts n members on loopback with service web, each on its own
// address 127.0.x.y, joined one after the other through the first, so that
// the first knows them all once they are started.
func startMany(t *testing.T, n int, every time.Duration) []*gossip.Gossip {
	t.Helper()
	gs := make([]*gossip.Gossip, 0, n)
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, g := range gs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.Close()
			}()
		}
		wg.Wait()
	})
	begin := time.Now()
	for i := 0; i < n; i++ {
		cfg := gossip.Config{Addr: "127.0.0.1:0", Data: webAt(fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250), 9000+i),
			GossipInterval: every, RPCTimeout: 5 * time.Second, Logger: quietLogger()}
		if i > 0 {
			cfg.Seeds = []string{gs[0].Addr()}
		}
		g, err := gossip.NewWithConfig(cfg)
		require.NoError(t, err, "member %d", i)
		require.NoError(t, g.Start(), "member %d", i)
		gs = append(gs, g)
		// One join at a time: 99 joining the first at once keep it
		// too busy to answer each in time on a loaded machine.
		require.Eventually(t, func() bool { return len(g.GetMembers()) > min(i, 1) }, 30*time.Second, 5*time.Millisecond,
			"member %d joined", i)
	}
	require.Eventually(t, func() bool { return len(gs[0].GetMembers()) == n }, 30*time.Second, 50*time.Millisecond,
		"the first member sees all %d", n)
	t.Logf("%d members started and known to the first in %v", n, time.Since(begin))
	return gs
}

func TestDNSTruncatesAndRetriesOverTCPWith100Instances(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts 100 members")
	}
	const n = 100
	// A long interval: joins do not wait for it, and 100 members
	// gossiping fast would take the CPU the package's other tests, run
	// beside this one, need.
	gs := startMany(t, n, 5*time.Second)
	s := serveDNS(t, gs[0])

	var want []string
	for i := 0; i < n; i++ {
		want = append(want, fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250))
	}
	sort.Strings(want)
	for _, edns := range []uint16{0, 1232, 4096} {
		r, err := ask(s.addr, "udp", "web.service.gossip.", dns.TypeSRV, edns)
		require.NoError(t, err, "EDNS0 %d", edns)
		assert.True(t, r.Truncated, "UDP answer (EDNS0 %d) has TC", edns)
		assert.NotEmpty(t, r.Answer, "UDP answer (EDNS0 %d): what fits", edns)
		assert.Less(t, len(r.Answer), n, "UDP answer (EDNS0 %d)", edns)
		r.Compress = true // as sent
		b, err := r.Pack()
		require.NoError(t, err)
		assert.LessOrEqual(t, len(b), max(512, min(int(edns), maxUDPSize)), "UDP answer (EDNS0 %d) size", edns)
	}
	// The retry over TCP, as a resolver does on TC. (Eventually: on a
	// loaded machine a member may be thought failed for a while.)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := ask(s.addr, "tcp", "web.service.gossip.", dns.TypeSRV, 0)
		if assert.NoError(c, err) {
			assert.False(c, r.Truncated, "TCP")
			assert.Len(c, srvSet(r), n, "one SRV per instance over TCP")
			assert.Equal(c, want, addrSet(r.Extra), "every target's address over TCP")
		}
		r, err = ask(s.addr, "tcp", "web.service.gossip.", dns.TypeA, 0)
		if assert.NoError(c, err) {
			assert.Equal(c, want, addrSet(r.Answer), "A over TCP")
		}
	}, 30*time.Second, 100*time.Millisecond, "all %d instances over TCP", n)

	t.Run("dig", func(t *testing.T) {
		requireDig(t)
		// dig retries over TCP by itself on TC.
		assert.EventuallyWithT(t, func(c *assert.CollectT) {
			out, err := runDig(s.addr, "web.service.gossip", "SRV")
			if assert.NoError(c, err, out) {
				assert.Contains(c, out, "Truncated, retrying in TCP mode", "dig saw TC")
				assert.Len(c, digSection(out, "ANSWER"), n, "dig lists every instance:\n%s", out)
			}
		}, 30*time.Second, 100*time.Millisecond, "dig lists all %d instances", n)
	})
}

// requireDig skips the test where dig is not installed.
func requireDig(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not installed (Debian package dnsutils): ", err)
	}
}

// runDig runs dig @server -p port args….
func runDig(server string, args ...string) (string, error) {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dig", append([]string{"@" + host, "-p", port, "+tries=2", "+time=2"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("dig %v: %w", args, err)
	}
	return string(out), nil
}

// dig runs dig @server -p port args…, skipping the test where dig is not
// installed.
func dig(t *testing.T, server string, args ...string) string {
	t.Helper()
	requireDig(t)
	out, err := runDig(server, args...)
	require.NoError(t, err, out)
	return out
}

// digSection returns the record lines of one section (ANSWER, ADDITIONAL…)
// of dig's output.
func digSection(out, section string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, ";; "+section+" SECTION:"):
			in = true
		case in && (l == "" || strings.HasPrefix(l, ";")):
			if len(lines) > 0 || l == "" {
				return lines
			}
		case in:
			lines = append(lines, l)
		}
	}
	return lines
}

func TestDigAgainstExample(t *testing.T) {
	requireDig(t)
	first, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval,
		endpoint: "http://127.0.0.21:9001", dns: "127.0.0.1:0", dnsDomain: "gossip."}, quietLogger())
	require.NoError(t, err)
	defer first.shutdown(time.Second)
	second, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval,
		endpoint: "http://127.0.0.22:9002", join: first.g.Addr()}, quietLogger())
	require.NoError(t, err)
	defer second.shutdown(time.Second)
	// Answers come from a read of the member table at most
	// defaultViewAge old: wait for one after the join.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := ask(first.dns.addr, "udp", "web.service.gossip.", dns.TypeSRV, 0)
		if assert.NoError(c, err) {
			assert.Len(c, r.Answer, 2)
		}
	}, waitFor, tick, "joined")

	out := dig(t, first.dns.addr, "web.service.gossip", "SRV")
	assert.Contains(t, out, "status: NOERROR")
	assert.Regexp(t, `flags: qr aa`, out, "authoritative")
	answer := strings.Join(digSection(out, "ANSWER"), "\n")
	for _, m := range []struct {
		app  *app
		port string
	}{{first, "9001"}, {second, "9002"}} {
		assert.Regexp(t, `web\.service\.gossip\.\s+0\s+IN\s+SRV\s+1 1 `+m.port+` `+nodeLabel(m.app.g.Addr())+`\.node\.gossip\.`, answer, "SRV of %s:\n%s", m.app.g.Addr(), out)
	}
	additional := strings.Join(digSection(out, "ADDITIONAL"), "\n")
	assert.Contains(t, additional, "127.0.0.21")
	assert.Contains(t, additional, "127.0.0.22")

	out = dig(t, first.dns.addr, "+short", "web.service.gossip", "A")
	assert.ElementsMatch(t, []string{"127.0.0.21", "127.0.0.22"}, strings.Fields(out), "dig +short A")
	out = dig(t, first.dns.addr, "nothing.service.gossip", "A")
	assert.Contains(t, out, "status: NXDOMAIN")
	out = dig(t, first.dns.addr, "example.com", "A")
	assert.Contains(t, out, "status: REFUSED")
}

func TestDNSStartAndShutdown(t *testing.T) {
	a, err := start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval,
		endpoint: "http://localhost:9001", dns: "127.0.0.1:0", dnsDomain: "Example.", dnsTTL: 3 * time.Second}, quietLogger())
	require.NoError(t, err)
	addr := a.dns.addr
	// The endpoint is a host name: looked up in the background, it is
	// answered with the addresses the system resolver gives.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := ask(addr, "udp", "web.service.example.", dns.TypeA, 0)
		if assert.NoError(c, err) {
			assert.Equal(c, []string{"127.0.0.1"}, addrSet(r.Answer))
			if assert.NotEmpty(c, r.Answer) {
				assert.EqualValues(c, 3, r.Answer[0].Header().Ttl, "-dns-ttl")
			}
		}
	}, waitFor, tick, "localhost resolved")
	require.NoError(t, a.shutdown(time.Second))
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "DNS over TCP is closed")
	_, err = ask(addr, "udp", "web.service.example.", dns.TypeA, 0)
	assert.Error(t, err, "DNS over UDP is closed")
}

func TestDNSSurvivesMalformedInput(t *testing.T) {
	nodes := startNodes(t, webAt("127.0.0.11", 9001))
	s := serveDNS(t, nodes[0].g)

	valid, err := query("web.service.gossip.", dns.TypeA).Pack()
	require.NoError(t, err)
	inputs := [][]byte{
		{},
		{0x12},
		bytes.Repeat([]byte{0xff}, 12),
		bytes.Repeat([]byte{0xff}, 600),
		valid[:len(valid)-3], // a question cut short
		append(append([]byte{}, valid[:12]...), 0xc0, 12), // a name pointing at itself
		append(append([]byte{}, valid...), bytes.Repeat([]byte{0}, 3000)...),
	}
	qd := append([]byte{}, valid...)
	qd[4], qd[5] = 0xff, 0xff // 65535 questions claimed
	inputs = append(inputs, qd)

	conn, err := net.Dial("udp", s.addr)
	require.NoError(t, err)
	defer conn.Close()
	for _, in := range inputs {
		_, err := conn.Write(in)
		require.NoError(t, err)
	}
	tc, err := net.Dial("tcp", s.addr)
	require.NoError(t, err)
	defer tc.Close()
	for _, in := range inputs {
		tc.Write(append([]byte{byte(len(in) >> 8), byte(len(in))}, in...))
	}
	tc.Write([]byte{0xff, 0xff, 1, 2, 3}) // a length never followed by its message
	// Whatever came back to the junk (at most a FORMERR), queries are
	// answered.
	for _, network := range []string{"udp", "tcp"} {
		r, err := ask(s.addr, network, "web.service.gossip.", dns.TypeA, 0)
		require.NoError(t, err, network)
		assert.Equal(t, []string{"127.0.0.11"}, addrSet(r.Answer), network)
	}
}

func TestDNSFlags(t *testing.T) {
	env := map[string]string{"GOSSIP_DNS": "127.0.0.1:8600", "GOSSIP_DNS_TTL": "5s"}
	c, err := parseConfig([]string{"-dns-domain", "consul"}, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8600", c.dns)
	assert.Equal(t, 5*time.Second, c.dnsTTL)
	assert.Equal(t, "consul", c.dnsDomain)

	c, err = parseConfig(nil, func(string) string { return "" }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "", c.dns, "off by default")
	assert.Equal(t, "gossip.", c.dnsDomain)
	assert.Equal(t, time.Duration(0), c.dnsTTL)

	for _, args := range [][]string{{"-dns-ttl", "-1s"}, {"-dns-ttl", "1.5s"}, {"-dns-domain", "a b"}, {"-dns-domain", "."}} {
		_, err := parseConfig(args, func(string) string { return "" }, io.Discard)
		assert.Error(t, err, "%v", args)
	}

	var out bytes.Buffer
	_, err = parseConfig([]string{"-h"}, func(string) string { return "" }, &out)
	require.Error(t, err)
	for _, f := range []string{"dns", "dns-domain", "dns-ttl"} {
		assert.Regexp(t, `(?m)^  -`+f+`( |$)`, out.String(), "usage lists -%s", f)
		assert.Contains(t, out.String(), "(env "+envName(f)+", default ", "usage gives the env twin of -%s", f)
	}

	_, err = start(config{addr: "127.0.0.1:0", http: "127.0.0.1:0", service: "web", interval: interval, dns: "127.0.0.1:bad"}, quietLogger())
	assert.Error(t, err, "a bad -dns address stops the start")
}

func TestHostCache(t *testing.T) {
	var mu sync.Mutex // protects names and table
	names := []string{"a", "b"}
	table := map[string][]netip.Addr{
		"a": {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.1")},
		"b": {netip.MustParseAddr("fd00::2")},
		"c": {netip.MustParseAddr("10.0.0.3")},
	}
	newCache := func() *hostCache {
		return newHostCache(func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), names...)
		}, func(ctx context.Context, host string) ([]netip.Addr, error) {
			mu.Lock()
			defer mu.Unlock()
			if a, ok := table[host]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		}, time.Hour)
	}
	ctx := context.Background()
	c := newCache()
	c.refresh(ctx)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.0.0.1")}, c.get("a"), "unmapped, once")
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("fd00::2")}, c.get("b"))
	assert.Empty(t, c.kick, "no round asked for names looked up")

	// A failing lookup keeps what was found; a name no longer used goes;
	// a name that does not resolve is remembered as such, so that queries
	// do not ask for rounds again and again.
	mu.Lock()
	names = []string{"a", "c", "nowhere"}
	delete(table, "a")
	mu.Unlock()
	assert.Empty(t, c.get("nowhere"))
	assert.Len(t, c.kick, 1, "a name not looked up yet asks for a round")
	<-c.kick
	c.refresh(ctx)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.0.0.1")}, c.get("a"), "kept through a failed lookup")
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("10.0.0.3")}, c.get("c"))
	for i := 0; i < 100; i++ {
		assert.Empty(t, c.get("nowhere"))
	}
	assert.Empty(t, c.kick, "no round asked for a name known not to resolve")
	assert.Empty(t, c.get("b"), "forgotten")

	// Running, it looks up a new name when a query asks, well before its
	// hourly round.
	mu.Lock()
	names = []string{"c"}
	mu.Unlock()
	c = newCache()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	require.Eventually(t, func() bool { return len(c.get("c")) > 0 }, waitFor, tick, "c looked up at start")
	mu.Lock()
	names = []string{"b", "c"}
	mu.Unlock()
	require.Eventually(t, func() bool { return len(c.get("b")) > 0 }, waitFor, tick, "b looked up when asked")
}
