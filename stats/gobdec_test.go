package main

import (
	"bytes"
	"encoding/gob"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gossipfd/gossip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type point struct {
	X, Y int
}

type shape struct {
	Name   string
	Points []point
	Center *point
	Labels map[string]int
	Extra  any
	Blob   []byte
	Grid   [2][2]uint8
	Ok     bool
	Ratio  float64
	When   time.Time
	//lint:ignore U1000 unexported, so gob leaves it out, which is the point
	hidden int
}

type node struct {
	Value int
	Next  *node
}

type blob struct{}

func (blob) MarshalBinary() ([]byte, error) { return []byte{0xde, 0xad, 0xbe, 0xef}, nil }
func (*blob) UnmarshalBinary([]byte) error  { return nil }

func init() {
	gob.RegisterName("test.point", point{})
	gob.RegisterName("test.shape", shape{})
	gob.RegisterName("test.blob", blob{})
}

// encode returns the gob stream of the values, one Encode call each.
func encode(t *testing.T, values ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := gob.NewEncoder(&buf)
	for _, v := range values {
		require.NoError(t, enc.Encode(v), "encode %T", v)
	}
	return buf.Bytes()
}

// decodeAll decodes every value of a stream.
func decodeAll(t *testing.T, stream []byte) []any {
	t.Helper()
	d := NewDecoder(bytes.NewReader(stream), 0)
	var out []any
	for {
		v, err := d.Decode()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		out = append(out, v)
	}
}

func TestDecodeFormats(t *testing.T) {
	when := time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC)
	zone := time.FixedZone("", 2*3600)
	cases := []struct {
		name  string
		value any
		want  string
	}{
		{"string", "http://10.0.0.1:8080", "http://10.0.0.1:8080"},
		{"int", -42, "-42"},
		{"uint", uint16(65535), "65535"},
		{"float", 2.5, "2.5"},
		{"bool", true, "true"},
		{"complex", complex(1, -2), "(1-2i)"},
		{"bytes text", []byte("hello"), `"hello"`},
		{"bytes binary", []byte{0, 1, 0xff}, "0x0001ff"},
		{"slice", []string{"a", "b c"}, `[a "b c"]`},
		{"map", map[string]int{"b": 2, "a": 1}, "map[a:1 b:2]"},
		{"struct", point{X: 1, Y: -1}, "{X:1 Y:-1}"},
		{"zero fields", point{}, "{X:0 Y:0}"},
		{"pointer", &point{X: 3}, "{X:3 Y:0}"},
		{"time", when, "2024-05-06T07:08:09.00000001Z"},
		{"time in a zone", when.In(zone), "2024-05-06T09:08:09.00000001+02:00"},
		{"recursive", node{1, &node{2, &node{3, nil}}}, "{Value:1 Next:{Value:2 Next:{Value:3 Next:{}}}}"},
		{"binary marshaler", []blob{{}}, "[<blob, 4 bytes>]"},
		{"nested", shape{
			Name:   "tri",
			Points: []point{{0, 0}, {1, 0}},
			Center: &point{1, 1},
			Labels: map[string]int{"x": 1},
			Extra:  point{5, 6},
			Blob:   []byte{1, 2},
			Grid:   [2][2]uint8{{1, 2}, {3, 255}},
			Ok:     true,
			Ratio:  0.5,
			When:   when,
		}, "{Name:tri Points:[{X:0 Y:0} {X:1 Y:0}] Center:{X:1 Y:1} Labels:map[x:1] Extra:{X:5 Y:6} " +
			"Blob:0x0102 Grid:[[1 2] [3 255]] Ok:true Ratio:0.5 When:2024-05-06T07:08:09.00000001Z}"},
		{"interfaces", []any{"s", 1, nil, point{7, 8}, []byte("b"), map[string]any{"k": []any{true}}},
			`[s 1 <nil> {X:7 Y:8} "b" map[k:[true]]]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vals := decodeAll(t, encode(t, c.value))
			require.Len(t, vals, 1)
			assert.Equal(t, c.want, format(vals[0]), "top level %#v", c.value)

			// The same value inside an interface, as gossip sends data.
			if !register(c.value) {
				return
			}
			vals = decodeAll(t, encode(t, struct{ V any }{c.value}))
			require.Len(t, vals, 1)
			env, ok := vals[0].(Struct)
			require.True(t, ok, "envelope is %T", vals[0])
			v, _ := env.Get("V")
			assert.Equal(t, c.want, format(v), "in an interface %#v", c.value)
		})
	}
}

// register registers a case's type for use in an interface, and reports
// whether gob allows it.
func register(v any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	switch v.(type) {
	case point, shape, blob:
		return true
	}
	gob.Register(v)
	return true
}

func TestDecodeStreamOfManyValues(t *testing.T) {
	// Later values reuse the types defined for earlier ones.
	stream := encode(t, point{1, 2}, point{3, 4}, []point{{5, 6}}, "end")
	got := decodeAll(t, stream)
	require.Len(t, got, 4)
	assert.Equal(t, "{X:1 Y:2}", format(got[0]))
	assert.Equal(t, "{X:3 Y:4}", format(got[1]))
	assert.Equal(t, "[{X:5 Y:6}]", format(got[2]))
	assert.Equal(t, "end", format(got[3]))
}

func TestDecodeInterfaceNames(t *testing.T) {
	got := decodeAll(t, encode(t, struct{ V any }{shape{Extra: point{1, 2}}}))
	env := got[0].(Struct)
	v, _ := env.Get("V")
	iv, ok := v.(Interface)
	require.True(t, ok, "V is %T", v)
	assert.Equal(t, "test.shape", iv.Type)
	extra, _ := iv.Value.(Struct).Get("Extra")
	assert.Equal(t, "test.point", extra.(Interface).Type)
	name, _ := unwrap(v)
	assert.Equal(t, "test.shape", name)
}

func TestUnwrapRawData(t *testing.T) {
	// A member that could not decode data sends gossip.RawData holding the
	// data's own gob: struct{ V interface{} } with the value in V.
	inner := encode(t, struct{ V any }{point{4, 2}})
	stream := encode(t, struct{ V any }{gossip.RawData{Type: "test.point", Gob: inner}})
	env := decodeAll(t, stream)[0].(Struct)
	v, _ := env.Get("V")
	name, val := unwrap(v)
	assert.Equal(t, "test.point", name)
	assert.Equal(t, "{X:4 Y:2}", format(val))
	assert.Equal(t, "{X:4 Y:2}", format(v))

	// Gob bytes that do not decode show as type and size.
	stream = encode(t, struct{ V any }{gossip.RawData{Type: "main.Gone", Gob: []byte{3, 4, 5}}})
	v, _ = decodeAll(t, stream)[0].(Struct).Get("V")
	name, _ = unwrap(v)
	assert.Equal(t, "main.Gone", name)
	assert.Equal(t, "<main.Gone, 3 bytes>", format(v))
}

func TestToJSON(t *testing.T) {
	v := decodeAll(t, encode(t, shape{Name: "n", Labels: map[string]int{"a": 1}, Extra: blob{}}))[0]
	j := toJSON(v).(map[string]any)
	assert.Equal(t, "n", j["Name"])
	assert.Equal(t, map[string]any{"a": int64(1)}, j["Labels"])
	assert.Equal(t, map[string]any{"type": "blob", "bytes": 4}, j["Extra"])
}

// TestDecodeCorruptInput feeds truncated and mutated streams: the decoder
// must return errors, never panic or hang.
func TestDecodeCorruptInput(t *testing.T) {
	stream := encode(t, struct{ V any }{shape{Name: "x", Points: []point{{1, 2}}, Extra: point{3, 4}, When: time.Now()}})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		b := append([]byte(nil), stream...)
		switch i % 3 {
		case 0:
			b = b[:rng.IntN(len(b))]
		case 1:
			for range 1 + rng.IntN(4) {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
		case 2:
			b = make([]byte, rng.IntN(200))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		}
		d := NewDecoder(bytes.NewReader(b), 1<<16)
		for range 10 {
			if _, err := d.Decode(); err != nil {
				break
			}
		}
	}
	_, err := NewDecoder(bytes.NewReader([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")), 0).Decode()
	assert.Error(t, err, "an HTTP answer")
}
