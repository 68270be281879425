package evaluation

import (
	"slices"

	"github.com/vexil-flags/vexil/domain"
)

var emptyContext Context

// Evaluate evaluates a flag for ctx (nil is an empty context). It never panics and, on the
// common paths, does not allocate; see the package documentation for the semantics.
func (c *Compiled) Evaluate(flagKey string, ctx *Context) Result {
	if c == nil {
		return Result{FlagKey: flagKey, VariationIndex: -1, Reason: ReasonError, ErrorCode: ErrorGeneral,
			ErrorMessage: "no ruleset loaded", RuleIndex: -1, Bucket: -1}
	}
	f := c.flags[flagKey]
	if f == nil {
		return Result{FlagKey: flagKey, VariationIndex: -1, Reason: ReasonError, ErrorCode: ErrorFlagNotFound,
			ErrorMessage: "flag not found", RuleIndex: -1, Bucket: -1}
	}
	if ctx == nil {
		ctx = &emptyContext
	}
	st := state{cp: c, ctx: *ctx}
	return c.eval(f, &st, 0)
}

// Index returns the position of a flag in Flags, for EvaluateIndex; false when there is no such
// flag.
func (c *Compiled) Index(flagKey string) (int, bool) {
	if c == nil {
		return -1, false
	}
	if f := c.flags[flagKey]; f != nil {
		return f.index, true
	}
	return -1, false
}

// EvaluateIndex is Evaluate for the flag at position i of Flags (an i from Index). A caller that
// keeps its own data per flag (the Go SDK: metadata, counters) looks the key up once, in its own
// map, and saves Evaluate's lookup.
func (c *Compiled) EvaluateIndex(i int, ctx *Context) Result {
	if c == nil || i < 0 || i >= len(c.order) {
		return c.Evaluate("", ctx) // no ruleset, or FLAG_NOT_FOUND
	}
	if ctx == nil {
		ctx = &emptyContext
	}
	st := state{cp: c, ctx: *ctx}
	return c.eval(c.order[i], &st, 0)
}

// EvaluateAll evaluates, in key order, every flag that filter accepts (nil accepts all), e.g.
// for bulk OFREP or client-side pre-evaluation, where a client-side key passes
// func(f *domain.FlagConfig) bool { return f.ClientSide }.
func (c *Compiled) EvaluateAll(ctx *Context, filter func(*domain.FlagConfig) bool) []Result {
	if c == nil {
		return nil
	}
	return c.AppendAll(make([]Result, 0, len(c.order)), ctx, filter)
}

// AppendAll is EvaluateAll appending to dst, for callers that reuse a buffer.
func (c *Compiled) AppendAll(dst []Result, ctx *Context, filter func(*domain.FlagConfig) bool) []Result {
	if c == nil {
		return dst
	}
	if ctx == nil {
		ctx = &emptyContext
	}
	st := state{cp: c, ctx: *ctx}
	// Results are written in place: a Result is 160 bytes, and copying each out of eval into
	// dst was a measurable part of evaluating a thousand flags.
	dst = slices.Grow(dst, len(c.order))
	for _, f := range c.order {
		if filter == nil || filter(f.cfg) {
			if len(dst) == cap(dst) {
				dst = slices.Grow(dst, 1)
			}
			dst = dst[:len(dst)+1]
			c.evalInto(f, &st, 0, &dst[len(dst)-1])
		}
	}
	return dst
}

func (c *Compiled) eval(f *flag, st *state, depth int) Result {
	var r Result
	c.evalInto(f, st, depth, &r)
	return r
}

// evalInto evaluates f into *r, overwriting all of it.
func (c *Compiled) evalInto(f *flag, st *state, depth int, r *Result) {
	*r = Result{FlagKey: f.key, VariationIndex: -1, RuleIndex: -1, Bucket: -1, FlagVersion: f.version}
	if !f.on {
		c.serve(f, &f.off, st, ReasonDisabled, r)
		return
	}
	if len(f.prereqs) > 0 && !c.prerequisitesMet(f, st, depth) {
		c.serve(f, &f.off, st, ReasonPrerequisiteFailed, r)
		return
	}
	if f.targets != nil && st.ctx.Key != "" {
		if i, ok := f.targets[st.ctx.Key]; ok {
			c.serve(f, &f.targetServes[i], st, ReasonTargetingMatch, r)
			return
		}
	}
	for i := range f.rules {
		ru := &f.rules[i]
		if ru.err != nil {
			r.RuleIndex, r.RuleID = i, ru.id
			setError(r, ru.err.code, ru.err.message)
			return
		}
		if ru.matches(st) {
			r.RuleIndex, r.RuleID = i, ru.id
			c.serve(f, &ru.serve, st, ReasonTargetingMatch, r)
			return
		}
	}
	if f.exp != nil && f.exp.admits(st) {
		r.Experiment = f.exp.key
		c.serve(f, &f.exp.serve, st, ReasonSplit, r)
		return
	}
	c.serve(f, &f.def, st, ReasonDefault, r)
}

// admits reports whether the context falls inside the experiment's allocation. Contexts without
// a targeting key cannot be experiment units (a user seen twice must get the same variation):
// they keep the flag's default serve.
func (x *experiment) admits(st *state) bool {
	if st.ctx.Key == "" {
		return false
	}
	return bucketOfPrefix(x.allocPrefix, st.ctx.Key, 0, false) < x.allocation
}

func (ru *rule) matches(st *state) bool { return matchClauses(ru.clauses, st, true) }

// prerequisitesMet evaluates f's prerequisites in order; the first one not met stops.
func (c *Compiled) prerequisitesMet(f *flag, st *state, depth int) bool {
	if f.prereqFailed || depth >= MaxPrerequisiteDepth {
		return false
	}
	for _, p := range f.prereqs {
		if p.flag == nil || p.variation < 0 {
			return false
		}
		pr := c.eval(p.flag, st, depth+1)
		switch pr.Reason {
		case ReasonTargetingMatch, ReasonSplit, ReasonDefault:
		default:
			return false
		}
		if pr.VariationIndex != p.variation {
			return false
		}
	}
	return true
}

// serve fills r with what s serves; reason is used for a fixed variation, SPLIT for a split.
func (c *Compiled) serve(f *flag, s *serve, st *state, reason string, r *Result) {
	if s.err != nil {
		setError(r, s.err.code, s.err.message)
		return
	}
	vi := s.variation
	if s.split != nil {
		b, ok := s.split.bucket(st)
		if !ok {
			setError(r, ErrorTargetingKeyMissing, s.split.missing)
			return
		}
		r.Bucket, reason = b, ReasonSplit
		for i, bound := range s.split.bounds {
			if b < bound {
				vi = s.split.vars[i]
				break
			}
		}
	}
	r.Reason = reason
	if vi < 0 { // no variation (empty off variation)
		return
	}
	v := &f.variations[vi]
	if v.err != nil {
		setError(r, v.err.code, v.err.message)
		return
	}
	r.Value, r.Variation, r.VariationIndex = v.value, v.key, vi
}

// bucket hashes the context's bucket-by value; ok is false when the context has none.
func (sp *split) bucket(st *state) (int, bool) {
	if sp.by.isKey {
		if st.ctx.Key == "" {
			return 0, false
		}
		return bucketOfPrefix(sp.prefix, st.ctx.Key, 0, false), true
	}
	v, ok := sp.by.lookup(st)
	if !ok {
		return 0, false
	}
	if s, isStr := v.(string); isStr {
		if s == "" {
			return 0, false
		}
		return bucketOfPrefix(sp.prefix, s, 0, false), true
	}
	n, ok := toNumber(v)
	if !ok {
		return 0, false
	}
	i, ok := bucketNumber(n)
	if !ok {
		return 0, false
	}
	return bucketOfPrefix(sp.prefix, "", i, true), true
}

func setError(r *Result, code, message string) {
	r.Reason, r.ErrorCode, r.ErrorMessage = ReasonError, code, message
	r.Value, r.Variation, r.VariationIndex, r.Bucket = nil, "", -1, -1
}
