package web

import (
	"context"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/app"
)

// adminCommands are the commands of the admin pages: projects, environments, SDK keys, API
// tokens and segments, each one of services/app.
type adminCommands interface {
	CreateProject(ctx context.Context, meta domain.Metadata, key, name, description string) (*domain.Project, error)
	UpdateProject(ctx context.Context, meta domain.Metadata, project string, expected int64, name, description string) (*domain.Project, error)
	CreateEnvironment(ctx context.Context, meta domain.Metadata, project string, expected int64, env domain.NewEnvironment) (*domain.Environment, error)
	UpdateEnvironment(ctx context.Context, meta domain.Metadata, project, env string, expected int64, name, color string) (*domain.Environment, error)
	RotateSDKKey(ctx context.Context, meta domain.Metadata, project, env string, expected int64, kind string) (*domain.Environment, error)

	// Tokens lists the API tokens restricted to project (never their secrets).
	Tokens(ctx context.Context, project string) ([]app.TokenSummary, error)
	IssueToken(ctx context.Context, meta domain.Metadata, project, name, scope string) (app.IssuedToken, error)
	// RevokeToken revokes a token of project; a token of another project is ENotFound.
	RevokeToken(ctx context.Context, meta domain.Metadata, project, id string) (*domain.APIToken, error)

	Segment(ctx context.Context, project, segment string) (*domain.Segment, error)
	CreateSegment(ctx context.Context, meta domain.Metadata, project, key string, d domain.SegmentDefinition) (*domain.Segment, error)
	UpdateSegment(ctx context.Context, meta domain.Metadata, project, segment string, expected int64, d domain.SegmentDefinition) (*domain.Segment, error)
}

// CreateProject creates a project with the default environments.
func (a *AppCommands) CreateProject(ctx context.Context, m domain.Metadata, key, name, description string) (*domain.Project, error) {
	p, _, err := a.app.Commands.CreateProject(ctx, appMeta(m, AnyVersion), app.CreateProject{Key: key, Name: name, Description: description})
	return p, err
}

// UpdateProject renames or describes a project.
func (a *AppCommands) UpdateProject(ctx context.Context, m domain.Metadata, project string, expected int64, name, description string) (*domain.Project, error) {
	p, _, err := a.app.Commands.UpdateProject(ctx, appMeta(m, expected), app.UpdateProject{Project: project,
		Edit: func(app.ProjectSettings) (app.ProjectSettings, error) {
			return app.ProjectSettings{Name: name, Description: description}, nil
		}})
	return p, err
}

// CreateEnvironment adds an environment with fresh SDK keys.
func (a *AppCommands) CreateEnvironment(ctx context.Context, m domain.Metadata, project string, expected int64, env domain.NewEnvironment) (*domain.Environment, error) {
	return a.app.Commands.CreateEnvironment(ctx, appMeta(m, expected), app.CreateEnvironment{Project: project, Environment: env})
}

// UpdateEnvironment renames or recolours an environment, keeping its other settings.
func (a *AppCommands) UpdateEnvironment(ctx context.Context, m domain.Metadata, project, env string, expected int64, name, color string) (*domain.Environment, error) {
	return a.app.Commands.UpdateEnvironment(ctx, appMeta(m, expected), app.UpdateEnvironment{Project: project, Environment: env,
		Edit: func(cur domain.EnvironmentSettings) (domain.EnvironmentSettings, error) {
			cur.Name, cur.Color = name, color
			return cur, nil
		}})
}

// RotateSDKKey replaces an environment's client or server key.
func (a *AppCommands) RotateSDKKey(ctx context.Context, m domain.Metadata, project, env string, expected int64, kind string) (*domain.Environment, error) {
	return a.app.Commands.RotateSDKKey(ctx, appMeta(m, expected), app.RotateSDKKey{Project: project, Environment: env, Kind: kind})
}

// Tokens lists the tokens restricted to project.
func (a *AppCommands) Tokens(ctx context.Context, project string) ([]app.TokenSummary, error) {
	all, err := a.app.Queries.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	var out []app.TokenSummary
	for _, t := range all {
		if t.Project == project {
			out = append(out, t)
		}
	}
	return out, nil
}

// IssueToken creates a token restricted to project.
func (a *AppCommands) IssueToken(ctx context.Context, m domain.Metadata, project, name, scope string) (app.IssuedToken, error) {
	return a.app.Commands.IssueToken(ctx, appMeta(m, AnyVersion), app.IssueToken{Name: name, Scope: scope, Project: project})
}

// RevokeToken revokes a token of project.
func (a *AppCommands) RevokeToken(ctx context.Context, m domain.Metadata, project, id string) (*domain.APIToken, error) {
	return a.app.Commands.RevokeToken(ctx, appMeta(m, AnyVersion), app.RevokeToken{ID: id, Allow: func(t *domain.APIToken) error {
		if t.Project != project {
			return domain.Errorf(domain.ENotFound, "token %q not found in project %q", id, project)
		}
		return nil
	}})
}

// Segment loads a segment from its events.
func (a *AppCommands) Segment(ctx context.Context, project, segment string) (*domain.Segment, error) {
	s, _, err := a.app.Queries.Segment(ctx, project, segment)
	return s, err
}

// CreateSegment creates a segment.
func (a *AppCommands) CreateSegment(ctx context.Context, m domain.Metadata, project, key string, d domain.SegmentDefinition) (*domain.Segment, error) {
	s, _, err := a.app.Commands.CreateSegment(ctx, appMeta(m, AnyVersion), app.CreateSegment{Project: project, Key: key, Definition: d})
	return s, err
}

// UpdateSegment replaces a segment's definition.
func (a *AppCommands) UpdateSegment(ctx context.Context, m domain.Metadata, project, segment string, expected int64, d domain.SegmentDefinition) (*domain.Segment, error) {
	s, _, err := a.app.Commands.UpdateSegment(ctx, appMeta(m, expected), app.UpdateSegment{Project: project, Segment: segment, Definition: d})
	return s, err
}
