package analysis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/roles/analysis"
)

// unitTables returns every row of the analysis read model, in a stable order, as text.
func unitTables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT format('unit %s %s %s %s', user_key, variation, first_at, multiple) FROM experiment_analysis_units
		UNION ALL
		SELECT format('goal %s %s %s %s %s %s', user_key, goal, variation, n_post, y, x) FROM experiment_analysis_unit_goals
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rowID is the physical location of a unit's row: a full build rewrites every row, an
// incremental one only the touched users'.
func rowID(t *testing.T, pool *pgxpool.Pool, user string) string {
	t.Helper()
	var id string
	if err := pool.QueryRow(context.Background(), `SELECT ctid::text FROM experiment_analysis_units WHERE user_key = $1`, user).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// figures is what an analysis reports, without the time it ran.
func figures(t *testing.T, res *analysis.Analysis) string {
	t.Helper()
	b, err := json.Marshal([]any{res.Users, res.ExcludedUsers, res.SRM, res.UnknownVariations, res.Goals, res.Ratios, res.Verdict})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIncrementalUnitsEqualAFullBuild stores telemetry through the projector's Write after a
// first analysis, covering every way an event changes a unit, and checks that the incremental
// build leaves exactly the rows and figures that a full build from the raw telemetry gives.
func TestIncrementalUnitsEqualAFullBuild(t *testing.T) {
	a, pool, configure, done := setupExperiment(t, 600)
	defer done()
	ctx := context.Background()
	configure(domain.ExperimentAnalysis{CUPEDLookbackDays: 14,
		Goals: []domain.GoalAnalysis{{Goal: "signup", ConversionWindowHours: 2}}})
	if _, err := a.Analyze(ctx, "p", "e"); err != nil {
		t.Fatal(err)
	}
	untouched := rowID(t, pool, "u1")
	var started time.Time
	if err := pool.QueryRow(ctx, `SELECT min(occurred_at) FROM evaluation_events`).Scan(&started); err != nil {
		t.Fatal(err)
	}
	exposedAt := func(i int) time.Time { return started.Add(time.Duration(i%86400-1) * time.Second) }
	value := func(v float64) *float64 { return &v }

	b := telemetry.NewBatch("p", "prod", time.Now())
	expose := func(at time.Time, flag, variation, user string) {
		b.AddEvaluation(telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: at, Flag: flag,
			Variation: variation, User: user, Experiment: "e"})
	}
	goal := func(at time.Time, goal, user string, v *float64) {
		b.AddGoal(telemetry.GoalEvent{EventID: telemetry.NewEventID(), OccurredAt: at, Goal: goal, User: user, Value: v})
	}
	// A new unit in b, converting an hour later, with revenue.
	expose(started.Add(time.Hour), "f", "b", "new")
	goal(started.Add(2*time.Hour), "purchase", "new", nil)
	goal(started.Add(2*time.Hour), "revenue", "new", value(12))
	// A goal of a known unit (u3 is in a), inside and outside the signup conversion window.
	goal(exposedAt(3).Add(30*time.Minute), "revenue", "u3", value(50))
	goal(exposedAt(3).Add(30*time.Minute), "signup", "u3", nil)
	goal(exposedAt(3).Add(5*time.Hour), "signup", "u3", nil)
	// A late exposure, earlier than u4's first (in b), to another variation: u4 is excluded.
	expose(exposedAt(4).Add(-time.Second), "f", "c", "u4")
	// A late exposure of u5 (in c) to its own variation, an hour earlier: its first exposure
	// moves, and with it its goals' pre and post periods.
	expose(exposedAt(5).Add(-90*time.Minute), "f", "c", "u5")
	// A goal in u6's CUPED lookback.
	goal(exposedAt(6).Add(-2*time.Hour), "page-views", "u6", nil)
	// Not units: another flag's evaluation naming the experiment, an exposure before the start.
	expose(started.Add(time.Hour), "other-flag", "b", "other")
	expose(started.Add(-20*time.Hour), "f", "a", "early")
	// A goal of a user in no experiment.
	goal(started.Add(time.Hour), "purchase", "nobody", nil)
	if _, err := telemetry.Write(ctx, pool, b); err != nil {
		t.Fatal(err)
	}

	incremental, err := a.Analyze(ctx, "p", "e")
	if err != nil {
		t.Fatal(err)
	}
	if rowID(t, pool, "u1") != untouched {
		t.Fatal("the second analysis rebuilt every unit: it should have recomputed the touched users only")
	}
	rows := unitTables(t, pool)
	if _, err := pool.Exec(ctx, `DELETE FROM experiment_analysis_builds`); err != nil {
		t.Fatal(err)
	}
	full, err := a.Analyze(ctx, "p", "e")
	if err != nil {
		t.Fatal(err)
	}
	if rowID(t, pool, "u1") == untouched {
		t.Fatal("without a build row the analysis did not rebuild the units")
	}
	if got := unitTables(t, pool); fmt.Sprint(got) != fmt.Sprint(rows) {
		t.Fatalf("incremental rows differ from a full build:\nincremental %d rows\nfull        %d rows\n%s",
			len(rows), len(got), firstDifference(rows, got))
	}
	// The per-variation sums were updated by subtracting and adding the touched users' rows:
	// the same up to rounding.
	if path, ok := nearlyEqual(decode(t, figures(t, incremental)), decode(t, figures(t, full)), ""); !ok {
		t.Fatalf("incremental figures differ from a full build at %s:\n%s\n%s", path, figures(t, incremental), figures(t, full))
	}
	// The events above changed what they should: a new unit (600 users, 12 excluded before),
	// u4 excluded; "other" and "early" are not units.
	if incremental.Users != 588 || incremental.ExcludedUsers != 13 {
		t.Fatalf("users %d, excluded %d; want 588 and 13", incremental.Users, incremental.ExcludedUsers)
	}
	// An analysis with nothing new changes nothing.
	again, err := a.Analyze(ctx, "p", "e")
	if err != nil {
		t.Fatal(err)
	}
	if figures(t, again) != figures(t, full) { // nothing recomputed, nothing rounded
		t.Fatal("an analysis with no new telemetry changed the figures")
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// nearlyEqual says whether two decoded JSON values are equal but for numbers within a relative 1e-9,
// and where they first differ.
func nearlyEqual(a, b any, path string) (string, bool) {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return path, ok && math.Abs(a-b) <= 1e-9*max(1, math.Abs(a), math.Abs(b))
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return path, false
		}
		for i := range a {
			if p, ok := nearlyEqual(a[i], b[i], fmt.Sprintf("%s[%d]", path, i)); !ok {
				return p, false
			}
		}
		return "", true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return path, false
		}
		for k := range a {
			if p, ok := nearlyEqual(a[k], b[k], path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	}
	return path, fmt.Sprint(a) == fmt.Sprint(b)
}

func firstDifference(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at row %d:\n  %s\n  %s", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}
