package analysis

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// data is the sufficient statistics of an experiment.
type data struct {
	users    map[string]int64 // per variation (including variations outside the experiment), excluding users seen in several
	excluded int64
	total    int64
	goals    map[string]map[string]*goalSums // goal -> variation -> sums
	ratios   map[string]map[string]*goalSums // ratio metric -> variation -> Σm, Σm² (y), Σd, Σd² (x), Σmd
	window   AnalysisWindow
}

// goalSums are one goal's sums over one variation's units. y is the goal's metric per unit
// (converted 0/1, events, or the capped value) after the first exposure; x the same metric in
// the CUPED lookback before it (0 without CUPED).
type goalSums struct {
	converters, events int64
	sumY, sumY2        float64
	sumX, sumX2, sumXY float64
}

// AnalysisWindow is the analysis window: exposures from Start to Stop (inclusive), goals up to Stop.
type AnalysisWindow struct {
	Start time.Time `json:"start"`
	Stop  time.Time `json:"stop"`
}

// sqlStatistics computes, in one statement, the experiment's units and per variation and goal the
// sums the models need.
//
// Units are read from the raw evaluation events, not from the projector's per-user tables,
// because what a unit is depends on the experiment (issue 21): only evaluations of the
// experiment's own flag that carry its key count (an evaluation of another flag naming the
// experiment does not), only inside [start, stop] (an exposure stamped before the start does
// not), and the goals of a unit depend on its first exposure in that window, the goal's optional
// conversion window and the CUPED lookback before it. A user served two variations in the window
// is excluded and counted. Goal events count from the first exposure to the end of the window
// (and of the goal's conversion window); the CUPED covariate is the same goal in the lookback
// before the first exposure.
//
// $1 project, $2 environment, $3 flag, $4 experiment, $5 start, $6 stop, $7 goal[], $8 kind[],
// $9 cap[] (Infinity: none), $10 conversion window in seconds[] (0: none), $11 lookback seconds.
// Rows: ('u', variation, ”, users, excluded, 0...) per variation, and ('g', variation, goal,
// converters, events, Σy, Σy², Σx, Σx², Σxy) per variation and goal.
const sqlStatistics = `WITH units AS MATERIALIZED (
  SELECT user_key, min(occurred_at) AS first_at, min(variation) AS variation, min(variation) <> max(variation) AS multiple
  FROM evaluation_events
  WHERE project = $1 AND environment = $2 AND experiment = $4 AND flag = $3
    AND user_key IS NOT NULL AND variation <> '' AND occurred_at >= $5 AND occurred_at <= $6
  GROUP BY user_key
),
goals AS (
  SELECT * FROM unnest($7::text[], $8::text[], $9::float8[], $10::float8[]) AS c(goal, kind, cap, window_s)
),
per_unit AS (
  SELECT u.variation, u.user_key, g.goal, c.kind, c.cap,
    count(*) FILTER (WHERE g.occurred_at >= u.first_at) AS n_post,
    coalesce(sum(g.value) FILTER (WHERE g.occurred_at >= u.first_at), 0) AS v_post,
    count(*) FILTER (WHERE g.occurred_at < u.first_at) AS n_pre,
    coalesce(sum(g.value) FILTER (WHERE g.occurred_at < u.first_at), 0) AS v_pre
  FROM units u
  JOIN goal_events g ON g.project = $1 AND g.environment = $2 AND g.user_key = u.user_key
  JOIN goals c ON c.goal = g.goal
  WHERE NOT u.multiple
    AND g.occurred_at >= $5::timestamptz - make_interval(secs => $11) AND g.occurred_at <= $6
    AND g.occurred_at >= u.first_at - make_interval(secs => $11)
    AND (c.window_s = 0 OR g.occurred_at <= u.first_at + make_interval(secs => c.window_s))
  GROUP BY u.variation, u.user_key, g.goal, c.kind, c.cap
),
metric AS (
  SELECT variation, user_key, goal, n_post,
    CASE kind WHEN 'conversion' THEN (n_post > 0)::int::float8 WHEN 'count' THEN n_post::float8 ELSE least(v_post, cap) END AS y,
    CASE kind WHEN 'conversion' THEN (n_pre > 0)::int::float8 WHEN 'count' THEN n_pre::float8 ELSE least(v_pre, cap) END AS x
  FROM per_unit
)
SELECT 'u', variation, '', count(*) FILTER (WHERE NOT multiple), count(*) FILTER (WHERE multiple),
  0::float8, 0::float8, 0::float8, 0::float8, 0::float8
FROM units GROUP BY variation
UNION ALL
SELECT 'g', variation, goal, count(*) FILTER (WHERE n_post > 0), coalesce(sum(n_post), 0)::bigint,
  coalesce(sum(y), 0), coalesce(sum(y * y), 0), coalesce(sum(x), 0), coalesce(sum(x * x), 0), coalesce(sum(x * y), 0)
FROM metric GROUP BY variation, goal`

// sqlRatios is appended to sqlStatistics when the experiment has ratio metrics: per ratio and
// unit the numerator goal's metric m and the denominator goal's events d, then per variation
// ('r', variation, ratio, 0, 0, Σm, Σm², Σd, Σd², Σmd). $12 ratio[], $13 numerator[],
// $14 denominator[]. (Only then: a second reference to metric makes PostgreSQL materialize it.)
const sqlRatios = `
UNION ALL
SELECT 'r', variation, key, 0, 0, coalesce(sum(m), 0), coalesce(sum(m * m), 0), coalesce(sum(d), 0), coalesce(sum(d * d), 0), coalesce(sum(m * d), 0)
FROM (
  SELECT r.key, x.variation, x.user_key,
    sum(CASE WHEN x.goal = r.num THEN x.y ELSE 0 END) AS m,
    sum(CASE WHEN x.goal = r.den THEN x.n_post ELSE 0 END)::float8 AS d
  FROM unnest($12::text[], $13::text[], $14::text[]) AS r(key, num, den)
  JOIN metric x ON x.goal IN (r.num, r.den)
  GROUP BY r.key, x.variation, x.user_key
) per_unit_ratio GROUP BY variation, key`

// window returns the experiment's analysis window: from its start to its stop, or to now while
// it runs.
func (a *Analyzer) window(exp *domain.Experiment) AnalysisWindow {
	w := AnalysisWindow{Start: exp.StartedAt.UTC(), Stop: exp.StoppedAt.UTC()}
	if exp.StoppedAt.IsZero() {
		w.Stop = a.now().UTC()
	}
	return w
}

// sufficientStatistics reads the experiment's statistics in one round trip (sqlStatistics).
func (a *Analyzer) sufficientStatistics(ctx context.Context, exp *domain.Experiment, goals map[string]*domain.Goal) (*data, error) {
	d := &data{users: map[string]int64{}, goals: map[string]map[string]*goalSums{}, ratios: map[string]map[string]*goalSums{}, window: a.window(exp)}
	var names, kinds []string
	var caps, windows []float64
	for _, k := range exp.Goals() {
		g := goals[k]
		names = append(names, k)
		kinds = append(kinds, string(g.Kind))
		c := math.Inf(1)
		if g.ValueCap > 0 {
			c = g.ValueCap
		}
		caps = append(caps, c)
		windows = append(windows, exp.Analysis.GoalSettings(k).ConversionWindowHours*3600)
		d.goals[k] = map[string]*goalSums{}
	}
	lookback := float64(exp.Analysis.CUPEDLookbackDays) * 86400
	err := pgx.BeginTxFunc(ctx, a.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// The statement aggregates per unit twice (units, then units × goals): with the default
		// 4 MB of work memory a million units spill to disk in 64 partitions and take tens of
		// seconds; in memory they take about a second. JIT compilation costs more than it saves
		// on a statement run once per analysis, and TimescaleDB's per-chunk partial aggregation
		// hashes every unit twice (per chunk, then to finalize) when units span chunks.
		if _, err := tx.Exec(ctx, analysisSettings); err != nil {
			return err
		}
		sql, args := sqlStatistics, []any{exp.Project, exp.Environment, exp.Flag, exp.Key, d.window.Start, d.window.Stop,
			names, kinds, caps, windows, lookback}
		if rs := exp.Analysis.RatioMetrics; len(rs) > 0 {
			var keys, nums, dens []string
			for _, r := range rs {
				keys, nums, dens = append(keys, r.Key), append(nums, r.Numerator), append(dens, r.Denominator)
			}
			sql += sqlRatios
			args = append(args, keys, nums, dens)
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return d.scan(rows)
	})
	if err != nil {
		return nil, fmt.Errorf("experiments: statistics of %s: %w", exp.Key, err)
	}
	return d, nil
}

// analysisSettings are the session settings of the statistics statement (SET LOCAL: the
// transaction's only).
const analysisSettings = `SET LOCAL work_mem = '256MB'; SET LOCAL jit = off; SET LOCAL timescaledb.enable_chunkwise_aggregation = off`

// scan reads the rows of sqlStatistics into d.
func (d *data) scan(rows pgx.Rows) error {
	for rows.Next() {
		var row, v, g string
		var n1, n2 int64
		s := &goalSums{}
		if err := rows.Scan(&row, &v, &g, &n1, &n2, &s.sumY, &s.sumY2, &s.sumX, &s.sumX2, &s.sumXY); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		switch row {
		case "u":
			d.users[v] += n1
			d.excluded += n2
			d.total += n1
			continue
		case "r":
			if d.ratios[g] == nil {
				d.ratios[g] = map[string]*goalSums{}
			}
			d.ratios[g][v] = s
			continue
		}
		s.converters, s.events = n1, n2
		d.goals[g][v] = s
	}
	return rows.Err()
}
