package app

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// CreateAutoOpsRule creates an auto-ops rule on a flag in one environment.
type CreateAutoOpsRule struct {
	Project string
	ID      string // generated (UUIDv7) when empty
	Flag    string
	Env     string
	domain.AutoOpsDefinition
	Enabled bool
}

// CreateAutoOpsRule runs CreateAutoOpsRule.
func (c *Commands) CreateAutoOpsRule(ctx context.Context, m Meta, cmd CreateAutoOpsRule) (*domain.AutoOpsRule, int64, error) {
	id, err := newDeliveryID(cmd.ID)
	if err != nil {
		return nil, 0, err
	}
	ecat, err := c.q.ExperimentCatalog(ctx, cmd.Project)
	if err != nil {
		return nil, 0, err
	}
	m.Expected = Version(0)
	r, v, err := execute(ctx, c.c, domain.AutoOpsStream(cmd.Project, id), m, func(*domain.AutoOpsRule) ([]domain.Event, error) {
		return domain.CreateAutoOpsRule(domain.NewAutoOpsRule{Project: cmd.Project, ID: id, Flag: cmd.Flag,
			Environment: cmd.Env, AutoOpsDefinition: cmd.AutoOpsDefinition, Enabled: cmd.Enabled}, ecat)
	})
	return r, v, idTaken(err, "auto-ops rule", id)
}

func (c *Commands) onAutoOpsRule(ctx context.Context, m Meta, project, id string, decide func(*domain.AutoOpsRule) ([]domain.Event, error)) (*domain.AutoOpsRule, int64, error) {
	return existing(ctx, c.c, domain.AutoOpsStream(project, id), m, notFound("auto-ops rule not found"), decide)
}

// UpdateAutoOpsRule replaces an auto-ops rule's definition.
type UpdateAutoOpsRule struct {
	Project, ID string
	Definition  domain.AutoOpsDefinition
}

// UpdateAutoOpsRule runs UpdateAutoOpsRule.
func (c *Commands) UpdateAutoOpsRule(ctx context.Context, m Meta, cmd UpdateAutoOpsRule) (*domain.AutoOpsRule, int64, error) {
	ecat, err := c.q.ExperimentCatalog(ctx, cmd.Project)
	if err != nil {
		return nil, 0, err
	}
	return c.onAutoOpsRule(ctx, m, cmd.Project, cmd.ID, func(r *domain.AutoOpsRule) ([]domain.Event, error) {
		return r.Update(cmd.Definition, ecat)
	})
}

// AutoOpsRuleRef names one auto-ops rule.
type AutoOpsRuleRef struct{ Project, ID string }

// EnableAutoOpsRule arms a rule.
type EnableAutoOpsRule AutoOpsRuleRef

// EnableAutoOpsRule runs EnableAutoOpsRule.
func (c *Commands) EnableAutoOpsRule(ctx context.Context, m Meta, cmd EnableAutoOpsRule) (*domain.AutoOpsRule, int64, error) {
	return c.onAutoOpsRule(ctx, m, cmd.Project, cmd.ID, (*domain.AutoOpsRule).Enable)
}

// DisableAutoOpsRule disarms a rule.
type DisableAutoOpsRule AutoOpsRuleRef

// DisableAutoOpsRule runs DisableAutoOpsRule.
func (c *Commands) DisableAutoOpsRule(ctx context.Context, m Meta, cmd DisableAutoOpsRule) (*domain.AutoOpsRule, int64, error) {
	return c.onAutoOpsRule(ctx, m, cmd.Project, cmd.ID, (*domain.AutoOpsRule).Disable)
}

// DeleteAutoOpsRule deletes a rule.
type DeleteAutoOpsRule AutoOpsRuleRef

// DeleteAutoOpsRule runs DeleteAutoOpsRule.
func (c *Commands) DeleteAutoOpsRule(ctx context.Context, m Meta, cmd DeleteAutoOpsRule) (*domain.AutoOpsRule, int64, error) {
	return c.onAutoOpsRule(ctx, m, cmd.Project, cmd.ID, (*domain.AutoOpsRule).Delete)
}

// RecordAutoOpsFiring records that a rule fired, with its evidence, at the version it was
// measured at (the action itself is an ordinary command: ToggleFlag, PauseRollout,
// RollBackRollout).
type RecordAutoOpsFiring struct {
	Rule     *domain.AutoOpsRule
	Evidence domain.AutoOpsEvidence
}

// RecordAutoOpsFiring runs RecordAutoOpsFiring.
func (c *Commands) RecordAutoOpsFiring(ctx context.Context, m Meta, cmd RecordAutoOpsFiring) error {
	r := cmd.Rule
	events, err := r.Fire(cmd.Evidence)
	if err != nil {
		return err
	}
	return record[domain.AutoOpsRule](ctx, c.c, domain.AutoOpsStream(r.Project, r.ID), r.Version, m, events)
}
