package domain_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// Fixtures of the experimentation and delivery aggregates (goals, experiments, scheduled changes,
// rollouts, auto-ops rules, triggers), on top of project acme (aggregate_fixtures_test.go).

// expCatalog is the reference data of project acme for goals, experiments and auto-ops:
//   - catalog() (environments production and staging; flags color, other, retired, ...);
//   - goals signup (conversion), clicks (count), revenue (value), errors (conversion, less is
//     better) and retired-goal (archived);
//   - experiments taken (a draft on flag other), old-color (concluded, on color, measuring signup)
//     and gone (archived, measuring clicks).
func expCatalog() *domain.ExperimentCatalog {
	c := domain.NewExperimentCatalog(catalog())
	c.Goals["signup"] = domain.GoalInfo{Kind: domain.GoalConversion}
	c.Goals["clicks"] = domain.GoalInfo{Kind: domain.GoalCount}
	c.Goals["revenue"] = domain.GoalInfo{Kind: domain.GoalValue}
	c.Goals["errors"] = domain.GoalInfo{Kind: domain.GoalConversion}
	c.Goals["retired-goal"] = domain.GoalInfo{Kind: domain.GoalCount, Archived: true}
	c.Experiments["taken"] = domain.ExperimentInfo{Flag: "other", Environment: "production",
		Status: domain.ExperimentStatusDraft, Goals: []string{"revenue"}}
	c.Experiments["old-color"] = domain.ExperimentInfo{Flag: "color", Environment: "production",
		Status: domain.ExperimentStatusConcluded, Goals: []string{"signup"}}
	c.Experiments["gone"] = domain.ExperimentInfo{Flag: "color", Environment: "production",
		Status: domain.ExperimentStatusStopped, Archived: true, Goals: []string{"clicks"}}
	return c
}

// at is a point of the test clock: t0 plus minutes.
func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

// wantError checks that err is an *domain.Error with code and field, and no events came with it.
func wantError(tb testing.TB, err error, code, field string, events ...[]domain.Event) {
	tb.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		tb.Fatalf("want error %s at %q, got %v", code, field, err)
	}
	if de.Code != code || de.Field != field {
		tb.Fatalf("want error %s at %q, got %s at %q: %v", code, field, de.Code, de.Field, err)
	}
	if de.Message == "" {
		tb.Fatalf("error without a message: %#v", de)
	}
	for _, evs := range events {
		if evs != nil {
			tb.Fatalf("error returned together with events: %s", eventsJSON(tb, evs))
		}
	}
}

// sameEvents compares event lists the way the event store would keep them.
func sameEvents(tb testing.TB, what string, got, want []domain.Event) {
	tb.Helper()
	if g, w := eventsJSON(tb, got), eventsJSON(tb, want); g != w {
		tb.Fatalf("%s differ\n got: %s\nwant: %s", what, g, w)
	}
}

// jsonOf renders a value as JSON, for comparing states.
func jsonOf(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("encode %T: %v", v, err)
	}
	return string(b)
}

// applyAll previews events on an aggregate.
func applyAll(a interface{ Apply(domain.Event) }, events []domain.Event) {
	for _, e := range events {
		a.Apply(e)
	}
}
