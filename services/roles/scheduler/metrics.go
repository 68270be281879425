package scheduler

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
)

// MetricsQuery asks for the data an auto-ops rule needs: per variation of Flag in Environment,
// the users first exposed since Since and what they did of Goal after their first exposure.
type MetricsQuery struct {
	Project     string
	Environment string
	Flag        string
	Goal        string
	GoalKind    domain.GoalKind
	ValueCap    float64 // caps each user's total of a value goal; 0: no cap
	Variations  []string
	Since       time.Time
}

// ArmCounts are the sufficient statistics of one variation: users exposed (the experiment unit),
// users who reached the goal at least once, goal events, and the sum and sum of squares of each
// user's goal value total (capped).
type ArmCounts struct {
	Exposed         int64   `json:"exposed"`
	Converted       int64   `json:"converted"`
	Events          int64   `json:"events"`
	ValueSum        float64 `json:"value_sum"`
	ValueSumSquares float64 `json:"value_sum_squares"`
}

// MetricsSource measures auto-ops rules. Arms returns the counts of each variation asked for (a
// variation nobody was exposed to may be missing: zero counts). Errors are retried next pass.
type MetricsSource interface {
	Arms(ctx context.Context, q MetricsQuery) (map[string]ArmCounts, error)
}

// Querier is what SQLMetrics reads through: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// SQLMetrics reads the telemetry experiment-unit tables (migration 0010). A user's exposures
// are attributed to the flag (subject_kind 'flag') or, inside a running experiment's allocation,
// to that experiment (subject_kind 'experiment'); both served the flag's variations, so a rule
// guarding the flag measures both: a guard blind to the experiment's traffic would let a bad
// variation run there unchecked. The unit is the user: first exposure decides the variation;
// users seen in two variations of a subject, or under two subjects (the flag and an experiment,
// or two experiments, where goal attribution would be ambiguous), are left out, as are users
// first exposed before Since; goal counts after that exposure come from experiment_user_goals
// of the same subject.
type SQLMetrics struct{ DB Querier }

// Arms implements MetricsSource.
func (m SQLMetrics) Arms(ctx context.Context, q MetricsQuery) (map[string]ArmCounts, error) {
	rows, err := m.DB.Query(ctx, `
		WITH subjects AS (
		  SELECT 'flag'::text AS kind, $3::text AS subject
		  UNION ALL
		  SELECT 'experiment', key FROM rm_experiments WHERE project = $1 AND environment = $2 AND flag = $3
		), units AS (
		  SELECT e.subject_kind, e.subject, e.user_key, e.variation, e.multiple_variations,
		         count(*) OVER w AS subjects_seen, min(e.first_exposed_at) OVER w AS first_seen
		  FROM experiment_exposures e
		  JOIN subjects s ON s.kind = e.subject_kind AND s.subject = e.subject
		  WHERE e.project = $1 AND e.environment = $2
		  WINDOW w AS (PARTITION BY e.user_key)
		)
		SELECT u.variation,
		       count(*)                                           AS exposed,
		       count(*) FILTER (WHERE coalesce(g.conversions, 0) > 0) AS converted,
		       coalesce(sum(g.conversions), 0)::bigint             AS events,
		       coalesce(sum(v.total), 0)                           AS value_sum,
		       coalesce(sum(v.total * v.total), 0)                 AS value_sum_squares
		FROM units u
		LEFT JOIN experiment_user_goals g
		  ON g.project = $1 AND g.environment = $2 AND g.subject_kind = u.subject_kind
		 AND g.subject = u.subject AND g.user_key = u.user_key AND g.goal = $4
		CROSS JOIN LATERAL (SELECT CASE WHEN $6::double precision > 0 THEN least(coalesce(g.value_sum, 0), $6::double precision)
		                                ELSE coalesce(g.value_sum, 0) END AS total) v
		WHERE u.subjects_seen = 1 AND NOT u.multiple_variations AND u.variation = ANY($5) AND u.first_seen >= $7
		GROUP BY u.variation`,
		q.Project, q.Environment, q.Flag, q.Goal, q.Variations, q.ValueCap, q.Since)
	if err != nil {
		return nil, fmt.Errorf("delivery: auto-ops metrics: %w", err)
	}
	defer rows.Close()
	out := map[string]ArmCounts{}
	for rows.Next() {
		var v string
		var a ArmCounts
		if err := rows.Scan(&v, &a.Exposed, &a.Converted, &a.Events, &a.ValueSum, &a.ValueSumSquares); err != nil {
			return nil, fmt.Errorf("delivery: auto-ops metrics: %w", err)
		}
		out[v] = a
	}
	return out, rows.Err()
}

// Measure turns counts into what an auto-ops rule decides on: each arm's observed rate of the goal
// per exposed user (converted users, events, or value per exposed user, by the goal's kind), and
// the statistical guard's probability, from the experiment statistics (domain/stats):
//
//   - With a control: the probability that the treatment is worse than the control, "worse" in
//     the rule's sense (higher for a "gt" rule, lower for "lt"): the chance to beat the control
//     of the Beta-Binomial model for conversions, the Gamma-Poisson model for counts, the normal
//     model of the mean per user for values, with the default priors of the experiment analysis.
//     The threshold applies to the observed difference (treatment − control).
//   - Without a control: the posterior probability that the treatment's rate really is beyond the
//     threshold: the tail of Beta(1 + converted, 1 + exposed − converted), of Gamma(1 + events,
//     0.001 + exposed), or of the normal of the mean per user.
//
// Inputs the statistics refuse (counts out of range) give a NaN probability, on which a rule never
// fires.
func Measure(rule *domain.AutoOpsRule, kind domain.GoalKind, arms map[string]ArmCounts) domain.AutoOpsMetrics {
	t := arms[rule.Metric.Variation]
	m := domain.AutoOpsMetrics{Treatment: domain.AutoOpsArm{Exposed: t.Exposed, Rate: observedRate(kind, t)}}
	higherIsWorse := rule.Comparison != domain.AutoOpsLessThan
	if rule.Metric.Control != "" {
		c := arms[rule.Metric.Control]
		m.Control = domain.AutoOpsArm{Exposed: c.Exposed, Rate: observedRate(kind, c)}
		above, err := chanceAbove(kind, t, c)
		switch {
		case err != nil:
			m.Probability = math.NaN()
		case higherIsWorse:
			m.Probability = above
		default:
			m.Probability = 1 - above
		}
		return m
	}
	above := tailAbove(kind, t, rule.Threshold)
	if higherIsWorse {
		m.Probability = above
	} else {
		m.Probability = 1 - above
	}
	return m
}

func observedRate(kind domain.GoalKind, a ArmCounts) float64 {
	if a.Exposed <= 0 {
		return 0
	}
	n := float64(a.Exposed)
	switch kind {
	case domain.GoalCount:
		return float64(a.Events) / n
	case domain.GoalValue:
		return a.ValueSum / n
	default:
		return float64(a.Converted) / n
	}
}

// chanceAbove is the posterior probability that the treatment's rate is above the control's.
func chanceAbove(kind domain.GoalKind, t, c ArmCounts) (float64, error) {
	switch kind {
	case domain.GoalCount:
		res, err := stats.AnalyzeCount([]stats.CountArm{{Variation: "treatment", Users: t.Exposed, Events: t.Events},
			{Variation: "control", Users: c.Exposed, Events: c.Events}}, 1, stats.GammaPrior{}, domain.GoalIncrease)
		if err != nil {
			return 0, err
		}
		return res.Variations[0].ChanceToBeatControl, nil
	case domain.GoalValue:
		res, err := stats.AnalyzeValue([]stats.ValueArm{{Variation: "treatment", Users: t.Exposed, Sum: t.ValueSum, SumSquares: t.ValueSumSquares},
			{Variation: "control", Users: c.Exposed, Sum: c.ValueSum, SumSquares: c.ValueSumSquares}}, 1,
			stats.ValueOptions{Direction: domain.GoalIncrease})
		if err != nil {
			return 0, err
		}
		return res.Variations[0].ChanceToBeatControl, nil
	default:
		res, err := stats.AnalyzeConversion([]stats.ConversionArm{{Variation: "treatment", Users: t.Exposed, Conversions: t.Converted},
			{Variation: "control", Users: c.Exposed, Conversions: c.Converted}}, 1, stats.BetaPrior{}, domain.GoalIncrease)
		if err != nil {
			return 0, err
		}
		return res.Variations[0].ChanceToBeatControl, nil
	}
}

// tailAbove is the posterior probability that an arm's rate is above threshold, under the
// experiment analysis's default priors (Beta(1, 1), Gamma(1, 0.001)); NaN for counts out of range.
func tailAbove(kind domain.GoalKind, a ArmCounts, threshold float64) float64 {
	if a.Exposed < 0 || a.Converted < 0 || a.Events < 0 || a.Converted > a.Exposed {
		return math.NaN()
	}
	n := float64(a.Exposed)
	switch kind {
	case domain.GoalCount:
		g := stats.DefaultGammaPrior
		return distuv.Gamma{Alpha: g.Shape + float64(a.Events), Beta: g.Rate + n}.Survival(threshold)
	case domain.GoalValue:
		if a.Exposed < 2 {
			return 0.5 // the spread of a single user's value is unknown
		}
		mean := a.ValueSum / n
		sd := math.Sqrt(math.Max((a.ValueSumSquares-a.ValueSum*a.ValueSum/n)/(n-1), 0) / n)
		if sd == 0 {
			if mean > threshold {
				return 1
			}
			return 0
		}
		return distuv.Normal{Mu: mean, Sigma: sd}.Survival(threshold)
	default:
		b := stats.DefaultBetaPrior
		x := float64(a.Converted)
		return distuv.Beta{Alpha: b.Alpha + x, Beta: b.Beta + n - x}.Survival(threshold)
	}
}
