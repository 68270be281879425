package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/changerequests"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/app"
)

var (
	alice = app.Meta{Actor: "user:alice", Reason: "turn the banner on for the launch"}
	bob   = app.Meta{Actor: "user:bob"}
	carol = app.Meta{Actor: "user:carol"}
)

func protect(t *testing.T, a *app.Application, env string, p *domain.Protection) {
	t.Helper()
	if _, err := a.Commands.SetEnvironmentProtection(context.Background(), person,
		app.SetEnvironmentProtection{Project: project, Environment: env, Protection: p}); err != nil {
		t.Fatal(err)
	}
}

// The four-eyes flow in the application layer: a person's toggle in a protected environment opens
// a change request and changes nothing; its author cannot approve it; another editor approves and
// it applies through the same command; the system's actors and webhook triggers bypass it.
func TestProtectedEnvironmentTurnsAToggleIntoAChangeRequest(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "banner")
	protect(t, a, "production", &domain.Protection{}) // defaults: 1 approval, editors approve

	env, err := a.Queries.Environment(ctx, project, "production")
	if err != nil || env.Protection == nil || env.Protection.RequiredApprovals != 1 || env.Protection.ApproverRole != domain.ApproverEditor {
		t.Fatalf("protection defaults: %+v, %v", env, err)
	}

	// An unprotected environment changes at once.
	if _, _, err := a.Commands.ToggleFlag(ctx, alice, app.ToggleFlag{Project: project, Flag: "banner", Environment: "development", On: true}); err != nil {
		t.Fatalf("toggle in development: %v", err)
	}

	_, _, err = a.Commands.ToggleFlag(ctx, alice, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production", On: true})
	pending, ok := app.AsPending(err)
	if !ok {
		t.Fatalf("toggle in production: %v, want a change request", err)
	}
	r := pending.Request
	if r.Status != domain.RequestOpen || r.Author != "user:alice" || r.Flag != "banner" || r.Environment != "production" ||
		r.Change.Command != "ToggleFlag" || r.BaseVersion != 2 || r.Reason != alice.Reason {
		t.Fatalf("request: %+v", r)
	}
	if compact(r.After) != `{"environments":{"production":{"on":true}}}` || compact(r.Before) != `{"environments":{"production":{"on":false}}}` {
		t.Fatalf("diff: before %s after %s", r.Before, r.After)
	}
	f, v, _ := a.Queries.Flag(ctx, project, "banner")
	if v != 2 || f.ConfigFor("production").Targeting.On {
		t.Fatalf("the flag changed before approval: v%d", v)
	}
	ref := app.ChangeRequestRef{Project: project, ID: r.ID}

	// Not approved yet: it does not apply.
	if _, _, err := a.Commands.ApplyChangeRequest(ctx, alice, app.ApplyChangeRequest(ref)); domain.ErrorCode(err) != domain.EConflict {
		t.Fatalf("apply before approval: %v", err)
	}
	// The author cannot approve; a viewer cannot either.
	if _, _, err := a.Commands.ApproveChangeRequest(ctx, alice, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"}); domain.ErrorCode(err) != domain.EForbidden {
		t.Fatalf("author approves: %v", err)
	}
	if _, _, err := a.Commands.ApproveChangeRequest(ctx, carol, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "viewer"}); domain.ErrorCode(err) != domain.EForbidden {
		t.Fatalf("viewer approves: %v", err)
	}
	if _, _, err := a.Commands.CommentChangeRequest(ctx, bob, app.CommentChangeRequest{ChangeRequestRef: ref, Text: "looks right"}); err != nil {
		t.Fatal(err)
	}
	r, _, err = a.Commands.ApproveChangeRequest(ctx, bob, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"})
	if err != nil || r.Status != domain.RequestApproved || len(r.Approvals) != 1 || r.Approvals[0].By != "user:bob" || len(r.Comments) != 1 {
		t.Fatalf("approve: %+v, %v", r, err)
	}
	r, _, err = a.Commands.ApplyChangeRequest(ctx, alice, app.ApplyChangeRequest(ref))
	if err != nil || r.Status != domain.RequestApplied || r.AppliedVersion != 3 {
		t.Fatalf("apply: %+v, %v", r, err)
	}
	f, v, _ = a.Queries.Flag(ctx, project, "banner")
	if v != 3 || !f.ConfigFor("production").Targeting.On {
		t.Fatalf("after apply: v%d on=%v", v, f.ConfigFor("production").Targeting.On)
	}
	if _, _, err := a.Commands.ApplyChangeRequest(ctx, alice, app.ApplyChangeRequest(ref)); domain.ErrorCode(err) != domain.EConflict {
		t.Fatalf("apply twice: %v", err)
	}

	// Auto-ops' kill switch and webhook triggers bypass approval (their events name them).
	for _, m := range []app.Meta{{Actor: "system:autoops/r1"}, {Actor: "trigger:tr1"}} {
		on := m.Actor == "trigger:tr1"
		if _, _, err := a.Commands.ToggleFlag(ctx, m, app.ToggleFlag{Project: project, Flag: "banner", Environment: "production", On: on}); err != nil {
			t.Fatalf("%s toggles a protected environment: %v", m.Actor, err)
		}
	}
}

// A request whose flag changed meanwhile refuses to apply with the new diff; rebased, it needs
// its approvals again and then applies.
func TestChangeRequestOnAMovedFlagNeedsARebase(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "checkout")
	protect(t, a, "production", &domain.Protection{RequiredApprovals: 2, ApproverRole: domain.ApproverEditor})

	tg := domain.Targeting{On: true, OffVariation: "false", Default: domain.Serve{Variation: "false"}}
	_, _, err := a.Commands.UpdateTargeting(ctx, alice, app.UpdateTargeting{Project: project, Flag: "checkout", Environment: "production", Targeting: tg})
	pending, ok := app.AsPending(err)
	if !ok {
		t.Fatalf("targeting in production: %v", err)
	}
	ref := app.ChangeRequestRef{Project: project, ID: pending.Request.ID}
	for _, m := range []app.Meta{bob, carol} {
		if _, _, err := a.Commands.ApproveChangeRequest(ctx, m, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"}); err != nil {
			t.Fatal(err)
		}
	}
	// Meanwhile a webhook trigger turns the flag on in production (bypassing approval).
	if _, _, err := a.Commands.ToggleFlag(ctx, app.Meta{Actor: "trigger:tr1"}, app.ToggleFlag{Project: project, Flag: "checkout", Environment: "production", On: true}); err != nil {
		t.Fatal(err)
	}
	_, _, err = a.Commands.ApplyChangeRequest(ctx, alice, app.ApplyChangeRequest(ref))
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EConflict || de.Details["rebase"] != true || de.Details["current_version"] != int64(2) {
		t.Fatalf("apply on a moved flag: %v %#v", err, de)
	}
	// The new diff no longer turns the flag on (it is on already): only the default changes.
	before, _ := json.Marshal(de.Details["before"])
	after, _ := json.Marshal(de.Details["after"])
	if strings.Contains(string(after), `"on":true`) || !strings.Contains(string(after), `"default":{"variation":"false"}`) ||
		!strings.Contains(compact(pending.Request.After), `"on":true`) {
		t.Fatalf("new diff: before %s after %s (the request's: %s)", before, after, pending.Request.After)
	}
	if f, v, _ := a.Queries.Flag(ctx, project, "checkout"); v != 2 || f.ConfigFor("production").Targeting.Default.Variation == "false" {
		t.Fatal("the refused request changed the flag")
	}

	r, _, err := a.Commands.RebaseChangeRequest(ctx, alice, app.RebaseChangeRequest(ref))
	if err != nil || r.BaseVersion != 2 || r.Status != domain.RequestOpen || len(r.Approvals) != 0 || r.Rebased != 1 {
		t.Fatalf("rebase: %+v, %v", r, err)
	}
	for _, m := range []app.Meta{bob, carol} {
		if _, _, err := a.Commands.ApproveChangeRequest(ctx, m, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "admin"}); err != nil {
			t.Fatal(err)
		}
	}
	if r, _, err = a.Commands.ApplyChangeRequest(ctx, bob, app.ApplyChangeRequest(ref)); err != nil || r.Status != domain.RequestApplied {
		t.Fatalf("apply after rebase: %+v %v", r, err)
	}
	if f, _, _ := a.Queries.Flag(ctx, project, "checkout"); f.ConfigFor("production").Targeting.Default.Variation != "false" {
		t.Fatal("the rebased request did not apply its targeting")
	}
}

// compact is JSON without insignificant space (the event store keeps jsonb, which adds some).
func compact(b json.RawMessage) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// An approved request scheduled for a time is applied by the scheduler's pass once due (as the
// system actor of the request), and not before.
func TestScheduledChangeRequestAppliesWhenDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, store := pgtest.NewEventStore(t, postgres.WithInlineProjections(access.Projection{}))
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	a, err := app.New(app.Config{Store: store, Pool: pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Commands.CreateProject(ctx, person, app.CreateProject{Key: project, Name: "Shop"}); err != nil {
		t.Fatal(err)
	}
	createFlag(t, a, "sale")
	protect(t, a, "production", &domain.Protection{})
	_, _, err = a.Commands.ToggleFlag(ctx, alice, app.ToggleFlag{Project: project, Flag: "sale", Environment: "production", On: true})
	pending, ok := app.AsPending(err)
	if !ok {
		t.Fatalf("toggle: %v", err)
	}
	ref := app.ChangeRequestRef{Project: project, ID: pending.Request.ID}
	at := now.Add(time.Hour)
	if _, _, err := a.Commands.ScheduleChangeRequest(ctx, alice, app.ScheduleChangeRequest{ChangeRequestRef: ref, ApplyAt: at}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Commands.ApproveChangeRequest(ctx, bob, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"}); err != nil {
		t.Fatal(err)
	}
	// The read model the scheduler reads (no projector runs here: fold the stream into it).
	foldReadModel := func() {
		t.Helper()
		events, err := store.Load(ctx, domain.ChangeRequestStream(project, ref.ID))
		if err != nil {
			t.Fatal(err)
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if err := (changerequests.Projection{}).Apply(ctx, tx, nil, events); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	foldReadModel()
	if n, err := a.Commands.ApplyDueChangeRequests(ctx, at.Add(-time.Second)); err != nil || n != 0 {
		t.Fatalf("before it is due: %d applied, %v", n, err)
	}
	if n, err := a.Commands.ApplyDueChangeRequests(ctx, at); err != nil || n != 1 {
		t.Fatalf("when due: %d applied, %v", n, err)
	}
	foldReadModel()
	r, _, _ := a.Queries.ChangeRequest(ctx, ref.Project, ref.ID)
	f, _, _ := a.Queries.Flag(ctx, ref.Project, "sale")
	if r.Status != domain.RequestApplied || r.ResolvedBy != "system:changerequest/"+ref.ID || !f.ConfigFor("production").Targeting.On {
		t.Fatalf("after the pass: %s by %s, on=%v", r.Status, r.ResolvedBy, f.ConfigFor("production").Targeting.On)
	}
	list, err := a.Queries.ListChangeRequests(ctx, changerequests.ListQuery{Project: ref.Project, Flag: "sale", Pending: true})
	if err != nil || len(list) != 0 {
		t.Fatalf("still pending: %v %v", list, err)
	}
}

// Schedules and rollouts would be carried out by the scheduler past approval: in a protected
// environment a person's schedule, its cancellation, a rollout and its pause become change
// requests like a toggle; another person approves and they apply through the same commands.
func TestProtectedEnvironmentTurnsSchedulesAndRolloutsIntoChangeRequests(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "promo")
	protect(t, a, "production", &domain.Protection{})
	on := true

	// approveAndApply: the author cannot approve; bob approves; the author applies.
	approveAndApply := func(t *testing.T, err error, command string) *domain.ChangeRequest {
		t.Helper()
		pending, ok := app.AsPending(err)
		if !ok {
			t.Fatalf("%s in production: %v, want a change request", command, err)
		}
		r := pending.Request
		if r.Change.Command != command || r.Flag != "promo" || r.Environment != "production" || r.Author != "user:alice" || len(r.After) == 0 {
			t.Fatalf("%s request: %+v", command, r)
		}
		ref := app.ChangeRequestRef{Project: project, ID: r.ID}
		if _, _, err := a.Commands.ApproveChangeRequest(ctx, alice, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"}); domain.ErrorCode(err) != domain.EForbidden {
			t.Fatalf("the author approves %s: %v", command, err)
		}
		if _, _, err := a.Commands.ApproveChangeRequest(ctx, bob, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"}); err != nil {
			t.Fatalf("approve %s: %v", command, err)
		}
		r, _, err = a.Commands.ApplyChangeRequest(ctx, alice, app.ApplyChangeRequest(ref))
		if err != nil || r.Status != domain.RequestApplied {
			t.Fatalf("apply %s: %+v, %v", command, r, err)
		}
		return r
	}

	// A schedule: nothing is scheduled before approval; after it, the schedule the request named.
	_, _, err := a.Commands.ScheduleChange(ctx, alice, app.ScheduleChange{Project: project, Flag: "promo", Env: "production",
		Change: app.ChangeSpec{At: time.Now().Add(time.Hour), Kind: domain.ChangeToggle, On: &on}})
	pending, _ := app.AsPending(err)
	var scheduleID string
	if pending != nil {
		var payload app.ScheduleChange
		if err := json.Unmarshal(pending.Request.Change.Payload, &payload); err != nil || payload.ID == "" {
			t.Fatalf("the request's schedule: %s, %v", pending.Request.Change.Payload, err)
		}
		scheduleID = payload.ID
		if _, _, err := a.Queries.ScheduledChange(ctx, project, scheduleID); domain.ErrorCode(err) != domain.ENotFound {
			t.Fatalf("the schedule exists before approval: %v", err)
		}
		if !strings.Contains(compact(pending.Request.After), `"status":"pending"`) {
			t.Fatalf("the schedule's diff: %s", pending.Request.After)
		}
	}
	approveAndApply(t, err, "ScheduleChange")
	sc, _, err := a.Queries.ScheduledChange(ctx, project, scheduleID)
	if err != nil || sc.Status != domain.ScheduleStatusPending || sc.Environment != "production" || !sc.On {
		t.Fatalf("the approved schedule: %+v, %v", sc, err)
	}
	// Cancelling it is a change request too.
	_, _, err = a.Commands.CancelSchedule(ctx, alice, app.CancelSchedule{Project: project, ID: scheduleID})
	if sc, _, _ := a.Queries.ScheduledChange(ctx, project, scheduleID); sc.Status != domain.ScheduleStatusPending {
		t.Fatalf("cancelled before approval: %s", sc.Status)
	}
	approveAndApply(t, err, "CancelSchedule")
	if sc, _, _ := a.Queries.ScheduledChange(ctx, project, scheduleID); sc.Status != domain.ScheduleStatusCancelled {
		t.Fatalf("after the approved cancellation: %s", sc.Status)
	}

	// A rollout, then its pause.
	_, _, err = a.Commands.CreateRollout(ctx, alice, app.CreateRollout{Project: project, Flag: "promo", Env: "production",
		Steps: []domain.RolloutStep{{At: time.Now().Add(time.Hour), Percent: 50}, {At: time.Now().Add(2 * time.Hour), Percent: 100}}})
	created := approveAndApply(t, err, "CreateRollout")
	var payload app.CreateRollout
	if err := json.Unmarshal(created.Change.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	ro, rv, err := a.Queries.Rollout(ctx, project, payload.ID)
	if err != nil || ro.Status != domain.RolloutStatusScheduled {
		t.Fatalf("the approved rollout: %+v, %v", ro, err)
	}
	_, _, err = a.Commands.PauseRollout(ctx, alice, app.PauseRollout{Project: project, ID: ro.ID, Reason: "checkout errors"})
	if ro, v, _ := a.Queries.Rollout(ctx, project, payload.ID); v != rv || ro.Status == domain.RolloutStatusPaused {
		t.Fatalf("paused before approval: v%d %s", v, ro.Status)
	}
	paused := approveAndApply(t, err, "PauseRollout")
	if paused.BaseVersion != rv || !strings.Contains(compact(paused.After), `"status":"paused"`) {
		t.Fatalf("the pause's request: base %d (rollout v%d), after %s", paused.BaseVersion, rv, paused.After)
	}
	if ro, _, _ := a.Queries.Rollout(ctx, project, payload.ID); ro.Status != domain.RolloutStatusPaused {
		t.Fatalf("after the approved pause: %s", ro.Status)
	}

	// The system's actors (auto-ops, the scheduler) and other environments act at once.
	if _, _, err := a.Commands.ResumeRollout(ctx, app.Meta{Actor: "system:autoops/r1"}, app.ResumeRollout{Project: project, ID: ro.ID}); err != nil {
		t.Fatalf("the system resumes: %v", err)
	}
	if _, _, err := a.Commands.ScheduleChange(ctx, alice, app.ScheduleChange{Project: project, Flag: "promo", Env: "development",
		Change: app.ChangeSpec{At: time.Now().Add(time.Hour), Kind: domain.ChangeToggle, On: &on}}); err != nil {
		t.Fatalf("a schedule in development: %v", err)
	}
}

// A request on a rollout that moved meanwhile (the system paused it) refuses to apply with the
// new diff; an edit of a schedule is a request whose diff is the schedule's change.
func TestChangeRequestOnAMovedRolloutNeedsARebase(t *testing.T) {
	t.Parallel()
	a, _ := newApp(t)
	ctx := context.Background()
	createFlag(t, a, "promo")
	protect(t, a, "production", &domain.Protection{})
	system := app.Meta{Actor: "system:seed"}
	on, off := true, false
	ro, _, err := a.Commands.CreateRollout(ctx, system, app.CreateRollout{Project: project, Flag: "promo", Env: "production",
		Steps: []domain.RolloutStep{{At: time.Now().Add(time.Hour), Percent: 100}}})
	if err != nil {
		t.Fatalf("the system's rollout: %v", err)
	}
	_, _, err = a.Commands.AbortRollout(ctx, alice, app.AbortRollout{Project: project, ID: ro.ID, Reason: "wrong variation"})
	pending, ok := app.AsPending(err)
	if !ok || !strings.Contains(compact(pending.Request.After), `"status":"aborted"`) {
		t.Fatalf("abort in production: %v", err)
	}
	ref := app.ChangeRequestRef{Project: project, ID: pending.Request.ID}
	if _, _, err := a.Commands.ApproveChangeRequest(ctx, bob, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Commands.PauseRollout(ctx, app.Meta{Actor: "system:autoops/r1"}, app.PauseRollout{Project: project, ID: ro.ID, Reason: "errors"}); err != nil {
		t.Fatalf("auto-ops pauses: %v", err)
	}
	_, _, err = a.Commands.ApplyChangeRequest(ctx, alice, app.ApplyChangeRequest(ref))
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.EConflict || de.Details["rebase"] != true || !strings.Contains(de.Message, "rollout changed") {
		t.Fatalf("apply on a moved rollout: %v", err)
	}
	if _, _, err := a.Commands.RebaseChangeRequest(ctx, alice, app.RebaseChangeRequest(ref)); err != nil {
		t.Fatalf("rebase: %v", err)
	}
	if _, _, err := a.Commands.ApproveChangeRequest(ctx, carol, app.ReviewChangeRequest{ChangeRequestRef: ref, Role: "editor"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Commands.ApplyChangeRequest(ctx, alice, app.ApplyChangeRequest(ref)); err != nil {
		t.Fatalf("apply after the rebase: %v", err)
	}
	if ro, _, _ := a.Queries.Rollout(ctx, project, ro.ID); ro.Status != domain.RolloutStatusAborted {
		t.Fatalf("after the approved abort: %s", ro.Status)
	}

	sc, _, err := a.Commands.ScheduleChange(ctx, system, app.ScheduleChange{Project: project, Flag: "promo", Env: "production",
		Change: app.ChangeSpec{At: time.Now().Add(time.Hour), Kind: domain.ChangeToggle, On: &on}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = a.Commands.EditSchedule(ctx, alice, app.EditSchedule{Project: project, ID: sc.ID,
		Change: app.ChangeSpec{At: sc.At, Kind: domain.ChangeToggle, On: &off}})
	pending, ok = app.AsPending(err)
	if !ok || pending.Request.Change.Command != "EditSchedule" || compact(pending.Request.Before) != `{"on":true}` {
		t.Fatalf("edit in production: %v (after %s)", err, pending.Request.After)
	}
	if sc, _, _ := a.Queries.ScheduledChange(ctx, project, sc.ID); !sc.On {
		t.Fatal("the schedule changed before approval")
	}
}
