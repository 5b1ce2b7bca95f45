package gossip

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// How application data travels.
//
// A member encodes its data once, when it is set: gob encodes the value as an
// interface, so the encoding carries gob's registered name of its type. Those
// bytes are stored and gossiped as they are, so a member relays data of types
// it has never heard of, and a value that cannot be encoded, or is too large,
// is refused by SetData before any peer sees it. A process decodes the bytes
// only when GetMembers asks for them, afresh each time, so callers never
// share a value. Data whose type is not registered in the decoding process
// comes back as a RawData.
//
// gob needs every concrete type carried in an interface registered, with
// gob.Register, in each process that encodes or decodes it. Go's basic types
// (strings, numbers, []byte, and slices of them) are registered already, and
// this package registers map[string]string, map[string]interface{} and
// []interface{}, so that simple key-value data needs no registration.

// ErrDataTooLarge is returned by UpdateData for data whose encoding exceeds
// Config.MaxDataSize.
var ErrDataTooLarge = errors.New("gossip: data too large")

// RawData stands in for application data that this process cannot decode,
// because its type is not registered with gob here. GetMembers returns it, and
// the Gossip.GetMembers RPC sends it, in place of the value.
type RawData struct {
	// Type is gob's name for the data's type ("main.Service"), if known.
	Type string
	// Gob is the data's encoding: a gob stream of a struct whose one field,
	// V, is an interface holding the value.
	Gob []byte
}

// String describes the data by type and size.
func (r RawData) String() string {
	return fmt.Sprintf("<%s, %d bytes>", r.Type, len(r.Gob))
}

func init() {
	gob.RegisterName("gossip.RawData", RawData{})
	gob.Register(map[string]string{})
	gob.Register(map[string]interface{}{})
	gob.Register([]interface{}{})
	// gob numbers types in the order a process first meets them, and data
	// carries its envelope's number: meet it now, so that the size of
	// encoded data does not depend on what the program encoded before.
	gob.NewEncoder(io.Discard).Encode(envelope{})
}

// envelope is what data is encoded as: an interface, so that its type travels.
type envelope struct {
	V interface{}
}

// encodeData encodes v for the wire; nil encodes to nil. It fails if gob
// cannot encode v (for example, its type is not registered) or if the
// encoding is over max bytes.
func encodeData(v interface{}, max int) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	if r, ok := v.(RawData); ok {
		// Data we could not decode: pass its encoding on unchanged.
		return checkSize(r.Gob, max)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(envelope{V: v}); err != nil {
		return nil, fmt.Errorf("gossip: encode data of type %T: %w (types other than Go's basic ones must be registered with gob.Register)", v, err)
	}
	return checkSize(buf.Bytes(), max)
}

func checkSize(b []byte, max int) ([]byte, error) {
	if len(b) > max {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrDataTooLarge, len(b), max)
	}
	return b, nil
}

// decodeData decodes data encoded by encodeData, returning a fresh value, or
// a RawData if it cannot be decoded here.
func decodeData(b []byte) interface{} {
	if len(b) == 0 {
		return nil
	}
	var env envelope
	err := gob.NewDecoder(bytes.NewReader(b)).Decode(&env)
	if err == nil {
		return env.V
	}
	return RawData{Type: unregisteredName(err), Gob: append([]byte(nil), b...)}
}

// unregisteredName extracts the type name from gob's error for a type not
// registered in this process, or returns "".
func unregisteredName(err error) string {
	const marker = "not registered for interface: "
	msg := err.Error()
	i := strings.Index(msg, marker)
	if i < 0 {
		return ""
	}
	name, err := strconv.Unquote(msg[i+len(marker):])
	if err != nil {
		return ""
	}
	return name
}

// SetData changes this member's application data, which every member then
// sees through GetMembers. The value is copied (encoded) before SetData
// returns. If it cannot be encoded or is too large, SetData logs the error and
// keeps the old data; UpdateData returns the error instead.
func (g *Gossip) SetData(data interface{}) {
	if err := g.UpdateData(data); err != nil {
		g.log.WithError(err).Error("gossip: data not changed")
	}
}

// UpdateData is SetData returning an error: ErrDataTooLarge (wrapped) if the
// encoded value exceeds Config.MaxDataSize, gob's error if it cannot be
// encoded, or ErrClosed after Close. The old data is kept on error.
func (g *Gossip) UpdateData(data interface{}) error {
	b, err := encodeData(data, g.cfg.MaxDataSize)
	if err != nil {
		return err
	}
	now := g.clock.Now()
	g.mu.Lock()
	switch {
	case g.initErr != nil:
		g.mu.Unlock()
		return g.initErr
	case g.state == stateClosed:
		g.mu.Unlock()
		return ErrClosed
	case g.proto == nil:
		changed := !bytes.Equal(g.data, b)
		g.data = b
		g.mu.Unlock()
		if changed {
			g.notify()
		}
		return nil
	}
	out := g.proto.SetData(b, now)
	g.queueEvents(out)
	g.mu.Unlock()
	g.apply(out)
	return nil
}
