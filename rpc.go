package gossip

import (
	"fmt"
	"time"

	"github.com/gossipfd/gossip/internal/protocol"
)

// The wire protocol.
//
// Members speak net/rpc with its gob encoding over one TCP connection per
// pair, reused from round to round. The service is named "Gossip":
//
//	Gossip.GetMembers(GetMembersRequest, *GetMembersResponse)
//	    the live members, as GetMembers returns them: what the stats tool and
//	    any plain net/rpc client call.
//	Gossip.Stats(StatsRequest, *StatsResponse)
//	    the member's Stats: table counts, rounds, messages and bytes sent
//	    and received, RPC errors and timeouts, merge time, FailureTime
//	    (see stats.go). Like GetMembers it only reads, and is answered
//	    whatever the cluster name.
//	Gossip.Gossip(GossipRequest, *GossipResponse)
//	    merge the members sent, as Receive does (push only, with the values
//	    of Member.Data, whose types the receiver must have registered).
//	Gossip.Exchange(ExchangeRequest, *ExchangeResponse)
//	    the members' own push-pull round. The caller sends a digest of its
//	    live table (address, heartbeat, data version: see
//	    internal/protocol's message.go); the
//	    callee merges it and answers with the entries it holds newer,
//	    carrying data only where the caller's version is older, and names
//	    the data it lacks (Want), which the caller sends in a second,
//	    partial request. Rumors (entries that just changed, with their
//	    data) travel as partial requests too. Members known to have left
//	    travel both ways as digest records in the separate Left field (see
//	    internal/protocol's leave.go), which members built before it
//	    ignore.
//
// Every gob message is bounded by Config.MaxMessageSize; a peer that sends a
// larger or malformed one is disconnected. A new connection must send its
// first request within Trpc; an idle one is closed after IdleTimeout.

// serviceName is the net/rpc service name.
const serviceName = "Gossip"

// GetMembersRequest asks for a member's live members (Gossip.GetMembers).
type GetMembersRequest struct{}

// GetMembersResponse holds a member's live members, itself included.
type GetMembersResponse struct{ Members []Member }

// GossipRequest pushes members to merge (Gossip.Gossip).
type GossipRequest struct{ Members []Member }

// GossipResponse is the empty answer to a GossipRequest.
type GossipResponse struct{}

// The messages of Gossip.Exchange, defined with the protocol that makes
// and reads them (internal/protocol's message.go) and exported here for
// clients that speak the wire.
type (
	// ExchangeRequest is one member's half of a gossip round: its
	// address (From), its cluster name, a digest of its live members
	// (Digest), members with their data (Members: a rumor, or data the
	// callee asked for), whether it names only some members (Partial), and
	// the members it knows to have left (Left).
	ExchangeRequest = protocol.ExchangeRequest

	// ExchangeResponse is the other half: the callee's address and
	// cluster name, the entries it holds newer than the request's (Digest
	// where the caller has the data, Members with the data where it has
	// not), the data it lacks (Want), and the members it knows to have
	// left that the request did not (Left).
	ExchangeResponse = protocol.ExchangeResponse

	// Entry is one member's row on the wire: address, heartbeat, data
	// version (the heartbeat at which its data was last set) and, where
	// WithData is set, its gob-encoded data.
	Entry = protocol.Entry
)

// service is the receiver registered with net/rpc. Its exported methods are
// exactly the RPCs.
type service struct{ g *Gossip }

// GetMembers serves Gossip.GetMembers.
func (s *service) GetMembers(_ GetMembersRequest, resp *GetMembersResponse) error {
	resp.Members = s.g.GetMembers()
	return nil
}

// Gossip serves Gossip.Gossip.
func (s *service) Gossip(req GossipRequest, _ *GossipResponse) error {
	if s.g.cfg.ClusterName != "" {
		return errPushNeedsCluster
	}
	if len(req.Members) > s.g.cfg.MaxMembers {
		return fmt.Errorf("gossip: %d members in one message, limit %d", len(req.Members), s.g.cfg.MaxMembers)
	}
	s.g.Receive(req.Members)
	return nil
}

// Exchange serves Gossip.Exchange: the protocol merges the request and
// makes the answer (HandleRequest).
func (s *service) Exchange(req ExchangeRequest, resp *ExchangeResponse) error {
	g := s.g
	resp.Cluster = g.cfg.ClusterName
	if err := g.checkCluster(req.From, req.Cluster); err != nil {
		return err
	}
	var err error
	g.merging(func(p *protocol.State, now time.Time) protocol.Output {
		var out protocol.Output
		*resp, out, err = p.HandleRequest(req, now)
		return out
	})
	return err
}

// Stats serves Gossip.Stats.
func (s *service) Stats(_ StatsRequest, resp *StatsResponse) error {
	resp.Stats = s.g.Stats()
	return nil
}
