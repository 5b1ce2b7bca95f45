package gossip

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults for the Config fields whose zero value means "the default".
const (
	// DefaultMaxDataSize bounds one member's encoded application data. Every
	// gossip message may carry every member's data, so it is kept small: a
	// service descriptor fits easily.
	DefaultMaxDataSize = 1 << 10

	// DefaultMaxMessageSize bounds one gossip message (one gob message on the
	// wire). It leaves room for DefaultMaxMembers members each with data of
	// DefaultMaxDataSize.
	DefaultMaxMessageSize = 8 << 20

	// DefaultMaxMembers bounds the membership table, so that an update naming
	// thousands of fake members cannot grow memory without bound.
	DefaultMaxMembers = 4096

	// DefaultMaxInboundConns bounds concurrent inbound connections.
	DefaultMaxInboundConns = 256

	// DefaultMaxOutboundConns bounds the connections a member keeps open
	// to its peers for reuse, and so the peers it gossips with by
	// preference (see ChoosePartner in internal/protocol): in a cluster of up to
	// DefaultMaxOutboundConns+1 members, all of them; in a larger one, these
	// and, one round in sixteen, a peer chosen among all, whose connection
	// then replaces the least recently used. Four keeps the spread time
	// within a round of the uniform choice's (internal/sim's spread test)
	// and lets a thousand members share one host's 20,000 descriptors (9
	// each: four connections out, about four in, a listener). Each
	// connection end holds gob's compiled types and two packed-digest
	// dictionaries, most of a member's heap: six had cost a steady
	// 128-member cluster 420 KiB a member, four cost 314.
	DefaultMaxOutboundConns = 4

	// DefaultIdleTimeout closes an inbound connection that has sent no
	// request for this long; outgoing connections are closed after half of it.
	DefaultIdleTimeout = 60 * time.Second
)

// maxExchangesInFlight bounds the outgoing gossip exchanges a member has under
// way at once. A member with a slow peer skips a round rather than pile up
// goroutines and connections.
const maxExchangesInFlight = 8

// maxProbesInFlight bounds, apart, the probes of suspected members under way
// (see internal/protocol's suspect.go): a round sends at most four suspects'
// probes, each to the suspect and three others, and they end within the
// probe timeout, under a round.
const maxProbesInFlight = 16

// Config configures a member for NewWithConfig. The zero value of every field
// but Addr is valid and means the default given beside it. DefaultConfig
// returns a Config with the defaults filled in.
type Config struct {
	// Addr is the host:port the member listens on; required. Port 0 picks
	// a free port (Gossip.Addr then reports it).
	Addr string

	// AdvertiseAddr is the address other members reach this one at, and its
	// identity in the cluster. Empty means the listener's address, with an
	// unspecified host (0.0.0.0 or ::) replaced by the first global unicast
	// interface address.
	AdvertiseAddr string

	// Seeds are host:port addresses of members to join through. A DNS name
	// that resolves to several addresses counts as several seeds. Seeds that
	// do not answer are retried with backoff, for as long as the member runs.
	Seeds []string

	// ClusterName names the cluster this member belongs to. Every gossip
	// exchange carries it, and members with different names refuse each
	// other's exchanges and merge nothing from them, so that two clusters on
	// one network never merge by accident (see cluster.go). Names are
	// compared exactly; empty, the default, is the name of every member that
	// sets none, old versions included. A member with a ClusterName refuses
	// Gossip.Gossip pushes, which cannot carry it. It is not a secret: use
	// TLS against hostile peers.
	ClusterName string

	// Data is the member's initial application data; nil for none. It must
	// be encodable by gob (see SetData).
	Data interface{}

	// GossipInterval is the time between gossip rounds. Zero means Tgossip.
	GossipInterval time.Duration

	// RPCTimeout bounds every outgoing RPC, dial included, and every read
	// and write of an inbound request. Zero means Trpc.
	RPCTimeout time.Duration

	// ProbeTimeout bounds a probe: the small call a member makes, to a
	// member whose heartbeat has gone quiet and to a few others, to find
	// out whether it has gone silent (see docs/protocol.md, Silent
	// members). A probe to the suspect that gets no answer within it counts
	// as silence; one to another member, as a call lost, which makes the
	// member ask for more evidence. So it must exceed a round trip on a
	// busy host, and stay under a round for the outcome to count at the
	// next round. Zero means half of GossipInterval, at most RPCTimeout.
	ProbeTimeout time.Duration

	// Nfailures is how many propagation periods a member must miss to be
	// considered dead (see FailureTime). Zero means the package's Nfailures.
	Nfailures int

	// FalseReportTarget, when positive, replaces Nfailures: FailureTime is
	// then the shortest that keeps the probability that any member falsely
	// reports any other dead, in one failure time, at most this at message
	// loss ExpectedLoss (see failure.go). Zero means Nfailures decides.
	FalseReportTarget float64

	// ExpectedLoss is the message loss rate the failure time is set for,
	// between 0 and 1: FalseReportTarget is met at it, and a member whose
	// own calls go unanswered more often than this loss explains waits
	// longer than FailureTime before it declares a silent member dead, up
	// to 8 times longer (see failure.go, Local health). Zero means 10%.
	ExpectedLoss float64

	// MaxDataSize bounds a member's gob-encoded data in bytes. SetData
	// rejects larger data, and entries carrying larger data are dropped on
	// receipt, so every member of a cluster should use the same value. Zero
	// means DefaultMaxDataSize.
	MaxDataSize int

	// MaxMessageSize bounds one gob message on the wire, in bytes; a peer
	// that sends a larger one is disconnected. Zero means
	// DefaultMaxMessageSize.
	MaxMessageSize int

	// MaxMembers bounds the membership table; entries for new members
	// beyond it are ignored. Zero means DefaultMaxMembers.
	MaxMembers int

	// MaxInboundConns bounds concurrent inbound connections; further ones
	// are closed at once. Zero means DefaultMaxInboundConns.
	MaxInboundConns int

	// MaxOutboundConns bounds the connections kept open to peers for
	// reuse, which are also the peers gossiped with by preference. Zero
	// means DefaultMaxOutboundConns.
	MaxOutboundConns int

	// IdleTimeout closes an inbound connection with no request for this
	// long. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration

	// Logger receives the member's logs, protocol chatter at debug level.
	// Nil means a private logrus logger writing to stderr at info level (debug
	// level when Debug or Gossip.DebugOutput is set).
	Logger logrus.FieldLogger

	// Debug turns on debug logs of the private logger; see Logger.
	Debug bool

	// Transport listens and dials. Nil means TCP (TCPTransport).
	Transport Transport

	// TLS, if not nil, turns on mutual TLS for the member's port, for both
	// listening and dialling: Transport (or TCP) is wrapped with
	// NewTLSTransport, handshakes bounded by RPCTimeout. It must hold this
	// member's certificate and the CA every member shares (RootCAs and
	// ClientCAs; TLSConfigFromFiles builds one from PEM files); inbound
	// connections must present a certificate that CA signed
	// (tls.RequireAndVerifyClientCert). Nil, the default, means plain TCP,
	// which anyone who reaches the port can read and gossip into: turn TLS
	// on for any network you do not fully trust. Every member of a cluster
	// must agree, since TLS and plain members cannot talk.
	TLS *tls.Config

	// EventBuffer bounds the events queued for a reader of Events that
	// does not keep up; beyond it events are dropped and counted (see
	// events.go). Zero means DefaultEventBuffer.
	EventBuffer int

	// Clock tells the time for the failure rules. Nil means the real clock.
	Clock Clock

	// Resolver resolves seed host names. Nil means net.DefaultResolver.
	Resolver Resolver

	// LeavePropagateDelay is how long Shutdown goes on telling its peers
	// that it leaves, and keeps the member serving, after enough of them
	// have heard it, before it closes: the news spreads meanwhile, and a
	// peer that calls it hears the news in the answer. A peer that had not heard it when the member closes would
	// find its connections ended and its port refusing them, as after a
	// crash, and report a failure (see DisableDeathNotices). Zero means one
	// GossipInterval (DefaultConfig leaves it zero, as it follows the
	// interval): the news goes out as a rumor at once, and each member that
	// hears it tells four more, a rumor gap (a tenth of the interval at
	// most) later, so in one interval it goes ten hops, more than it needs
	// to reach a thousand members. Negative means no wait.
	// Shutdown's context bounds it. (HashiCorp's Serf has the same setting,
	// LeavePropagateDelay, for the same reason, 1 s by default.)
	LeavePropagateDelay time.Duration

	// DisableDeathNotices turns off the detection of crashed processes by
	// their refused connections. On, the default, a peer whose dial is
	// refused (nothing listens at its address any more: its process died on
	// a host that stays up) is declared dead at once, and a death notice
	// tells the others (see docs/protocol.md, Crashed processes): a crashed
	// process is dropped in a fraction of a second instead of FailureTime.
	// A timeout, a reset or a closed connection proves nothing and is left
	// to the failure time, so loss, partitions and pauses produce no
	// notice. Disabled, a member declares no one dead by a refused dial, but
	// still takes the notices of members that send them.
	DisableDeathNotices bool
}

// DefaultConfig returns a Config with every default filled in, for the
// caller to set Addr and Seeds on. It reads the package variables Tgossip,
// Trpc and Nfailures. Death notices are on (DisableDeathNotices false);
// LeavePropagateDelay stays zero, which means one GossipInterval, whatever
// the interval is set to.
func DefaultConfig() Config {
	c, _ := Config{}.withDefaults()
	return c
}

// withDefaults returns a copy of c with zero fields set to their defaults,
// and an error if c is invalid. c itself is never modified.
func (c Config) withDefaults() (Config, error) {
	if c.GossipInterval == 0 {
		c.GossipInterval = Tgossip
	}
	if c.RPCTimeout == 0 {
		c.RPCTimeout = Trpc
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = min(c.GossipInterval/2, c.RPCTimeout)
	}
	if c.Nfailures == 0 {
		c.Nfailures = Nfailures
	}
	if c.ExpectedLoss == 0 {
		c.ExpectedLoss = 0.1
	}
	if c.MaxDataSize == 0 {
		c.MaxDataSize = DefaultMaxDataSize
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxMembers == 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.MaxInboundConns == 0 {
		c.MaxInboundConns = DefaultMaxInboundConns
	}
	if c.MaxOutboundConns == 0 {
		c.MaxOutboundConns = DefaultMaxOutboundConns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}

	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.Transport == nil {
		c.Transport = TCPTransport{}
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	c.Seeds = append([]string(nil), c.Seeds...)
	if err := c.validate(); err != nil {
		return c, err
	}
	if c.TLS != nil {
		t, err := NewTLSTransport(c.Transport, c.TLS, c.RPCTimeout)
		if err != nil {
			return c, err
		}
		c.Transport = t
	}
	return c, nil
}

// validate reports the first invalid field of a Config with defaults applied.
func (c Config) validate() error {
	if c.Addr == "" {
		return fmt.Errorf("gossip: Config.Addr is required")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("gossip: Config.Addr %q: %w", c.Addr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("gossip: Config.AdvertiseAddr %q: %w", c.AdvertiseAddr, err)
		}
	}
	for _, s := range c.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("gossip: seed %q: %w", s, err)
		}
	}
	switch {
	case c.GossipInterval < 0 || c.RPCTimeout < 0 || c.IdleTimeout < 0 || c.ProbeTimeout < 0:
		return fmt.Errorf("gossip: negative duration in Config")
	case c.FalseReportTarget < 0 || c.FalseReportTarget >= 1:
		return fmt.Errorf("gossip: Config.FalseReportTarget %v: must be in [0, 1)", c.FalseReportTarget)
	case c.ExpectedLoss < 0 || c.ExpectedLoss >= 1:
		return fmt.Errorf("gossip: Config.ExpectedLoss %v: must be in [0, 1)", c.ExpectedLoss)
	case c.Nfailures < 1:
		return fmt.Errorf("gossip: Config.Nfailures %d: must be at least 1", c.Nfailures)
	case c.MaxDataSize < 0 || c.MaxMessageSize < 0 || c.MaxMembers < 0 || c.MaxInboundConns < 0 || c.MaxOutboundConns < 0 || c.EventBuffer < 0:
		return fmt.Errorf("gossip: negative limit in Config")
	case c.MaxDataSize > c.MaxMessageSize:
		return fmt.Errorf("gossip: Config.MaxDataSize %d exceeds MaxMessageSize %d", c.MaxDataSize, c.MaxMessageSize)
	}
	return nil
}
