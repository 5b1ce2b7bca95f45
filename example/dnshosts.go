package main

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// hostCache keeps the addresses of the host names that members' records
// point to (an endpoint such as http://m1:8080), looked up in the
// background, so that no query waits on a lookup and no query can make the
// server look up a name of its choosing: the names come from the members'
// data only. Its methods are safe for concurrent use; run is its one
// goroutine.
type hostCache struct {
	names  func() []string // the names to keep addresses of
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	every  time.Duration // between lookups of every name

	mu    sync.RWMutex            // protects addrs
	addrs map[string][]netip.Addr // nil slice: looked up, none found

	kick chan struct{} // capacity 1: a query met a name not looked up yet
}

const (
	// maxHosts bounds the names looked up in one round.
	maxHosts = 1024
	// lookupTimeout bounds one lookup.
	lookupTimeout = 2 * time.Second
	// minLookupGap spaces the rounds that queries ask for.
	minLookupGap = time.Second
)

func newHostCache(names func() []string, lookup func(context.Context, string) ([]netip.Addr, error), every time.Duration) *hostCache {
	return &hostCache{names: names, lookup: lookup, every: every, addrs: map[string][]netip.Addr{}, kick: make(chan struct{}, 1)}
}

// get returns the addresses last found for host, and asks for a round of
// lookups if host was never looked up. It never blocks.
func (c *hostCache) get(host string) []netip.Addr {
	c.mu.RLock()
	a, ok := c.addrs[host]
	c.mu.RUnlock()
	if !ok {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
	return a
}

// run looks up every name every c.every, and when get asks (at most once a
// minLookupGap), until ctx is done.
func (c *hostCache) run(ctx context.Context) {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		last := time.Now()
		c.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
			wait := time.NewTimer(minLookupGap - time.Since(last))
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
		}
	}
}

// refresh looks up every name once. A name whose lookup fails keeps the
// addresses it had, so that a resolver's hiccup does not empty answers;
// names no member points to any more are forgotten.
func (c *hostCache) refresh(ctx context.Context) {
	names := c.names()
	sort.Strings(names)
	next := make(map[string][]netip.Addr)
	for _, n := range names {
		if _, dup := next[n]; dup || n == "" {
			continue
		}
		if len(next) == maxHosts {
			break
		}
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		addrs, err := c.lookup(lctx, n)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.mu.RLock()
			addrs = c.addrs[n]
			c.mu.RUnlock()
		}
		next[n] = unmapAll(addrs)
	}
	c.mu.Lock()
	c.addrs = next
	c.mu.Unlock()
}

// unmapAll returns addrs without IPv4-in-IPv6 mapping or zones, each once.
func unmapAll(addrs []netip.Addr) []netip.Addr {
	out := []netip.Addr{}
	for _, a := range addrs {
		a = a.WithZone("").Unmap()
		dup := false
		for _, b := range out {
			dup = dup || a == b
		}
		if !dup {
			out = append(out, a)
		}
	}
	return out
}
