package main

// A gob decoder that needs no Go types.
//
// stats reads members whose application data has types it cannot know, so it
// cannot hand encoding/gob a value to decode into. This decoder reads a gob
// stream as the encoding/gob package documentation describes it and returns
// generic values: the stream carries every type's definition (fields, names
// and element types), which is all a reader needs. We looked for a library
// instead: encoding/gob's own debug.go prints streams but is not importable
// (it is behind a build tag), and the few third-party gob "reversers" are
// unmaintained single-author projects that would be the root module's only
// new dependency, for a few hundred lines we can test here against
// encoding/gob itself.
//
// Values come back as:
//
//	bool, int64, uint64, float64, complex128, string, []byte
//	[]any              a slice or array
//	Map                a map, entries in stream order
//	Struct             a struct, every field of its type in order
//	Interface          an interface value: the registered name and the value
//	time.Time          a time.Time (it is sent by its GobEncode method)
//	Opaque             any other GobEncoder, BinaryMarshaler or TextMarshaler
//	nil                a nil interface
//
// Pointers do not appear: gob sends what they point to.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"
)

// Struct is a decoded struct. Fields that the stream omitted (gob omits
// zero values) hold a zero value of their type.
type Struct struct {
	Type   string // the type's name, as the encoder gave it ("Service")
	Fields []Field
}

// Field is one field of a Struct.
type Field struct {
	Name  string
	Value any
}

// Get returns the value of the named field, and whether there is one.
func (s Struct) Get(name string) (any, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// Map is a decoded map. Its keys may be values Go cannot use as map keys
// (structs holding slices), so it keeps entries as pairs.
type Map struct {
	Type    string
	Entries []MapEntry
}

// MapEntry is one key and value of a Map.
type MapEntry struct {
	Key, Value any
}

// Interface is a decoded non-nil interface value.
type Interface struct {
	Type  string // the name the concrete type was registered under ("main.Service")
	Value any
}

// Opaque is a value its type encoded itself (GobEncoder, BinaryMarshaler or
// TextMarshaler), other than time.Time: only its type and bytes are known.
type Opaque struct {
	Type  string
	Bytes []byte
}

// Built-in type ids, fixed by encoding/gob.
const (
	tBool      = 1
	tInt       = 2
	tUint      = 3
	tFloat     = 4
	tBytes     = 5
	tString    = 6
	tComplex   = 7
	tInterface = 8
	firstUser  = 64 // ids below are gob's own
)

// Limits against hostile or corrupt input.
const (
	maxNesting = 100      // values within values
	maxName    = 1024     // bytes in an interface's type name, as encoding/gob
	maxTypes   = 1 << 16  // type definitions in one stream
	maxMessage = 64 << 20 // default bound of one message, in bytes
)

type kind int

const (
	kArray kind = iota
	kSlice
	kStruct
	kMap
	kEncoder
)

// wireType is a type definition read from the stream.
type wireType struct {
	kind      kind
	name      string
	elem, key int // element and key type ids
	length    int // of an array
	fields    []wireField
	encoder   string // "GobEncoder", "BinaryMarshaler" or "TextMarshaler"
}

type wireField struct {
	name string
	id   int
}

// Decoder reads generic values from a gob stream. It is not safe for
// concurrent use.
type Decoder struct {
	r      *bufio.Reader
	buf    []byte // the rest of the message being read
	types  map[int]*wireType
	maxMsg int
	depth  int
}

// NewDecoder returns a Decoder reading r, refusing messages over maxMsg
// bytes (maxMessage if maxMsg <= 0).
func NewDecoder(r io.Reader, maxMsg int) *Decoder {
	if maxMsg <= 0 {
		maxMsg = maxMessage
	}
	return &Decoder{r: bufio.NewReader(r), types: make(map[int]*wireType), maxMsg: maxMsg}
}

// decodeError carries a decoding error up through panics, as encoding/gob
// does; Decode turns it back into an error.
type decodeError struct{ err error }

func (d *Decoder) fail(format string, args ...any) {
	panic(decodeError{fmt.Errorf("gob: "+format, args...)})
}

// Decode reads the next value of the stream, and the type definitions before
// it. It returns io.EOF at a clean end of the stream.
func (d *Decoder) Decode() (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			de, ok := r.(decodeError)
			if !ok {
				panic(r)
			}
			v, err = nil, de.err
		}
	}()
	d.buf, d.depth = nil, 0
	return d.value(d.typeSequence(false)), nil
}

// readMessage reads the next message of the stream into buf.
func (d *Decoder) readMessage() error {
	b, err := d.r.ReadByte()
	if err != nil {
		return err // io.EOF here is a clean end
	}
	n := uint64(b)
	if b >= 0x80 {
		k := -int(int8(b))
		if k < 1 || k > 8 {
			return errors.New("gob: malformed message length")
		}
		var be [8]byte
		if _, err := io.ReadFull(d.r, be[8-k:]); err != nil {
			return unexpected(err)
		}
		n = binary.BigEndian.Uint64(be[:])
	}
	if n > uint64(d.maxMsg) {
		return fmt.Errorf("gob: message of %d bytes, limit %d", n, d.maxMsg)
	}
	d.buf = make([]byte, n)
	if _, err := io.ReadFull(d.r, d.buf); err != nil {
		return unexpected(err)
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// typeSequence reads type definitions until a type id of a value, which it
// returns. Outside an interface the definitions are whole messages; inside
// one they may share the value's message, each followed by a byte count.
func (d *Decoder) typeSequence(inInterface bool) int {
	first := true
	for {
		if len(d.buf) == 0 {
			if err := d.readMessage(); err != nil {
				if !first && errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				panic(decodeError{err})
			}
		}
		id := d.readInt()
		if id >= 0 {
			if id > math.MaxInt32 {
				d.fail("type id %d out of range", id)
			}
			return int(id)
		}
		if id < -math.MaxInt32 {
			d.fail("type id %d out of range", id)
		}
		d.define(int(-id))
		if len(d.buf) > 0 {
			if !inInterface {
				d.fail("extra data after type definition")
			}
			d.readUint()
		}
		first = false
	}
}

// Primitives, read from buf.

func (d *Decoder) readUint() uint64 {
	if len(d.buf) == 0 {
		panic(decodeError{io.ErrUnexpectedEOF})
	}
	b := d.buf[0]
	if b < 0x80 {
		d.buf = d.buf[1:]
		return uint64(b)
	}
	k := -int(int8(b))
	if k < 1 || k > 8 {
		d.fail("malformed unsigned integer")
	}
	if len(d.buf) < 1+k {
		panic(decodeError{io.ErrUnexpectedEOF})
	}
	var u uint64
	for _, c := range d.buf[1 : 1+k] {
		u = u<<8 | uint64(c)
	}
	d.buf = d.buf[1+k:]
	return u
}

func (d *Decoder) readInt() int64 {
	u := d.readUint()
	if u&1 != 0 {
		return ^int64(u >> 1)
	}
	return int64(u >> 1)
}

func (d *Decoder) readFloat() float64 {
	return math.Float64frombits(bits.ReverseBytes64(d.readUint()))
}

// readBytes returns the next length-prefixed bytes, copied.
func (d *Decoder) readBytes() []byte {
	n := d.readUint()
	if n > uint64(len(d.buf)) {
		d.fail("length %d exceeds the message", n)
	}
	b := append([]byte(nil), d.buf[:n]...)
	d.buf = d.buf[n:]
	return b
}

// readCount returns an element count, at most the bytes left: every
// element takes at least one.
func (d *Decoder) readCount() int {
	n := d.readUint()
	if n > uint64(len(d.buf)) {
		d.fail("count %d exceeds the message", n)
	}
	return int(n)
}

func (d *Decoder) readTypeID() int {
	id := d.readInt()
	if id < 0 || id > math.MaxInt32 {
		d.fail("type id %d out of range", id)
	}
	return int(id)
}

// readStruct reads a struct's fields as deltas, calling f with each field
// number, until the terminating zero.
func (d *Decoder) readStruct(f func(field int)) {
	field := -1
	for {
		delta := d.readUint()
		if delta == 0 {
			return
		}
		if delta > maxTypes {
			d.fail("field delta %d out of range", delta)
		}
		field += int(delta)
		f(field)
	}
}

// define reads the definition of type id, a wireType:
//
//	struct { ArrayT *arrayType; SliceT *sliceType; StructT *structType;
//	         MapT *mapType; GobEncoderT, BinaryMarshalerT, TextMarshalerT *gobEncoderType }
//
// where each of those starts with CommonType{Name string; Id int}.
func (d *Decoder) define(id int) {
	if id < firstUser {
		d.fail("definition of reserved type id %d", id)
	}
	if d.types[id] != nil {
		d.fail("type id %d defined twice", id)
	}
	if len(d.types) >= maxTypes {
		d.fail("more than %d types", maxTypes)
	}
	t := &wireType{kind: -1}
	common := func() {
		d.readStruct(func(f int) {
			switch f {
			case 0:
				t.name = string(d.readBytes())
			case 1:
				d.readInt()
			default:
				d.fail("unknown field %d of CommonType", f)
			}
		})
	}
	d.readStruct(func(variant int) {
		if t.kind != -1 {
			d.fail("type id %d has two definitions", id)
		}
		switch variant {
		case 0: // ArrayT
			t.kind = kArray
			d.readStruct(func(f int) {
				switch f {
				case 0:
					common()
				case 1:
					t.elem = d.readTypeID()
				case 2:
					n := d.readInt()
					if n < 0 || n > math.MaxInt32 {
						d.fail("array length %d out of range", n)
					}
					t.length = int(n)
				default:
					d.fail("unknown field %d of arrayType", f)
				}
			})
		case 1: // SliceT
			t.kind = kSlice
			d.readStruct(func(f int) {
				switch f {
				case 0:
					common()
				case 1:
					t.elem = d.readTypeID()
				default:
					d.fail("unknown field %d of sliceType", f)
				}
			})
		case 2: // StructT
			t.kind = kStruct
			d.readStruct(func(f int) {
				switch f {
				case 0:
					common()
				case 1:
					n := d.readCount()
					t.fields = make([]wireField, n)
					for i := range t.fields {
						d.readStruct(func(f int) {
							switch f {
							case 0:
								t.fields[i].name = string(d.readBytes())
							case 1:
								t.fields[i].id = d.readTypeID()
							default:
								d.fail("unknown field %d of fieldType", f)
							}
						})
					}
				default:
					d.fail("unknown field %d of structType", f)
				}
			})
		case 3: // MapT
			t.kind = kMap
			d.readStruct(func(f int) {
				switch f {
				case 0:
					common()
				case 1:
					t.key = d.readTypeID()
				case 2:
					t.elem = d.readTypeID()
				default:
					d.fail("unknown field %d of mapType", f)
				}
			})
		case 4, 5, 6:
			t.kind = kEncoder
			t.encoder = [...]string{"GobEncoder", "BinaryMarshaler", "TextMarshaler"}[variant-4]
			d.readStruct(func(f int) {
				if f != 0 {
					d.fail("unknown field %d of gobEncoderType", f)
				}
				common()
			})
		default:
			d.fail("unknown kind %d of type definition", variant)
		}
	})
	if t.kind == -1 {
		d.fail("empty definition of type id %d", id)
	}
	d.types[id] = t
}

// value reads a value standing alone: a message's, or an interface's. A
// struct is sent as its fields; anything else as a struct's single field.
func (d *Decoder) value(id int) any {
	if t := d.types[id]; t != nil && t.kind == kStruct {
		return d.structValue(t)
	}
	if d.readUint() != 0 {
		d.fail("non-zero field delta before a non-struct value")
	}
	return d.field(id)
}

// field reads a value of type id within another value.
func (d *Decoder) field(id int) any {
	switch id {
	case tBool:
		return d.readUint() != 0
	case tInt:
		return d.readInt()
	case tUint:
		return d.readUint()
	case tFloat:
		return d.readFloat()
	case tBytes:
		return d.readBytes()
	case tString:
		return string(d.readBytes())
	case tComplex:
		re := d.readFloat()
		return complex(re, d.readFloat())
	case tInterface:
		d.enter()
		defer d.leave()
		return d.iface()
	}
	t := d.types[id]
	if t == nil {
		d.fail("unknown type id %d", id)
	}
	d.enter()
	defer d.leave()
	switch t.kind {
	case kArray, kSlice:
		n := d.readCount()
		if t.kind == kArray && n != t.length {
			d.fail("array of %d elements has length %d", n, t.length)
		}
		out := make([]any, n)
		for i := range out {
			out[i] = d.field(t.elem)
		}
		return out
	case kMap:
		n := d.readCount()
		m := Map{Type: t.name, Entries: make([]MapEntry, n)}
		for i := range m.Entries {
			m.Entries[i].Key = d.field(t.key)
			m.Entries[i].Value = d.field(t.elem)
		}
		return m
	case kStruct:
		return d.structValue(t)
	default: // kEncoder
		return encoded(t, d.readBytes())
	}
}

func (d *Decoder) enter() {
	if d.depth++; d.depth > maxNesting {
		d.fail("values nested more than %d deep", maxNesting)
	}
}

func (d *Decoder) leave() { d.depth-- }

func (d *Decoder) structValue(t *wireType) Struct {
	s := Struct{Type: t.name, Fields: make([]Field, len(t.fields))}
	set := make([]bool, len(t.fields))
	d.readStruct(func(f int) {
		if f >= len(t.fields) {
			d.fail("field %d of %d-field struct %s", f, len(t.fields), t.name)
		}
		s.Fields[f] = Field{Name: t.fields[f].name, Value: d.field(t.fields[f].id)}
		set[f] = true
	})
	for i, ok := range set {
		if !ok {
			s.Fields[i] = Field{Name: t.fields[i].name, Value: d.zero(t.fields[i].id)}
		}
	}
	return s
}

// iface reads an interface value: the concrete type's registered name (empty
// for nil), type definitions, its type id, a byte count, and the value.
func (d *Decoder) iface() any {
	n := d.readUint()
	if n == 0 {
		return nil
	}
	if n > maxName || n > uint64(len(d.buf)) {
		d.fail("interface type name of %d bytes", n)
	}
	name := string(d.buf[:n])
	d.buf = d.buf[n:]
	id := d.typeSequence(true)
	d.readUint() // the value's length, for readers that skip it
	return Interface{Type: name, Value: d.value(id)}
}

// zero returns the value of a field the stream omitted. Structs within are
// left without fields, so that recursive types end.
func (d *Decoder) zero(id int) any {
	switch id {
	case tBool:
		return false
	case tInt:
		return int64(0)
	case tUint:
		return uint64(0)
	case tFloat:
		return float64(0)
	case tBytes:
		return []byte(nil)
	case tString:
		return ""
	case tComplex:
		return complex128(0)
	case tInterface:
		return nil
	}
	t := d.types[id]
	if t == nil {
		return nil
	}
	switch t.kind {
	case kArray, kSlice:
		return []any{}
	case kMap:
		return Map{Type: t.name}
	case kStruct:
		return Struct{Type: t.name}
	default:
		return encoded(t, nil)
	}
}

// encoded interprets the bytes of a type that encodes itself: time.Time's
// binary form is documented and stable, text is shown as text, and anything
// else is opaque.
func encoded(t *wireType, b []byte) any {
	if t.name == "Time" || t.name == "time.Time" {
		if tm, ok := decodeTime(b); ok {
			return tm
		}
	}
	if t.encoder == "TextMarshaler" {
		return string(b)
	}
	return Opaque{Type: t.name, Bytes: b}
}

// decodeTime reads time.Time's MarshalBinary form: a version byte (1, or 2
// with seconds in the zone offset), seconds since year 1 (8 bytes),
// nanoseconds (4), the zone offset in minutes (2, -1 for UTC) and, in
// version 2, its seconds (1). All big-endian.
func decodeTime(b []byte) (time.Time, bool) {
	if len(b) == 0 || !(b[0] == 1 && len(b) == 15 || b[0] == 2 && len(b) == 16) {
		return time.Time{}, false
	}
	const secondsToUnix = 62135596800 // from year 1 to 1970
	sec := int64(binary.BigEndian.Uint64(b[1:9]))
	nsec := int64(binary.BigEndian.Uint32(b[9:13]))
	offMin := int16(binary.BigEndian.Uint16(b[13:15]))
	t := time.Unix(sec-secondsToUnix, nsec)
	if offMin == -1 {
		return t.UTC(), true
	}
	off := int(offMin) * 60
	if b[0] == 2 {
		off += int(b[15])
	}
	return t.In(time.FixedZone("", off)), true
}
