package domain_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
)

func TestCreateGoal(t *testing.T) {
	goal := func(mod func(*domain.NewGoal)) domain.NewGoal {
		in := domain.NewGoal{Project: project, Key: "signup", Name: "Sign-up", Kind: domain.GoalConversion}
		if mod != nil {
			mod(&in)
		}
		return in
	}
	tests := []struct {
		name        string
		in          domain.NewGoal
		then        []domain.Event
		code, field string
	}{
		{name: "conversion, direction defaults to increase", in: goal(nil),
			then: []domain.Event{&domain.GoalCreated{Project: project, Key: "signup", Name: "Sign-up",
				Kind: domain.GoalConversion, Direction: domain.GoalIncrease}}},
		{name: "count where less is better", in: goal(func(in *domain.NewGoal) {
			in.Key, in.Name, in.Description, in.Kind, in.Direction = "errors", "Errors", "client errors", domain.GoalCount, domain.GoalDecrease
		}),
			then: []domain.Event{&domain.GoalCreated{Project: project, Key: "errors", Name: "Errors", Description: "client errors",
				Kind: domain.GoalCount, Direction: domain.GoalDecrease}}},
		{name: "value with a cap", in: goal(func(in *domain.NewGoal) {
			in.Key, in.Name, in.Kind, in.ValueCap = "revenue", "Revenue", domain.GoalValue, 500
		}),
			then: []domain.Event{&domain.GoalCreated{Project: project, Key: "revenue", Name: "Revenue",
				Kind: domain.GoalValue, Direction: domain.GoalIncrease, ValueCap: 500}}},

		{name: "invalid project", in: goal(func(in *domain.NewGoal) { in.Project = "" }), code: domain.EInvalid, field: "project"},
		{name: "invalid key", in: goal(func(in *domain.NewGoal) { in.Key = "sign up" }), code: domain.EInvalid, field: "key"},
		{name: "missing name", in: goal(func(in *domain.NewGoal) { in.Name = " " }), code: domain.EInvalid, field: "name"},
		{name: "description too long", in: goal(func(in *domain.NewGoal) { in.Description = strings.Repeat("d", 2001) }),
			code: domain.EInvalid, field: "description"},
		{name: "missing kind", in: goal(func(in *domain.NewGoal) { in.Kind = "" }), code: domain.EInvalid, field: "kind"},
		{name: "unknown kind", in: goal(func(in *domain.NewGoal) { in.Kind = "duration" }), code: domain.EInvalid, field: "kind"},
		{name: "unknown direction", in: goal(func(in *domain.NewGoal) { in.Direction = "up" }), code: domain.EInvalid, field: "direction"},
		{name: "negative cap", in: goal(func(in *domain.NewGoal) { in.Kind, in.ValueCap = domain.GoalValue, -1 }),
			code: domain.EInvalid, field: "value_cap"},
		{name: "infinite cap", in: goal(func(in *domain.NewGoal) { in.Kind, in.ValueCap = domain.GoalValue, math.Inf(1) }),
			code: domain.EInvalid, field: "value_cap"},
		{name: "NaN cap", in: goal(func(in *domain.NewGoal) { in.Kind, in.ValueCap = domain.GoalValue, math.NaN() }),
			code: domain.EInvalid, field: "value_cap"},
		{name: "cap on a conversion goal", in: goal(func(in *domain.NewGoal) { in.ValueCap = 10 }), code: domain.EInvalid, field: "value_cap"},
		{name: "cap on a count goal", in: goal(func(in *domain.NewGoal) { in.Kind, in.ValueCap = domain.GoalCount, 10 }),
			code: domain.EInvalid, field: "value_cap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.CreateGoal(tc.in)
			then(t, got, err, tc.then, tc.code, tc.field)
		})
	}
}

func revenueCreated() *domain.GoalCreated {
	return &domain.GoalCreated{Project: project, Key: "revenue", Name: "Revenue", Kind: domain.GoalValue,
		Direction: domain.GoalIncrease, ValueCap: 500}
}

func TestGoalCommands(t *testing.T) {
	type when func(g *domain.Goal, cat *domain.ExperimentCatalog) ([]domain.Event, error)
	update := func(s domain.GoalSettings) when {
		return func(g *domain.Goal, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return g.Update(s) }
	}
	archive := func(g *domain.Goal, cat *domain.ExperimentCatalog) ([]domain.Event, error) { return g.Archive(cat) }
	restore := func(g *domain.Goal, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return g.Restore() }
	archived := []domain.Event{revenueCreated(), &domain.GoalArchived{}}
	signup := []domain.Event{&domain.GoalCreated{Project: project, Key: "signup", Name: "Sign-up", Kind: domain.GoalConversion, Direction: domain.GoalIncrease}}
	tests := []struct {
		name        string
		given       []domain.Event // the goal's history; revenueCreated() when nil
		cat         func(*domain.ExperimentCatalog)
		when        when
		then        []domain.Event
		code, field string
		details     map[string]any
	}{
		{name: "update", when: update(domain.GoalSettings{Name: "Gross revenue", Description: "d", Direction: domain.GoalDecrease, ValueCap: 100}),
			then: []domain.Event{&domain.GoalUpdated{Name: "Gross revenue", Description: "d", Direction: domain.GoalDecrease, ValueCap: 100}}},
		{name: "update keeps the direction when none is given and removes the cap",
			when: update(domain.GoalSettings{Name: "Revenue"}),
			then: []domain.Event{&domain.GoalUpdated{Name: "Revenue", Direction: domain.GoalIncrease}}},
		{name: "update to the same settings is a no-op", when: update(domain.GoalSettings{Name: "Revenue", ValueCap: 500})},
		{name: "update without name", when: update(domain.GoalSettings{ValueCap: 500}), code: domain.EInvalid, field: "name"},
		{name: "update with an unknown direction", when: update(domain.GoalSettings{Name: "R", Direction: "sideways"}),
			code: domain.EInvalid, field: "direction"},
		{name: "update a conversion goal with a cap", given: signup, when: update(domain.GoalSettings{Name: "S", ValueCap: 1}),
			code: domain.EInvalid, field: "value_cap"},
		{name: "update an archived goal", given: archived, when: update(domain.GoalSettings{Name: "R"}), code: domain.EConflict},
		{name: "update a missing goal", given: []domain.Event{}, when: update(domain.GoalSettings{Name: "R"}), code: domain.ENotFound},

		{name: "archive a goal only a draft elsewhere does not use", when: archive, cat: func(c *domain.ExperimentCatalog) { delete(c.Experiments, "taken") },
			then: []domain.Event{&domain.GoalArchived{}}},
		{name: "archive a goal a live draft measures", when: archive, code: domain.EConflict,
			details: map[string]any{"experiments": []string{"taken"}}},
		{name: "archive a goal running and stopped experiments measure", when: archive, code: domain.EConflict,
			cat: func(c *domain.ExperimentCatalog) {
				c.Experiments["b-run"] = domain.ExperimentInfo{Flag: "color", Environment: "staging", Status: domain.ExperimentStatusRunning, Goals: []string{"signup", "revenue"}}
				c.Experiments["a-stop"] = domain.ExperimentInfo{Flag: "color", Environment: "staging", Status: domain.ExperimentStatusStopped, Goals: []string{"revenue"}}
			},
			details: map[string]any{"experiments": []string{"a-stop", "b-run", "taken"}}},
		{name: "archive a goal only concluded and archived experiments measure", given: signup, when: archive,
			cat: func(c *domain.ExperimentCatalog) {
				c.Experiments["x"] = domain.ExperimentInfo{Status: domain.ExperimentStatusDraft, Archived: true, Goals: []string{"signup"}}
			},
			then: []domain.Event{&domain.GoalArchived{}}},
		{name: "archive with no catalog", when: func(g *domain.Goal, _ *domain.ExperimentCatalog) ([]domain.Event, error) { return g.Archive(nil) },
			then: []domain.Event{&domain.GoalArchived{}}},
		{name: "archive twice", given: archived, when: archive, code: domain.EConflict},
		{name: "archive a missing goal", given: []domain.Event{}, when: archive, code: domain.ENotFound},
		{name: "restore", given: archived, when: restore, then: []domain.Event{&domain.GoalRestored{}}},
		{name: "restore a live goal", when: restore, code: domain.EConflict},
		{name: "restore a missing goal", given: []domain.Event{}, when: restore, code: domain.ENotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			given := tc.given
			if given == nil {
				given = []domain.Event{revenueCreated()}
			}
			cat := expCatalog()
			if tc.cat != nil {
				tc.cat(cat)
			}
			var g *domain.Goal
			if len(given) > 0 {
				var err error
				if g, err = domain.FoldGoal(record(t, "goal/acme/x", given...)); err != nil {
					t.Fatal(err)
				}
			}
			before := jsonOf(t, g)
			got, err := tc.when(g, cat)
			then(t, got, err, tc.then, tc.code, tc.field)
			if tc.details != nil {
				var de *domain.Error
				errors.As(err, &de)
				if !reflect.DeepEqual(de.Details, tc.details) {
					t.Fatalf("details %v, want %v", de.Details, tc.details)
				}
			}
			if jsonOf(t, g) != before {
				t.Fatalf("the command mutated the goal")
			}
			if g != nil {
				applyAll(g, got)
				if g.Version != int64(len(given)+len(got)) {
					t.Fatalf("version after apply %d", g.Version)
				}
			}
		})
	}
}

func TestFoldGoal(t *testing.T) {
	g, err := domain.FoldGoal(record(t, domain.GoalStream(project, "revenue"),
		revenueCreated(),
		&domain.GoalUpdated{Name: "Net revenue", Direction: domain.GoalIncrease, ValueCap: 250},
		&domain.GoalArchived{},
		&domain.GoalRestored{},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := domain.Goal{Project: project, Key: "revenue", Name: "Net revenue", Kind: domain.GoalValue,
		Direction: domain.GoalIncrease, ValueCap: 250, Version: 4, CreatedAt: t0, UpdatedAt: at(3)}
	if !reflect.DeepEqual(*g, want) {
		t.Fatalf("got  %+v\nwant %+v", *g, want)
	}
	if got := domain.GoalInfoOf(g); got != (domain.GoalInfo{Kind: domain.GoalValue}) {
		t.Errorf("goal info %+v", got)
	}
	if g, err := domain.FoldGoal(nil); g != nil || err != nil {
		t.Fatalf("empty stream: %v %v", g, err)
	}
	for name, stream := range map[string][]domain.RecordedEvent{
		"no creation event":          record(t, "goal/acme/x", &domain.GoalArchived{}),
		"created twice":              record(t, "goal/acme/x", revenueCreated(), revenueCreated()),
		"event of another aggregate": record(t, "goal/acme/x", revenueCreated(), &domain.FlagArchived{}),
	} {
		if _, err := domain.FoldGoal(stream); err == nil {
			t.Errorf("%s: folded without error", name)
		}
	}
}
