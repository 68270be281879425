package evaluation_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// byteSource turns fuzz bytes into choices; once the bytes run out every choice is 0.
type byteSource struct{ data []byte }

func (s *byteSource) n(max int) int {
	if len(s.data) == 0 || max <= 1 {
		return 0
	}
	b := s.data[0]
	s.data = s.data[1:]
	return int(b) % max
}

func pick[T any](s *byteSource, xs []T) T { return xs[s.n(len(xs))] }

var (
	fuzzAttrs  = []string{"a", "key", "b", "n", "tags", "obj/x", "arr/0", "a~1b", "missing"}
	fuzzValues = []any{"a", "b", "", "1", "2.0.0", "v1.2.3-rc.1", "2024-01-01T00:00:00Z", "^a", "(", "x.*y",
		0.0, 1.0, -1.0, 1.5, 1704067200000.0, 9007199254740993.0, true, false, nil, []any{"a"}}
	fuzzSegKeys  = []string{"s0", "s1", "s2", "s3", "nope"}
	fuzzFlagKeys = []string{"f0", "f1", "f2", "f3", "f4"}
	fuzzVarKeys  = []string{"v0", "v1", "v2", "zz"}
	// Values that suit each kind of operator, so that most generated clauses are valid.
	fuzzTyped = map[domain.Operator][]any{
		domain.OpEquals: {"a", 1.0, true, "1"}, domain.OpIn: {"a", "b", 1.0, -1.0, false, "1"},
		domain.OpContains: {"a", "", "b"}, domain.OpMatches: {"^a", "x.*y", "b$"},
		domain.OpLT: {0.0, 1.0, 1.5, -1.0}, domain.OpSemverEq: {"2.0.0", "1.2.3-rc.1", "1"},
		domain.OpBefore: {"2024-01-01T00:00:00Z", 1704067200000.0, "2023-12-31T23:00:00-02:00"},
	}
	fuzzOpKind = map[domain.Operator]domain.Operator{domain.OpNotEquals: domain.OpEquals, domain.OpNotIn: domain.OpIn,
		domain.OpStartsWith: domain.OpContains, domain.OpEndsWith: domain.OpContains, domain.OpLTE: domain.OpLT,
		domain.OpGT: domain.OpLT, domain.OpGTE: domain.OpLT, domain.OpSemverLT: domain.OpSemverEq,
		domain.OpSemverGT: domain.OpSemverEq, domain.OpAfter: domain.OpBefore}
)

func (s *byteSource) clause() domain.Clause {
	c := domain.Clause{Attribute: pick(s, fuzzAttrs), Operator: pick(s, domain.Operators), Negate: s.n(4) == 1}
	if s.n(32) == 1 {
		c.Operator = "unknown_op"
	}
	n := 1 + s.n(3)
	switch {
	case c.Operator == domain.OpExists:
		n = s.n(8) / 7
	case c.Operator == domain.OpEquals || c.Operator == domain.OpNotEquals:
		n = 1 + s.n(10)/9
	case s.n(16) == 1:
		n = 0
	}
	kind := c.Operator
	if k, ok := fuzzOpKind[kind]; ok {
		kind = k
	}
	for i := 0; i < n; i++ {
		switch {
		case c.Operator == domain.OpInSegment:
			c.Values = append(c.Values, pick(s, fuzzSegKeys))
		case s.n(8) == 1 || fuzzTyped[kind] == nil:
			c.Values = append(c.Values, pick(s, fuzzValues))
		default:
			c.Values = append(c.Values, pick(s, fuzzTyped[kind]))
		}
	}
	return c
}

// variation picks one of the first n variation keys, rarely an unknown one.
func (s *byteSource) variation(n int) string {
	if s.n(16) == 1 {
		return "zz"
	}
	return fuzzVarKeys[s.n(n)]
}

func (s *byteSource) serve(vars int) domain.Serve {
	switch s.n(16) {
	case 1:
		return domain.Serve{}
	case 2:
		return domain.Serve{Variation: "v0", Split: &domain.Split{}}
	}
	if s.n(2) == 0 {
		return domain.Serve{Variation: s.variation(vars)}
	}
	sp := &domain.Split{BucketBy: pick(s, append([]string{""}, fuzzAttrs...)), Seed: pick(s, []string{"", "seed"})}
	left := evaluation.BucketCount
	for i, n := 0, 1+s.n(3); i < n; i++ {
		w := left
		if i < n-1 {
			w = s.n(256) * 400
			if w > left {
				w = left
			}
		}
		if s.n(20) == 1 {
			w += s.n(3) - 1 // occasionally off by one
		}
		left -= w
		sp.Variations = append(sp.Variations, domain.WeightedVariation{Variation: s.variation(vars), Weight: w})
	}
	return domain.Serve{Split: sp}
}

func (s *byteSource) ruleset() *domain.Ruleset {
	rs := &domain.Ruleset{Flags: map[string]*domain.FlagConfig{}, Segments: map[string]*domain.Segment{}}
	for i, n := 0, s.n(5); i < n; i++ {
		sg := &domain.Segment{Key: fuzzSegKeys[i], Match: pick(s, []string{"all", "any", "", "bad"}), Archived: s.n(8) == 1}
		for j, m := 0, s.n(3); j < m; j++ {
			sg.Included = append(sg.Included, pick(s, []string{"u1", "u2", ""}))
		}
		for j, m := 0, s.n(2); j < m; j++ {
			sg.Excluded = append(sg.Excluded, pick(s, []string{"u1", "u2"}))
		}
		for j, m := 0, s.n(4); j < m; j++ {
			sg.Clauses = append(sg.Clauses, s.clause())
		}
		rs.Segments[sg.Key] = sg
	}
	for i, n := 0, 1+s.n(5); i < n; i++ {
		types := []domain.FlagType{domain.FlagString, domain.FlagBoolean, domain.FlagJSON}
		values := []any{"x", true, map[string]any{"k": 1.0}}
		ti := s.n(3)
		f := &domain.FlagConfig{Key: fuzzFlagKeys[i], Type: types[ti], Salt: pick(s, []string{"salt", ""})}
		vars := 2 + s.n(2)
		for j := 0; j < vars; j++ {
			v := values[ti]
			if s.n(16) == 1 {
				v = pick(s, values)
			}
			f.Variations = append(f.Variations, domain.Variation{Key: fuzzVarKeys[j], Value: v})
		}
		t := &f.Targeting
		t.On = s.n(5) != 1
		t.OffVariation = s.variation(vars)
		if s.n(8) == 1 {
			t.OffVariation = ""
		}
		for j, m := 0, s.n(4)/2; j < m; j++ {
			t.Prerequisites = append(t.Prerequisites, domain.Prerequisite{Flag: pick(s, fuzzFlagKeys), Variation: s.variation(2)})
		}
		for j, m := 0, s.n(3); j < m; j++ {
			t.Targets = append(t.Targets, domain.Target{Variation: s.variation(vars), Values: []string{pick(s, []string{"u1", "u2", ""})}})
		}
		for j, m := 0, s.n(5); j < m; j++ {
			r := domain.Rule{ID: fmt.Sprint("r", j), Serve: s.serve(vars)}
			for k, o := 0, 1+s.n(3); k < o; k++ {
				r.Clauses = append(r.Clauses, s.clause())
			}
			t.Rules = append(t.Rules, r)
		}
		t.Default = s.serve(vars)
		rs.Flags[f.Key] = f
	}
	return rs
}

func (s *byteSource) context() *evaluation.Context {
	ctx := &evaluation.Context{Key: pick(s, []string{"", "u1", "u2", "user-123"}), Attributes: map[string]any{}}
	for i, n := 0, s.n(6); i < n; i++ {
		var v any = pick(s, fuzzValues)
		switch s.n(6) {
		case 0:
			v = []any{pick(s, fuzzValues), pick(s, fuzzValues)}
		case 1:
			v = map[string]any{"x": pick(s, fuzzValues)}
		case 2:
			v = int64(s.n(256) - 128)
		}
		ctx.Attributes[pick(s, fuzzAttrs[1:5])] = v
	}
	if s.n(4) == 0 {
		ctx.Attributes["arr"] = []any{pick(s, fuzzValues)}
	}
	return ctx
}

// FuzzEvaluateStructured builds rulesets from the fuzz bytes rather than parsing JSON, so the
// fuzzer spends its time in compilation and evaluation: every operator with well- and
// ill-typed values, segments and prerequisites that nest, dangle and form cycles, and splits
// whose weights may not add up.
func FuzzEvaluateStructured(f *testing.F) {
	for _, seed := range []string{"", "\x04\x03\x01\x02\x05\x06", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1",
		"\x03\x00\x01\x03\x12\x00\x02\x01\x04\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13"} {
		f.Add([]byte(seed), []byte("\x01\x02\x03\x04\x05"))
	}
	f.Fuzz(func(t *testing.T, rsBytes, ctxBytes []byte) {
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("evaluation of %x with %x takes over 10s", rsBytes, ctxBytes)) })
		defer watchdog.Stop()
		rs := (&byteSource{rsBytes}).ruleset()
		c, err := evaluation.Compile(rs)
		if err != nil {
			t.Fatal(err)
		}
		ctx := (&byteSource{ctxBytes}).context()
		checkEvaluations(t, c, ctx)
		if strings.Contains(fmt.Sprint(c.Problems()), "too deeply") {
			return // the oracle does not know the cost limits
		}
		o := &oracle{rs}
		for _, key := range append(c.Flags(), "nope") {
			got, want := c.Evaluate(key, ctx), o.evaluate(key, ctx)
			got.Value, got.ErrorMessage, want.Value = nil, "", nil
			if got != want {
				t.Fatalf("flag %s: compiled %+v, oracle %+v", key, got, want)
			}
		}
	})
}
