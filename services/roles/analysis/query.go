package analysis

import (
	"context"
	"fmt"
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
	build    UnitBuild // what the refresh of the units did
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

// sqlStatistics reads the experiment's units and per variation and goal the sums the models
// need, kept by refreshUnits with the per-unit read model (units.go: the rules of what a unit and
// its goals are live there). metric is read only by sqlRatios.
//
// $1 project, $2 experiment. Rows: ('u', variation, empty, users, excluded, 0...) per variation,
// and ('g', variation, goal, converters, events, Σy, Σy², Σx, Σx², Σxy) per variation and goal.
const sqlStatistics = `WITH metric AS (
  SELECT variation, user_key, goal, n_post, y, x FROM experiment_analysis_unit_goals WHERE project = $1 AND experiment = $2
)
SELECT CASE goal WHEN '' THEN 'u' ELSE 'g' END, variation, goal,
  CASE goal WHEN '' THEN units ELSE converters END, CASE goal WHEN '' THEN multiple_units ELSE events END,
  sum_y, sum_y2, sum_x, sum_x2, sum_xy
FROM experiment_analysis_sums WHERE project = $1 AND experiment = $2`

// sqlRatios is appended to sqlStatistics when the experiment has ratio metrics: per ratio and
// unit the numerator goal's metric m and the denominator goal's events d, then per variation
// ('r', variation, ratio, 0, 0, Σm, Σm², Σd, Σd², Σmd). $3 ratio[], $4 numerator[],
// $5 denominator[]. (Only then: a second reference to metric makes PostgreSQL materialize it.)
const sqlRatios = `
UNION ALL
SELECT 'r', variation, key, 0, 0, coalesce(sum(m), 0), coalesce(sum(m * m), 0), coalesce(sum(d), 0), coalesce(sum(d * d), 0), coalesce(sum(m * d), 0)
FROM (
  SELECT r.key, x.variation, x.user_key,
    sum(CASE WHEN x.goal = r.num THEN x.y ELSE 0 END) AS m,
    sum(CASE WHEN x.goal = r.den THEN x.n_post ELSE 0 END)::float8 AS d
  FROM unnest($3::text[], $4::text[], $5::text[]) AS r(key, num, den)
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

// sufficientStatistics brings the experiment's units up to date (refreshUnits) and reads its
// statistics (sqlStatistics), in one transaction.
func (a *Analyzer) sufficientStatistics(ctx context.Context, exp *domain.Experiment, goals map[string]*domain.Goal) (*data, error) {
	d := &data{users: map[string]int64{}, goals: map[string]map[string]*goalSums{}, ratios: map[string]map[string]*goalSums{}, window: a.window(exp)}
	for _, k := range exp.Goals() {
		d.goals[k] = map[string]*goalSums{}
	}
	err := pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		// A full build aggregates per unit twice (units, then units × goals): with the default
		// 4 MB of work memory a million units spill to disk in 64 partitions and take tens of
		// seconds; in memory they take about a second. JIT compilation costs more than it saves
		// on statements run once per analysis, and TimescaleDB's per-chunk partial aggregation
		// hashes every unit twice (per chunk, then to finalize) when units span chunks.
		if _, err := tx.Exec(ctx, analysisSettings); err != nil {
			return err
		}
		build, err := refreshUnits(ctx, tx, unitSettingsOf(exp, goals))
		if err != nil {
			return err
		}
		d.build = build
		sql, args := sqlStatistics, []any{exp.Project, exp.Key}
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

// analysisSettings are the session settings of the analysis transaction (SET LOCAL: the
// transaction's only). No parallel workers: the analysis is background work that should not
// take cores from the serving queries (and its CPU cost is then its backend's, as measured).
const analysisSettings = `SET LOCAL work_mem = '256MB'; SET LOCAL jit = off; SET LOCAL timescaledb.enable_chunkwise_aggregation = off;
SET LOCAL max_parallel_workers_per_gather = 0`

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
