package analysis

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// QuantilesWithUsers runs the quantile statement of an experiment with the given unit counts
// per variation in place of those of the statistics statement (to exercise the recount).
func QuantilesWithUsers(ctx context.Context, a *Analyzer, project, key string, users map[string]int64) (map[string]map[string]*QuantileFigures, error) {
	exp, _, err := a.queries.Experiment(ctx, project, key)
	if err != nil {
		return nil, err
	}
	goals := map[string]*domain.Goal{}
	for _, g := range exp.Goals() {
		if goals[g], _, err = a.queries.Goal(ctx, project, g); err != nil {
			return nil, err
		}
	}
	return a.quantiles(ctx, exp, goals, a.window(exp), users)
}
