package evaluation

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/datetime"
	"github.com/vexil-flags/vexil/domain/semver"
)

// opcode is a compiled operator: not_equals and not_in compile to equals and in with the result
// inverted.
type opcode uint8

const (
	opEquals opcode = iota // also in
	opContains
	opStartsWith
	opEndsWith
	opMatches
	opLT
	opLTE
	opGT
	opGTE
	opSemverEq
	opSemverLT
	opSemverGT
	opBefore
	opAfter
	opExists
	opInSegment
)

var opcodes = map[domain.Operator]opcode{
	domain.OpEquals: opEquals, domain.OpNotEquals: opEquals, domain.OpIn: opEquals,
	domain.OpNotIn: opEquals, domain.OpContains: opContains, domain.OpStartsWith: opStartsWith,
	domain.OpEndsWith: opEndsWith, domain.OpMatches: opMatches, domain.OpLT: opLT,
	domain.OpLTE: opLTE, domain.OpGT: opGT, domain.OpGTE: opGTE, domain.OpSemverEq: opSemverEq,
	domain.OpSemverLT: opSemverLT, domain.OpSemverGT: opSemverGT, domain.OpBefore: opBefore,
	domain.OpAfter: opAfter, domain.OpExists: opExists, domain.OpInSegment: opInSegment,
}

// setThreshold is the size from which in-lists are looked up in a map rather than scanned.
const setThreshold = 8

// clause is a compiled domain.Clause. Only the fields its operator needs are set.
type clause struct {
	attr   attrRef
	op     opcode
	invert bool // Negate, xor not_equals / not_in

	strs   []string  // string values (equals/in, contains, starts/ends_with)
	strSet *strSet   // strs as a set, for long in-lists
	nums   []float64 // number values (equals/in)
	numSet map[float64]struct{}
	bools  uint8 // equals/in: bit 0 set if false is a value, bit 1 if true is

	regexps []*regexp.Regexp
	bound   float64          // lt/lte: the largest value; gt/gte: the smallest
	semvers []semver.Version // semver_eq: every value; semver_lt: the highest; semver_gt: the lowest
	date    time.Time        // before: the latest value; after: the earliest
	segs    []int            // in_segment: indexes of the live segments named

	// memo is the clause's slot in the per-evaluation memo of clause results (state.memoKnown),
	// shared by every identical clause of the ruleset, or -1. Rulesets repeat the same tests
	// (a country list, an email pattern, an in_segment) across many flags: a bulk evaluation
	// then runs each once per context instead of once per flag.
	memo int
}

// maxMemoClauses is the number of distinct clauses whose results one evaluation memoizes; the
// memo is a bit set in state, so it costs the evaluation nothing to clear.
const maxMemoClauses = 512

// memoSlot returns the memo slot of clauses testing what cl tests (the same attribute,
// positive operator and values, whatever the negation), or -1 when the slots are used up or the
// values have a type that is not keyed. The key is an exact encoding (Go quoting keeps invalid
// UTF-8 apart, floats by their bits), so two clauses share a slot only if they decide alike.
func (cp *Compiled) memoSlot(cl domain.Clause, op opcode) int {
	var b strings.Builder
	b.WriteString(strconv.Quote(cl.Attribute))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(int(op)))
	for _, v := range cl.Values {
		b.WriteByte(' ')
		switch x := v.(type) {
		case string:
			b.WriteString(strconv.Quote(x))
		case float64:
			b.WriteString("n")
			b.WriteString(strconv.FormatUint(math.Float64bits(x), 16))
		case bool:
			b.WriteString(strconv.FormatBool(x))
		default:
			return -1
		}
	}
	key := b.String()
	if slot, ok := cp.memoSlots[key]; ok {
		return slot
	}
	if len(cp.memoSlots) >= maxMemoClauses {
		return -1
	}
	if cp.memoSlots == nil {
		cp.memoSlots = map[string]int{}
	}
	slot := len(cp.memoSlots)
	cp.memoSlots[key] = slot
	return slot
}

// compileClause compiles a clause; problems are reported with field paths relative to the
// clause. Segments must be registered (cp.segIndex) before.
func (cp *Compiled) compileClause(cl domain.Clause) (clause, *domain.Error) {
	c, err := cp.compileClauseOp(cl)
	c.memo = -1
	if err == nil {
		// in_segment values are segment keys: the same keys name the same segments.
		c.memo = cp.memoSlot(domain.Clause{Attribute: cl.Attribute, Values: cl.Values}, c.op)
	}
	return c, err
}

func (cp *Compiled) compileClauseOp(cl domain.Clause) (clause, *domain.Error) {
	c := clause{invert: cl.Negate}
	if cl.Operator == domain.OpInSegment {
		// Validated here rather than by domain.ValidateClause, which insists that every segment
		// exists: a dangling reference is an empty segment at evaluation time.
		c.op = opInSegment
		if len(cl.Values) == 0 {
			return c, domain.Invalid("values", "operator in_segment takes at least 1 value")
		}
		for i, v := range cl.Values {
			s, ok := v.(string)
			if !ok {
				return c, domain.Invalid(indexField("values", i), "operator in_segment takes segment keys")
			}
			if idx, ok := cp.segIndex[s]; ok && !slices.Contains(c.segs, idx) {
				c.segs = append(c.segs, idx)
			}
		}
		return c, nil
	}
	if err := domain.ValidateClause(cl, nil); err != nil {
		if e, ok := err.(*domain.Error); ok {
			return c, e
		}
		return c, domain.Invalid("", "%v", err)
	}
	c.attr = cp.compileAttr(cl.Attribute)
	vals := cl.Values
	switch cl.Operator {
	case domain.OpEquals, domain.OpIn, domain.OpNotEquals, domain.OpNotIn:
		c.op = opEquals
		c.invert = cl.Negate != (cl.Operator == domain.OpNotEquals || cl.Operator == domain.OpNotIn)
		for _, v := range vals {
			switch x := v.(type) {
			case string:
				c.strs = append(c.strs, x)
			case float64:
				c.nums = append(c.nums, x)
			case bool:
				if x {
					c.bools |= 2
				} else {
					c.bools |= 1
				}
			}
		}
		if len(c.strs) >= setThreshold {
			c.strSet = newStrSet(c.strs)
		}
		if len(c.nums) >= setThreshold {
			c.numSet = make(map[float64]struct{}, len(c.nums))
			for _, f := range c.nums {
				c.numSet[f] = struct{}{}
			}
		}
	case domain.OpContains, domain.OpStartsWith, domain.OpEndsWith:
		c.op = opcodes[cl.Operator]
		for _, v := range vals {
			c.strs = append(c.strs, v.(string))
		}
	case domain.OpMatches:
		c.op = opMatches
		for _, v := range vals {
			c.regexps = append(c.regexps, regexp.MustCompile(v.(string))) // validated above
		}
	case domain.OpLT, domain.OpLTE, domain.OpGT, domain.OpGTE:
		// "less than any value" is "less than the largest"; "greater than any" is "greater
		// than the smallest".
		lower := cl.Operator == domain.OpLT || cl.Operator == domain.OpLTE
		c.op = opcodes[cl.Operator]
		for i, v := range vals {
			f := v.(float64)
			if i == 0 || (lower && f > c.bound) || (!lower && f < c.bound) {
				c.bound = f
			}
		}
	case domain.OpSemverEq, domain.OpSemverLT, domain.OpSemverGT:
		c.op = opcodes[cl.Operator]
		for _, v := range vals {
			sv, ok := semver.TryParse(v.(string))
			if !ok { // unreachable: the values were validated above
				return c, domain.Invalid("values", "unparsable semantic version %q", v)
			}
			switch {
			case c.op == opSemverEq || len(c.semvers) == 0:
				c.semvers = append(c.semvers, sv)
			case c.op == opSemverLT && sv.Compare(c.semvers[0]) > 0,
				c.op == opSemverGT && sv.Compare(c.semvers[0]) < 0:
				c.semvers[0] = sv
			}
		}
	case domain.OpBefore, domain.OpAfter:
		c.op = opcodes[cl.Operator]
		for i, v := range vals {
			t, _ := datetime.Parse(v) // validated above
			if i == 0 || (c.op == opBefore && t.After(c.date)) || (c.op == opAfter && t.Before(c.date)) {
				c.date = t
			}
		}
	case domain.OpExists:
		c.op = opExists
	default:
		return c, domain.Invalid("op", "unsupported operator %q", cl.Operator)
	}
	return c, nil
}

// matchClauses reports whether all the clauses match the context of st (all), or any of them
// (!all), stopping at the first clause that decides. No clause is all; none is not any.
//
// It is the evaluator's innermost loop (the 10-rule benchmark tests 30 clauses per evaluation),
// so the clause test is written out in the loop, and its common cases in the test, rather than
// reached through calls: Go keeps no register across a call, and each call costs as much as the
// comparison it makes. The first read of a top-level attribute goes to the context's map, later
// ones to st's cache; a string, number or boolean attribute against equals/in of a few values is
// decided without a call.
func matchClauses(cs []clause, st *state, all bool) bool {
	for i := range cs {
		c := &cs[i]
		var r bool // the positive operator's result
		m := uint(c.memo)
		word, bit := m/64, uint64(1)<<(m%64)
		if m < maxMemoClauses && st.memoKnown[word]&bit != 0 {
			r = st.memoTrue[word]&bit != 0
			if (r != c.invert) != all {
				return !all
			}
			continue
		}
		switch {
		case c.op == opInSegment:
			for _, i := range c.segs {
				if st.cp.segments[i].contains(st) {
					r = true
					break
				}
			}
		case c.attr.isKey:
			if st.ctx.Key != "" {
				r = c.op == opExists || c.matchString(st, st.ctx.Key)
			}
		default:
			var v any
			var ok bool
			if slot := uint(c.attr.slot); slot < maxAttrSlots && c.attr.path == nil {
				bit := uint32(1) << slot
				if st.known&bit != 0 {
					v, ok = st.vals[slot], st.present&bit != 0
				} else {
					v, ok = st.ctx.Attributes[c.attr.name]
					st.known |= bit
					if ok {
						st.present |= bit
						st.vals[slot] = v
					}
				}
			} else {
				v, ok = c.attr.lookup(st)
			}
			if !ok || v == nil {
				break
			}
			if c.op == opExists {
				r = true
				break
			}
			switch x := v.(type) {
			case string:
				if c.op == opEquals && c.strSet == nil {
					for _, s := range c.strs {
						if s == x {
							r = true
							break
						}
					}
				} else {
					r = c.matchString(st, x)
				}
			case float64:
				r = c.matchNumber(x)
			case bool:
				r = c.matchBool(x)
			default:
				r = c.matchValue(st, v)
			}
		}
		if m < maxMemoClauses {
			st.memoKnown[word] |= bit
			if r {
				st.memoTrue[word] |= bit
			}
		}
		if (r != c.invert) != all {
			return !all
		}
	}
	return all
}

// matchValue applies the positive operator to a present, non-null attribute value.
func (c *clause) matchValue(st *state, v any) bool {
	switch x := v.(type) {
	case string:
		return c.matchString(st, x)
	case float64:
		return c.matchNumber(x)
	case bool:
		return c.matchBool(x)
	case []any:
		for _, e := range x {
			if c.matchScalar(st, e) {
				return true
			}
		}
		return false
	case []string:
		for _, e := range x {
			if c.matchString(st, e) {
				return true
			}
		}
		return false
	case map[string]any, nil:
		return false
	}
	if f, ok := toNumber(v); ok {
		return c.matchNumber(f)
	}
	return false
}

// matchScalar is matchValue for an element of an array attribute: nested arrays and objects
// never match.
func (c *clause) matchScalar(st *state, v any) bool {
	switch x := v.(type) {
	case string:
		return c.matchString(st, x)
	case float64:
		return c.matchNumber(x)
	case bool:
		return c.matchBool(x)
	case []any, map[string]any, nil:
		return false
	}
	if f, ok := toNumber(v); ok {
		return c.matchNumber(f)
	}
	return false
}

func (c *clause) matchString(st *state, s string) bool {
	switch c.op {
	case opEquals:
		if c.strSet != nil {
			return c.strSet.has(s)
		}
		return slices.Contains(c.strs, s)
	case opContains:
		for _, x := range c.strs {
			if strings.Contains(s, x) {
				return true
			}
		}
	case opStartsWith:
		for _, x := range c.strs {
			if strings.HasPrefix(s, x) {
				return true
			}
		}
	case opEndsWith:
		for _, x := range c.strs {
			if strings.HasSuffix(s, x) {
				return true
			}
		}
	case opMatches:
		for _, re := range c.regexps {
			if re.MatchString(s) {
				return true
			}
		}
	case opSemverEq, opSemverLT, opSemverGT:
		v, ok := st.semver(s)
		if !ok {
			return false
		}
		switch c.op {
		case opSemverLT:
			return v.Compare(c.semvers[0]) < 0
		case opSemverGT:
			return v.Compare(c.semvers[0]) > 0
		}
		for _, w := range c.semvers {
			if v.Compare(w) == 0 {
				return true
			}
		}
	case opBefore, opAfter:
		if t, ok := st.date(s); ok {
			return c.matchDate(t)
		}
	}
	return false
}

func (c *clause) matchNumber(f float64) bool {
	switch c.op {
	case opEquals:
		if c.numSet != nil {
			_, ok := c.numSet[f]
			return ok
		}
		return slices.Contains(c.nums, f)
	case opLT:
		return f < c.bound
	case opLTE:
		return f <= c.bound
	case opGT:
		return f > c.bound
	case opGTE:
		return f >= c.bound
	case opBefore, opAfter:
		if t, ok := datetime.FromMillis(f); ok {
			return c.matchDate(t)
		}
	}
	return false
}

func (c *clause) matchBool(b bool) bool {
	if c.op != opEquals {
		return false
	}
	if b {
		return c.bools&2 != 0
	}
	return c.bools&1 != 0
}

func (c *clause) matchDate(t time.Time) bool {
	if c.op == opBefore {
		return t.Before(c.date)
	}
	return t.After(c.date)
}
