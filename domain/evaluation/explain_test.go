package evaluation_test

import (
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
)

func TestClauseMatchesAgreesWithTheEvaluator(t *testing.T) {
	rs := &domain.Ruleset{Project: "p", Environment: "e", Segments: map[string]*domain.Segment{
		"beta": {Project: "p", Key: "beta", Match: "all", Included: []string{"ann"}},
	}}
	ann := &evaluation.Context{Key: "ann", Attributes: map[string]any{"plan": "pro", "age": 41.0}}
	for _, tc := range []struct {
		name   string
		clause domain.Clause
		want   bool
	}{
		{"attribute in", domain.Clause{Attribute: "plan", Operator: domain.OpIn, Values: []any{"pro", "team"}}, true},
		{"attribute not in", domain.Clause{Attribute: "plan", Operator: domain.OpIn, Values: []any{"free"}}, false},
		{"negated", domain.Clause{Attribute: "plan", Operator: domain.OpIn, Values: []any{"free"}, Negate: true}, true},
		{"number", domain.Clause{Attribute: "age", Operator: domain.OpGT, Values: []any{40.0}}, true},
		{"absent attribute", domain.Clause{Attribute: "country", Operator: domain.OpIn, Values: []any{"de"}}, false},
		{"segment", domain.Clause{Operator: domain.OpInSegment, Values: []any{"beta"}}, true},
	} {
		if got := evaluation.ClauseMatches(rs, tc.clause, ann); got != tc.want {
			t.Errorf("%s: ClauseMatches = %v, want %v", tc.name, got, tc.want)
		}
	}
}
