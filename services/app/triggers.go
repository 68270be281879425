package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
)

// CreateTrigger creates a webhook trigger that turns a flag on or off in one environment.
type CreateTrigger struct {
	Project, Name, Flag, Env string
	Action                   domain.TriggerAction // on or off
}

// TriggerWithSecret is a trigger with its secret, shown only when it is created or rotated.
type TriggerWithSecret struct {
	Trigger *domain.Trigger
	Version int64
	Secret  string
}

// CreateTrigger runs CreateTrigger.
func (c *Commands) CreateTrigger(ctx context.Context, m Meta, cmd CreateTrigger) (TriggerWithSecret, error) {
	cat, err := c.q.Catalog(ctx, cmd.Project)
	if err != nil {
		return TriggerWithSecret{}, err
	}
	// The id is in the public URL: random, so the URLs of a project cannot be enumerated.
	id := NewID(16)
	secret, hash := NewTriggerSecret()
	m.Expected = Version(0)
	t, v, err := execute(ctx, c.c, domain.TriggerStream(cmd.Project, id), m, func(*domain.Trigger) ([]domain.Event, error) {
		return domain.CreateTrigger(domain.NewTrigger{Project: cmd.Project, ID: id, Name: cmd.Name, Flag: cmd.Flag,
			Environment: cmd.Env, Action: cmd.Action, SecretHash: hash}, cat)
	})
	if err != nil {
		return TriggerWithSecret{}, err
	}
	return TriggerWithSecret{Trigger: t, Version: v, Secret: secret}, nil
}

func (c *Commands) onTrigger(ctx context.Context, m Meta, project, id string, decide func(*domain.Trigger) ([]domain.Event, error)) (*domain.Trigger, int64, error) {
	return existing(ctx, c.c, domain.TriggerStream(project, id), m, notFound("trigger not found"), decide)
}

// TriggerRef names one webhook trigger.
type TriggerRef struct{ Project, ID string }

// RotateTriggerSecret gives a trigger a new secret; the old one stops working at once.
type RotateTriggerSecret TriggerRef

// RotateTriggerSecret runs RotateTriggerSecret.
func (c *Commands) RotateTriggerSecret(ctx context.Context, m Meta, cmd RotateTriggerSecret) (TriggerWithSecret, error) {
	secret, hash := NewTriggerSecret()
	t, v, err := c.onTrigger(ctx, m, cmd.Project, cmd.ID, func(t *domain.Trigger) ([]domain.Event, error) {
		return t.RotateSecret(hash)
	})
	if err != nil {
		return TriggerWithSecret{}, err
	}
	return TriggerWithSecret{Trigger: t, Version: v, Secret: secret}, nil
}

// EnableTrigger lets a trigger fire again.
type EnableTrigger TriggerRef

// EnableTrigger runs EnableTrigger.
func (c *Commands) EnableTrigger(ctx context.Context, m Meta, cmd EnableTrigger) (*domain.Trigger, int64, error) {
	return c.onTrigger(ctx, m, cmd.Project, cmd.ID, (*domain.Trigger).Enable)
}

// DisableTrigger stops a trigger from firing (calls answer 409).
type DisableTrigger TriggerRef

// DisableTrigger runs DisableTrigger.
func (c *Commands) DisableTrigger(ctx context.Context, m Meta, cmd DisableTrigger) (*domain.Trigger, int64, error) {
	return c.onTrigger(ctx, m, cmd.Project, cmd.ID, (*domain.Trigger).Disable)
}

// DeleteTrigger deletes a trigger.
type DeleteTrigger TriggerRef

// DeleteTrigger runs DeleteTrigger.
func (c *Commands) DeleteTrigger(ctx context.Context, m Meta, cmd DeleteTrigger) (*domain.Trigger, int64, error) {
	return c.onTrigger(ctx, m, cmd.Project, cmd.ID, (*domain.Trigger).Delete)
}

// ErrTriggerRefused is the one answer to an unknown trigger, a deleted one, a missing secret and
// a wrong secret, so the answer never tells which trigger ids exist.
var ErrTriggerRefused = domain.Errorf(domain.EUnauthorized, "unknown trigger or wrong secret")

// FireTrigger is a call of a trigger's webhook. Allow is the caller's rate limit, asked only once
// the secret is verified, so that calls with a wrong secret never use up the trigger's allowance.
type FireTrigger struct {
	ID, Secret string
	Remote     string // the caller's address, recorded with the firing
	Allow      func() error
}

// TriggerFired is what a webhook call did.
type TriggerFired struct {
	Trigger, Flag, Environment string
	On                         bool
	Changed                    bool // false when the flag already was in that state
}

// FireTrigger verifies a webhook call against the trigger's stream in the event store (so a
// rotated secret or a disable takes effect the moment it is committed) and fires it: the flag's
// FlagToggled (actor "trigger:<id>", whatever Meta says), then the trigger's TriggerFired.
func (c *Commands) FireTrigger(ctx context.Context, m Meta, cmd FireTrigger) (TriggerFired, error) {
	if cmd.Secret == "" || !domain.ValidKey(cmd.ID) {
		return TriggerFired{}, ErrTriggerRefused
	}
	project, err := delivery.TriggerProject(ctx, c.c.pool, cmd.ID)
	if domain.ErrorCode(err) == domain.ENotFound {
		return TriggerFired{}, ErrTriggerRefused
	}
	if err != nil {
		return TriggerFired{}, err
	}
	stream := domain.TriggerStream(project, cmd.ID)
	t, _, err := load[domain.Trigger](ctx, c.c, stream)
	if err != nil {
		return TriggerFired{}, err
	}
	hash := HashToken(cmd.Secret)
	if t == nil || !t.Verify(hash) {
		return TriggerFired{}, ErrTriggerRefused
	}
	if cmd.Allow != nil {
		if err := cmd.Allow(); err != nil {
			return TriggerFired{}, err
		}
	}
	cat, err := c.q.Catalog(ctx, project)
	if err != nil {
		return TriggerFired{}, err
	}
	now := c.c.now()
	m.Actor = "trigger:" + cmd.ID
	m.Reason = fmt.Sprintf("webhook trigger %q turned the flag %s (called from %s)", t.Name, t.Action, cmd.Remote)
	m.Expected, m.Retries = nil, 3
	wait := c.c.oneWait(&m) // the flag's append and the trigger's: one wait for both
	var triggerEvents []domain.Event
	changed := false
	_, _, err = execute(ctx, c.c, domain.FlagStream(project, t.Flag), m, func(f *domain.Flag) ([]domain.Event, error) {
		fe, te, err := t.Fire(hash, cmd.Remote, f, cat, now)
		triggerEvents, changed = te, len(fe) > 0
		return fe, err
	})
	if err != nil {
		return TriggerFired{}, err
	}
	_, _, err = execute(ctx, c.c, stream, m, func(*domain.Trigger) ([]domain.Event, error) {
		return triggerEvents, nil
	})
	if err != nil {
		// The flag was toggled; only the trigger's usage record is missing.
		c.c.log.Error("webhook trigger fired but its use was not recorded", "trigger", cmd.ID, "err", err)
	}
	wait(ctx)
	return TriggerFired{Trigger: cmd.ID, Flag: t.Flag, Environment: t.Environment, On: t.Action == domain.TriggerOn,
		Changed: changed}, nil
}

// IsTriggerRefused reports whether err is ErrTriggerRefused.
func IsTriggerRefused(err error) bool { return errors.Is(err, ErrTriggerRefused) }
