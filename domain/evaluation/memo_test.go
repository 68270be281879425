package evaluation_test

import (
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

// TestSharedClausesKeepTheirMeaning: identical clauses across flags share one memoized result
// per evaluation (clause.memo). Each flag must still get what its own clauses say: the negated
// and not_in forms of a shared test, a test that differs only in its operator, value types that
// look alike ("1" and 1), and in_segment, asked of
// the same context in one EvaluateAll, in both orders.
func TestSharedClausesKeepTheirMeaning(t *testing.T) {
	seg := &domain.Segment{Key: "eu", Match: domain.MatchAll, Clauses: []domain.Clause{cl("country", domain.OpIn, "NL", "BE")}}
	flags := map[string]domain.Clause{
		"a-in":          cl("country", domain.OpIn, "NL", "BE"),
		"b-not-in":      cl("country", domain.OpNotIn, "NL", "BE"),
		"c-negated":     neg(cl("country", domain.OpIn, "NL", "BE")),
		"d-neg-not-in":  neg(cl("country", domain.OpNotIn, "NL", "BE")),
		"e-other-op":    cl("country", domain.OpStartsWith, "NL", "BE"),
		"f-segment":     {Operator: domain.OpInSegment, Values: []any{"eu"}},
		"g-not-segment": neg(domain.Clause{Operator: domain.OpInSegment, Values: []any{"eu"}}),
		"h-string-one":  cl("level", domain.OpEquals, "1"),
		"i-number-one":  cl("level", domain.OpEquals, 1.0),
		"l-lt":          cl("level", domain.OpLT, 2.0),
		"m-lte":         cl("level", domain.OpLTE, 1.0),
		"n-other-attr":  cl("home", domain.OpIn, "NL", "BE"),
	}
	var cfgs []*domain.FlagConfig
	for key, c := range flags {
		f := boolFlag(key)
		f.Targeting.Rules = []domain.Rule{rule("r", "on", c)}
		cfgs = append(cfgs, f)
	}
	compiled := mustCompileClean(t, ruleset(cfgs, seg))
	contexts := []*evaluation.Context{
		{Key: "u", Attributes: map[string]any{"country": "NL", "level": 1.0, "home": "US"}},
		{Key: "u", Attributes: map[string]any{"country": "US", "level": "1", "home": "BE"}},
		{Key: "u", Attributes: map[string]any{"country": "NLD", "level": 0.5}},
		{Key: "u"},
	}
	want := []map[string]bool{
		{"a-in": true, "b-not-in": false, "c-negated": false, "d-neg-not-in": true, "e-other-op": true, "f-segment": true,
			"g-not-segment": false, "h-string-one": false, "i-number-one": true,
			"l-lt": true, "m-lte": true, "n-other-attr": false},
		{"a-in": false, "b-not-in": true, "c-negated": true, "d-neg-not-in": false, "e-other-op": false, "f-segment": false,
			"g-not-segment": true, "h-string-one": true, "i-number-one": false,
			"l-lt": false, "m-lte": false, "n-other-attr": true},
		{"a-in": false, "b-not-in": true, "c-negated": true, "d-neg-not-in": false, "e-other-op": true, "f-segment": false,
			"g-not-segment": true, "h-string-one": false, "i-number-one": false,
			"l-lt": true, "m-lte": true, "n-other-attr": false},
		// A missing attribute makes every positive operator false: not_in and negated ones match.
		{"a-in": false, "b-not-in": true, "c-negated": true, "d-neg-not-in": false, "e-other-op": false, "f-segment": false,
			"g-not-segment": true, "h-string-one": false, "i-number-one": false,
			"l-lt": false, "m-lte": false, "n-other-attr": false},
	}
	for i, ctx := range contexts {
		all := compiled.EvaluateAll(ctx, nil)
		if len(all) != len(flags) {
			t.Fatalf("%d results for %d flags", len(all), len(flags))
		}
		for _, r := range all {
			if got := r.Reason == evaluation.ReasonTargetingMatch; got != want[i][r.FlagKey] {
				t.Errorf("context %d, flag %s: rule matched = %v, want %v (%+v)", i, r.FlagKey, got, want[i][r.FlagKey], r)
			}
			if one := compiled.Evaluate(r.FlagKey, ctx); one != r {
				t.Errorf("context %d, flag %s: Evaluate %+v, EvaluateAll %+v", i, r.FlagKey, one, r)
			}
		}
	}
}
