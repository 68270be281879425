package analysis

import (
	"context"
	"fmt"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
)

// PlanRequest sizes an experiment on a flag before it is created (the console's create flow).
type PlanRequest struct {
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	// Goal, if set, decides whether the metric is a proportion (a conversion goal).
	Goal string `json:"goal,omitempty"`
	stats.PlanInput
}

// PlanResponse is the plan with the traffic it assumed.
type PlanResponse struct {
	stats.Plan
	// DailyUsers is the traffic used: the request's, or the distinct users who evaluated the
	// flag in the environment per day over the last 7 days.
	DailyUsers float64 `json:"daily_users"`
	// MeasuredDailyUsers says whether DailyUsers was measured (true) or given.
	MeasuredDailyUsers bool `json:"measured_daily_users"`
}

// Plan answers a PlanRequest. Errors: EInvalid for a missing flag or environment, an unknown
// goal, or PlanInput's (stats.PlanExperiment).
func (a *Analyzer) Plan(ctx context.Context, project string, in PlanRequest) (*PlanResponse, error) {
	if !domain.ValidKey(in.Flag) {
		return nil, domain.Invalid("flag", "a flag key is required")
	}
	if !domain.ValidKey(in.Environment) {
		return nil, domain.Invalid("environment", "an environment key is required")
	}
	if in.Goal != "" {
		goal, _, err := a.queries.Goal(ctx, project, in.Goal)
		if err != nil {
			if de, ok := err.(*domain.Error); ok && de.Code == domain.ENotFound {
				return nil, domain.Invalid("goal", "unknown goal %q", in.Goal)
			}
			return nil, err
		}
		in.Proportion = goal.Kind == domain.GoalConversion
	}
	out := &PlanResponse{DailyUsers: in.DailyUsers}
	if in.DailyUsers == 0 {
		var users int64
		if err := a.pool.QueryRow(ctx, `SELECT count(DISTINCT user_key) FROM evaluation_events
			WHERE project = $1 AND environment = $2 AND flag = $3 AND user_key IS NOT NULL AND occurred_at >= now() - interval '7 days'`,
			project, in.Environment, in.Flag).Scan(&users); err != nil {
			return nil, fmt.Errorf("experiments: traffic of flag %s: %w", in.Flag, err)
		}
		in.DailyUsers = float64(users) / 7
		out.DailyUsers, out.MeasuredDailyUsers = in.DailyUsers, true
	}
	plan, err := stats.PlanExperiment(in.PlanInput)
	if err != nil {
		return nil, err
	}
	out.Plan = plan
	return out, nil
}
