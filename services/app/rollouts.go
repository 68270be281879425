package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// RolloutTemplate builds a rollout's steps: Percents (default 1, 5, 25, 50, 100) every Every
// from Start.
type RolloutTemplate struct {
	// Start is the time of the first step; now when nil (the first step applies at once).
	Start *time.Time
	// Every is the time between steps: a Go duration ("30m", "1h") or whole days ("1d").
	Every    string
	Percents []float64
}

// ParseEvery reads a template's step interval: a Go duration or whole days.
func ParseEvery(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && n > 0 && n <= 366 && fmt.Sprint(n) == days {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, domain.Invalid("template.every", "every must be a positive duration such as \"30m\", \"1h\" or \"1d\", got %q", s)
}

// CreateRollout starts a progressive rollout of a variation of a flag in one environment.
type CreateRollout struct {
	Project string
	ID      string // generated (UUIDv7) when empty
	Flag    string
	Env     string
	// Variation is rolled out, Other serves the rest; for boolean flags they default to true and
	// false.
	Variation, Other, BucketBy string
	// Exactly one of Steps (written by hand) or Template.
	Steps    []domain.RolloutStep
	Template *RolloutTemplate
	// Guards gate the steps once the variation is served; OnGuardFailure is rollback (default)
	// or pause (see domain.RolloutGuard).
	Guards         []domain.RolloutGuard
	OnGuardFailure domain.GuardAction
	// Now is when the rollout is created (zero: the application's clock); steps before it are
	// refused.
	Now time.Time
}

// CreateRollout runs CreateRollout. In a protected environment a person's rollout becomes a
// change request (the scheduler would otherwise carry out its steps past approval).
func (c *Commands) CreateRollout(ctx context.Context, m Meta, cmd CreateRollout) (*domain.Rollout, int64, error) {
	id, err := newDeliveryID(cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	cmd.ID = id // fixed before the gate: the change request names the rollout it creates
	if err := c.gate(ctx, m, "CreateRollout", cmd); err != nil {
		return nil, 0, err
	}
	decide, err := c.createRolloutDecision(ctx, cmd)
	if err != nil {
		return nil, 0, err
	}
	m.Expected = Version(0)
	r, v, err := execute(ctx, c.c, domain.RolloutStream(cmd.Project, id), m, func(*domain.Rollout) ([]domain.Event, error) {
		return decide()
	})
	return r, v, idTaken(err, "rollout", id)
}

// createRolloutDecision validates cmd (its ID set) and returns the decision that creates it.
func (c *Commands) createRolloutDecision(ctx context.Context, cmd CreateRollout) (func() ([]domain.Event, error), error) {
	now := c.at(cmd.Now)
	steps := cmd.Steps
	switch {
	case cmd.Template != nil && len(cmd.Steps) > 0:
		return nil, domain.Invalid("template", "give either steps or a template, not both")
	case cmd.Template != nil:
		every, err := ParseEvery(cmd.Template.Every)
		if err != nil {
			return nil, err
		}
		start := now
		if cmd.Template.Start != nil {
			start = *cmd.Template.Start
		}
		percents := cmd.Template.Percents
		if len(percents) == 0 {
			percents = domain.StandardRolloutPercents()
		}
		if len(percents) > domain.MaxRolloutSteps {
			return nil, domain.Invalid("template.percents", "at most %d steps, got %d", domain.MaxRolloutSteps, len(percents))
		}
		steps = domain.RolloutTemplate(start, every, percents...)
	}
	// One load answers the flag catalog, the flag's active rollouts and its running experiments.
	ec, err := c.q.ExperimentCatalog(ctx, cmd.Project)
	if err != nil {
		return nil, err
	}
	current, err := c.q.optionalFlag(ctx, cmd.Project, cmd.Flag)
	if err != nil {
		return nil, err
	}
	var active, experiments []string
	if domain.ValidKey(cmd.Flag) {
		active = ec.ActiveRollouts(cmd.Flag, cmd.Env)
		experiments = ec.RunningExperiments(cmd.Flag, cmd.Env)
	}
	guards, onFailure, err := domain.ValidateRolloutGuards(cmd.Guards, cmd.OnGuardFailure, ec)
	if err != nil {
		return nil, err
	}
	return func() ([]domain.Event, error) {
		return domain.CreateRollout(domain.NewRollout{Project: cmd.Project, ID: cmd.ID, Flag: cmd.Flag, Environment: cmd.Env,
			Variation: cmd.Variation, Other: cmd.Other, BucketBy: cmd.BucketBy, Steps: steps, Guards: guards, OnGuardFailure: onFailure},
			current, ec.Catalog, active, experiments, now)
	}, nil
}

func (c *Commands) onRollout(ctx context.Context, m Meta, project, id string, decide func(*domain.Rollout) ([]domain.Event, error)) (*domain.Rollout, int64, error) {
	return existing(ctx, c.c, domain.RolloutStream(project, id), m, notFound("rollout not found"), decide)
}

// PauseRollout stops a rollout's steps until it is resumed; a person pauses it through the API,
// auto-ops and the scheduler (a step that cannot apply) with the same command.
type PauseRollout struct {
	Project, ID, Reason string
	Now                 time.Time // zero: the application's clock
}

// PauseRollout runs PauseRollout (a person's pause is a change request in a protected
// environment; auto-ops and the scheduler pause at once).
func (c *Commands) PauseRollout(ctx context.Context, m Meta, cmd PauseRollout) (*domain.Rollout, int64, error) {
	if err := c.gate(ctx, m, "PauseRollout", cmd); err != nil {
		return nil, 0, err
	}
	return c.onRollout(ctx, m, cmd.Project, cmd.ID, c.pauseRollout(cmd))
}

func (c *Commands) pauseRollout(cmd PauseRollout) func(*domain.Rollout) ([]domain.Event, error) {
	return func(r *domain.Rollout) ([]domain.Event, error) { return r.Pause(cmd.Reason, c.at(cmd.Now)) }
}

// ResumeRollout resumes a paused rollout.
type ResumeRollout struct{ Project, ID string }

// ResumeRollout runs ResumeRollout (a change request in a protected environment).
func (c *Commands) ResumeRollout(ctx context.Context, m Meta, cmd ResumeRollout) (*domain.Rollout, int64, error) {
	if err := c.gate(ctx, m, "ResumeRollout", cmd); err != nil {
		return nil, 0, err
	}
	return c.onRollout(ctx, m, cmd.Project, cmd.ID, c.resumeRollout)
}

func (c *Commands) resumeRollout(r *domain.Rollout) ([]domain.Event, error) {
	return r.Resume(c.c.now())
}

// AbortRollout ends a rollout and writes its starting default serve back to the flag: the flag
// first (command id "<rollout>:abort"), then the rollout's RolloutAborted with the same command
// id, so a retry after a failure between the two only records the outcome. Meta.Expected is the
// rollout's version.
type AbortRollout struct{ Project, ID, Reason string }

// AbortRollout runs AbortRollout (a change request in a protected environment).
func (c *Commands) AbortRollout(ctx context.Context, m Meta, cmd AbortRollout) (*domain.Rollout, int64, error) {
	if err := c.gate(ctx, m, "AbortRollout", cmd); err != nil {
		return nil, 0, err
	}
	r, version, err := c.q.Rollout(ctx, cmd.Project, cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	if m.Expected != nil && *m.Expected != version {
		return nil, 0, conflict(*m.Expected, version)
	}
	cat, err := c.q.Catalog(ctx, cmd.Project)
	if err != nil {
		return nil, 0, err
	}
	m.CommandID = r.ID + ":abort"
	if m.Reason == "" {
		m.Reason = cmd.Reason
	}
	wait := c.c.oneWait(&m) // the flag's append and the rollout's: one wait for both
	now := c.c.now()
	var rolloutEvents []domain.Event
	fm := m
	fm.Expected, fm.Retries = nil, 3
	_, _, err = execute(ctx, c.c, domain.FlagStream(cmd.Project, r.Flag), fm, func(f *domain.Flag) ([]domain.Event, error) {
		fe, re, err := r.Abort(cmd.Reason, f, cat, now)
		rolloutEvents = re
		return fe, err
	})
	if err != nil && !IsDuplicateCommand(err) {
		return nil, 0, err
	}
	if err := record[domain.Rollout](ctx, c.c, domain.RolloutStream(cmd.Project, cmd.ID), version, m, rolloutEvents); err != nil {
		return nil, 0, err
	}
	wait(ctx)
	return c.q.Rollout(ctx, cmd.Project, cmd.ID)
}

// ApplyRolloutStep writes step Step of a rollout to its flag (Meta.CommandID: StepCommandID);
// the rollout's own events (skipped steps, applied, completed) are then recorded with
// RecordRollout.
type ApplyRolloutStep struct {
	Rollout *domain.Rollout
	Step    int
}

// ApplyRolloutStep runs ApplyRolloutStep.
func (c *Commands) ApplyRolloutStep(ctx context.Context, m Meta, cmd ApplyRolloutStep) (Outcome, error) {
	return c.rolloutFlagChange(ctx, m, cmd.Rollout, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, []domain.Event, error) {
		return cmd.Rollout.ApplyStep(cmd.Step, f, cat)
	})
}

// RollBackRollout sends a rollout's flag back to 0% (auto-ops); the rollout's events (RolledBack,
// Paused) are then recorded with RecordRollout.
type RollBackRollout struct {
	Rollout *domain.Rollout
	Now     time.Time
}

// RollBackRollout runs RollBackRollout.
func (c *Commands) RollBackRollout(ctx context.Context, m Meta, cmd RollBackRollout) (Outcome, error) {
	return c.rolloutFlagChange(ctx, m, cmd.Rollout, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, []domain.Event, error) {
		return cmd.Rollout.RollBack(m.Reason, f, cat, c.at(cmd.Now))
	})
}

// rolloutFlagChange appends to a rollout's flag what decide says, keeping the rollout's events.
func (c *Commands) rolloutFlagChange(ctx context.Context, m Meta, r *domain.Rollout,
	decide func(*domain.Flag, *domain.Catalog) (flagEvents, rolloutEvents []domain.Event, err error)) (Outcome, error) {
	cat, err := c.q.catalogOrNil(ctx, r.Project)
	if err != nil {
		return Outcome{}, err
	}
	var out Outcome
	_, _, err = execute(ctx, c.c, domain.FlagStream(r.Project, r.Flag), m, func(f *domain.Flag) ([]domain.Event, error) {
		fe, re, err := decide(f, cat)
		out = Outcome{Events: re, Refused: err}
		return fe, err
	})
	return out, err
}

// RecordRolloutCommand records on a rollout what a flag append with command id Command did (a
// step, an abort or a rollback whose flag append is found without its rollout events: a crash or
// a race between the two appends). The rollout's events are decided again by the same command
// against the flag as it was just before that append, so they are the ones that went with it.
type RecordRolloutCommand struct {
	Rollout    *domain.Rollout
	Command    string          // "<rollout>:step:<i>", "<rollout>:abort" or "<rollout>:rollback:..."
	FlagBefore *domain.Flag    // the flag before that append
	Original   domain.Metadata // the metadata of that append
	Now        time.Time
}

// RecordRolloutCommand runs RecordRolloutCommand; it reports whether it recorded events (not when
// there were none to record).
func (c *Commands) RecordRolloutCommand(ctx context.Context, m Meta, cmd RecordRolloutCommand) (bool, error) {
	r := cmd.Rollout
	cat, err := c.q.catalogOrNil(ctx, r.Project)
	if err != nil {
		return false, err
	}
	rest := strings.TrimPrefix(cmd.Command, r.ID+":")
	var events []domain.Event
	switch {
	case strings.HasPrefix(rest, "step:"):
		k, _ := strconv.Atoi(rest[len("step:"):])
		_, events, err = r.ApplyStep(k, cmd.FlagBefore, cat)
	case rest == "abort":
		_, events, err = r.Abort(cmd.Original.Reason, cmd.FlagBefore, cat, cmd.Now)
	default: // rollback
		_, events, err = r.RollBack(cmd.Original.Reason, cmd.FlagBefore, cat, cmd.Now)
	}
	if err != nil {
		return false, fmt.Errorf("app: rollout %s/%s: record %s: %w", r.Project, r.ID, cmd.Command, err)
	}
	if len(events) == 0 {
		return false, nil
	}
	m.CommandID = cmd.Command
	return true, c.RecordRollout(ctx, m, RecordRollout{Rollout: r, Events: events})
}

// RecordRollout appends events a rollout decided with a flag change (RolloutEvents or an
// Outcome), at the rollout's version.
type RecordRollout struct {
	Rollout *domain.Rollout
	Events  []domain.Event
}

// RecordRollout runs RecordRollout.
func (c *Commands) RecordRollout(ctx context.Context, m Meta, cmd RecordRollout) error {
	r := cmd.Rollout
	return record[domain.Rollout](ctx, c.c, domain.RolloutStream(r.Project, r.ID), r.Version, m, cmd.Events)
}

// at is t, or now when t is zero.
func (c *Commands) at(t time.Time) time.Time {
	if t.IsZero() {
		return c.c.now()
	}
	return t
}
