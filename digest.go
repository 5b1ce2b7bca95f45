package gossip

import (
	"encoding/binary"
	"errors"
	"math"
)

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

// errBadDigest is returned for a digest that does not parse.
var errBadDigest = errors.New("gossip: malformed digest")

// appendDigest appends the record of one entry to d.
func appendDigest(d []byte, addr string, heartbeat, version int64) []byte {
	d = binary.AppendUvarint(d, uint64(len(addr)))
	d = append(d, addr...)
	d = binary.AppendUvarint(d, uint64(heartbeat))
	return binary.AppendUvarint(d, uint64(heartbeat-version))
}

// readDigest calls f for each record of d, in order, with the address as a
// slice of d that f must not keep. It stops at the first error of f, or
// with errBadDigest at a malformed record or after max records.
func readDigest(d []byte, max int, f func(addr []byte, heartbeat, version int64) error) error {
	for n := 0; len(d) > 0; n++ {
		if n >= max {
			return errBadDigest
		}
		l, k := binary.Uvarint(d)
		if k <= 0 || l > maxAddrLen || l > uint64(len(d)-k) {
			return errBadDigest
		}
		addr := d[k : k+int(l)]
		d = d[k+int(l):]
		hb, k := binary.Uvarint(d)
		if k <= 0 || hb == 0 || hb > math.MaxInt64 {
			return errBadDigest
		}
		d = d[k:]
		age, k := binary.Uvarint(d)
		if k <= 0 || age > hb {
			return errBadDigest
		}
		d = d[k:]
		if err := f(addr, int64(hb), int64(hb-age)); err != nil {
			return err
		}
	}
	return nil
}
