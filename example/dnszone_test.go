package main

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testZone is a zone over a fixed member list.
func testZone(ms ...gossip.Member) *zone {
	snap := newSnapshot(ms)
	return &zone{domain: "gossip.", ttl: 0, snapshot: func() *snapshot { return snap }}
}

func member(addr, name, endpoint string) gossip.Member {
	return gossip.Member{Addr: addr, Heartbeat: 1, Data: Service{Name: name, Endpoint: endpoint}}
}

// query is a question of qtype for name, without EDNS0.
func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// records renders a section one record a line, without the header's TTL
// and class, sorted.
func records(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		h := rr.Header()
		out = append(out, h.Name+" "+dns.TypeToString[h.Rrtype]+" "+strings.TrimPrefix(rr.String(), h.String()))
	}
	sort.Strings(out)
	return out
}

func TestZoneAnswers(t *testing.T) {
	z := testZone(
		member("10.0.0.1:7000", "web", "http://10.0.1.1:9001"),
		member("10.0.0.2:7000", "web", "10.0.1.2:9002"),
		member("[fd00::3]:7000", "web", "https://[fd00::13]"),
		member("10.0.0.4:7000", "db", "tcp://db4.internal:5432"),
		member("m5:7000", "Cache", "tcp://10.0.1.5"),
		gossip.Member{Addr: "10.0.0.6:7000", Heartbeat: 1, Data: "not a Service"},
	)
	srvWeb := []string{
		"NAME SRV 1 1 443 fd00--3-7000.node.gossip.",
		"NAME SRV 1 1 9001 10-0-0-1-7000.node.gossip.",
		"NAME SRV 1 1 9002 10-0-0-2-7000.node.gossip.",
	}
	extraWeb := []string{
		"10-0-0-1-7000.node.gossip. A 10.0.1.1",
		"10-0-0-2-7000.node.gossip. A 10.0.1.2",
		"fd00--3-7000.node.gossip. AAAA fd00::13",
	}
	soa := []string{"gossip. SOA ns.gossip. hostmaster.gossip. 1 3600 600 86400 0"}
	cases := []struct {
		name  string
		qtype uint16
		rcode int
		ans   []string // NAME stands for the question's name
		extra []string
		ns    []string
	}{
		{"web.service.gossip.", dns.TypeSRV, dns.RcodeSuccess, srvWeb, extraWeb, nil},
		{"_web._tcp.gossip.", dns.TypeSRV, dns.RcodeSuccess, srvWeb, extraWeb, nil},
		{"WEB.Service.Gossip.", dns.TypeSRV, dns.RcodeSuccess, srvWeb, extraWeb, nil},
		{"web.service.gossip.", dns.TypeA, dns.RcodeSuccess, []string{"NAME A 10.0.1.1", "NAME A 10.0.1.2"}, nil, nil},
		{"web.service.gossip.", dns.TypeAAAA, dns.RcodeSuccess, []string{"NAME AAAA fd00::13"}, nil, nil},
		{"web.service.gossip.", dns.TypeMX, dns.RcodeSuccess, nil, nil, soa},
		{"web.service.gossip.", dns.TypeANY, dns.RcodeSuccess, []string{`NAME HINFO "RFC8482" ""`}, nil, nil},
		{"_web._tcp.gossip.", dns.TypeA, dns.RcodeSuccess, nil, nil, soa},
		// A host name endpoint: the SRV target is that name, no address.
		{"db.service.gossip.", dns.TypeSRV, dns.RcodeSuccess, []string{"NAME SRV 1 1 5432 db4.internal."}, nil, nil},
		{"db.service.gossip.", dns.TypeA, dns.RcodeSuccess, nil, nil, soa},
		// No port in the endpoint: addresses, but no SRV.
		{"cache.service.gossip.", dns.TypeA, dns.RcodeSuccess, []string{"NAME A 10.0.1.5"}, nil, nil},
		{"cache.service.gossip.", dns.TypeSRV, dns.RcodeSuccess, nil, nil, soa},
		{"10-0-0-1-7000.node.gossip.", dns.TypeA, dns.RcodeSuccess, []string{"NAME A 10.0.1.1"}, nil, nil},
		{"fd00--3-7000.node.gossip.", dns.TypeAAAA, dns.RcodeSuccess, []string{"NAME AAAA fd00::13"}, nil, nil},
		{"fd00--3-7000.node.gossip.", dns.TypeA, dns.RcodeSuccess, nil, nil, soa},
		// A member without a Service is named by its gossip address.
		{"10-0-0-6-7000.node.gossip.", dns.TypeA, dns.RcodeSuccess, []string{"NAME A 10.0.0.6"}, nil, nil},
		{"m5-7000.node.gossip.", dns.TypeA, dns.RcodeSuccess, []string{"NAME A 10.0.1.5"}, nil, nil},
		{"gossip.", dns.TypeSOA, dns.RcodeSuccess, soa, nil, nil},
		{"gossip.", dns.TypeA, dns.RcodeSuccess, nil, nil, soa},
		{"service.gossip.", dns.TypeA, dns.RcodeSuccess, nil, nil, soa},
		{"node.gossip.", dns.TypeANY, dns.RcodeSuccess, nil, nil, soa},
		{"none.service.gossip.", dns.TypeSRV, dns.RcodeNameError, nil, nil, soa},
		{"_none._tcp.gossip.", dns.TypeSRV, dns.RcodeNameError, nil, nil, soa},
		{"_web._udp.gossip.", dns.TypeSRV, dns.RcodeNameError, nil, nil, soa},
		{"a.web.service.gossip.", dns.TypeA, dns.RcodeNameError, nil, nil, soa},
		{"10-0-0-9-7000.node.gossip.", dns.TypeA, dns.RcodeNameError, nil, nil, soa},
		{"other.gossip.", dns.TypeA, dns.RcodeNameError, nil, nil, soa},
		{`we\.b.service.gossip.`, dns.TypeA, dns.RcodeNameError, nil, nil, soa},
		{"example.com.", dns.TypeA, dns.RcodeRefused, nil, nil, nil},
		{`web\.service.gossip.`, dns.TypeA, dns.RcodeNameError, nil, nil, soa},
		{`x\.gossip.`, dns.TypeA, dns.RcodeRefused, nil, nil, nil},
		{".", dns.TypeNS, dns.RcodeRefused, nil, nil, nil},
		{"gossip.", dns.TypeAXFR, dns.RcodeRefused, nil, nil, nil},
		{"gossip.", dns.TypeIXFR, dns.RcodeRefused, nil, nil, nil},
	}
	for _, c := range cases {
		desc := fmt.Sprintf("%s %s", c.name, dns.TypeToString[c.qtype])
		got := z.answer(query(c.name, c.qtype), true)
		require.NotNil(t, got, desc)
		assert.Equal(t, dns.RcodeToString[c.rcode], dns.RcodeToString[got.Rcode], desc)
		var want []string
		for _, a := range c.ans {
			want = append(want, strings.Replace(a, "NAME", c.name, 1))
		}
		sort.Strings(want)
		assert.Equal(t, want, records(got.Answer), "%s: answer", desc)
		assert.Equal(t, c.extra, records(got.Extra), "%s: additional", desc)
		assert.Equal(t, c.ns, records(got.Ns), "%s: authority", desc)
		assert.Equal(t, c.rcode != dns.RcodeRefused, got.Authoritative, "%s: AA", desc)
		assert.Equal(t, []dns.Question{{Name: c.name, Qtype: c.qtype, Qclass: dns.ClassINET}}, got.Question, desc)
	}
}

func TestZoneRefusesOddMessages(t *testing.T) {
	z := testZone(member("10.0.0.1:7000", "web", "http://10.0.1.1:9001"))

	chaos := query("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	inZoneChaos := query("web.service.gossip.", dns.TypeA)
	inZoneChaos.Question[0].Qclass = dns.ClassCHAOS
	notify := query("gossip.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	update := query("gossip.", dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	two := query("web.service.gossip.", dns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	none := query("web.service.gossip.", dns.TypeA)
	none.Question = nil
	edns1 := query("web.service.gossip.", dns.TypeA)
	edns1.SetEdns0(1232, false)
	edns1.IsEdns0().SetVersion(1)

	for _, c := range []struct {
		name  string
		req   *dns.Msg
		rcode int
	}{
		{"CHAOS class", chaos, dns.RcodeRefused},
		{"CHAOS class in the zone", inZoneChaos, dns.RcodeRefused},
		{"NOTIFY", notify, dns.RcodeNotImplemented},
		{"UPDATE", update, dns.RcodeNotImplemented},
		{"two questions", two, dns.RcodeFormatError},
		{"no question", none, dns.RcodeFormatError},
		{"EDNS version 1", edns1, dns.RcodeBadVers},
	} {
		got := z.answer(c.req, false)
		require.NotNil(t, got, c.name)
		assert.Equal(t, dns.RcodeToString[c.rcode], dns.RcodeToString[got.Rcode], c.name)
		assert.Empty(t, got.Answer, c.name)
		_, err := got.Pack()
		assert.NoError(t, err, "%s: the answer packs", c.name)
	}

	resp := query("web.service.gossip.", dns.TypeA)
	resp.Response = true
	assert.Nil(t, z.answer(resp, false), "a response gets no response")
}

// manyWeb is n members of service web on 127.0.1.x, each on its own port.
func manyWeb(n int) []gossip.Member {
	ms := make([]gossip.Member, n)
	for i := range ms {
		ms[i] = member(fmt.Sprintf("127.0.0.1:%d", 7000+i), "web", fmt.Sprintf("http://127.0.%d.%d:%d", 1+i/250, 1+i%250, 9000+i))
	}
	return ms
}

func TestZoneTruncates(t *testing.T) {
	z := testZone(manyWeb(100)...)
	edns := func(size uint16) *dns.Msg {
		m := query("web.service.gossip.", dns.TypeSRV)
		m.SetEdns0(size, false)
		return m
	}
	for _, c := range []struct {
		name    string
		req     *dns.Msg
		tcp     bool
		maxSize int
	}{
		{"UDP", query("web.service.gossip.", dns.TypeSRV), false, dns.MinMsgSize},
		{"UDP, EDNS0 1232", edns(1232), false, 1232},
		{"UDP, EDNS0 65535 offered", edns(65535), false, maxUDPSize},
		{"UDP, EDNS0 100 offered", edns(100), false, dns.MinMsgSize},
		{"UDP, A", query("web.service.gossip.", dns.TypeA), false, dns.MinMsgSize},
	} {
		got := z.answer(c.req, c.tcp)
		b, err := got.Pack()
		require.NoError(t, err, c.name)
		assert.LessOrEqual(t, len(b), c.maxSize, c.name)
		assert.True(t, got.Truncated, "%s: TC", c.name)
		assert.NotEmpty(t, got.Answer, "%s: as many records as fit", c.name)
		assert.Less(t, len(got.Answer), 100, c.name)
		assert.Equal(t, c.req.IsEdns0() != nil, got.IsEdns0() != nil, "%s: OPT echoed", c.name)
	}
	got := z.answer(query("web.service.gossip.", dns.TypeSRV), true)
	assert.False(t, got.Truncated, "TCP")
	assert.Len(t, got.Answer, 100, "TCP: every instance")
	assert.Len(t, got.Extra, 100, "TCP: every target's address")

	// Beyond maxRecords, a random maxRecords of them.
	z = testZone(manyWeb(maxRecords + 50)...)
	got = z.answer(query("web.service.gossip.", dns.TypeSRV), true)
	assert.Len(t, got.Answer, maxRecords)
	got = z.answer(query("web.service.gossip.", dns.TypeA), true)
	assert.Len(t, got.Answer, maxRecords)
}

func TestZoneShufflesAnswers(t *testing.T) {
	z := testZone(manyWeb(10)...)
	orders := make(map[string]bool)
	for i := 0; i < 20; i++ {
		got := z.answer(query("web.service.gossip.", dns.TypeA), false)
		require.Len(t, got.Answer, 10)
		var ips []string
		for _, rr := range got.Answer {
			ips = append(ips, rr.(*dns.A).A.String())
		}
		orders[strings.Join(ips, " ")] = true
	}
	assert.Greater(t, len(orders), 1, "20 answers of 10 addresses came in %d order(s)", len(orders))
}

func TestZoneResolvedHostNames(t *testing.T) {
	z := testZone(member("m1:7000", "web", "http://m1:8080"), member("m2:7000", "web", "http://m2:8080"))
	z.resolve = func(host string) []netip.Addr {
		if host == "m1" {
			return []netip.Addr{netip.MustParseAddr("172.20.0.2")}
		}
		return nil
	}
	got := z.answer(query("web.service.gossip.", dns.TypeSRV), true)
	assert.Equal(t, []string{
		"web.service.gossip. SRV 1 1 8080 m1-7000.node.gossip.",
		"web.service.gossip. SRV 1 1 8080 m2.",
	}, records(got.Answer), "a resolved name is a node target; one not resolved is itself")
	assert.Equal(t, []string{"m1-7000.node.gossip. A 172.20.0.2"}, records(got.Extra))
	got = z.answer(query("web.service.gossip.", dns.TypeA), true)
	assert.Equal(t, []string{"web.service.gossip. A 172.20.0.2"}, records(got.Answer))
}

func TestZoneTTL(t *testing.T) {
	z := testZone(member("10.0.0.1:7000", "web", "http://10.0.1.1:9001"))
	z.ttl = 5
	got := z.answer(query("web.service.gossip.", dns.TypeSRV), false)
	require.NotEmpty(t, got.Answer)
	for _, rr := range append(got.Answer, got.Extra...) {
		assert.EqualValues(t, 5, rr.Header().Ttl, rr.String())
	}
	got = z.answer(query("none.service.gossip.", dns.TypeSRV), false)
	require.Len(t, got.Ns, 1)
	assert.EqualValues(t, 5, got.Ns[0].(*dns.SOA).Minttl, "negative caching as long as positive")
}

func TestNodeLabel(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"10.0.0.1:7000", "10-0-0-1-7000"},
		{"[fd00::1]:7000", "fd00--1-7000"},
		{"M1:7000", "m1-7000"},
		{"web-0.svc.cluster.local:7000", "web-0-svc-cluster-local-7000"},
		{"not an address", "not-an-address"},
	} {
		assert.Equal(t, c.want, nodeLabel(c.addr), "nodeLabel(%q)", c.addr)
	}
	long := strings.Repeat("a", 60) + ".example:7000"
	got := nodeLabel(long)
	assert.Regexp(t, `^h[0-9a-f]{16}$`, got, "a long address is hashed")
	assert.Equal(t, got, nodeLabel(long), "stable")
	assert.NotEqual(t, got, nodeLabel(strings.Repeat("b", 60)+".example:7000"))
	assert.Regexp(t, `^h[0-9a-f]{16}$`, nodeLabel(""))
}

func TestSplitEndpoint(t *testing.T) {
	for _, c := range []struct {
		ep   string
		host string
		port uint16
	}{
		{"http://10.0.0.1:8080", "10.0.0.1", 8080},
		{"http://10.0.0.1", "10.0.0.1", 80},
		{"HTTPS://[fd00::1]/path", "fd00::1", 443},
		{"http://[::ffff:10.0.0.1]:1", "10.0.0.1", 1},
		{"http://[fe80::1%25eth0]:1", "fe80::1", 1},
		{"tcp://db.internal:5432", "db.internal", 5432},
		{"tcp://DB.Internal.", "db.internal", 0},
		{"10.0.0.1:53", "10.0.0.1", 53},
		{"10.0.0.1", "10.0.0.1", 0},
		{"m1:99999", "m1", 0},
		{"", "", 0},
		{"http://bad host:1", "", 0},
		{"http://%zz", "", 0},
		{"x://a..b:1", "", 0},
		{"x://" + strings.Repeat("a", 64) + ":1", "", 0},
	} {
		host, port := splitEndpoint(c.ep)
		assert.Equal(t, c.host, host, "splitEndpoint(%q) host", c.ep)
		assert.Equal(t, c.port, port, "splitEndpoint(%q) port", c.ep)
	}
}

func TestCheckDNSConfig(t *testing.T) {
	c, err := checkDNSConfig(dnsConfig{})
	require.NoError(t, err)
	assert.Equal(t, "gossip.", c.domain)
	assert.EqualValues(t, defaultDNSRate, c.rate)
	c, err = checkDNSConfig(dnsConfig{domain: "Consul", ttl: 5 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, "consul.", c.domain, "lowercase, fully qualified")
	for _, bad := range []dnsConfig{
		{domain: "."},
		{domain: "a b."},
		{domain: "a..b"},
		{ttl: -time.Second},
		{ttl: 1500 * time.Millisecond},
		{ttl: 48 * time.Hour},
	} {
		_, err := checkDNSConfig(bad)
		assert.Error(t, err, "%+v", bad)
	}
}

// recorder is a dns.ResponseWriter that keeps what is written.
type recorder struct {
	remote net.Addr
	msgs   []*dns.Msg
}

func (r *recorder) LocalAddr() net.Addr         { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr        { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error   { r.msgs = append(r.msgs, m); return nil }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) TsigStatus() error           { return nil }
func (r *recorder) TsigTimersOnly(bool)         {}
func (r *recorder) Hijack()                     {}

func TestHandlerRateLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	h := &dnsHandler{
		zone:  testZone(member("10.0.0.1:7000", "web", "http://10.0.1.1:9001")),
		limit: newRateLimiter(10, 20, func() time.Time { return now }),
		slots: make(chan struct{}, 1),
		log:   quietLogger(),
	}
	flooder := &recorder{remote: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5353}}
	for i := 0; i < 1000; i++ {
		h.ServeDNS(flooder, query("web.service.gossip.", dns.TypeA))
	}
	assert.Len(t, flooder.msgs, 20, "a burst answered, the rest dropped")
	assert.EqualValues(t, 980, h.shed.Load())

	other := otherBucket(t, h.limit, netip.MustParseAddr("192.0.2.1"))
	bystander := &recorder{remote: &net.UDPAddr{IP: other.AsSlice(), Port: 53}}
	h.ServeDNS(bystander, query("web.service.gossip.", dns.TypeA))
	require.Len(t, bystander.msgs, 1, "another address is answered")
	assert.Len(t, bystander.msgs[0].Answer, 1)

	now = now.Add(time.Second)
	for i := 0; i < 100; i++ {
		h.ServeDNS(flooder, query("web.service.gossip.", dns.TypeA))
	}
	assert.Len(t, flooder.msgs, 30, "10 more a second later")

	tcp := &recorder{remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5353}}
	h.ServeDNS(tcp, query("web.service.gossip.", dns.TypeA))
	require.Len(t, tcp.msgs, 1, "over TCP, an answer")
	assert.Equal(t, dns.RcodeRefused, tcp.msgs[0].Rcode, "over TCP, REFUSED")

	// No slot free: shed too.
	h.limit = newRateLimiter(-1, 0, time.Now)
	h.slots <- struct{}{}
	h.ServeDNS(bystander, query("web.service.gossip.", dns.TypeA))
	assert.Len(t, bystander.msgs, 1, "no slot: dropped")
	<-h.slots
	h.ServeDNS(bystander, query("web.service.gossip.", dns.TypeA))
	assert.Len(t, bystander.msgs, 2, "a slot: answered")
}

// otherBucket returns an address whose bucket in l is not addr's.
func otherBucket(t *testing.T, l *rateLimiter, addr netip.Addr) netip.Addr {
	t.Helper()
	index := func(a netip.Addr) int {
		saved := l.buckets
		defer func() { l.buckets = saved }()
		l.buckets = [len(l.buckets)]bucket{}
		l.allow(a)
		for i, b := range l.buckets {
			if !b.last.IsZero() {
				return i
			}
		}
		return -1
	}
	mine := index(addr)
	for i := 2; i < 250; i++ {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if index(a) != mine {
			return a
		}
	}
	t.Fatal("every address in one bucket")
	return netip.Addr{}
}

// FuzzDNSHandler feeds any bytes that unpack as a DNS message to the
// handler, over UDP and TCP, and checks that the answer, if any, packs,
// fits its transport, stays within maxRecords a section, and refuses
// questions outside the zone.
func FuzzDNSHandler(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.service.gossip.", dns.TypeSRV},
		{"_web._tcp.gossip.", dns.TypeSRV},
		{"web.service.gossip.", dns.TypeA},
		{"web.service.gossip.", dns.TypeAAAA},
		{"web.service.gossip.", dns.TypeANY},
		{"db.service.gossip.", dns.TypeSRV},
		{"10-0-0-1-7000.node.gossip.", dns.TypeA},
		{"gossip.", dns.TypeSOA},
		{"gossip.", dns.TypeAXFR},
		{"none.service.gossip.", dns.TypeA},
		{"example.com.", dns.TypeA},
	} {
		for _, edns := range []uint16{0, 512, 4096} {
			m := query(q.name, q.qtype)
			if edns > 0 {
				m.SetEdns0(edns, false)
			}
			b, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))

	ms := append(manyWeb(maxRecords+10),
		member("10.0.0.1:7000", "db", "tcp://db.internal:5432"),
		member("[fd00::1]:7000", "db", "http://[fd00::2]:1"),
		gossip.Member{Addr: "10.0.0.2:7000", Data: "plain"})
	h := &dnsHandler{
		zone:  testZone(ms...),
		limit: newRateLimiter(-1, 0, time.Now),
		slots: make(chan struct{}, 1),
		log:   quietLogger(),
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the server drops what does not unpack
		}
		for _, remote := range []net.Addr{
			&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53},
			&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53},
		} {
			w := &recorder{remote: remote}
			h.ServeDNS(w, req)
			if req.Response {
				if len(w.msgs) != 0 {
					t.Fatalf("answered a response: %v", w.msgs[0])
				}
				continue
			}
			if len(w.msgs) != 1 {
				t.Fatalf("%d answers to %v", len(w.msgs), req)
			}
			resp := w.msgs[0]
			packed, err := resp.Pack()
			if err != nil {
				t.Fatalf("answer to %v does not pack: %v\n%v", req, err, resp)
			}
			if _, udp := remote.(*net.UDPAddr); udp {
				limit := dns.MinMsgSize
				if req.IsEdns0() != nil {
					limit = maxUDPSize
				}
				if len(packed) > limit {
					t.Fatalf("UDP answer of %d bytes, limit %d, to %v", len(packed), limit, req)
				}
			}
			if resp.Id != req.Id || !resp.Response {
				t.Fatalf("answer %v does not match %v", resp, req)
			}
			if len(resp.Answer) > maxRecords || len(resp.Extra) > maxRecords+1 || len(resp.Ns) > 1 {
				t.Fatalf("answer with %d/%d/%d records", len(resp.Answer), len(resp.Ns), len(resp.Extra))
			}
			if req.Opcode == dns.OpcodeQuery && len(req.Question) == 1 && req.IsEdns0() == nil {
				q := req.Question[0]
				if !dns.IsSubDomain("gossip.", dns.CanonicalName(q.Name)) && resp.Rcode != dns.RcodeRefused {
					t.Fatalf("%s is not ours, answered %s", q.Name, dns.RcodeToString[resp.Rcode])
				}
			}
		}
	})
}

// BenchmarkDNSAnswer measures one answer from a member holding 100 web
// instances (received as gossip): "read" reads the member table for the
// answer (as a liveView with maxAge below 0 would); the others share one
// read, as queries do within defaultViewAge.
func BenchmarkDNSAnswer(b *testing.B) {
	g, err := gossip.NewWithConfig(gossip.Config{Addr: "127.0.0.1:0", Data: Service{Name: "self"}, Logger: quietLogger()})
	require.NoError(b, err)
	require.NoError(b, g.Start())
	defer g.Close()
	g.Receive(manyWeb(100))
	require.Len(b, g.GetMembers(), 101)
	shared := g.GetMembers()
	for _, c := range []struct {
		name  string
		read  bool
		qname string
		qtype uint16
		tcp   bool
	}{
		{"read/SRV/UDP", true, "web.service.gossip.", dns.TypeSRV, false},
		{"SRV/UDP", false, "web.service.gossip.", dns.TypeSRV, false},
		{"SRV/TCP", false, "web.service.gossip.", dns.TypeSRV, true},
		{"A/TCP", false, "web.service.gossip.", dns.TypeA, true},
		{"NXDOMAIN", false, "none.service.gossip.", dns.TypeA, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			snap := newSnapshot(shared)
			z := &zone{domain: "gossip.", snapshot: func() *snapshot { return snap }}
			if c.read {
				z.snapshot = func() *snapshot { return newSnapshot(g.GetMembers()) }
			}
			q := query(c.qname, c.qtype)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := z.answer(q, c.tcp).Pack(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestLiveView(t *testing.T) {
	now := time.Unix(1000, 0)
	reads := 0
	v := &liveView{read: func() []gossip.Member {
		reads++
		return []gossip.Member{{Addr: fmt.Sprintf("10.0.0.%d:1", reads)}}
	}, maxAge: 100 * time.Millisecond, now: func() time.Time { return now }}
	read := func() string {
		for label := range v.get().nodes {
			return label
		}
		return ""
	}
	assert.Equal(t, "10-0-0-1-1", read())
	now = now.Add(99 * time.Millisecond)
	assert.Equal(t, "10-0-0-1-1", read(), "within maxAge: the same read")
	now = now.Add(time.Millisecond)
	assert.Equal(t, "10-0-0-2-1", read(), "maxAge old: read again")
	now = now.Add(-time.Hour)
	assert.Equal(t, "10-0-0-3-1", read(), "the clock went back: read again")
	v.maxAge = -1
	assert.Equal(t, "10-0-0-4-1", read(), "maxAge < 0: every time")
	assert.Equal(t, "10-0-0-5-1", read(), "maxAge < 0: every time")
}
