package evaluation_test

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/datetime"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/domain/semver"
)

// oracle is a deliberately naive evaluator written straight from the package documentation: no
// compilation, values compared one by one, semver.Parse and datetime.Parse instead of the
// memoized parsing, recursion with explicit stacks instead of compile-time graph checks. The
// structured fuzz test compares it with the compiled evaluator. It ignores the evaluation-cost
// limits, so rulesets that hit them are not compared.
type oracle struct{ rs *domain.Ruleset }

func (o *oracle) evaluate(key string, ctx *evaluation.Context) evaluation.Result {
	return o.flag(key, ctx, nil)
}

func (o *oracle) flag(key string, ctx *evaluation.Context, stack []string) evaluation.Result {
	r := evaluation.Result{FlagKey: key, VariationIndex: -1, RuleIndex: -1, Bucket: -1}
	f := o.rs.Flags[key]
	if f == nil {
		r.Reason, r.ErrorCode = evaluation.ReasonError, evaluation.ErrorFlagNotFound
		return r
	}
	r.FlagVersion = f.Version
	t := &f.Targeting
	if !t.On {
		return o.variation(f, t.OffVariation, true, evaluation.ReasonDisabled, r)
	}
	for _, p := range t.Prerequisites {
		if !o.prerequisiteMet(p, ctx, append(stack, key)) {
			return o.variation(f, t.OffVariation, true, evaluation.ReasonPrerequisiteFailed, r)
		}
	}
	if ctx.Key != "" {
		for _, tg := range t.Targets {
			if slices.Contains(tg.Values, ctx.Key) {
				return o.variation(f, tg.Variation, false, evaluation.ReasonTargetingMatch, r)
			}
		}
	}
	for i, ru := range t.Rules {
		if !o.ruleValid(ru) {
			r.RuleIndex, r.RuleID = i, ru.ID
			return parseError(r)
		}
		matched := true
		for _, c := range ru.Clauses {
			if !o.clause(c, ctx) {
				matched = false
				break
			}
		}
		if matched {
			r.RuleIndex, r.RuleID = i, ru.ID
			return o.serve(f, key, ru.Serve, ctx, evaluation.ReasonTargetingMatch, r)
		}
	}
	return o.serve(f, key, t.Default, ctx, evaluation.ReasonDefault, r)
}

func parseError(r evaluation.Result) evaluation.Result {
	r.Reason, r.ErrorCode = evaluation.ReasonError, evaluation.ErrorParse
	return r
}

func (o *oracle) prerequisiteMet(p domain.Prerequisite, ctx *evaluation.Context, stack []string) bool {
	if len(stack) > evaluation.MaxPrerequisiteDepth || slices.Contains(stack, p.Flag) || o.rs.Flags[p.Flag] == nil {
		return false
	}
	want := variationIndex(o.rs.Flags[p.Flag], p.Variation)
	res := o.flag(p.Flag, ctx, stack)
	switch res.Reason {
	case evaluation.ReasonTargetingMatch, evaluation.ReasonSplit, evaluation.ReasonDefault:
		return want >= 0 && res.VariationIndex == want
	}
	return false
}

func variationIndex(f *domain.FlagConfig, key string) int {
	return slices.IndexFunc(f.Variations, func(v domain.Variation) bool { return v.Key == key })
}

func (o *oracle) variation(f *domain.FlagConfig, key string, optional bool, reason string, r evaluation.Result) evaluation.Result {
	if key == "" && optional {
		r.Reason = reason
		return r
	}
	i := variationIndex(f, key)
	if i < 0 {
		return parseError(r)
	}
	if !domain.ValidateValueType(f.Type, f.Variations[i].Value) {
		r.Reason, r.ErrorCode, r.Bucket = evaluation.ReasonError, evaluation.ErrorTypeMismatch, -1
		return r
	}
	r.Reason, r.Variation, r.VariationIndex, r.Value = reason, key, i, f.Variations[i].Value
	return r
}

func (o *oracle) serve(f *domain.FlagConfig, key string, s domain.Serve, ctx *evaluation.Context, reason string, r evaluation.Result) evaluation.Result {
	if (s.Split == nil) == (s.Variation == "") {
		return parseError(r)
	}
	if s.Split == nil {
		return o.variation(f, s.Variation, false, reason, r)
	}
	total := 0
	for _, wv := range s.Split.Variations {
		if variationIndex(f, wv.Variation) < 0 || wv.Weight < 0 || wv.Weight > evaluation.BucketCount {
			return parseError(r)
		}
		total += wv.Weight
	}
	if len(s.Split.Variations) == 0 || total != evaluation.BucketCount {
		return parseError(r)
	}
	var value string
	if s.Split.BucketBy == "" || s.Split.BucketBy == "key" {
		value = ctx.Key
	} else if v, ok := attribute(ctx, s.Split.BucketBy); ok {
		switch x := v.(type) {
		case string:
			value = x
		default:
			if n, ok := number(v); ok && n == math.Trunc(n) && math.Abs(n) <= 1<<53 {
				value = strconv.FormatInt(int64(n), 10)
			}
		}
	}
	if value == "" {
		r.Reason, r.ErrorCode = evaluation.ReasonError, evaluation.ErrorTargetingKeyMissing
		return r
	}
	seed := s.Split.Seed
	if seed == "" {
		seed = key
	}
	b := evaluation.Bucket(seed, f.Salt, value)
	cum := 0
	for _, wv := range s.Split.Variations {
		cum += wv.Weight
		if b < cum {
			r = o.variation(f, wv.Variation, false, evaluation.ReasonSplit, r)
			if r.Reason == evaluation.ReasonSplit {
				r.Bucket = b
			}
			return r
		}
	}
	panic("unreachable")
}

// attribute resolves a clause attribute, "key" aside, as the package documentation says.
func attribute(ctx *evaluation.Context, name string) (any, bool) {
	var path []string
	if strings.ContainsAny(name, "/~") {
		for _, p := range strings.Split(strings.TrimPrefix(name, "/"), "/") {
			path = append(path, strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~"))
		}
	} else {
		path = []string{name}
	}
	var cur any = ctx.Attributes
	for i, p := range path {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[p]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			n, err := strconv.Atoi(p)
			if i == 0 || err != nil || n < 0 || n >= len(x) || strconv.Itoa(n) != p {
				return nil, false
			}
			cur = x[n]
		default:
			return nil, false
		}
	}
	return cur, true
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

func (o *oracle) clause(c domain.Clause, ctx *evaluation.Context) bool {
	var r bool
	if c.Operator == domain.OpInSegment {
		for _, v := range c.Values {
			if s := o.rs.Segments[v.(string)]; s != nil && !s.Archived && o.inSegment(s, ctx) {
				r = true
			}
		}
	} else {
		var v any
		var ok bool
		if c.Attribute == "key" || c.Attribute == "/key" {
			v, ok = ctx.Key, ctx.Key != ""
		} else {
			v, ok = attribute(ctx, c.Attribute)
		}
		switch {
		case c.Operator == domain.OpExists:
			r = ok && v != nil
		case !ok || v == nil:
		default:
			if arr, isArr := v.([]any); isArr {
				for _, e := range arr {
					r = r || o.matchOne(c, e)
				}
			} else {
				r = o.matchOne(c, v)
			}
		}
		if c.Operator == domain.OpNotEquals || c.Operator == domain.OpNotIn {
			r = !r
		}
	}
	return r != c.Negate
}

func (o *oracle) matchOne(c domain.Clause, v any) bool {
	s, isStr := v.(string)
	n, isNum := number(v)
	for _, want := range c.Values {
		ws, _ := want.(string)
		wn, wIsNum := want.(float64)
		var m bool
		switch c.Operator {
		case domain.OpEquals, domain.OpNotEquals, domain.OpIn, domain.OpNotIn:
			switch w := want.(type) {
			case string:
				m = isStr && s == w
			case float64:
				m = isNum && n == w
			case bool:
				b, ok := v.(bool)
				m = ok && b == w
			}
		case domain.OpContains:
			m = isStr && strings.Contains(s, ws)
		case domain.OpStartsWith:
			m = isStr && strings.HasPrefix(s, ws)
		case domain.OpEndsWith:
			m = isStr && strings.HasSuffix(s, ws)
		case domain.OpMatches:
			m = isStr && regexp.MustCompile(ws).MatchString(s)
		case domain.OpLT:
			m = isNum && wIsNum && n < wn
		case domain.OpLTE:
			m = isNum && wIsNum && n <= wn
		case domain.OpGT:
			m = isNum && wIsNum && n > wn
		case domain.OpGTE:
			m = isNum && wIsNum && n >= wn
		case domain.OpSemverEq, domain.OpSemverLT, domain.OpSemverGT:
			a, err1 := semver.Parse(s)
			b, err2 := semver.Parse(ws)
			if isStr && err1 == nil && err2 == nil {
				cmp := a.Compare(b)
				m = (c.Operator == domain.OpSemverEq && cmp == 0) || (c.Operator == domain.OpSemverLT && cmp < 0) ||
					(c.Operator == domain.OpSemverGT && cmp > 0)
			}
		case domain.OpBefore, domain.OpAfter:
			if !isStr && !isNum {
				break
			}
			a, ok1 := datetime.Parse(v)
			if isNum {
				a, ok1 = datetime.Parse(n)
			}
			b, ok2 := datetime.Parse(want)
			m = ok1 && ok2 && ((c.Operator == domain.OpBefore && a.Before(b)) || (c.Operator == domain.OpAfter && a.After(b)))
		}
		if m {
			return true
		}
	}
	return false
}

func (o *oracle) inSegment(s *domain.Segment, ctx *evaluation.Context) bool {
	if ctx.Key != "" {
		if slices.Contains(s.Excluded, ctx.Key) {
			return false
		}
		if slices.Contains(s.Included, ctx.Key) {
			return true
		}
	}
	if len(s.Clauses) == 0 {
		return false
	}
	for _, c := range s.Clauses {
		m := o.clause(c, ctx)
		if s.Match == domain.MatchAny && m {
			return true
		}
		if s.Match != domain.MatchAny && !m {
			return false
		}
	}
	return s.Match != domain.MatchAny
}

func clauseValid(c domain.Clause) bool {
	if c.Operator != domain.OpInSegment {
		return domain.ValidateClause(c, nil) == nil
	}
	if len(c.Values) == 0 {
		return false
	}
	for _, v := range c.Values {
		if _, ok := v.(string); !ok {
			return false
		}
	}
	return true
}

func (o *oracle) ruleValid(ru domain.Rule) bool {
	for _, c := range ru.Clauses {
		if !clauseValid(c) || !o.segmentsValid(c, nil) {
			return false
		}
	}
	return true
}

// segmentsValid reports whether the live segments an in_segment clause names are valid: a valid
// match mode, valid clauses, and no cycle through the segments they name in turn.
func (o *oracle) segmentsValid(c domain.Clause, stack []string) bool {
	if c.Operator != domain.OpInSegment {
		return true
	}
	for _, v := range c.Values {
		key := v.(string)
		s := o.rs.Segments[key]
		if s == nil || s.Archived {
			continue
		}
		if slices.Contains(stack, key) || (s.Match != "" && s.Match != domain.MatchAll && s.Match != domain.MatchAny) {
			return false
		}
		for _, sc := range s.Clauses {
			if !clauseValid(sc) || !o.segmentsValid(sc, append(stack, key)) {
				return false
			}
		}
	}
	return true
}
