package analysis

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
)

// QuantileFigures is a value goal's q quantile of the per-unit values in one variation
// (analysis.goals[].quantile), with its distribution-free interval and, against the control,
// the test of the relative difference of the quantiles.
type QuantileFigures struct {
	// Quantile is q (0.5: the median, 0.9: p90).
	Quantile float64 `json:"quantile"`
	// Users is the number of units the order statistics are taken over (units without a goal
	// event count as 0).
	Users int64 `json:"users"`
	// Estimate is the order statistic at rank ⌈n·q⌉ (PostgreSQL's percentile_disc).
	Estimate float64 `json:"estimate"`
	// CI is [X_(lo), X_(hi)], a 1 − alpha interval whatever the values' distribution
	// (stats.QuantileRanks); Ranks are lo and hi.
	CI    [2]float64 `json:"ci"`
	Ranks [2]int64   `json:"ranks"`
	// Alpha is the level of CI and of the test.
	Alpha float64 `json:"alpha"`
	// Frequentist is the test of (variation − control)/|control| on the quantiles, their
	// standard errors implied by the intervals (stats.CompareQuantiles); nil for the control.
	Frequentist *stats.FrequentistResult `json:"frequentist,omitempty"`
	// ChanceToBeatControl, under the Bayesian engine, is P(relative difference in the goal's
	// good direction) for that effect under a flat prior (0.5 for the control, 0 under the
	// frequentist engine).
	ChanceToBeatControl float64 `json:"chance_to_beat_control"`
}

// quantileRequest is one value goal's quantile setting.
type quantileRequest struct {
	goal             string
	q                float64
	estimate, lo, hi map[string]int64 // ranks per variation
}

// sqlQuantiles selects order statistics of a value goal's per-unit totals per variation: the
// units and goal events are counted as in sqlStatistics (after the first exposure, inside the
// window and the goal's conversion window, the total capped). Units without a goal event have a
// total of 0 without a row: in the order of all n units they sit between the negative totals and
// the others, so a unit with a row at position k among the m rows of its variation has rank k
// when its total is negative and k + (n − m) otherwise; a rank asked for that no row has is one
// of those zeros. The ranks are asked for among the units the caller counted; each row carries
// the n the statement counted, so a difference (events stored in between) is seen and retried.
// $1 project, $2 environment, $3 flag, $4 experiment, $5 start, $6 stop, $7 goal[], $8 cap[]
// (Infinity: none), $9 conversion window in seconds[] (0: none), $10 goal[], $11 variation[],
// $12 rank[] (the order statistics wanted). Rows: (goal, variation, rank, value, n).
const sqlQuantiles = `WITH units AS MATERIALIZED (
  SELECT user_key, min(occurred_at) AS first_at, min(variation) AS variation, min(variation) <> max(variation) AS multiple
  FROM evaluation_events
  WHERE project = $1 AND environment = $2 AND experiment = $4 AND flag = $3
    AND user_key IS NOT NULL AND variation <> '' AND occurred_at >= $5 AND occurred_at <= $6
  GROUP BY user_key
),
n AS (SELECT variation, count(*) AS n FROM units WHERE NOT multiple GROUP BY variation),
goals AS (SELECT * FROM unnest($7::text[], $8::float8[], $9::float8[]) AS c(goal, cap, window_s)),
per_unit AS (
  SELECT u.variation, g.goal, least(coalesce(sum(g.value), 0), c.cap) AS y
  FROM units u
  JOIN goal_events g ON g.project = $1 AND g.environment = $2 AND g.user_key = u.user_key
  JOIN goals c ON c.goal = g.goal
  WHERE NOT u.multiple AND g.occurred_at >= $5 AND g.occurred_at <= $6 AND g.occurred_at >= u.first_at
    AND (c.window_s = 0 OR g.occurred_at <= u.first_at + make_interval(secs => c.window_s))
  GROUP BY u.variation, u.user_key, g.goal, c.cap
),
ranked AS (
  SELECT p.goal, p.variation, p.y,
    row_number() OVER w + CASE WHEN p.y < 0 THEN 0 ELSE n.n - count(*) OVER (PARTITION BY p.goal, p.variation) END AS rank
  FROM per_unit p JOIN n USING (variation)
  WINDOW w AS (PARTITION BY p.goal, p.variation ORDER BY p.y)
)
SELECT w.goal, w.variation, w.rank, coalesce(r.y, 0), coalesce(n.n, 0)
FROM unnest($10::text[], $11::text[], $12::bigint[]) AS w(goal, variation, rank)
LEFT JOIN n ON n.variation = w.variation
LEFT JOIN ranked r ON r.goal = w.goal AND r.variation = w.variation AND r.rank = w.rank`

// estimateRank is the rank of the q quantile's estimate among n units: ⌈n·q⌉ in [1, n], the
// first value whose position reaches the fraction q (percentile_disc).
func estimateRank(n int64, q float64) int64 {
	return max(1, min(n, int64(math.Ceil(float64(n)*q))))
}

// quantiles reads the order statistics of the value goals with a quantile setting and returns
// their figures per goal and variation (nil when no goal asks for one). users are the units per
// variation the statistics statement counted: the ranks are computed from them, and when the
// quantile statement counts other numbers (telemetry stored between the two statements) the
// ranks are computed again from its counts, up to maxQuantileAttempts times.
func (a *Analyzer) quantiles(ctx context.Context, exp *domain.Experiment, goals map[string]*domain.Goal, window AnalysisWindow, users map[string]int64) (map[string]map[string]*QuantileFigures, error) {
	var reqs []*quantileRequest
	var names []string
	var caps, windows []float64
	for _, k := range exp.Goals() {
		s := exp.Analysis.GoalSettings(k)
		g := goals[k]
		if s.Quantile == 0 || g == nil || g.Kind != domain.GoalValue {
			continue
		}
		c := math.Inf(1)
		if g.ValueCap > 0 {
			c = g.ValueCap
		}
		reqs = append(reqs, &quantileRequest{goal: k, q: s.Quantile})
		names, caps, windows = append(names, k), append(caps, c), append(windows, s.ConversionWindowHours*3600)
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	alpha := exp.Analysis.EffectiveAlpha()
	units := users
	for attempt := 1; ; attempt++ {
		out := map[string]map[string]*QuantileFigures{}
		var wantGoal, wantVariation []string
		var wantRank []int64
		for _, r := range reqs {
			r.estimate, r.lo, r.hi = map[string]int64{}, map[string]int64{}, map[string]int64{}
			out[r.goal] = map[string]*QuantileFigures{}
			for _, v := range exp.Variations {
				n := units[v.Variation]
				f := &QuantileFigures{Quantile: r.q, Users: n, Alpha: alpha}
				out[r.goal][v.Variation] = f
				if n == 0 {
					continue
				}
				lo, hi := stats.QuantileRanks(n, r.q, alpha)
				f.Ranks = [2]int64{lo, hi}
				r.estimate[v.Variation], r.lo[v.Variation], r.hi[v.Variation] = estimateRank(n, r.q), lo, hi
				for _, rank := range []int64{r.estimate[v.Variation], lo, hi} {
					wantGoal, wantVariation, wantRank = append(wantGoal, r.goal), append(wantVariation, v.Variation), append(wantRank, rank)
				}
			}
		}
		if len(wantRank) == 0 {
			return out, nil
		}
		values := map[[2]string]map[int64]float64{}
		counted := map[string]int64{}
		err := pgx.BeginTxFunc(ctx, a.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, analysisSettings); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, sqlQuantiles, exp.Project, exp.Environment, exp.Flag, exp.Key, window.Start, window.Stop,
				names, caps, windows, wantGoal, wantVariation, wantRank)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var g, v string
				var rank, n int64
				var y float64
				if err := rows.Scan(&g, &v, &rank, &y, &n); err != nil {
					return fmt.Errorf("scan quantile: %w", err)
				}
				if values[[2]string{g, v}] == nil {
					values[[2]string{g, v}] = map[int64]float64{}
				}
				values[[2]string{g, v}][rank] = y
				counted[v] = n
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("experiments: quantiles of %s: %w", exp.Key, err)
		}
		same := true
		for v, n := range counted {
			same = same && n == units[v]
		}
		if !same {
			if attempt == maxQuantileAttempts {
				return nil, fmt.Errorf("experiments: quantiles of %s: the units changed during each of %d attempts", exp.Key, attempt)
			}
			units = counted
			continue
		}
		for _, r := range reqs {
			for v, f := range out[r.goal] {
				if f.Users == 0 {
					continue
				}
				at := values[[2]string{r.goal, v}]
				f.Estimate, f.CI = at[r.estimate[v]], [2]float64{at[r.lo[v]], at[r.hi[v]]}
			}
		}
		return out, nil
	}
}

// maxQuantileAttempts bounds the quantile statement's retries when the units it counts differ
// from those its ranks were computed for.
const maxQuantileAttempts = 3

// addQuantiles sets each variation's quantile figures of a goal and compares them with the
// control's: the frequentist test always (it is what the quantile's interval supports), and
// under the Bayesian engine the chance to beat control of that effect under a flat prior, as
// for ratio metrics. Quantile tests stay out of the correction family and the verdict, which
// read the goal's mean.
func addQuantiles(exp *domain.Experiment, gr *GoalResult, control int, figures map[string]*QuantileFigures) {
	if figures == nil {
		return
	}
	c := figures[exp.Variations[control].Variation]
	stat := func(f *QuantileFigures) stats.QuantileStatistic {
		return stats.QuantileStatistic{N: f.Users, Quantile: f.Quantile, Estimate: f.Estimate, Lower: f.CI[0], Upper: f.CI[1]}
	}
	lower := gr.Direction == domain.GoalDecrease
	bayesian := exp.Analysis.Engine != domain.EngineFrequentist
	for i := range gr.Variations {
		vr := &gr.Variations[i]
		f := figures[vr.Variation]
		if f == nil {
			continue
		}
		vr.Quantile = f
		if i == control {
			if bayesian {
				f.ChanceToBeatControl = 0.5
			}
			continue
		}
		opts := stats.FrequentistOptions{Alpha: f.Alpha, Relative: true,
			Sequential: exp.Analysis.Sequential, SequentialTuning: exp.Analysis.EffectiveSequentialTuning()}
		res := stats.CompareQuantiles(stat(c), stat(f), opts)
		f.Frequentist = &res
		if bayesian && res.Valid {
			fixed := stats.CompareQuantiles(stat(c), stat(f), stats.FrequentistOptions{Alpha: f.Alpha, Relative: true})
			f.ChanceToBeatControl = stats.NormalEffect(fixed.Estimate, fixed.StandardError, nil, lower).ChanceToBeatControl
		}
	}
}
