package protocol

import (
	"encoding/binary"
	"errors"
	"math"
)

// The messages of one exchange. They travel as the arguments and results of
// the net/rpc method Gossip.Exchange (the root package's rpc.go), gob-encoded;
// the root package exports them under the same names.

// ExchangeRequest is one member's half of a gossip round.
type ExchangeRequest struct {
	// From is the sender's advertised address.
	From string
	// Cluster is the sender's cluster name; a callee with another name
	// refuses the request.
	Cluster string
	// Digest holds the sender's live members, itself included, without
	// their data, in the compact form of AppendDigest.
	Digest []byte
	// Members are members with their data: a rumor (the entries that just
	// changed) or the data the callee asked for (ExchangeResponse.Want).
	Members []Entry
	// Partial tells that the request holds only some of the sender's
	// members. The callee then answers only about them.
	Partial bool
	// Left holds the members the sender knows to have left the cluster,
	// in the compact form of AppendDigest: each record's heartbeat is the
	// one the member left with (see leave.go). It is a field of its own,
	// not a flag in Digest, so that members built before it ignore it.
	Left []byte
	// Dead holds death notices: members found dead because a dial to
	// them was refused, in the compact form of AppendDigest, each
	// record's heartbeat the one the notice was given at (see notice.go).
	// Like Left, a field of its own.
	Dead []byte
	// Silent holds death notices of members found silent: suspected and
	// then confirmed by probes (see suspect.go), in the same form as Dead.
	// A field of its own, so that a member built before it, which would
	// take such a notice as one of a refused dial, ignores it.
	Silent []byte
	// Packed belongs to the connection, not to the protocol (see Packed
	// form below): the protocol neither sets nor reads it.
	Packed []byte
}

// ExchangeResponse is the other half: the entries the callee holds newer
// than the request's, or that the request lacked, with data where the
// callee's is newer.
type ExchangeResponse struct {
	// From is the callee's advertised address, so that a caller learns who
	// a seed address really is (possibly itself).
	From string
	// Cluster is the callee's cluster name; a caller with another name
	// merges nothing from the response.
	Cluster string
	// Digest holds the callee's entries that are newer than the request's
	// but whose data the caller has.
	Digest []byte
	// Members are the entries the caller lacks or has older data of, with
	// their data.
	Members []Entry
	// Want names the members whose data the request showed newer than the
	// callee's but did not carry; the caller sends it in a second request.
	Want []string
	// Left holds the members the callee knows to have left and the
	// request showed alive or (unless partial) did not name, as in
	// ExchangeRequest.Left.
	Left []byte
	// Dead holds the death notices the callee holds of members the
	// request showed alive or (unless partial) did not name, as in
	// ExchangeRequest.Dead.
	Dead []byte
	// Silent holds the notices of silent members the callee holds of
	// members the request showed alive or (unless partial) did not name,
	// as in ExchangeRequest.Silent.
	Silent []byte
	// Packed is as in ExchangeRequest.
	Packed []byte
}

// Entry is one member's row on the wire.
type Entry struct {
	Addr      string
	Heartbeat int64
	// Version is the heartbeat at which the member's data was last set.
	// It grows with every data change, so a peer with an older version
	// needs the data and one with the same version has it.
	Version int64
	// WithData tells that Data is present; data travels only to peers
	// whose version is older.
	WithData bool
	// Data is the member's application data, gob-encoded by the root
	// package; the protocol never looks inside it.
	Data []byte
}

// A digest is the compact wire form of entries without data, which is what
// most of every exchange is: each round, every heartbeat rises. It is a
// byte string of records, each
//
//	uvarint len(addr) | addr | uvarint heartbeat | uvarint heartbeat-version
//
// so that an entry takes its address plus about ten bytes, and gob copies
// the digest as one byte slice instead of encoding a struct per entry.
//
// The same records describe the members that left the cluster, in a byte
// string of their own (ExchangeRequest.Left), where the heartbeat is the one
// the member left with. The record format is unchanged, and no flag is
// folded into it: a member built before leaving existed would misread a
// changed record, whereas it skips the unknown field.
//
// # Packed form
//
// On a connection between two members the digests travel in a smaller,
// packed form, in the field Packed instead of Digest: the codec at each end
// (the root package's compact.go) numbers the addresses already sent on the
// connection, and sends a known member as its number and the rise of its
// heartbeat since the connection last carried it, one byte a member in the
// steady state instead of about 25. A member packs its requests, and answers
// packed requests packed and plain ones plain, so that a plain net/rpc
// client sends and receives Digest; a member that gets a plain answer to a
// packed request (from a member built before the packed form) sends plain
// requests on that connection from then on. The protocol sees only Digest:
// the codec packs it when writing a message and unpacks it when reading one.

// ErrBadDigest is returned for a digest that does not parse.
var ErrBadDigest = errors.New("gossip: malformed digest")

// MaxAddrLen bounds a member address received from the network.
const MaxAddrLen = 512

// AppendDigest appends the record of one entry to d. The address may be a
// string or a byte slice.
func AppendDigest[A ~string | ~[]byte](d []byte, addr A, heartbeat, version int64) []byte {
	d = binary.AppendUvarint(d, uint64(len(addr)))
	d = append(d, addr...)
	d = binary.AppendUvarint(d, uint64(heartbeat))
	return binary.AppendUvarint(d, uint64(heartbeat-version))
}

// ReadDigest calls f for each record of d, in order, with the address as a
// slice of d that f must not keep. It stops at the first error of f, or
// with ErrBadDigest at a malformed record or after max records.
func ReadDigest(d []byte, max int, f func(addr []byte, heartbeat, version int64) error) error {
	for n := 0; len(d) > 0; n++ {
		if n >= max {
			return ErrBadDigest
		}
		l, k := binary.Uvarint(d)
		if k <= 0 || l > MaxAddrLen || l > uint64(len(d)-k) {
			return ErrBadDigest
		}
		addr := d[k : k+int(l)]
		d = d[k+int(l):]
		hb, k := binary.Uvarint(d)
		if k <= 0 || hb == 0 || hb > math.MaxInt64 {
			return ErrBadDigest
		}
		d = d[k:]
		age, k := binary.Uvarint(d)
		if k <= 0 || age > hb {
			return ErrBadDigest
		}
		d = d[k:]
		if err := f(addr, int64(hb), int64(hb-age)); err != nil {
			return err
		}
	}
	return nil
}
