package evaluation

import "github.com/vexil-flags/vexil/domain"

// ClauseMatches evaluates one clause of an environment's ruleset against a context with the
// serving evaluator itself (a probe flag whose only rule is that clause, over the same segments),
// so an explanation of which clauses matched can never disagree with what the evaluator serves.
// The management API's explain and the console's evaluate-as page both use it.
func ClauseMatches(rs *domain.Ruleset, cl domain.Clause, ctx *Context) bool {
	probe := &domain.Ruleset{Project: rs.Project, Environment: rs.Environment, Segments: rs.Segments, Flags: map[string]*domain.FlagConfig{
		"clause": {Key: "clause", Type: domain.FlagBoolean, Salt: "explain",
			Variations: []domain.Variation{{Key: "yes", Value: true}, {Key: "no", Value: false}},
			Targeting: domain.Targeting{On: true, OffVariation: "no", Default: domain.Serve{Variation: "no"},
				Rules: []domain.Rule{{ID: "c", Clauses: []domain.Clause{cl}, Serve: domain.Serve{Variation: "yes"}}}}}}}
	c, err := Compile(probe)
	if err != nil {
		return false
	}
	return c.Evaluate("clause", ctx).Variation == "yes"
}
