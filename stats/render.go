package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// rawDataName is the name the gossip package registers RawData under: data a
// member could not decode itself, which it sends as its type and gob bytes.
const rawDataName = "gossip.RawData"

// unwrap returns the value inside an interface, decoding a gossip.RawData's
// inner gob too. It returns the registered type name, and the value; a
// RawData that cannot be decoded stays an Opaque.
func unwrap(v any) (string, any) {
	iv, ok := v.(Interface)
	if !ok {
		return "", v
	}
	if iv.Type != rawDataName {
		return iv.Type, iv.Value
	}
	s, _ := iv.Value.(Struct)
	typ, _ := s.Get("Type")
	name, _ := typ.(string)
	g, _ := s.Get("Gob")
	b, _ := g.([]byte)
	inner, err := NewDecoder(bytes.NewReader(b), len(b)).Decode()
	if env, ok := inner.(Struct); err == nil && ok {
		// The gossip package encodes data as struct{ V interface{} }.
		if iv, ok := env.Get("V"); ok {
			if t, val := unwrap(iv); t != "" {
				return t, val
			}
		}
	}
	return name, Opaque{Type: name, Bytes: b}
}

// format renders a decoded value on one line, in the manner of fmt's %+v:
// structs as {Field:value …}, maps as map[key:value …] sorted by key, slices
// as [a b …]. Strings stand bare at the top and are quoted inside when they
// would otherwise be ambiguous.
func format(v any) string {
	var b strings.Builder
	writeValue(&b, v, true)
	return b.String()
}

func writeValue(b *strings.Builder, v any, top bool) {
	switch v := v.(type) {
	case nil:
		b.WriteString("<nil>")
	case string:
		if top || !needsQuote(v) {
			b.WriteString(v)
		} else {
			b.WriteString(strconv.Quote(v))
		}
	case []byte:
		b.WriteString(formatBytes(v))
	case float64:
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	case time.Time:
		b.WriteString(v.Format(time.RFC3339Nano))
	case Interface:
		_, inner := unwrap(v)
		writeValue(b, inner, top)
	case Opaque:
		fmt.Fprintf(b, "<%s, %d bytes>", orUnknown(v.Type), len(v.Bytes))
	case Struct:
		b.WriteByte('{')
		for i, f := range v.Fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(f.Name)
			b.WriteByte(':')
			writeValue(b, f.Value, false)
		}
		b.WriteByte('}')
	case Map:
		type kv struct{ k, v string }
		entries := make([]kv, len(v.Entries))
		for i, e := range v.Entries {
			entries[i] = kv{formatNested(e.Key), formatNested(e.Value)}
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].k < entries[j].k })
		b.WriteString("map[")
		for i, e := range entries {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(e.k + ":" + e.v)
		}
		b.WriteByte(']')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(' ')
			}
			writeValue(b, e, false)
		}
		b.WriteByte(']')
	default:
		fmt.Fprint(b, v)
	}
}

func formatNested(v any) string {
	var b strings.Builder
	writeValue(&b, v, false)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown type"
	}
	return s
}

// needsQuote reports whether a string inside a value would read wrongly bare.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return true
		}
	}
	return false
}

// formatBytes shows printable UTF-8 as a quoted string and anything else as
// hex, cut after 32 bytes.
func formatBytes(b []byte) string {
	if len(b) > 0 && utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(string(b))
	}
	if len(b) <= 32 {
		return "0x" + hex.EncodeToString(b)
	}
	return fmt.Sprintf("0x%s… (%d bytes)", hex.EncodeToString(b[:32]), len(b))
}

// toJSON turns a decoded value into one encoding/json renders readably:
// structs and maps become objects (map keys rendered as by format), an
// Opaque becomes {"type": …, "bytes": n}, and floats JSON cannot hold become
// strings.
func toJSON(v any) any {
	switch v := v.(type) {
	case Interface:
		_, inner := unwrap(v)
		return toJSON(inner)
	case Opaque:
		return map[string]any{"type": orUnknown(v.Type), "bytes": len(v.Bytes)}
	case Struct:
		m := make(map[string]any, len(v.Fields))
		for _, f := range v.Fields {
			m[f.Name] = toJSON(f.Value)
		}
		return m
	case Map:
		m := make(map[string]any, len(v.Entries))
		for _, e := range v.Entries {
			k, ok := e.Key.(string)
			if !ok {
				k = formatNested(e.Key)
			}
			m[k] = toJSON(e.Value)
		}
		return m
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = toJSON(e)
		}
		return out
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
		return v
	case complex128:
		return strconv.FormatComplex(v, 'g', -1, 128)
	default:
		return v
	}
}
