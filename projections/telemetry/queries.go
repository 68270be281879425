package telemetry

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Interval is the bucket width of a stats series.
type Interval string

// Intervals of the rollups.
const (
	Minute Interval = "minute"
	Hour   Interval = "hour"
	Day    Interval = "day"
)

// Duration is the width of a bucket.
func (i Interval) Duration() time.Duration {
	switch i {
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	case Day:
		return 24 * time.Hour
	}
	return 0
}

// MaxRange is the longest time range one stats query may span at the interval (at most a few
// thousand buckets per series).
func (i Interval) MaxRange() time.Duration {
	switch i {
	case Minute:
		return 24 * time.Hour
	case Hour:
		return 92 * 24 * time.Hour
	case Day:
		return 3 * 366 * 24 * time.Hour
	}
	return 0
}

// DefaultRange is the range a stats query covers when it names none.
func (i Interval) DefaultRange() time.Duration {
	switch i {
	case Minute:
		return time.Hour
	case Hour:
		return 24 * time.Hour
	case Day:
		return 30 * 24 * time.Hour
	}
	return 0
}

// Align widens [from, to) to whole buckets (UTC-aligned, as the rollups are).
func (i Interval) Align(from, to time.Time) (time.Time, time.Time) {
	d := i.Duration()
	from = from.UTC().Truncate(d)
	if t := to.UTC().Truncate(d); t.Before(to) {
		to = t.Add(d)
	} else {
		to = t
	}
	return from, to.UTC()
}

// EvaluationPoint is one bucket of a flag variation's evaluations.
type EvaluationPoint struct {
	Time        time.Time `json:"time"`
	Evaluations int64     `json:"evaluations"`
	// Users is the number of distinct users in the bucket; only the minute rollup has it
	// (distinct counts cannot be added up from smaller buckets).
	Users *int64 `json:"users,omitempty"`
}

// VariationSeries is the evaluations of one variation over time ("" is evaluations that served
// no variation: errors).
type VariationSeries struct {
	Variation   string            `json:"variation"`
	Evaluations int64             `json:"evaluations"` // over the whole range
	Points      []EvaluationPoint `json:"points"`
}

// FlagStats answers "how often was each variation of this flag served, over time".
type FlagStats struct {
	Project         string            `json:"project"`
	Environment     string            `json:"environment"`
	Flag            string            `json:"flag"`
	Interval        Interval          `json:"interval"`
	From            time.Time         `json:"from"`
	To              time.Time         `json:"to"`
	Evaluations     int64             `json:"evaluations"`
	Variations      []VariationSeries `json:"variations"`
	LastEvaluatedAt *time.Time        `json:"last_evaluated_at"`
}

// StatsQuery selects a time series. From and To must already be aligned (Interval.Align).
type StatsQuery struct {
	Project, Environment string
	Interval             Interval
	From, To             time.Time
}

func evaluationsRelation(i Interval) (string, error) {
	switch i {
	case Minute:
		return "evaluations_per_minute", nil
	case Hour:
		return "evaluations_per_hour", nil
	case Day:
		return "evaluations_per_day", nil
	}
	return "", fmt.Errorf("telemetry: unknown interval %q", i)
}

// FlagEvaluations reads a flag's evaluations per variation from the rollup of the interval (never
// from the raw events), with the flag's last evaluation time.
func FlagEvaluations(ctx context.Context, db DB, q StatsQuery, flag string) (*FlagStats, error) {
	rel, err := evaluationsRelation(q.Interval)
	if err != nil {
		return nil, err
	}
	users := "NULL::bigint"
	if q.Interval == Minute {
		users = "users"
	}
	rows, err := db.Query(ctx, `SELECT variation, bucket, evaluations, `+users+` FROM `+rel+`
		WHERE project = $1 AND environment = $2 AND flag = $3 AND bucket >= $4 AND bucket < $5
		ORDER BY variation, bucket`, q.Project, q.Environment, flag, q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("telemetry: flag evaluations: %w", err)
	}
	s := &FlagStats{Project: q.Project, Environment: q.Environment, Flag: flag, Interval: q.Interval,
		From: q.From, To: q.To, Variations: []VariationSeries{}}
	var variation string
	var p EvaluationPoint
	_, err = pgx.ForEachRow(rows, []any{&variation, &p.Time, &p.Evaluations, &p.Users}, func() error {
		if n := len(s.Variations); n == 0 || s.Variations[n-1].Variation != variation {
			s.Variations = append(s.Variations, VariationSeries{Variation: variation})
		}
		v := &s.Variations[len(s.Variations)-1]
		pt := p
		pt.Time = pt.Time.UTC()
		v.Points = append(v.Points, pt)
		v.Evaluations += p.Evaluations
		s.Evaluations += p.Evaluations
		p.Users = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: flag evaluations: %w", err)
	}
	last, err := LastEvaluated(ctx, db, q.Project, q.Environment, flag)
	if err != nil {
		return nil, err
	}
	if t, ok := last[flag]; ok {
		s.LastEvaluatedAt = &t
	}
	return s, nil
}

// LastEvaluated returns when each flag of an environment (or only flag, if not "") was last
// evaluated, from the daily rollup (its newest buckets are real-time on TimescaleDB).
func LastEvaluated(ctx context.Context, db DB, project, environment, flag string) (map[string]time.Time, error) {
	rows, err := db.Query(ctx, `SELECT flag, max(last_evaluated_at) FROM evaluations_per_day
		WHERE project = $1 AND environment = $2 AND ($3 = '' OR flag = $3) GROUP BY flag`, project, environment, flag)
	if err != nil {
		return nil, fmt.Errorf("telemetry: last evaluated: %w", err)
	}
	out := map[string]time.Time{}
	var f string
	var t time.Time
	_, err = pgx.ForEachRow(rows, []any{&f, &t}, func() error {
		out[f] = t.UTC()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: last evaluated: %w", err)
	}
	return out, nil
}

// FlagActivity is a flag of an environment with its last evaluation.
type FlagActivity struct {
	Flag            string     `json:"flag"`
	Name            string     `json:"name"`
	CreatedAt       time.Time  `json:"created_at"`
	LastEvaluatedAt *time.Time `json:"last_evaluated_at"` // null: not evaluated within the rollups' retention
}

// FlagsActivity lists the live (not archived) flags of a project with their last evaluation in
// the environment. With staleSince set, only stale flags: created before it and not evaluated
// since (never-evaluated ones first, then the longest unused). Flags come from the catalog read
// model; evaluations from the daily rollup.
func FlagsActivity(ctx context.Context, db DB, project, environment string, staleSince *time.Time) ([]FlagActivity, error) {
	rows, err := db.Query(ctx, `SELECT f.key, f.name, f.created_at, l.last_evaluated_at
		FROM rm_flags f
		LEFT JOIN (SELECT flag, max(last_evaluated_at) AS last_evaluated_at FROM evaluations_per_day
		           WHERE project = $1 AND environment = $2 GROUP BY flag) l ON l.flag = f.key
		WHERE f.project = $1 AND NOT f.archived
		  AND ($3::timestamptz IS NULL
		       OR (f.created_at < $3 AND (l.last_evaluated_at IS NULL OR l.last_evaluated_at < $3)))
		ORDER BY l.last_evaluated_at NULLS FIRST, f.key`, project, environment, staleSince)
	if err != nil {
		return nil, fmt.Errorf("telemetry: flags activity: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (FlagActivity, error) {
		var a FlagActivity
		err := r.Scan(&a.Flag, &a.Name, &a.CreatedAt, &a.LastEvaluatedAt)
		if a.LastEvaluatedAt != nil {
			t := a.LastEvaluatedAt.UTC()
			a.LastEvaluatedAt = &t
		}
		a.CreatedAt = a.CreatedAt.UTC()
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: flags activity: %w", err)
	}
	if out == nil {
		out = []FlagActivity{}
	}
	return out, nil
}

// GoalPoint is one bucket of a goal's conversions.
type GoalPoint struct {
	Time        time.Time `json:"time"`
	Conversions int64     `json:"conversions"`
	// Users who reached the goal in the bucket; hourly buckets only.
	Users           *int64  `json:"users,omitempty"`
	ValueSum        float64 `json:"value_sum"`
	ValueSumSquares float64 `json:"value_sum_squares"`
}

// GoalSeries is a goal's conversions over time, in total or for one variation.
type GoalSeries struct {
	Variation       *string     `json:"variation,omitempty"` // absent for the total
	Conversions     int64       `json:"conversions"`
	ValueSum        float64     `json:"value_sum"`
	ValueSumSquares float64     `json:"value_sum_squares"`
	Points          []GoalPoint `json:"points"`
}

// GoalStats answers "how often was this goal reached, with what values, over time", in total and,
// for a subject (a flag or an experiment), per variation its users were first exposed to.
type GoalStats struct {
	Project     string       `json:"project"`
	Environment string       `json:"environment"`
	Goal        string       `json:"goal"`
	Interval    Interval     `json:"interval"`
	From        time.Time    `json:"from"`
	To          time.Time    `json:"to"`
	SubjectKind string       `json:"subject_kind,omitempty"` // flag or experiment
	Subject     string       `json:"subject,omitempty"`
	Total       GoalSeries   `json:"total"`
	Variations  []GoalSeries `json:"variations,omitempty"`
}

// GoalConversions reads a goal's series from the hourly or daily rollups (goals have no minute
// rollup). With subjectKind and subject set it adds the per-variation series of that flag or
// experiment (goals attributed to the variation of the user's first exposure).
func GoalConversions(ctx context.Context, db DB, q StatsQuery, goal, subjectKind, subject string) (*GoalStats, error) {
	var total, byVariation string
	switch q.Interval {
	case Hour:
		total, byVariation = "goals_per_hour", "goal_variations_per_hour"
	case Day:
		total, byVariation = "goals_per_day", "goal_variations_per_day"
	default:
		return nil, fmt.Errorf("telemetry: goals have no %q rollup", q.Interval)
	}
	users := "NULL::bigint"
	if q.Interval == Hour {
		users = "users"
	}
	s := &GoalStats{Project: q.Project, Environment: q.Environment, Goal: goal, Interval: q.Interval, From: q.From, To: q.To,
		SubjectKind: subjectKind, Subject: subject}
	rows, err := db.Query(ctx, `SELECT NULL::text, bucket, conversions, `+users+`, value_sum, value_sum_squares FROM `+total+`
		WHERE project = $1 AND environment = $2 AND goal = $3 AND bucket >= $4 AND bucket < $5 ORDER BY bucket`,
		q.Project, q.Environment, goal, q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("telemetry: goal conversions: %w", err)
	}
	series, err := collectGoalSeries(rows)
	if err != nil {
		return nil, err
	}
	s.Total = GoalSeries{Points: []GoalPoint{}}
	if len(series) == 1 {
		s.Total = series[0]
	}
	if subject == "" {
		return s, nil
	}
	rows, err = db.Query(ctx, `SELECT variation, bucket, conversions, `+users+`, value_sum, value_sum_squares FROM `+byVariation+`
		WHERE project = $1 AND environment = $2 AND goal = $3 AND subject_kind = $4 AND subject = $5
		  AND bucket >= $6 AND bucket < $7 ORDER BY variation, bucket`,
		q.Project, q.Environment, goal, subjectKind, subject, q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("telemetry: goal conversions by variation: %w", err)
	}
	if s.Variations, err = collectGoalSeries(rows); err != nil {
		return nil, err
	}
	return s, nil
}

func collectGoalSeries(rows pgx.Rows) ([]GoalSeries, error) {
	out := []GoalSeries{}
	var variation *string
	var p GoalPoint
	_, err := pgx.ForEachRow(rows, []any{&variation, &p.Time, &p.Conversions, &p.Users, &p.ValueSum, &p.ValueSumSquares}, func() error {
		n := len(out)
		if n == 0 || (variation != nil && (out[n-1].Variation == nil || *out[n-1].Variation != *variation)) {
			var v *string
			if variation != nil {
				s := *variation
				v = &s
			}
			out = append(out, GoalSeries{Variation: v})
		}
		g := &out[len(out)-1]
		pt := p
		pt.Time = pt.Time.UTC()
		g.Points = append(g.Points, pt)
		g.Conversions += p.Conversions
		g.ValueSum += p.ValueSum
		g.ValueSumSquares += p.ValueSumSquares
		p.Users = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("telemetry: goal conversions: %w", err)
	}
	return out, nil
}
