package app

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
)

// DefaultEnvironments are created with a project that names none.
var DefaultEnvironments = []domain.NewEnvironment{
	{Key: "development", Name: "Development"},
	{Key: "production", Name: "Production"},
}

// CreateProject creates a project with its environments (DefaultEnvironments when nil).
type CreateProject struct {
	Key, Name, Description string
	Environments           []domain.NewEnvironment
}

// CreateProject runs CreateProject.
func (c *Commands) CreateProject(ctx context.Context, m Meta, cmd CreateProject) (*domain.Project, int64, error) {
	if cmd.Environments == nil {
		cmd.Environments = DefaultEnvironments
	}
	if !domain.ValidKey(cmd.Key) {
		return nil, 0, invalidKey("key")
	}
	m.Expected = Version(0)
	p, v, err := execute(ctx, c.c, domain.ProjectStream(cmd.Key), m, func(*domain.Project) ([]domain.Event, error) {
		return domain.CreateProject(cmd.Key, cmd.Name, cmd.Description, cmd.Environments, NewSDKKey)
	})
	return p, v, alreadyExists(err, "project", cmd.Key)
}

// onProject runs a decision on an existing project.
func (c *Commands) onProject(ctx context.Context, m Meta, project string, decide func(*domain.Project) ([]domain.Event, error)) (*domain.Project, int64, error) {
	return existing(ctx, c.c, domain.ProjectStream(project), m, notFound("project %q not found", project), decide)
}

// ProjectSettings are a project's editable settings.
type ProjectSettings struct{ Name, Description string }

// UpdateProject changes a project's settings; Edit returns them given the current ones (a merge
// patch is applied there, against the state the command decides on).
type UpdateProject struct {
	Project string
	Edit    func(current ProjectSettings) (ProjectSettings, error)
}

// UpdateProject runs UpdateProject.
func (c *Commands) UpdateProject(ctx context.Context, m Meta, cmd UpdateProject) (*domain.Project, int64, error) {
	return c.onProject(ctx, m, cmd.Project, func(p *domain.Project) ([]domain.Event, error) {
		s, err := cmd.Edit(ProjectSettings{Name: p.Name, Description: p.Description})
		if err != nil {
			return nil, err
		}
		return p.UpdateProject(s.Name, s.Description)
	})
}

// CreateEnvironment adds an environment (with fresh SDK keys) to a project.
type CreateEnvironment struct {
	Project     string
	Environment domain.NewEnvironment
}

// CreateEnvironment runs CreateEnvironment and returns the new environment.
func (c *Commands) CreateEnvironment(ctx context.Context, m Meta, cmd CreateEnvironment) (*domain.Environment, error) {
	p, _, err := c.onProject(ctx, m, cmd.Project, func(p *domain.Project) ([]domain.Event, error) {
		return p.AddEnvironment(cmd.Environment, NewSDKKey)
	})
	if err != nil {
		return nil, err
	}
	return p.Environments[cmd.Environment.Key], nil
}

// UpdateEnvironment changes an environment's settings; Edit returns them given the current ones.
type UpdateEnvironment struct {
	Project, Environment string
	Edit                 func(current domain.EnvironmentSettings) (domain.EnvironmentSettings, error)
}

// UpdateEnvironment runs UpdateEnvironment and returns the environment after it.
func (c *Commands) UpdateEnvironment(ctx context.Context, m Meta, cmd UpdateEnvironment) (*domain.Environment, error) {
	p, _, err := c.onProject(ctx, m, cmd.Project, func(p *domain.Project) ([]domain.Event, error) {
		cur, ok := p.Environments[cmd.Environment]
		if !ok {
			return nil, domain.Errorf(domain.ENotFound, "environment %q not found in project %q", cmd.Environment, p.Key)
		}
		s, err := cmd.Edit(domain.EnvironmentSettings{Name: cur.Name, Color: cur.Color, ServerExposures: cur.ServerExposures})
		if err != nil {
			return nil, err
		}
		return p.UpdateEnvironmentSettings(cmd.Environment, s)
	})
	if err != nil {
		return nil, err
	}
	return p.Environments[cmd.Environment], nil
}

// RotateSDKKey replaces an environment's client- or server-side SDK key.
type RotateSDKKey struct {
	Project, Environment string
	Kind                 string // domain.ClientSideKey or domain.ServerSideKey
}

// RotateSDKKey runs RotateSDKKey and returns the environment with its new key.
func (c *Commands) RotateSDKKey(ctx context.Context, m Meta, cmd RotateSDKKey) (*domain.Environment, error) {
	if cmd.Kind != domain.ClientSideKey && cmd.Kind != domain.ServerSideKey {
		return nil, domain.Invalid("kind", "kind must be %q or %q", domain.ClientSideKey, domain.ServerSideKey)
	}
	p, _, err := c.onProject(ctx, m, cmd.Project, func(p *domain.Project) ([]domain.Event, error) {
		return p.RotateSDKKey(cmd.Environment, cmd.Kind, NewSDKKey)
	})
	if err != nil {
		return nil, err
	}
	return p.Environments[cmd.Environment], nil
}
