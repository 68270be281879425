package web

// The progressive-delivery part of the console's door to the application (see commands.go):
// scheduled changes, rollouts, auto-ops rules and webhook triggers, all through the application
// layer's commands, as the REST API and the scheduler run them.

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

// DeliveryCommands is what the progressive-delivery pages ask of the application. Errors are as
// in Commands; expected is AnyVersion to skip the version check.
type DeliveryCommands interface {
	Schedules(ctx context.Context, q delivery.ListQuery) ([]*domain.ScheduledChange, string, error)
	Schedule(ctx context.Context, project, id string) (*domain.ScheduledChange, error)
	ScheduleChange(ctx context.Context, meta domain.Metadata, in app.ScheduleChange) (*domain.ScheduledChange, error)
	EditSchedule(ctx context.Context, meta domain.Metadata, expected int64, in app.EditSchedule) (*domain.ScheduledChange, error)
	CancelSchedule(ctx context.Context, meta domain.Metadata, expected int64, project, id string) (*domain.ScheduledChange, error)

	Rollouts(ctx context.Context, q delivery.ListQuery) ([]*domain.Rollout, string, error)
	Rollout(ctx context.Context, project, id string) (*domain.Rollout, error)
	CreateRollout(ctx context.Context, meta domain.Metadata, in app.CreateRollout) (*domain.Rollout, error)
	PauseRollout(ctx context.Context, meta domain.Metadata, expected int64, project, id string) (*domain.Rollout, error)
	ResumeRollout(ctx context.Context, meta domain.Metadata, expected int64, project, id string) (*domain.Rollout, error)
	AbortRollout(ctx context.Context, meta domain.Metadata, expected int64, project, id string) (*domain.Rollout, error)

	AutoOpsRules(ctx context.Context, q delivery.ListQuery) ([]*domain.AutoOpsRule, string, error)
	AutoOpsRule(ctx context.Context, project, id string) (*domain.AutoOpsRule, error)
	// AutoOpsFirings are a rule's firings, newest first (at most limit).
	AutoOpsFirings(ctx context.Context, project, id string, limit int) ([]delivery.Firing, error)
	// AutoOpsGoals are the project's live goals (what a rule can watch).
	AutoOpsGoals(ctx context.Context, project string) ([]*domain.Goal, error)
	CreateAutoOpsRule(ctx context.Context, meta domain.Metadata, in app.CreateAutoOpsRule) (*domain.AutoOpsRule, error)
	SetAutoOpsRuleEnabled(ctx context.Context, meta domain.Metadata, expected int64, project, id string, enabled bool) (*domain.AutoOpsRule, error)

	Triggers(ctx context.Context, q delivery.ListQuery) ([]delivery.TriggerSummary, string, error)
	CreateTrigger(ctx context.Context, meta domain.Metadata, in app.CreateTrigger) (app.TriggerWithSecret, error)
	RotateTrigger(ctx context.Context, meta domain.Metadata, expected int64, project, id string) (app.TriggerWithSecret, error)
	SetTriggerEnabled(ctx context.Context, meta domain.Metadata, expected int64, project, id string, enabled bool) (*domain.Trigger, error)
}

var _ DeliveryCommands = (*AppCommands)(nil)

// Schedules lists a page of scheduled changes by due time.
func (a *AppCommands) Schedules(ctx context.Context, q delivery.ListQuery) ([]*domain.ScheduledChange, string, error) {
	return a.app.Queries.ListSchedules(ctx, q)
}

// Schedule loads a scheduled change from its events.
func (a *AppCommands) Schedule(ctx context.Context, project, id string) (*domain.ScheduledChange, error) {
	sc, _, err := a.app.Queries.ScheduledChange(ctx, project, id)
	return sc, err
}

// ScheduleChange schedules a change.
func (a *AppCommands) ScheduleChange(ctx context.Context, m domain.Metadata, in app.ScheduleChange) (*domain.ScheduledChange, error) {
	sc, _, err := a.app.Commands.ScheduleChange(ctx, appMeta(m, AnyVersion), in)
	return sc, err
}

// EditSchedule replaces what a pending change will do.
func (a *AppCommands) EditSchedule(ctx context.Context, m domain.Metadata, expected int64, in app.EditSchedule) (*domain.ScheduledChange, error) {
	sc, _, err := a.app.Commands.EditSchedule(ctx, appMeta(m, expected), in)
	return sc, err
}

// CancelSchedule cancels a pending change.
func (a *AppCommands) CancelSchedule(ctx context.Context, m domain.Metadata, expected int64, project, id string) (*domain.ScheduledChange, error) {
	sc, _, err := a.app.Commands.CancelSchedule(ctx, appMeta(m, expected), app.CancelSchedule{Project: project, ID: id})
	return sc, err
}

// Rollouts lists a page of rollouts.
func (a *AppCommands) Rollouts(ctx context.Context, q delivery.ListQuery) ([]*domain.Rollout, string, error) {
	return a.app.Queries.ListRollouts(ctx, q)
}

// Rollout loads a rollout from its events.
func (a *AppCommands) Rollout(ctx context.Context, project, id string) (*domain.Rollout, error) {
	r, _, err := a.app.Queries.Rollout(ctx, project, id)
	return r, err
}

// CreateRollout starts a rollout.
func (a *AppCommands) CreateRollout(ctx context.Context, m domain.Metadata, in app.CreateRollout) (*domain.Rollout, error) {
	r, _, err := a.app.Commands.CreateRollout(ctx, appMeta(m, AnyVersion), in)
	return r, err
}

// PauseRollout pauses a rollout; the reason typed in the form is the pause's reason.
func (a *AppCommands) PauseRollout(ctx context.Context, m domain.Metadata, expected int64, project, id string) (*domain.Rollout, error) {
	r, _, err := a.app.Commands.PauseRollout(ctx, appMeta(m, expected), app.PauseRollout{Project: project, ID: id, Reason: m.Reason})
	return r, err
}

// ResumeRollout resumes a paused rollout.
func (a *AppCommands) ResumeRollout(ctx context.Context, m domain.Metadata, expected int64, project, id string) (*domain.Rollout, error) {
	r, _, err := a.app.Commands.ResumeRollout(ctx, appMeta(m, expected), app.ResumeRollout{Project: project, ID: id})
	return r, err
}

// AbortRollout aborts a rollout, restoring the flag's default serve from before it.
func (a *AppCommands) AbortRollout(ctx context.Context, m domain.Metadata, expected int64, project, id string) (*domain.Rollout, error) {
	r, _, err := a.app.Commands.AbortRollout(ctx, appMeta(m, expected), app.AbortRollout{Project: project, ID: id, Reason: m.Reason})
	return r, err
}

// AutoOpsRules lists a page of auto-ops rules.
func (a *AppCommands) AutoOpsRules(ctx context.Context, q delivery.ListQuery) ([]*domain.AutoOpsRule, string, error) {
	return a.app.Queries.ListAutoOpsRules(ctx, q)
}

// AutoOpsRule loads a rule from its events.
func (a *AppCommands) AutoOpsRule(ctx context.Context, project, id string) (*domain.AutoOpsRule, error) {
	r, _, err := a.app.Queries.AutoOpsRule(ctx, project, id)
	return r, err
}

// AutoOpsFirings reads a rule's newest firings from the delivery read model.
func (a *AppCommands) AutoOpsFirings(ctx context.Context, project, id string, limit int) ([]delivery.Firing, error) {
	f, _, err := a.app.Queries.ListAutoOpsFirings(ctx, project, id, "", limit)
	return f, err
}

// AutoOpsGoals lists the project's live goals.
func (a *AppCommands) AutoOpsGoals(ctx context.Context, project string) ([]*domain.Goal, error) {
	return a.app.Queries.ListGoals(ctx, project, false)
}

// CreateAutoOpsRule creates a rule.
func (a *AppCommands) CreateAutoOpsRule(ctx context.Context, m domain.Metadata, in app.CreateAutoOpsRule) (*domain.AutoOpsRule, error) {
	r, _, err := a.app.Commands.CreateAutoOpsRule(ctx, appMeta(m, AnyVersion), in)
	return r, err
}

// SetAutoOpsRuleEnabled arms or disarms a rule.
func (a *AppCommands) SetAutoOpsRuleEnabled(ctx context.Context, m domain.Metadata, expected int64, project, id string, enabled bool) (*domain.AutoOpsRule, error) {
	ref := app.AutoOpsRuleRef{Project: project, ID: id}
	var r *domain.AutoOpsRule
	var err error
	if enabled {
		r, _, err = a.app.Commands.EnableAutoOpsRule(ctx, appMeta(m, expected), app.EnableAutoOpsRule(ref))
	} else {
		r, _, err = a.app.Commands.DisableAutoOpsRule(ctx, appMeta(m, expected), app.DisableAutoOpsRule(ref))
	}
	return r, err
}

// Triggers lists a page of webhook triggers (never their secrets).
func (a *AppCommands) Triggers(ctx context.Context, q delivery.ListQuery) ([]delivery.TriggerSummary, string, error) {
	return a.app.Queries.ListTriggers(ctx, q)
}

// CreateTrigger creates a trigger; its secret is in the answer only.
func (a *AppCommands) CreateTrigger(ctx context.Context, m domain.Metadata, in app.CreateTrigger) (app.TriggerWithSecret, error) {
	return a.app.Commands.CreateTrigger(ctx, appMeta(m, AnyVersion), in)
}

// RotateTrigger gives a trigger a new secret.
func (a *AppCommands) RotateTrigger(ctx context.Context, m domain.Metadata, expected int64, project, id string) (app.TriggerWithSecret, error) {
	return a.app.Commands.RotateTriggerSecret(ctx, appMeta(m, expected), app.RotateTriggerSecret{Project: project, ID: id})
}

// SetTriggerEnabled enables or disables a trigger.
func (a *AppCommands) SetTriggerEnabled(ctx context.Context, m domain.Metadata, expected int64, project, id string, enabled bool) (*domain.Trigger, error) {
	ref := app.TriggerRef{Project: project, ID: id}
	var t *domain.Trigger
	var err error
	if enabled {
		t, _, err = a.app.Commands.EnableTrigger(ctx, appMeta(m, expected), app.EnableTrigger(ref))
	} else {
		t, _, err = a.app.Commands.DisableTrigger(ctx, appMeta(m, expected), app.DisableTrigger(ref))
	}
	return t, err
}
