package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/domain"
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
