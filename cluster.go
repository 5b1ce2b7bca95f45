package gossip

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Cluster names.
//
// Every Gossip.Exchange request and response carries the sender's
// Config.ClusterName. A member refuses an exchange whose name differs from
// its own, before merging anything, and a caller merges nothing from a
// response whose name differs: two clusters whose seeds or addresses overlap
// by mistake (a staging member given a production seed, an address reused
// on a shared network) stay apart. The names are compared exactly; the
// empty name, the default, is a name like any other, so a named cluster and
// an unnamed one do not merge either. Members built before cluster names
// existed send no name, which reads as the empty one.
//
// A cluster name is not a secret and authenticates nothing: anyone who can
// reach the port can send it. Use Config.TLS against hostile peers.
//
// Gossip.Gossip pushes (GossipRequest) have no room for a name, so a member
// with a ClusterName refuses them; Gossip.GetMembers, which only reads, is
// answered whatever the name.

// ErrClusterMismatch is the reason an exchange with a member of another
// cluster (another Config.ClusterName) was refused. A caller's error wraps
// it when the callee answered with another name; when the callee refused the
// call, the caller gets the callee's message as an rpc.ServerError.
var ErrClusterMismatch = errors.New("gossip: cluster name mismatch")

// checkCluster returns an error wrapping ErrClusterMismatch if name, sent by
// peer, is not this member's cluster name, and logs the mismatch: at warning
// level at most once per mismatchLogInterval, else at debug level, so that
// a misconfigured seed cannot flood the log.
func (g *Gossip) checkCluster(peer, name string) error {
	if name == g.cfg.ClusterName {
		return nil
	}
	err := fmt.Errorf("%w: %s is in cluster %q, this member in %q", ErrClusterMismatch, peer, name, g.cfg.ClusterName)
	log := g.log.WithField("peer", peer).WithError(err)
	if n, ok := g.mismatch.allow(time.Now()); ok {
		log.WithField("suppressed", n).Warn("gossip: refusing a member of another cluster")
	} else {
		log.Debug("gossip: refusing a member of another cluster")
	}
	return err
}

// mismatchLogInterval is the least time between two warnings about members
// of another cluster.
const mismatchLogInterval = 10 * time.Second

// errPushNeedsCluster refuses Gossip.Gossip pushes on a member with a cluster
// name: they cannot carry one.
var errPushNeedsCluster = fmt.Errorf("%w: Gossip.Gossip carries no cluster name and this member has one; use Gossip.Exchange", ErrClusterMismatch)

// logLimit lets one log line through per mismatchLogInterval and counts the
// ones held back. The zero value is ready to use.
type logLimit struct {
	mu         sync.Mutex // protects the fields below
	next       time.Time
	suppressed int
}

// allow reports whether a line may be logged at time now, and how many were
// held back since the last one let through.
func (l *logLimit) allow(now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return 0, false
	}
	suppressed, l.suppressed = l.suppressed, 0
	l.next = now.Add(mismatchLogInterval)
	return suppressed, true
}
