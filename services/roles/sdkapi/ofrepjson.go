package sdkapi

// The OFREP hot path reads and writes its JSON by hand. encoding/json decoding a ~250-byte
// context into map[string]any was more than half of a single evaluation's CPU (reflection, a
// validity pre-scan, a map grown entry by entry), and encoding the answer through reflection a
// tenth more. The hand-written paths here cover what SDKs send (an object with one "context"
// object of scalar attributes) and hand everything else, byte for byte, to encoding/json, so the
// answer for any body is exactly the one encoding/json gives: FuzzDecodeRequest checks that.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/vexil-flags/vexil/domain/evaluation"
)

// decodeFlatRequest is the fast path of an OFREP request body: {"context": {...}} (or no
// context, or "context": null) whose attributes are strings without escapes, JSON numbers,
// booleans or null. It returns the attributes (into, filled, or a new map when into is nil; nil
// without a context) and the raw bytes of the context value; ok is false when the body is anything else (other members, nested values,
// escapes, invalid JSON), and then the caller decodes it with encoding/json.
func decodeFlatRequest(body []byte, into map[string]any) (attrs map[string]any, raw []byte, ok bool) {
	p := flatParser{b: body, into: into}
	p.space()
	if p.eof() {
		return nil, nil, true // an empty body has no context
	}
	if p.b[p.i] != '{' {
		return nil, nil, false
	}
	p.i++
	p.space()
	if p.peek('}') {
		p.i++
		return nil, nil, p.end()
	}
	name, ok := p.str()
	if !ok || name != "context" {
		return nil, nil, false
	}
	p.space()
	if !p.peek(':') {
		return nil, nil, false
	}
	p.i++
	p.space()
	start := p.i
	switch {
	case p.literal("null"):
		raw = p.b[start:p.i]
	case p.peek('{'):
		attrs, ok = p.object()
		if !ok {
			return nil, nil, false
		}
		raw = p.b[start:p.i]
	default:
		return nil, nil, false
	}
	p.space()
	if !p.peek('}') {
		return nil, nil, false // another member follows: encoding/json decides what it means
	}
	p.i++
	return attrs, raw, p.end()
}

type flatParser struct {
	b    []byte
	i    int
	into map[string]any // the empty map to fill, or nil
}

func (p *flatParser) eof() bool        { return p.i >= len(p.b) }
func (p *flatParser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }
func (p *flatParser) end() bool        { p.space(); return p.eof() }
func (p *flatParser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *flatParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object parses a flat object of scalars; the map is sized by a count of its colons, so it is
// allocated once.
func (p *flatParser) object() (map[string]any, bool) {
	p.i++ // '{'
	p.space()
	m := p.into
	if m == nil {
		m = make(map[string]any, min(bytes.Count(p.b[p.i:], []byte{':'}), 64)) // a size hint, not a bound
	}
	if p.peek('}') {
		p.i++
		return m, true
	}
	for {
		p.space()
		k, ok := p.name()
		if !ok {
			return nil, false
		}
		p.space()
		if !p.peek(':') {
			return nil, false
		}
		p.i++
		p.space()
		// Targeting keys are as many as users: interning them would only churn the table.
		v, ok := p.scalar(k != evaluation.OpenFeatureTargetingKey)
		if !ok {
			return nil, false
		}
		m[k] = v
		p.space()
		if p.eof() {
			return nil, false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (p *flatParser) scalar(intern bool) (any, bool) {
	if p.eof() {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		if intern {
			b, ok := p.rawStr()
			if !ok {
				return nil, false
			}
			return attributeValues.strings.value(b, nil), true
		}
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		v, ok := p.number()
		if ok && intern {
			v = attributeValues.numbers.value(p.b[start:p.i], v)
		}
		return v, ok
	}
	return nil, false // an object or an array: encoding/json builds those
}

// name parses an attribute name: the same few names come in every request, so they are
// interned rather than allocated each time.
func (p *flatParser) name() (string, bool) {
	s, ok := p.rawStr()
	if !ok {
		return "", false
	}
	return attributeNames.intern(s), true
}

// str parses a string without escapes; anything needing decoding (escapes, invalid UTF-8,
// which encoding/json replaces) is left to the fallback.
func (p *flatParser) str() (string, bool) {
	b, ok := p.rawStr()
	return string(b), ok
}

// rawStr is str's bytes, in the body.
func (p *flatParser) rawStr() ([]byte, bool) {
	if !p.peek('"') {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		switch {
		case c == '"':
			s := p.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// internTable is a direct-mapped cache of strings: a lookup hashes the bytes to one slot and
// compares, so it never allocates on a hit, and a miss replaces the slot. It is bounded (a
// client sending ever new names only churns it) and lock-free.
type internTable struct {
	slots [512]atomic.Pointer[string]
}

var attributeNames internTable

func (t *internTable) intern(b []byte) string {
	if len(b) > 64 {
		return string(b) // long names are rare; keep the slots for the usual ones
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &t.slots[h%uint32(len(t.slots))]
	if s := slot.Load(); s != nil && *s == string(b) {
		return *s
	}
	s := string(b)
	slot.Store(&s)
	return s
}

// valueTable is internTable for attribute values, boxed: the same plans, countries, versions and
// ages come in request after request, and a context's strings and numbers were half of its
// allocations (the bytes, then the interface holding them). A hit returns the interface already
// built; a miss builds one and takes the slot. Values longer than maxInternedValue (emails,
// ids: rarely repeated) are not kept.
type valueTable struct {
	slots [1024]atomic.Pointer[internedValue]
}

type internedValue struct {
	text string // the JSON string's contents, or the number's text
	v    any
}

const maxInternedValue = 32

// attributeValues: strings and numbers apart, since "42" and 42 are different values.
var attributeValues struct{ strings, numbers valueTable }

// value returns the value of text: v when given (a number, already parsed), else text as a
// string.
func (t *valueTable) value(text []byte, v any) any {
	if len(text) > maxInternedValue {
		if v == nil {
			return string(text)
		}
		return v
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range text {
		h = (h ^ uint32(c)) * 16777619
	}
	slot := &t.slots[h%uint32(len(t.slots))]
	if e := slot.Load(); e != nil && e.text == string(text) {
		return e.v
	}
	e := &internedValue{text: string(text), v: v}
	if v == nil {
		e.v = e.text
	}
	slot.Store(e)
	return e.v
}

// number checks the JSON number grammar (strconv.ParseFloat alone accepts more: "+1", ".5",
// "0x1p3", "Inf") and converts as encoding/json does into an interface: a float64.
func (p *flatParser) number() (any, bool) {
	start := p.i
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	switch {
	case j < len(p.b) && p.b[j] == '0':
		j++
	case j < len(p.b) && p.b[j] >= '1' && p.b[j] <= '9':
		for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
			j++
		}
	default:
		return nil, false
	}
	if j < len(p.b) && p.b[j] == '.' {
		j++
		if j >= len(p.b) || p.b[j] < '0' || p.b[j] > '9' {
			return nil, false
		}
		for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
			j++
		}
	}
	if j < len(p.b) && (p.b[j] == 'e' || p.b[j] == 'E') {
		j++
		if j < len(p.b) && (p.b[j] == '+' || p.b[j] == '-') {
			j++
		}
		if j >= len(p.b) || p.b[j] < '0' || p.b[j] > '9' {
			return nil, false
		}
		for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
			j++
		}
	}
	f, err := strconv.ParseFloat(string(p.b[start:j]), 64) // no allocation: the conversion does not escape
	if err != nil {
		return nil, false // out of range: encoding/json's error wording comes from the fallback
	}
	p.i = j
	return f, true
}

// contextOf fills c from decoded attributes without copying the map: targetingKey becomes the
// key (the caller has checked it is a string) and is removed, as evaluation.FromOpenFeature does.
func contextOf(c *evaluation.Context, attrs map[string]any) *evaluation.Context {
	*c = evaluation.Context{Attributes: attrs}
	if tk, ok := attrs[evaluation.OpenFeatureTargetingKey]; ok {
		c.Key, _ = tk.(string)
		delete(attrs, evaluation.OpenFeatureTargetingKey)
	}
	return c
}

// appendString appends s as a JSON string, escaping as encoding/json does (HTML characters
// included, as echo's JSON answers did).
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// evalState is what one OFREP request needs besides the snapshot, pooled so that a request
// allocates little: the body (then the answer) buffer, the attribute map, the context and the
// bulk results. Nothing of it outlives the handler: results hold values of the snapshot, and
// attributes are copied out of the body.
type evalState struct {
	buf     []byte
	attrs   map[string]any
	ctx     evaluation.Context
	results []evaluation.Result
}

var evalStates = sync.Pool{New: func() any {
	return &evalState{buf: make([]byte, 0, 4096), attrs: make(map[string]any, 16)}
}}

func getEvalState() *evalState { return evalStates.Get().(*evalState) }

// put returns st to the pool, unless a one-off huge request grew it (kept buffers stay small).
func (st *evalState) put() {
	if cap(st.buf) > 1<<20 || len(st.attrs) > 64 || cap(st.results) > 4096 {
		return
	}
	st.buf = st.buf[:0]
	clear(st.attrs)
	st.ctx = evaluation.Context{}
	clear(st.results) // drop references to snapshot values
	st.results = st.results[:0]
	evalStates.Put(st)
}
