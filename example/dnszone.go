package main

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/gossipfd/gossip"
	"github.com/miekg/dns"
)

// zone holds the rules of the DNS interface: it turns one query into one
// answer, from the snapshot of the live members it is given at the time of
// the query. It keeps no state of its own and does no I/O (dns.go is the
// server around it); its methods are safe for concurrent use if snapshot
// and resolve are.
//
// The names, under the zone's domain (gossip. by default):
//
//	_<service>._tcp.<domain>    SRV: one per live instance (RFC 2782 form)
//	<service>.service.<domain>  SRV, and A / AAAA: the instances' addresses
//	<node>.node.<domain>        A / AAAA of one member, the target of its SRV
//
// docs/dns.md describes them with the rest of the behaviour.
type zone struct {
	domain string // lowercase and fully qualified, e.g. "gossip."
	ttl    uint32 // seconds, of every record and of negative answers
	// snapshot returns the live members, read from the member table (see
	// liveView); it must not block for long.
	snapshot func() *snapshot
	// resolve returns the addresses last found for a host name, or none;
	// it must not block. Nil means host names have no addresses.
	resolve func(host string) []netip.Addr
}

const (
	// maxRecords bounds the records of each section of an answer, so the
	// work and the size of one answer stay bounded however large the
	// cluster: a service with more live instances is answered with a
	// random maxRecords of them.
	maxRecords = 256

	// maxUDPSize is the largest UDP answer, whatever size a query's EDNS0
	// record offers: 1232 bytes fit in one packet of any IPv6 path without
	// fragmentation (DNS Flag Day 2020). Larger answers are truncated with
	// the TC bit, and the client asks again over TCP.
	maxUDPSize = 1232
)

// answer returns the response to req, received over TCP if tcp is set,
// sized to fit what the transport and the query allow; nil means that no
// response is to be sent (req is itself a response).
func (z *zone) answer(req *dns.Msg, tcp bool) *dns.Msg {
	if req.Response {
		return nil // answering an answer could start a loop between two servers
	}
	m := new(dns.Msg)
	m.SetReply(req)
	opt := req.IsEdns0()
	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		m.Rcode = dns.RcodeBadVers // RFC 6891 6.1.3
	default:
		z.query(m, req.Question[0])
	}
	return z.finish(m, opt, tcp)
}

// finish adds the OPT record an EDNS0 query expects and truncates m to the
// size the transport allows, setting TC if records had to be left out.
func (z *zone) finish(m *dns.Msg, opt *dns.OPT, tcp bool) *dns.Msg {
	size := dns.MinMsgSize
	if opt != nil {
		m.SetEdns0(maxUDPSize, false)
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
	}
	if tcp {
		size = dns.MaxMsgSize
	}
	m.Truncate(size)
	return m
}

// query fills in the answer to one question.
func (z *zone) query(m *dns.Msg, q dns.Question) {
	name := dns.CanonicalName(q.Name)
	if q.Qclass != dns.ClassINET || !dns.IsSubDomain(z.domain, name) {
		m.Rcode = dns.RcodeRefused // not ours: no recursion, no other zone
		return
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		m.Rcode = dns.RcodeRefused // the zone changes with every failure: no transfers
		return
	}
	m.Authoritative = true
	if strings.ContainsRune(name, '\\') {
		z.negative(m, false) // an escaped byte is in no name of ours
		return
	}
	labels := dns.SplitDomainName(name)
	rel := labels[:len(labels)-dns.CountLabel(z.domain)]
	var rrs []dns.RR
	exists := false
	switch {
	case len(rel) == 0: // the apex
		exists = true
		if q.Qtype == dns.TypeSOA {
			rrs = []dns.RR{z.soa()}
		}
	case len(rel) == 1 && (rel[0] == "service" || rel[0] == "node" || rel[0] == "_tcp"):
		// Empty non-terminals: they exist, with no records (RFC 8020).
		z.negative(m, true)
		return
	case len(rel) == 2 && rel[1] == "service":
		insts := z.instances(z.snapshot().services[rel[0]])
		exists = len(insts) > 0
		switch q.Qtype {
		case dns.TypeSRV:
			rrs, m.Extra = z.srv(q.Name, insts)
		case dns.TypeA, dns.TypeAAAA:
			rrs = z.addrs(q.Name, q.Qtype, insts)
		}
	case len(rel) == 2 && rel[1] == "_tcp" && strings.HasPrefix(rel[0], "_"):
		insts := z.instances(z.snapshot().services[rel[0][1:]])
		exists = len(insts) > 0
		if q.Qtype == dns.TypeSRV {
			rrs, m.Extra = z.srv(q.Name, insts)
		}
	case len(rel) == 2 && rel[1] == "node":
		inst, ok := z.snapshot().nodes[rel[0]]
		exists = ok
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA {
			rrs = z.addrs(q.Name, q.Qtype, z.instances([]instance{inst}))
		}
	}
	switch {
	case !exists:
		m.Extra = nil
		z.negative(m, false)
	case q.Qtype == dns.TypeANY:
		// RFC 8482: a name that exists answers ANY with one small
		// synthesized record, not everything it has.
		m.Answer = []dns.RR{&dns.HINFO{Hdr: z.header(q.Name, dns.TypeHINFO), Cpu: "RFC8482"}}
		m.Extra = nil
	case len(rrs) == 0:
		z.negative(m, true)
	default:
		m.Answer = rrs
	}
}

// negative makes m an NXDOMAIN answer, or a NODATA one (NOERROR, no
// answer) if the name exists, with the zone's SOA for negative caching
// (RFC 2308).
func (z *zone) negative(m *dns.Msg, exists bool) {
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	m.Answer = nil
	m.Ns = []dns.RR{z.soa()}
}

func (z *zone) header(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: z.ttl}
}

// soa is the zone's SOA record. Its serial never changes: the zone is
// never transferred, and its minimum (the negative-caching TTL) is the
// records' TTL.
func (z *zone) soa() dns.RR {
	return &dns.SOA{
		Hdr:     z.header(z.domain, dns.TypeSOA),
		Ns:      "ns." + z.domain,
		Mbox:    "hostmaster." + z.domain,
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  z.ttl,
	}
}

// snapshot is the live members as the zone reads them, from one read of
// the member table: made once per read, shared by the queries answered
// from it, never modified.
type snapshot struct {
	services map[string][]instance // by service name, lowercase
	nodes    map[string]instance   // by node label
	hosts    []string              // the host names records point to
}

// instance is one live member as the zone sees it.
type instance struct {
	label string       // its name under node.<domain>
	host  string       // the host records point to: an IP, a host name, or ""
	port  uint16       // its service's port; 0 if none, and then it has no SRV
	addrs []netip.Addr // host's address if an IP; for a name, filled per query
}

// newSnapshot reads members. Records of a member point to its service's
// endpoint or, for a member without one, to the host of its gossip address
// (with no port). A service is named by a label compared without regard to
// case: a service whose name is no DNS label (web api, a.b) has no names.
func newSnapshot(members []gossip.Member) *snapshot {
	s := &snapshot{services: make(map[string][]instance), nodes: make(map[string]instance)}
	hosts := make(map[string]bool)
	for _, m := range members {
		in := instance{label: nodeLabel(m.Addr)}
		svc, ok := m.Data.(Service)
		if ok {
			in.host, in.port = splitEndpoint(svc.Endpoint)
		}
		if in.host == "" {
			in.host, _ = splitEndpoint(m.Addr)
			in.port = 0
		}
		if ip, err := netip.ParseAddr(in.host); err == nil {
			in.addrs = []netip.Addr{ip}
		} else if in.host != "" && !hosts[in.host] {
			hosts[in.host] = true
			s.hosts = append(s.hosts, in.host)
		}
		if name := strings.ToLower(svc.Name); ok && name != "" {
			s.services[name] = append(s.services[name], in)
		}
		s.nodes[in.label] = in
	}
	return s
}

// instances returns a copy of insts in random order, with the addresses of
// host names as last resolved.
func (z *zone) instances(insts []instance) []instance {
	out := make([]instance, len(insts))
	for i, in := range insts {
		if len(in.addrs) == 0 && in.host != "" && z.resolve != nil {
			in.addrs = z.resolve(in.host)
		}
		out[i] = in
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// srv returns one SRV record per instance with a port, under name, and the
// addresses of their targets for the additional section. The target is
// the instance's node name where its address is known, and otherwise its
// endpoint's host name, which is not in this zone.
func (z *zone) srv(name string, insts []instance) (answer, extra []dns.RR) {
	for _, in := range insts {
		if in.port == 0 || in.host == "" || len(answer) == maxRecords {
			continue
		}
		target := dns.Fqdn(in.host)
		if len(in.addrs) > 0 {
			target = in.label + ".node." + z.domain
		}
		answer = append(answer, &dns.SRV{Hdr: z.header(name, dns.TypeSRV), Priority: 1, Weight: 1, Port: in.port, Target: target})
		for _, a := range in.addrs {
			if len(extra) < maxRecords {
				extra = append(extra, z.addrRecord(target, a))
			}
		}
	}
	return answer, extra
}

// addrs returns the A (or AAAA) records of the instances' addresses, each
// address once.
func (z *zone) addrs(name string, qtype uint16, insts []instance) []dns.RR {
	var out []dns.RR
	seen := make(map[netip.Addr]bool)
	for _, in := range insts {
		for _, a := range in.addrs {
			if seen[a] || a.Is4() != (qtype == dns.TypeA) || len(out) == maxRecords {
				continue
			}
			seen[a] = true
			out = append(out, z.addrRecord(name, a))
		}
	}
	return out
}

func (z *zone) addrRecord(name string, a netip.Addr) dns.RR {
	if a.Is4() {
		return &dns.A{Hdr: z.header(name, dns.TypeA), A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: z.header(name, dns.TypeAAAA), AAAA: a.AsSlice()}
}

// nodeLabel is a member's stable name under node.<domain>, from its gossip
// address: host and port, lowercase, with every byte other than a letter or
// a digit turned into '-': 10.0.0.1:7000 is 10-0-0-1-7000, [fd00::1]:7000
// is fd00--1-7000, m1:7000 is m1-7000. An address too long for one label
// (63 bytes) is named "h" and 16 hex digits of its FNV-1a hash instead.
func nodeLabel(addr string) string {
	s := addr
	if host, port, err := net.SplitHostPort(addr); err == nil {
		s = host + ":" + port
	}
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	if len(b) == 0 || len(b) > 63 {
		h := fnv.New64a()
		h.Write([]byte(addr))
		return fmt.Sprintf("h%016x", h.Sum64())
	}
	return string(b)
}

// defaultPorts are the ports of endpoint URLs that name none.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// splitEndpoint reads the host and port of an endpoint, a URL
// (http://10.0.0.1:8080) or host:port. The host is an IP address in its
// usual form, or a lowercase host name; "" if it is neither. The port is 0
// if there is none (tcp://db, a bare host) or it is not a port.
func splitEndpoint(ep string) (string, uint16) {
	var host, port string
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return "", 0
		}
		host, port = u.Hostname(), u.Port()
		if port == "" {
			port = defaultPorts[strings.ToLower(u.Scheme)]
		}
	} else if h, p, err := net.SplitHostPort(ep); err == nil {
		host, port = h, p
	} else {
		host = ep
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		p = 0
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.WithZone("").Unmap().String(), uint16(p)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !isHostName(host) {
		return "", 0
	}
	return host, uint16(p)
}

// isHostName reports whether s is a host name a record can point to:
// labels of letters, digits, '-' and '_', 63 bytes at most, 253 in all.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}
