package app

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// CreateFlag creates a flag in a project (its salt is generated here).
type CreateFlag struct {
	Project     string
	Key         string
	Name        string
	Description string
	Tags        []string
	Type        domain.FlagType
	Variations  []domain.Variation
	Defaults    domain.FlagDefaults
	ClientSide  bool
}

// CreateFlag runs CreateFlag.
func (c *Commands) CreateFlag(ctx context.Context, m Meta, cmd CreateFlag) (*domain.Flag, int64, error) {
	cat, err := c.q.Catalog(ctx, cmd.Project)
	if err != nil {
		return nil, 0, err
	}
	if !domain.ValidKey(cmd.Key) {
		return nil, 0, invalidKey("key")
	}
	in := domain.NewFlag{Project: cmd.Project, Key: cmd.Key, Name: cmd.Name, Description: cmd.Description, Tags: cmd.Tags,
		Type: cmd.Type, Variations: cmd.Variations, Defaults: cmd.Defaults, ClientSide: cmd.ClientSide, Salt: NewID(8)}
	m.Expected = Version(0)
	f, v, err := execute(ctx, c.c, domain.FlagStream(cmd.Project, cmd.Key), m, func(*domain.Flag) ([]domain.Event, error) {
		return domain.CreateFlag(in, cat)
	})
	return f, v, alreadyExists(err, "flag", cmd.Key)
}

// onFlag runs a decision on an existing flag with the project's catalog.
func (c *Commands) onFlag(ctx context.Context, m Meta, project, flag string, decide func(*domain.Flag, *domain.Catalog) ([]domain.Event, error)) (*domain.Flag, int64, error) {
	cat, err := c.q.Catalog(ctx, project)
	if err != nil {
		return nil, 0, err
	}
	return existing(ctx, c.c, domain.FlagStream(project, flag), m, notFound("flag %q not found in project %q", flag, project),
		func(f *domain.Flag) ([]domain.Event, error) { return decide(f, cat) })
}

// UpdateFlag changes a flag's settings; Edit returns them given the current ones (a merge patch is
// applied there, against the state the command decides on).
type UpdateFlag struct {
	Project, Flag string
	Edit          func(current domain.FlagSettings) (domain.FlagSettings, error)
}

// UpdateFlag runs UpdateFlag.
func (c *Commands) UpdateFlag(ctx context.Context, m Meta, cmd UpdateFlag) (*domain.Flag, int64, error) {
	return c.onFlag(ctx, m, cmd.Project, cmd.Flag, func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
		s, err := cmd.Edit(domain.FlagSettings{Name: f.Name, Description: f.Description, Tags: f.Tags,
			ClientSide: f.ClientSide, Defaults: f.Defaults})
		if err != nil {
			return nil, err
		}
		return f.Update(s)
	})
}

// UpdateVariations replaces a flag's variations.
type UpdateVariations struct {
	Project, Flag string
	Variations    []domain.Variation
}

// UpdateVariations runs UpdateVariations.
func (c *Commands) UpdateVariations(ctx context.Context, m Meta, cmd UpdateVariations) (*domain.Flag, int64, error) {
	if err := c.gate(ctx, m, "UpdateVariations", cmd); err != nil {
		return nil, 0, err
	}
	return c.onFlag(ctx, m, cmd.Project, cmd.Flag, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.UpdateVariations(cmd.Variations, cat)
	})
}

// UpdateTargeting replaces a flag's targeting in one environment.
type UpdateTargeting struct {
	Project, Flag, Environment string
	Targeting                  domain.Targeting
}

// UpdateTargeting runs UpdateTargeting.
func (c *Commands) UpdateTargeting(ctx context.Context, m Meta, cmd UpdateTargeting) (*domain.Flag, int64, error) {
	if err := c.gate(ctx, m, "UpdateTargeting", cmd); err != nil {
		return nil, 0, err
	}
	return c.onFlag(ctx, m, cmd.Project, cmd.Flag, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.UpdateTargeting(cmd.Environment, cmd.Targeting, cat)
	})
}

// SetDefaultServe makes a variation a flag's default serve in one environment, keeping the rest
// of its targeting (concluding an experiment with apply_to_flag).
type SetDefaultServe struct {
	Project, Flag, Environment string
	Variation                  string
}

// SetDefaultServe runs SetDefaultServe.
func (c *Commands) SetDefaultServe(ctx context.Context, m Meta, cmd SetDefaultServe) (*domain.Flag, int64, error) {
	return c.onFlag(ctx, m, cmd.Project, cmd.Flag, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		t := f.ConfigFor(cmd.Environment).Targeting
		t.Default = domain.Serve{Variation: cmd.Variation}
		return f.UpdateTargeting(cmd.Environment, t, cat)
	})
}

// ToggleFlag turns a flag on or off in one environment. People toggle through the API; auto-ops
// turns a flag off with the same command (with retries and a command id in Meta).
type ToggleFlag struct {
	Project, Flag, Environment string
	On                         bool
}

// ToggleFlag runs ToggleFlag.
func (c *Commands) ToggleFlag(ctx context.Context, m Meta, cmd ToggleFlag) (*domain.Flag, int64, error) {
	if err := c.gate(ctx, m, "ToggleFlag", cmd); err != nil {
		return nil, 0, err
	}
	return c.onFlag(ctx, m, cmd.Project, cmd.Flag, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.Toggle(cmd.Environment, cmd.On, cat)
	})
}

// FlagRef names one flag.
type FlagRef struct{ Project, Flag string }

// ArchiveFlag archives a flag (refused while something depends on it).
type ArchiveFlag FlagRef

// ArchiveFlag runs ArchiveFlag.
func (c *Commands) ArchiveFlag(ctx context.Context, m Meta, cmd ArchiveFlag) (*domain.Flag, int64, error) {
	return c.onFlag(ctx, m, cmd.Project, cmd.Flag, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.Archive(cat)
	})
}

// RestoreFlag brings an archived flag back.
type RestoreFlag FlagRef

// RestoreFlag runs RestoreFlag.
func (c *Commands) RestoreFlag(ctx context.Context, m Meta, cmd RestoreFlag) (*domain.Flag, int64, error) {
	return c.onFlag(ctx, m, cmd.Project, cmd.Flag, func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
		return f.Restore()
	})
}
