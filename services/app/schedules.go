package app

import (
	"context"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// ChangeSpec is what a scheduled change will do, as a caller states it.
type ChangeSpec struct {
	// At is when a one-off change is due (see domain.ParseScheduleTime for reading it from text);
	// zero with a Recurrence, whose next occurrence is the first run.
	At time.Time
	// TimeZone is the IANA zone the change was given in (kept for display, and the zone of the
	// recurrence's local time); empty: UTC.
	TimeZone   string
	Recurrence *domain.Recurrence
	Kind       domain.ChangeKind // toggle, targeting or default
	On         *bool             // a toggle's state; only for a toggle
	Targeting  *domain.Targeting
	Default    *domain.Serve
}

func (s ChangeSpec) domain() (domain.ChangeSpec, error) {
	spec := domain.ChangeSpec{At: s.At, TimeZone: s.TimeZone, Recurrence: s.Recurrence, Kind: s.Kind, Targeting: s.Targeting,
		Default: s.Default}
	switch {
	case s.At.IsZero() && s.Recurrence == nil:
		return spec, domain.Invalid("at", "at is required (RFC 3339 time, or a local time with time_zone), or a recurrence")
	case s.Kind == domain.ChangeToggle && s.On == nil:
		return spec, domain.Invalid("on", "a toggle needs on (true or false)")
	case s.Kind != domain.ChangeToggle && s.On != nil:
		return spec, domain.Invalid("on", "on is only for a toggle")
	}
	if s.On != nil {
		spec.On = *s.On
	}
	return spec, nil
}

// ScheduleChange schedules a change of a flag in one environment.
type ScheduleChange struct {
	Project string
	ID      string // generated (UUIDv7) when empty
	Flag    string
	Env     string
	Change  ChangeSpec
	Now     time.Time // when it is scheduled (zero: the application's clock); At must be after it
}

// ScheduleChange runs ScheduleChange. In a protected environment a person's schedule becomes a
// change request (the scheduler would otherwise carry it out past approval).
func (c *Commands) ScheduleChange(ctx context.Context, m Meta, cmd ScheduleChange) (*domain.ScheduledChange, int64, error) {
	id, err := newDeliveryID(cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	cmd.ID = id // fixed before the gate: the change request names the schedule it creates
	if err := c.gate(ctx, m, "ScheduleChange", cmd); err != nil {
		return nil, 0, err
	}
	decide, err := c.scheduleChangeDecision(ctx, cmd)
	if err != nil {
		return nil, 0, err
	}
	m.Expected = Version(0)
	sc, v, err := execute(ctx, c.c, domain.ScheduleStream(cmd.Project, id), m, func(*domain.ScheduledChange) ([]domain.Event, error) {
		return decide()
	})
	return sc, v, idTaken(err, "scheduled change", id)
}

// scheduleChangeDecision validates cmd (its ID set) and returns the decision that creates it.
func (c *Commands) scheduleChangeDecision(ctx context.Context, cmd ScheduleChange) (func() ([]domain.Event, error), error) {
	spec, err := cmd.Change.domain()
	if err != nil {
		return nil, err
	}
	cat, err := c.q.Catalog(ctx, cmd.Project)
	if err != nil {
		return nil, err
	}
	current, err := c.q.optionalFlag(ctx, cmd.Project, cmd.Flag)
	if err != nil {
		return nil, err
	}
	return func() ([]domain.Event, error) {
		return domain.ScheduleChange(domain.NewScheduledChange{Project: cmd.Project, ID: cmd.ID, Flag: cmd.Flag,
			Environment: cmd.Env, ChangeSpec: spec}, current, cat, c.at(cmd.Now))
	}, nil
}

func (c *Commands) onSchedule(ctx context.Context, m Meta, project, id string, decide func(*domain.ScheduledChange) ([]domain.Event, error)) (*domain.ScheduledChange, int64, error) {
	return existing(ctx, c.c, domain.ScheduleStream(project, id), m, notFound("scheduled change not found"), decide)
}

// EditSchedule replaces what a pending scheduled change will do.
type EditSchedule struct {
	Project, ID string
	Change      ChangeSpec
}

// EditSchedule runs EditSchedule (a change request in a protected environment).
func (c *Commands) EditSchedule(ctx context.Context, m Meta, cmd EditSchedule) (*domain.ScheduledChange, int64, error) {
	if err := c.gate(ctx, m, "EditSchedule", cmd); err != nil {
		return nil, 0, err
	}
	decide, err := c.editScheduleDecision(ctx, cmd)
	if err != nil {
		return nil, 0, err
	}
	return c.onSchedule(ctx, m, cmd.Project, cmd.ID, decide)
}

func (c *Commands) editScheduleDecision(ctx context.Context, cmd EditSchedule) (func(*domain.ScheduledChange) ([]domain.Event, error), error) {
	spec, err := cmd.Change.domain()
	if err != nil {
		return nil, err
	}
	cat, err := c.q.Catalog(ctx, cmd.Project)
	if err != nil {
		return nil, err
	}
	return func(sc *domain.ScheduledChange) ([]domain.Event, error) {
		f, _, err := load[domain.Flag](ctx, c.c, domain.FlagStream(cmd.Project, sc.Flag))
		if err != nil {
			return nil, err
		}
		return sc.Edit(spec, f, cat, c.c.now())
	}, nil
}

// CancelSchedule cancels a pending scheduled change.
type CancelSchedule struct{ Project, ID string }

// CancelSchedule runs CancelSchedule (a change request in a protected environment).
func (c *Commands) CancelSchedule(ctx context.Context, m Meta, cmd CancelSchedule) (*domain.ScheduledChange, int64, error) {
	if err := c.gate(ctx, m, "CancelSchedule", cmd); err != nil {
		return nil, 0, err
	}
	return c.onSchedule(ctx, m, cmd.Project, cmd.ID, cancelSchedule)
}

func cancelSchedule(sc *domain.ScheduledChange) ([]domain.Event, error) { return sc.Cancel() }

// Outcome is what a delivery aggregate decided when it changed its flag: the events to record on
// the aggregate itself (appended by a second command, see the delivery scheduler), and the
// domain's refusal when the flag could not take the change (then nothing was appended).
type Outcome struct {
	Events  []domain.Event
	Refused error
}

// ApplyScheduledChange makes a due scheduled change on its flag (or decides that it fails);
// Meta.CommandID should be the change's ApplyCommandID. The outcome (ScheduleApplied or
// ScheduleFailed) is then recorded with RecordScheduleOutcome.
type ApplyScheduledChange struct {
	Schedule *domain.ScheduledChange
	Now      time.Time
}

// ApplyScheduledChange runs ApplyScheduledChange.
func (c *Commands) ApplyScheduledChange(ctx context.Context, m Meta, cmd ApplyScheduledChange) (Outcome, error) {
	sc := cmd.Schedule
	cat, err := c.q.catalogOrNil(ctx, sc.Project)
	if err != nil {
		return Outcome{}, err
	}
	var out Outcome
	_, _, err = execute(ctx, c.c, domain.FlagStream(sc.Project, sc.Flag), m, func(f *domain.Flag) ([]domain.Event, error) {
		apply, outcome, err := sc.Resolve(f, cat, cmd.Now)
		out = Outcome{Events: outcome, Refused: err}
		return apply, err
	})
	return out, err
}

// RecordScheduleOutcome records what became of a scheduled change, at the version it was
// resolved from.
type RecordScheduleOutcome struct {
	Schedule *domain.ScheduledChange
	Outcome  []domain.Event
}

// RecordScheduleOutcome runs RecordScheduleOutcome.
func (c *Commands) RecordScheduleOutcome(ctx context.Context, m Meta, cmd RecordScheduleOutcome) error {
	sc := cmd.Schedule
	return record[domain.ScheduledChange](ctx, c.c, domain.ScheduleStream(sc.Project, sc.ID), sc.Version, m, cmd.Outcome)
}

// catalogOrNil is the project's catalog, nil when the project is gone: the scheduler's changes
// then fail with their reason rather than retrying forever.
func (q *Queries) catalogOrNil(ctx context.Context, project string) (*domain.Catalog, error) {
	cat, err := q.Catalog(ctx, project)
	if domain.ErrorCode(err) == domain.ENotFound {
		return nil, nil
	}
	return cat, err
}
