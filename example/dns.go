package main

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/miekg/dns"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/netutil"
)

// dnsConfig configures the DNS interface (-dns and the flags beside it).
type dnsConfig struct {
	addr   string        // host:port to serve UDP and TCP on; port 0 picks one
	domain string        // the zone; "" means "gossip."
	ttl    time.Duration // of every record, whole seconds; 0 means not to cache

	// rate bounds the queries per second answered for one source
	// address, with bursts of burst; 0 means defaultDNSRate and
	// defaultDNSBurst, below 0 no bound.
	rate  float64
	burst int

	// resolveEvery is how often the host names of endpoints are looked
	// up again; 0 means defaultResolveEvery.
	resolveEvery time.Duration

	// viewAge is how long one read of the member table answers queries;
	// 0 means defaultViewAge, below 0 a read for every query.
	viewAge time.Duration
}

const (
	defaultDNSDomain = "gossip."

	// defaultDNSRate and defaultDNSBurst bound what one source address
	// gets answered: far above what a host's resolver asks of a discovery
	// service, far below what one flooding address could make us do.
	defaultDNSRate  = 1000
	defaultDNSBurst = 2000

	// maxDNSInFlight bounds the queries answered at once, over UDP and
	// TCP together; each reads the member table once.
	maxDNSInFlight = 32

	// maxDNSConns bounds the TCP connections open at once; others wait
	// in the listen queue.
	maxDNSConns = 64

	defaultResolveEvery = 5 * time.Second

	// defaultViewAge: GetMembers decodes every member's data afresh,
	// 30 to 80 µs a member here (3 to 8 ms for 100, BenchmarkDNSAnswer),
	// so a read per query would let a flood of queries take the CPU gossip
	// needs. One read a tenth of a second bounds that to 3 to 8% of a core
	// for 100 members, and delays a failure or a leave in answers by 0.1 s
	// at most, against the seconds failure detection takes.
	defaultViewAge = 100 * time.Millisecond
)

// checkDNSConfig returns c with the defaults filled in, or why it is not a
// configuration; c itself is not changed.
func checkDNSConfig(c dnsConfig) (dnsConfig, error) {
	if c.domain == "" {
		c.domain = defaultDNSDomain
	}
	c.domain = dns.CanonicalName(c.domain)
	if _, ok := dns.IsDomainName(c.domain); !ok || c.domain == "." || !isHostName(c.domain[:len(c.domain)-1]) {
		return c, fmt.Errorf("-dns-domain %q: not a domain name", c.domain)
	}
	if c.ttl < 0 || c.ttl%time.Second != 0 || c.ttl > 24*time.Hour {
		return c, fmt.Errorf("-dns-ttl %v: want whole seconds from 0 to 24h", c.ttl)
	}
	if c.rate == 0 {
		c.rate, c.burst = defaultDNSRate, defaultDNSBurst
	}
	if c.resolveEvery <= 0 {
		c.resolveEvery = defaultResolveEvery
	}
	if c.viewAge == 0 {
		c.viewAge = defaultViewAge
	}
	return c, nil
}

// dnsServer serves a zone over UDP and TCP on one address. Close it with
// close, which waits for everything it started.
type dnsServer struct {
	addr     string // the UDP and TCP address served
	handler  *dnsHandler
	udp, tcp *dns.Server
	cancel   context.CancelFunc // ends the resolver
	wg       sync.WaitGroup     // the two servers and the resolver

	closeOnce sync.Once
	closeErr  error
}

// startDNS serves DNS on cfg.addr, answering from members at the time of
// each query, until close.
func startDNS(members func() []gossip.Member, cfg dnsConfig, log logrus.FieldLogger) (*dnsServer, error) {
	cfg, err := checkDNSConfig(cfg)
	if err != nil {
		return nil, err
	}
	pc, ln, err := listenDNS(cfg.addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	view := &liveView{read: members, maxAge: cfg.viewAge, now: time.Now}
	hosts := newHostCache(func() []string { return view.get().hosts }, func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}, cfg.resolveEvery)
	s := &dnsServer{
		addr:   pc.LocalAddr().String(),
		cancel: cancel,
		handler: &dnsHandler{
			zone:  &zone{domain: cfg.domain, ttl: uint32(cfg.ttl / time.Second), snapshot: view.get, resolve: hosts.get},
			limit: newRateLimiter(cfg.rate, cfg.burst, time.Now),
			slots: make(chan struct{}, maxDNSInFlight),
			log:   log,
		},
	}
	started := make(chan struct{}, 2)
	errc := make(chan error, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s.handler, UDPSize: dns.DefaultMsgSize,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: netutil.LimitListener(ln, maxDNSConns), Handler: s.handler,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxTCPQueries: 100,
		IdleTimeout: func() time.Duration { return 5 * time.Second }, NotifyStartedFunc: notify}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := srv.ActivateAndServe()
			if err != nil {
				log.WithError(err).Error("dns server stopped")
			}
			errc <- err
		}()
	}
	// Wait until both serve, or end: a server closed before it started
	// would not stop.
	var startErr error
	for n := 0; n < 2; n++ {
		select {
		case <-started:
		case err := <-errc:
			if err == nil {
				err = errors.New("stopped before serving")
			}
			startErr = errors.Join(startErr, err)
		}
	}
	if startErr != nil {
		s.close()
		pc.Close() // in case a server failed before it took them over
		ln.Close()
		return nil, fmt.Errorf("dns: %w", startErr)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		hosts.run(ctx)
	}()
	log.WithFields(logrus.Fields{"dns": s.addr, "domain": cfg.domain, "ttl": cfg.ttl}).Info("dns started")
	return s, nil
}

// listenDNS listens on addr over UDP and TCP, on the same port.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: %w", err)
	}
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		// The port picked for UDP may be taken over TCP: pick again.
		if port != "0" || try == 10 {
			return nil, nil, fmt.Errorf("dns: %w", err)
		}
	}
}

// close stops serving, waits for the queries in flight (5 s at most) and
// the resolver; it is safe to call more than once, and on nil.
func (s *dnsServer) close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.cancel()
		var errs []error
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if err := srv.ShutdownContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("dns: %w", err))
			}
		}
		s.wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// dnsHandler answers each query from the zone, within bounds: a rate per
// source address and a number in flight. A query beyond them gets no
// answer over UDP, where its source may be forged and any answer would go
// to a victim, and REFUSED over TCP. It is safe for concurrent use.
type dnsHandler struct {
	zone  *zone
	limit *rateLimiter
	slots chan struct{} // one per query being answered
	log   logrus.FieldLogger
	shed  atomic.Int64 // queries dropped or refused by the bounds
}

// ServeDNS implements dns.Handler.
func (h *dnsHandler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	src, tcp := source(w.RemoteAddr())
	if !h.limit.allow(src) {
		h.refuse(w, req, tcp)
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		h.refuse(w, req, tcp)
		return
	}
	if resp := h.zone.answer(req, tcp); resp != nil {
		if err := w.WriteMsg(resp); err != nil {
			h.log.WithError(err).WithField("client", w.RemoteAddr()).Debug("dns: writing an answer")
		}
	}
}

func (h *dnsHandler) refuse(w dns.ResponseWriter, req *dns.Msg, tcp bool) {
	h.shed.Add(1)
	if tcp && !req.Response {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
	}
}

// source returns the address a query came from and whether over TCP.
func source(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), false
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// rateLimiter is a token bucket per source address, in a fixed table of
// buckets indexed by a keyed hash of the address: its memory is bounded
// however many addresses send, and a sender cannot pick which bucket it
// shares. Addresses that share a bucket share its rate. Safe for
// concurrent use.
type rateLimiter struct {
	rate, burst float64 // tokens a second, and at most; rate < 0: no bound
	now         func() time.Time
	seed        maphash.Seed

	mu      sync.Mutex // protects buckets
	buckets [4096]bucket
}

type bucket struct {
	tokens float64
	last   time.Time // when tokens was last brought up to date; zero: never
}

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(max(burst, 1)), now: now, seed: maphash.MakeSeed()}
}

// allow takes one token from src's bucket, and reports whether there was
// one.
func (l *rateLimiter) allow(src netip.Addr) bool {
	if l.rate < 0 {
		return true
	}
	b16 := src.As16()
	i := maphash.Bytes(l.seed, b16[:]) % uint64(len(l.buckets))
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := &l.buckets[i]
	if b.last.IsZero() {
		b.tokens = l.burst
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// liveView is the snapshot of the live members from one read of the member
// table, read again once maxAge old. Queries that come while a read is under
// way wait for it and share it. Safe for concurrent use.
type liveView struct {
	read   func() []gossip.Member
	maxAge time.Duration
	now    func() time.Time

	mu   sync.Mutex // protects at and snap; held during a read
	at   time.Time  // when snap was read
	snap *snapshot
}

func (v *liveView) get() *snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if v.snap == nil || v.maxAge < 0 || now.Sub(v.at) >= v.maxAge || now.Before(v.at) {
		v.snap, v.at = newSnapshot(v.read()), now
	}
	return v.snap
}
