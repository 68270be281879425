package web

// This file is the console's one door to the application: every command and query the pages run
// goes through Commands, implemented over the application layer (services/app), which the REST
// API, the scheduler, auto-ops and triggers use too, and over the read models the REST API reads.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/analysis"
)

// AnyVersion is the expected version of a form that names none (no If-Match): whatever is current.
const AnyVersion int64 = -1

// Commands is what the console's pages ask of the application. Errors are *domain.Error where the
// caller can act on them: ENotFound, EInvalid with the field (a path in the request's words, e.g.
// "rules[0].clauses[1].values[0]"), EConflict when expected is not the current version.
// expected is AnyVersion to skip the check.
type Commands interface {
	// Queries.
	Projects(ctx context.Context) ([]catalog.ProjectSummary, error)
	Project(ctx context.Context, project string) (*domain.Project, error)
	Flags(ctx context.Context, q catalog.ListQuery) ([]*domain.Flag, string, error)
	Flag(ctx context.Context, project, flag string) (*domain.Flag, error)
	FlagAt(ctx context.Context, project, flag string, at time.Time) (*domain.Flag, error)
	// FlagKeys lists the keys of a project's live flags (prerequisite candidates).
	FlagKeys(ctx context.Context, project string) ([]string, error)
	Segments(ctx context.Context, project string) ([]*domain.Segment, error)
	Audit(ctx context.Context, q audit.Query) ([]audit.Entry, string, error)
	// LastChanges is the newest audit entry of each of the given flags.
	LastChanges(ctx context.Context, project string, flags []string) (map[string]audit.Entry, error)

	// Ruleset is an environment's ruleset: the one the api role serves (at zero), or as it was at
	// a past moment, rebuilt from the event store.
	Ruleset(ctx context.Context, project, env string, at time.Time) (*domain.Ruleset, error)
	// InstanceAdminToken reports whether secret is a live, unrestricted API token of admin scope
	// (the bootstrap admin token, or one made by `vexil tokens create --scope admin`).
	InstanceAdminToken(ctx context.Context, secret string) (bool, error)

	// Commands on flags.
	CreateFlag(ctx context.Context, meta domain.Metadata, in domain.NewFlag) (*domain.Flag, error)
	UpdateFlag(ctx context.Context, meta domain.Metadata, project, flag string, expected int64, s domain.FlagSettings) (*domain.Flag, error)
	UpdateVariations(ctx context.Context, meta domain.Metadata, project, flag string, expected int64, vs []domain.Variation) (*domain.Flag, error)
	UpdateTargeting(ctx context.Context, meta domain.Metadata, project, flag, env string, expected int64, t domain.Targeting) (*domain.Flag, error)
	Toggle(ctx context.Context, meta domain.Metadata, project, flag, env string, expected int64, on bool) (*domain.Flag, error)

	// Insights, goals and experiments (analytics_commands.go).
	AnalyticsCommands
	// Scheduled changes, rollouts, auto-ops rules and webhook triggers (delivery_commands.go).
	DeliveryCommands
	// Projects, environments, SDK keys, API tokens and segments (commands_admin.go).
	adminCommands
}

// AppCommands implements Commands over the application layer.
type AppCommands struct {
	app      *app.Application
	pool     *pgxpool.Pool
	analyzer *analysis.Analyzer // reports, history and plans; nil: unavailable (analytics_commands.go)
}

// NewAppCommands builds Commands over the application layer.
func NewAppCommands(application *app.Application) (*AppCommands, error) {
	if application == nil {
		return nil, fmt.Errorf("web: NewAppCommands needs the application layer")
	}
	return &AppCommands{app: application, pool: application.Queries.Pool()}, nil
}

var _ Commands = (*AppCommands)(nil)

// appMeta is the application's metadata of a person's command: who, why, the request, and the
// version the form was rendered from (a person gets the conflict and reloads: no retries).
func appMeta(m domain.Metadata, expected int64) app.Meta {
	am := app.Meta{Actor: m.Actor, Reason: m.Reason, RequestID: m.RequestID, CommandID: m.CommandID}
	if expected != AnyVersion {
		am.Expected = app.Version(expected)
	}
	return am
}

// Projects lists every project (the caller narrows to the person's).
func (a *AppCommands) Projects(ctx context.Context) ([]catalog.ProjectSummary, error) {
	var out []catalog.ProjectSummary
	cursor := ""
	for {
		page, next, err := catalog.ListProjects(ctx, a.pool, cursor, catalog.MaxPageSize, "")
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// Project loads a project with its environments and SDK keys.
func (a *AppCommands) Project(ctx context.Context, project string) (*domain.Project, error) {
	p, _, err := a.app.Queries.Project(ctx, project)
	return p, err
}

// Flags lists a page of flags from the catalog read model.
func (a *AppCommands) Flags(ctx context.Context, q catalog.ListQuery) ([]*domain.Flag, string, error) {
	return catalog.ListFlags(ctx, a.pool, q)
}

// Flag loads a flag from its events (current, not eventually consistent).
func (a *AppCommands) Flag(ctx context.Context, project, flag string) (*domain.Flag, error) {
	f, _, err := a.app.Queries.Flag(ctx, project, flag)
	return f, err
}

// FlagAt folds a flag's events up to a moment.
func (a *AppCommands) FlagAt(ctx context.Context, project, flag string, at time.Time) (*domain.Flag, error) {
	f, _, err := a.app.Queries.FlagAt(ctx, project, flag, at)
	return f, err
}

// FlagKeys reads the live flags' keys from the catalog read model, without their states.
func (a *AppCommands) FlagKeys(ctx context.Context, project string) ([]string, error) {
	rows, err := a.pool.Query(ctx, `SELECT key FROM rm_flags WHERE project = $1 AND NOT archived ORDER BY key`, project)
	if err != nil {
		return nil, fmt.Errorf("web: flag keys of %s: %w", project, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("web: flag keys of %s: %w", project, err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Segments lists the live segments of a project.
func (a *AppCommands) Segments(ctx context.Context, project string) ([]*domain.Segment, error) {
	var out []*domain.Segment
	q := catalog.ListQuery{Project: project, Limit: catalog.MaxPageSize}
	for {
		page, next, err := catalog.ListSegments(ctx, a.pool, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		q.Cursor = next
	}
}

// Audit lists audit entries, newest first.
func (a *AppCommands) Audit(ctx context.Context, q audit.Query) ([]audit.Entry, string, error) {
	return audit.List(ctx, a.pool, q)
}

// LastChanges reads the newest audit entry of each flag in one query.
func (a *AppCommands) LastChanges(ctx context.Context, project string, flags []string) (map[string]audit.Entry, error) {
	rows, err := a.pool.Query(ctx, `SELECT DISTINCT ON (entity_key) entity_key, event_type, actor, reason, occurred_at
		FROM rm_audit_log WHERE entity_kind = 'flag' AND project = $1 AND entity_key = ANY($2)
		ORDER BY entity_key, position DESC`, project, flags)
	if err != nil {
		return nil, fmt.Errorf("web: last changes in %s: %w", project, err)
	}
	defer rows.Close()
	out := map[string]audit.Entry{}
	for rows.Next() {
		var e audit.Entry
		if err := rows.Scan(&e.EntityKey, &e.EventType, &e.Actor, &e.Reason, &e.OccurredAt); err != nil {
			return nil, fmt.Errorf("web: last changes in %s: %w", project, err)
		}
		out[e.EntityKey] = e
	}
	return out, rows.Err()
}

// Ruleset reads the served ruleset, or rebuilds a past one.
func (a *AppCommands) Ruleset(ctx context.Context, project, env string, at time.Time) (*domain.Ruleset, error) {
	if at.IsZero() {
		return rulesets.Load(ctx, a.pool, project, env)
	}
	return a.app.Queries.RulesetAt(ctx, project, env, at)
}

// InstanceAdminToken looks the token up in the access read model, as the API does.
func (a *AppCommands) InstanceAdminToken(ctx context.Context, secret string) (bool, error) {
	t, err := access.LookupToken(ctx, a.pool, app.HashToken(secret))
	if domain.ErrorCode(err) == domain.ENotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !t.Revoked && t.Project == "" && t.Scope == domain.ScopeAdmin, nil
}

// CreateFlag creates a flag (the application layer gives it a fresh salt).
func (a *AppCommands) CreateFlag(ctx context.Context, m domain.Metadata, in domain.NewFlag) (*domain.Flag, error) {
	f, _, err := a.app.Commands.CreateFlag(ctx, appMeta(m, AnyVersion), app.CreateFlag{Project: in.Project, Key: in.Key,
		Name: in.Name, Description: in.Description, Tags: in.Tags, Type: in.Type, Variations: in.Variations,
		Defaults: in.Defaults, ClientSide: in.ClientSide})
	return f, err
}

// UpdateFlag replaces a flag's descriptive settings.
func (a *AppCommands) UpdateFlag(ctx context.Context, m domain.Metadata, project, flag string, expected int64, s domain.FlagSettings) (*domain.Flag, error) {
	f, _, err := a.app.Commands.UpdateFlag(ctx, appMeta(m, expected), app.UpdateFlag{Project: project, Flag: flag,
		Edit: func(domain.FlagSettings) (domain.FlagSettings, error) { return s, nil }})
	return f, err
}

// UpdateVariations replaces a flag's variations.
func (a *AppCommands) UpdateVariations(ctx context.Context, m domain.Metadata, project, flag string, expected int64, vs []domain.Variation) (*domain.Flag, error) {
	f, _, err := a.app.Commands.UpdateVariations(ctx, appMeta(m, expected), app.UpdateVariations{Project: project, Flag: flag, Variations: vs})
	return f, err
}

// UpdateTargeting replaces a flag's targeting in one environment.
func (a *AppCommands) UpdateTargeting(ctx context.Context, m domain.Metadata, project, flag, env string, expected int64, t domain.Targeting) (*domain.Flag, error) {
	f, _, err := a.app.Commands.UpdateTargeting(ctx, appMeta(m, expected), app.UpdateTargeting{Project: project, Flag: flag, Environment: env, Targeting: t})
	return f, err
}

// Toggle turns a flag on or off in one environment.
func (a *AppCommands) Toggle(ctx context.Context, m domain.Metadata, project, flag, env string, expected int64, on bool) (*domain.Flag, error) {
	f, _, err := a.app.Commands.ToggleFlag(ctx, appMeta(m, expected), app.ToggleFlag{Project: project, Flag: flag, Environment: env, On: on})
	return f, err
}
