package evaluation

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/vexil-flags/vexil/domain/datetime"
	"github.com/vexil-flags/vexil/domain/semver"
)

// Context is what a flag is evaluated for: a targeting key (usually a user id) and attributes.
// Attribute values are decoded JSON (string, float64, bool, nil, []any, map[string]any); Go
// integers, float32, json.Number and []string are accepted too. The attribute "key" always
// means Key. Evaluation only reads a Context.
type Context struct {
	Key        string
	Attributes map[string]any
}

// OpenFeatureTargetingKey is the attribute of an OpenFeature evaluation context that holds the
// targeting key.
const OpenFeatureTargetingKey = "targetingKey"

// FromOpenFeature converts a flattened OpenFeature evaluation context (as OFREP sends it) into a
// Context: "targetingKey" becomes Key when it is a string; every other entry is an attribute.
func FromOpenFeature(ctx map[string]any) *Context {
	c := &Context{}
	tk, hasKey := ctx[OpenFeatureTargetingKey]
	if s, ok := tk.(string); ok {
		c.Key = s
	}
	if !hasKey {
		c.Attributes = ctx
		return c
	}
	c.Attributes = make(map[string]any, len(ctx))
	for k, v := range ctx {
		if k != OpenFeatureTargetingKey {
			c.Attributes[k] = v
		}
	}
	return c
}

// attrRef is a compiled attribute reference.
type attrRef struct {
	name  string     // the attribute (first path segment)
	path  []pathStep // further steps into objects and arrays; nil for a top-level attribute
	isKey bool       // the targeting key
	slot  int        // cache slot of the top-level attribute in state, or -1
}

// maxAttrSlots is the number of distinct attributes whose lookups an evaluation caches.
const maxAttrSlots = 32

// state is the state of one evaluation (or one EvaluateAll): the context, and a cache of the
// attribute lookups, since clauses of many rules, segments and prerequisite flags tend to read
// the same few attributes. It lives on the caller's stack.
type state struct {
	cp *Compiled
	// ctx is a copy of the caller's context (a string and a map header), not a pointer to it:
	// the recursive evaluation makes the compiler move whatever state points to onto the heap,
	// and a pointer would cost callers that build their Context on the stack (the Go SDK, per
	// evaluation) an allocation.
	ctx     Context
	known   uint32 // slots looked up
	present uint32 // slots present in the context
	vals    [maxAttrSlots]any

	// The results of the clauses evaluated so far, by memo slot (clause.memo): known, and
	// true among those.
	memoKnown, memoTrue [maxMemoClauses / 64]uint64

	// One-entry memos of the last string parsed as a semantic version and as a date: rules
	// often test the same attribute more than once.
	semverSet, semverOK bool
	semverStr           string
	semverVal           semver.Version
	dateSet, dateOK     bool
	dateStr             string
	dateVal             time.Time
}

func (st *state) semver(s string) (semver.Version, bool) {
	if !st.semverSet || st.semverStr != s {
		st.semverVal, st.semverOK = semver.TryParse(s)
		st.semverStr, st.semverSet = s, true
	}
	return st.semverVal, st.semverOK
}

func (st *state) date(s string) (time.Time, bool) {
	if !st.dateSet || st.dateStr != s {
		st.dateVal, st.dateOK = datetime.ParseString(s)
		st.dateStr, st.dateSet = s, true
	}
	return st.dateVal, st.dateOK
}

type pathStep struct {
	name  string
	index int // array index the name denotes, or -1
}

// compileAttr parses an attribute reference ("key", "plan", "address/city", "/devices/0/os")
// and gives its top-level attribute a cache slot while slots last.
func (cp *Compiled) compileAttr(a string) attrRef {
	r := parseAttr(a)
	r.slot = -1
	if !r.isKey {
		slot, ok := cp.attrSlots[r.name]
		if !ok && len(cp.attrSlots) < maxAttrSlots {
			if cp.attrSlots == nil {
				cp.attrSlots = map[string]int{}
			}
			slot, ok = len(cp.attrSlots), true
			cp.attrSlots[r.name] = slot
		}
		if ok {
			r.slot = slot
		}
	}
	return r
}

func parseAttr(a string) attrRef {
	if !strings.ContainsAny(a, "/~") {
		return attrRef{name: a, isKey: a == "key"}
	}
	a = strings.TrimPrefix(a, "/")
	parts := strings.Split(a, "/")
	for i, p := range parts {
		if strings.Contains(p, "~") {
			parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		}
	}
	r := attrRef{name: parts[0]}
	if len(parts) == 1 {
		r.isKey = r.name == "key"
		return r
	}
	r.path = make([]pathStep, len(parts)-1)
	for i, p := range parts[1:] {
		r.path[i] = pathStep{name: p, index: arrayIndex(p)}
	}
	return r
}

// arrayIndex returns the array index p denotes ("0", "12"; no sign, no leading zero), or -1.
func arrayIndex(p string) int {
	if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
		return -1
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return -1
		}
		n = n*10 + int(p[i]-'0')
	}
	return n
}

// lookup returns the attribute's value, and false when it is absent. It must not be used for the
// targeting key (converting a string to an interface would allocate).
func (a *attrRef) lookup(st *state) (any, bool) {
	var v any
	var ok bool
	if a.slot >= 0 {
		bit := uint32(1) << a.slot
		if st.known&bit != 0 {
			v, ok = st.vals[a.slot], st.present&bit != 0
		} else {
			v, ok = st.ctx.Attributes[a.name]
			st.known |= bit
			if ok {
				st.present |= bit
				st.vals[a.slot] = v
			}
		}
	} else {
		v, ok = st.ctx.Attributes[a.name]
	}
	if !ok {
		return nil, false
	}
	for i := range a.path {
		st := &a.path[i]
		switch x := v.(type) {
		case map[string]any:
			if v, ok = x[st.name]; !ok {
				return nil, false
			}
		case []any:
			if st.index < 0 || st.index >= len(x) {
				return nil, false
			}
			v = x[st.index]
		default:
			return nil, false
		}
	}
	return v, true
}

// toNumber returns v as a float64 when it is a number: float64 as decoded from JSON, or a Go
// numeric type or json.Number that an application put in its context.
func toNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int8:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint8:
		return float64(x), true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
