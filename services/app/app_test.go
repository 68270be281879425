package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
)

const project = "shop"

// newApp is the application layer over a fresh migrated database with a project, without
// projector or Redis: commands validate against the event store, never the read models.
func newApp(t *testing.T) (*app.Application, *postgres.EventStore) {
	t.Helper()
	ctx := context.Background()
	pool, store := pgtest.NewEventStore(t, postgres.WithInlineProjections(access.Projection{}))
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Commands.CreateProject(ctx, person, app.CreateProject{Key: project, Name: "Shop"}); err != nil {
		t.Fatal(err)
	}
	return a, store
}

var person = app.Meta{Actor: "token:t1", Reason: "test", RequestID: "req-1"}

func createFlag(t *testing.T, a *app.Application, key string) *domain.Flag {
	t.Helper()
	f, v, err := a.Commands.CreateFlag(context.Background(), person, app.CreateFlag{Project: project, Key: key, Name: key,
		Type: domain.FlagBoolean, ClientSide: true})
	if err != nil {
		t.Fatal(err)
	}
	if v != 1 || f.Key != key || f.Salt == "" {
		t.Fatalf("created flag %+v at version %d", f, v)
	}
	return f
}

func TestNewFailsFastOnMissingDependencies(t *testing.T) {
	if _, err := app.New(app.Config{}); err == nil {
		t.Fatal("New with nothing: no error")
	}
}

func TestCommandsReturnTypedAggregatesAndHonourExpectedVersions(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "banner")

	f, v, err := a.Commands.ToggleFlag(ctx, person, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production", On: true})
	if err != nil || v != 2 || !f.ConfigFor("production").Targeting.On {
		t.Fatalf("toggle: version %d, err %v", v, err)
	}

	stale := person
	stale.Expected = app.Version(1)
	_, _, err = a.Commands.ToggleFlag(ctx, stale, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production"})
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EConflict || de.Details["current_version"] != int64(2) || !app.IsVersionConflict(err) {
		t.Fatalf("stale expected version: %v (%#v)", err, de)
	}

	current := person
	current.Expected = app.Version(2)
	if _, v, err = a.Commands.ToggleFlag(ctx, current, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production"}); err != nil || v != 3 {
		t.Fatalf("current expected version: version %d, err %v", v, err)
	}

	_, _, err = a.Commands.CreateFlag(ctx, person, app.CreateFlag{Project: project, Key: "banner", Name: "again", Type: domain.FlagBoolean})
	if !errors.As(err, &de) || de.Code != domain.EConflict || de.Field != "key" || !strings.Contains(de.Message, "already exists") {
		t.Fatalf("a taken key: %v", err)
	}

	_, _, err = a.Commands.ToggleFlag(ctx, person, app.ToggleFlag{Project: project, Flag: "nope", Environment: "production"})
	if domain.ErrorCode(err) != domain.ENotFound {
		t.Fatalf("a missing flag: %v", err)
	}
	if _, _, err := a.Queries.Flag(ctx, project, "nope"); domain.ErrorCode(err) != domain.ENotFound {
		t.Fatalf("query of a missing flag: %v", err)
	}
	got, v, err := a.Queries.Flag(ctx, project, "banner")
	if err != nil || v != 3 || got.ConfigFor("production").Targeting.On {
		t.Fatalf("query: %+v at %d, %v", got, v, err)
	}
}

func TestACommandIDHappensOnce(t *testing.T) {
	t.Parallel()
	a, store := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "banner")
	m := person
	m.CommandID = "rollout-1:step:0"
	if _, _, err := a.Commands.ToggleFlag(ctx, m, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production", On: true}); err != nil {
		t.Fatal(err)
	}
	_, _, err := a.Commands.ToggleFlag(ctx, m, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production", On: false})
	if !app.IsDuplicateCommand(err) || app.IsVersionConflict(err) {
		t.Fatalf("the same command id again: %v", err)
	}
	events, err := store.Load(ctx, domain.FlagStream(project, "banner"))
	if err != nil || len(events) != 2 {
		t.Fatalf("events: %d, %v", len(events), err)
	}
}

// A writer that appends between the command's load and its append makes the append conflict:
// people get the conflict (409), the system's actors decide again on the new state.
func TestRetriesDecideAgainOnTheNewState(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "banner")
	for _, retries := range []int{0, 1} {
		edits := 0
		m := person
		m.Retries = retries
		_, _, err := a.Commands.UpdateFlag(ctx, m, app.UpdateFlag{Project: project, Flag: "banner",
			Edit: func(cur domain.FlagSettings) (domain.FlagSettings, error) {
				edits++
				if edits == 1 { // a concurrent writer, between this command's load and its append
					if _, _, err := a.Commands.ToggleFlag(ctx, person, app.ToggleFlag{Project: project, Flag: "banner",
						Environment: "development", On: retries == 0}); err != nil {
						return cur, err
					}
				}
				cur.Name = "Renamed"
				return cur, nil
			}})
		switch {
		case retries == 0 && (!app.IsVersionConflict(err) || edits != 1):
			t.Fatalf("no retries: %v after %d decisions, want a version conflict after 1", err, edits)
		case retries == 1 && (err != nil || edits != 2):
			t.Fatalf("one retry: %v after %d decisions, want success after 2", err, edits)
		}
	}
	f, _, err := a.Queries.Flag(ctx, project, "banner")
	if err != nil || f.Name != "Renamed" {
		t.Fatalf("after the retried update: %+v, %v", f, err)
	}
	// With an expected version nothing is retried: the caller asked for that version.
	m := person
	m.Retries, m.Expected = 3, app.Version(1)
	if _, _, err := a.Commands.ToggleFlag(ctx, m, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production"}); !app.IsVersionConflict(err) {
		t.Fatalf("expected version and retries: %v", err)
	}
}

func TestMetaIsRecordedOnEveryEventWithTheReasonCutAtACharacter(t *testing.T) {
	t.Parallel()
	a, store := newApp(t)
	ctx := context.Background()
	m := person
	m.Reason = strings.Repeat("a", app.MaxReasonLength-1) + "é and more"
	if _, _, err := a.Commands.CreateFlag(ctx, m, app.CreateFlag{Project: project, Key: "banner", Name: "Banner",
		Type: domain.FlagBoolean}); err != nil {
		t.Fatal(err)
	}
	events, err := store.Load(ctx, domain.FlagStream(project, "banner"))
	if err != nil || len(events) == 0 {
		t.Fatalf("events: %v", err)
	}
	md := events[0].Metadata
	if md.Actor != "token:t1" || md.RequestID != "req-1" || md.Reason != strings.Repeat("a", app.MaxReasonLength-1) {
		t.Fatalf("metadata: actor %q request %q reason of %d bytes", md.Actor, md.RequestID, len(md.Reason))
	}
}

// The catalog commands validate against is current without any projector: a segment created a
// moment ago can be used at once.
func TestCommandsValidateAgainstTheEventStore(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "banner")
	if _, _, err := a.Commands.CreateSegment(ctx, person, app.CreateSegment{Project: project, Key: "beta",
		Definition: domain.SegmentDefinition{Name: "Beta", Included: []string{"u1"}}}); err != nil {
		t.Fatal(err)
	}
	t2 := domain.Targeting{On: true, OffVariation: "false", Default: domain.Serve{Variation: "false"},
		Rules: []domain.Rule{{Clauses: []domain.Clause{{Operator: domain.OpInSegment, Values: []any{"beta"}}},
			Serve: domain.Serve{Variation: "true"}}}}
	f, _, err := a.Commands.UpdateTargeting(ctx, person, app.UpdateTargeting{Project: project, Flag: "banner",
		Environment: "production", Targeting: t2})
	if err != nil || len(f.ConfigFor("production").Targeting.Rules) != 1 {
		t.Fatalf("targeting with a new segment: %v", err)
	}
	if _, _, err := a.Commands.ArchiveSegment(ctx, person, app.ArchiveSegment{Project: project, Segment: "beta"}); domain.ErrorCode(err) == "" {
		t.Fatal("archived a segment a flag uses")
	}
}
