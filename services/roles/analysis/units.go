package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vexil-flags/vexil/domain"
)

// The analysis reads an experiment's units from a read model it keeps itself
// (experiment_analysis_units and experiment_analysis_unit_goals, migration 0190), so that an
// analysis is an aggregate over narrow per-unit rows, not two hash aggregations of text user keys
// over the raw telemetry (35 s at a million units on this machine; see
// docs/experiment-statistics.md). The read model follows exactly the rules of unitRowsSQL, the
// query over the raw hypertables, and is kept current in two ways:
//
//   - Full build: when the experiment has no build yet, or the fingerprint of what the rows
//     depend on changed (flag, environment, window, goals with kind, cap and conversion window,
//     CUPED lookback), or the last build is older than touchedLogKeep allows (the log it would
//     read may have been pruned), or too many users were touched since it (a full build is
//     then cheaper).
//   - Incremental build: the users the telemetry projector logged as touched
//     (experiment_touched_users, written in the transaction that stored their events) since the
//     last build are recomputed from the raw hypertables, every row of theirs replaced. A late
//     exposure that moves a first exposure, a second variation, a goal after or before the
//     exposure: all of them touch the user, so all of them are recomputed.
//
// "Since the last build" is by snapshot, not by time: the build records pg_current_snapshot()
// taken before it reads anything, and the next one reads the log rows whose transaction that
// snapshot does not see (committed later, or in progress then). A projector transaction
// therefore lands in exactly one build's reads (or in more than one, harmlessly).

// touchedLogKeep is how long the touched-users log is kept; maxIncrementalAge is the age beyond
// which a build is redone in full (the log it would read may be pruned by then).
const (
	touchedLogKeep    = 24 * time.Hour
	maxIncrementalAge = 20 * time.Hour
	// maxIncrementalUsers: beyond this many touched users a full build is cheaper than probing
	// each user's events through the indexes.
	maxIncrementalUsers = 200_000
)

// unitRowsSQL is the CTE that recomputes units from the raw telemetry (the rules are the
// analysis's, issue 21): only evaluations of the experiment's own flag that carry its key count
// (an evaluation of another flag naming the experiment does not), only inside [start, stop] (an
// exposure stamped before the start does not); the first exposure in the window decides the
// variation and a user served two variations is marked (excluded and counted).
//
// $1 project, $2 environment, $3 flag, $4 experiment, $5 start, $6 stop; users, when not empty,
// is the parameter holding the users to recompute (text[]), otherwise every user is.
func unitRowsSQL(users string) string {
	filter := ""
	if users != "" {
		filter = "\n    AND user_key = ANY(" + users + "::text[])"
	}
	return `WITH units AS MATERIALIZED (
  SELECT user_key, min(occurred_at) AS first_at, min(variation) AS variation, min(variation) <> max(variation) AS multiple
  FROM evaluation_events
  WHERE project = $1 AND environment = $2 AND experiment = $4 AND flag = $3
    AND user_key IS NOT NULL AND variation <> '' AND occurred_at >= $5 AND occurred_at <= $6` + filter + `
  GROUP BY user_key
)`
}

// insertUnitsSQL inserts the units of unitRowsSQL; users is $7 when set.
func insertUnitsSQL(users string) string {
	return unitRowsSQL(users) + `
INSERT INTO experiment_analysis_units (project, experiment, user_key, variation, first_at, multiple)
SELECT $1, $4, user_key, variation, first_at, multiple FROM units`
}

// insertUnitGoalsSQL inserts the goal rows of the units of unitRowsSQL. A unit's goal events
// count from its first exposure to the end of the window and of the goal's conversion window;
// the CUPED covariate is the same goal in the lookback before the first exposure. $7 goal[],
// $8 kind[], $9 cap[] (Infinity: none), $10 conversion window in seconds[] (0: none), $11
// lookback seconds; users is $12 when set.
func insertUnitGoalsSQL(users string) string {
	return unitRowsSQL(users) + `,
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
)
INSERT INTO experiment_analysis_unit_goals (project, experiment, user_key, goal, variation, n_post, y, x)
SELECT $1, $4, user_key, goal, variation, n_post,
  CASE kind WHEN 'conversion' THEN (n_post > 0)::int::float8 WHEN 'count' THEN n_post::float8 ELSE least(v_post, cap) END,
  CASE kind WHEN 'conversion' THEN (n_pre > 0)::int::float8 WHEN 'count' THEN n_pre::float8 ELSE least(v_pre, cap) END
FROM per_unit`
}

// sumsSQL adds to experiment_analysis_sums the rows of the units (all, or those of users when
// it is a parameter such as "$4") of experiment $2 in project $1, each counted $3 times (-1: to
// subtract them before they are replaced).
func sumsSQL(users string) string {
	filter := ""
	if users != "" {
		filter = " AND user_key = ANY(" + users + "::text[])"
	}
	return `INSERT INTO experiment_analysis_sums AS s (project, experiment, variation, goal, units, multiple_units,
  converters, events, sum_y, sum_y2, sum_x, sum_x2, sum_xy)
SELECT $1, $2, variation, '', $3::int * count(*) FILTER (WHERE NOT multiple), $3::int * count(*) FILTER (WHERE multiple),
  0, 0, 0, 0, 0, 0, 0
FROM experiment_analysis_units WHERE project = $1 AND experiment = $2` + filter + ` GROUP BY variation
UNION ALL
SELECT $1, $2, variation, goal, $3::int * count(*), 0, $3::int * count(*) FILTER (WHERE n_post > 0), ($3::int * sum(n_post))::bigint,
  $3::int * sum(y), $3::int * sum(y * y), $3::int * sum(x), $3::int * sum(x * x), $3::int * sum(x * y)
FROM experiment_analysis_unit_goals WHERE project = $1 AND experiment = $2` + filter + ` GROUP BY variation, goal
ORDER BY 3, 4
ON CONFLICT (project, experiment, variation, goal) DO UPDATE SET
  units = s.units + excluded.units, multiple_units = s.multiple_units + excluded.multiple_units,
  converters = s.converters + excluded.converters, events = s.events + excluded.events,
  sum_y = s.sum_y + excluded.sum_y, sum_y2 = s.sum_y2 + excluded.sum_y2, sum_x = s.sum_x + excluded.sum_x,
  sum_x2 = s.sum_x2 + excluded.sum_x2, sum_xy = s.sum_xy + excluded.sum_xy`
}

// sqlDropEmptySums deletes the sums left with no rows (a variation or goal whose last unit was
// recomputed away), whatever rounding left in their float sums.
const sqlDropEmptySums = `DELETE FROM experiment_analysis_sums WHERE project = $1 AND experiment = $2 AND units = 0 AND multiple_units = 0`

// sqlTouchedUsers lists the users touched since the snapshot $3 that can matter to experiment
// $4: those an evaluation naming it touched, and those a goal event touched who are already its
// units (a goal of a user who is not a unit yet is read when the user's exposure, which touches
// the user too, is recomputed). $1 project, $2 environment.
const sqlTouchedUsers = `SELECT DISTINCT t.user_key FROM experiment_touched_users t
WHERE t.project = $1 AND t.environment = $2
  AND t.xid >= pg_snapshot_xmin($3::pg_snapshot) AND NOT pg_visible_in_snapshot(t.xid, $3::pg_snapshot)
  AND (t.experiment = $4 OR (t.experiment = '' AND EXISTS (
    SELECT 1 FROM experiment_analysis_units u WHERE u.project = $1 AND u.experiment = $4 AND u.user_key = t.user_key)))`

// unitSettings are the arguments of unitRowsSQL but the users; their JSON is the fingerprint of
// a build.
type unitSettings struct {
	Project     string    `json:"project"`
	Environment string    `json:"environment"`
	Flag        string    `json:"flag"`
	Experiment  string    `json:"experiment"`
	Start       time.Time `json:"start"`
	Stop        time.Time `json:"stop"`
	Goals       []string  `json:"goals"`
	Kinds       []string  `json:"kinds"`
	Caps        []float64 `json:"caps"`    // +Inf: none (JSON: -1)
	Windows     []float64 `json:"windows"` // seconds, 0: none
	Lookback    float64   `json:"lookback"`
}

// unitSettingsOf returns what an experiment's units depend on. A running experiment's window
// has no end: a unit computed now must stay right as the window grows, so it counts whatever
// has been stored (events are refused at the edge beyond a few minutes in the future); when the
// experiment stops, the stop time changes the fingerprint and the units are rebuilt within
// [start, stop].
func unitSettingsOf(exp *domain.Experiment, goals map[string]*domain.Goal) unitSettings {
	s := unitSettings{Project: exp.Project, Environment: exp.Environment, Flag: exp.Flag, Experiment: exp.Key,
		Start: exp.StartedAt.UTC(), Stop: exp.StoppedAt.UTC(), Lookback: float64(exp.Analysis.CUPEDLookbackDays) * 86400}
	for _, k := range exp.Goals() {
		g := goals[k]
		s.Goals = append(s.Goals, k)
		s.Kinds = append(s.Kinds, string(g.Kind))
		c := math.Inf(1)
		if g.ValueCap > 0 {
			c = g.ValueCap
		}
		s.Caps = append(s.Caps, c)
		s.Windows = append(s.Windows, exp.Analysis.GoalSettings(k).ConversionWindowHours*3600)
	}
	return s
}

func (s unitSettings) fingerprint() (string, error) {
	t := s
	t.Caps = make([]float64, len(s.Caps))
	for i, c := range s.Caps {
		t.Caps[i] = c
		if math.IsInf(c, 1) {
			t.Caps[i] = -1 // JSON has no infinity
		}
	}
	b, err := json.Marshal(t)
	return string(b), err
}

// window returns the arguments $1 to $6 of unitRowsSQL.
func (s unitSettings) window() []any {
	stop := pgtype.Timestamptz{Time: s.Stop, Valid: true}
	if s.Stop.IsZero() {
		stop = pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	}
	return []any{s.Project, s.Environment, s.Flag, s.Experiment, s.Start, stop}
}

// UnitBuild says what refreshUnits did.
type UnitBuild struct {
	Full  bool `json:"full"`  // every unit recomputed
	Users int  `json:"users"` // users recomputed by an incremental build (0 when full)
}

// refreshUnits brings the experiment's units up to date within tx (see the comment at the top
// of this file). Concurrent analyses of one experiment queue on its build row.
func refreshUnits(ctx context.Context, tx pgx.Tx, s unitSettings) (UnitBuild, error) {
	want, err := s.fingerprint()
	if err != nil {
		return UnitBuild{}, fmt.Errorf("units fingerprint: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO experiment_analysis_builds (project, experiment, fingerprint, snapshot, built_at)
		VALUES ($1, $2, '', pg_current_snapshot(), 'epoch') ON CONFLICT DO NOTHING`, s.Project, s.Experiment); err != nil {
		return UnitBuild{}, fmt.Errorf("units build row: %w", err)
	}
	var have, last string
	var builtAt time.Time
	var now string
	// Taken before anything is read: every transaction this snapshot sees is read by this build
	// (the later statements' snapshots see at least as much).
	if err := tx.QueryRow(ctx, `SELECT b.fingerprint, b.snapshot::text, b.built_at, pg_current_snapshot()::text
		FROM experiment_analysis_builds b WHERE b.project = $1 AND b.experiment = $2 FOR UPDATE`, s.Project, s.Experiment).
		Scan(&have, &last, &builtAt, &now); err != nil {
		return UnitBuild{}, fmt.Errorf("units build row: %w", err)
	}
	build := UnitBuild{Full: have != want || time.Since(builtAt) > maxIncrementalAge}
	var users []string
	if !build.Full {
		rows, err := tx.Query(ctx, sqlTouchedUsers, s.Project, s.Environment, last, s.Experiment)
		if err != nil {
			return UnitBuild{}, fmt.Errorf("touched users: %w", err)
		}
		if users, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return UnitBuild{}, fmt.Errorf("touched users: %w", err)
		}
		build.Full = len(users) > maxIncrementalUsers
	}
	batch := &pgx.Batch{}
	switch {
	case build.Full:
		users = nil
		batch.Queue(`DELETE FROM experiment_analysis_units WHERE project = $1 AND experiment = $2`, s.Project, s.Experiment)
		batch.Queue(`DELETE FROM experiment_analysis_unit_goals WHERE project = $1 AND experiment = $2`, s.Project, s.Experiment)
		batch.Queue(`DELETE FROM experiment_analysis_sums WHERE project = $1 AND experiment = $2`, s.Project, s.Experiment)
		batch.Queue(insertUnitsSQL(""), s.window()...)
		batch.Queue(insertUnitGoalsSQL(""), append(s.window(), s.Goals, s.Kinds, s.Caps, s.Windows, s.Lookback)...)
		batch.Queue(sumsSQL(""), s.Project, s.Experiment, 1)
	case len(users) > 0:
		build.Users = len(users)
		batch.Queue(sumsSQL("$4"), s.Project, s.Experiment, -1, users)
		batch.Queue(`DELETE FROM experiment_analysis_units WHERE project = $1 AND experiment = $2 AND user_key = ANY($3)`, s.Project, s.Experiment, users)
		batch.Queue(`DELETE FROM experiment_analysis_unit_goals WHERE project = $1 AND experiment = $2 AND user_key = ANY($3)`, s.Project, s.Experiment, users)
		batch.Queue(insertUnitsSQL("$7"), append(s.window(), users)...)
		batch.Queue(insertUnitGoalsSQL("$12"), append(s.window(), s.Goals, s.Kinds, s.Caps, s.Windows, s.Lookback, users)...)
		batch.Queue(sumsSQL("$4"), s.Project, s.Experiment, 1, users)
		batch.Queue(sqlDropEmptySums, s.Project, s.Experiment)
	}
	batch.Queue(`UPDATE experiment_analysis_builds SET fingerprint = $3, snapshot = $4::pg_snapshot, built_at = now()
		WHERE project = $1 AND experiment = $2`, s.Project, s.Experiment, want, now)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return UnitBuild{}, fmt.Errorf("units build (full %v, %d users): %w", build.Full, len(users), err)
	}
	return build, nil
}

// pruneTouchedUsers deletes the touched-users log older than touchedLogKeep: builds older than
// maxIncrementalAge do not read it.
func (a *Analyzer) pruneTouchedUsers(ctx context.Context) error {
	if _, err := a.pool.Exec(ctx, `DELETE FROM experiment_touched_users WHERE logged_at < now() - make_interval(secs => $1)`,
		touchedLogKeep.Seconds()); err != nil {
		return fmt.Errorf("experiments: prune touched users: %w", err)
	}
	return nil
}
