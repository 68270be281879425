package web

// This file is the console's one door to the application: every command and query the pages run
// goes through Commands. Today it is implemented over console.App (load, fold, decide, append with
// optimistic concurrency, read-your-writes) and the read models the REST API reads; when the
// application layer moves to services/app, only this file changes.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/audit"
	"github.com/vexil-flags/vexil/projections/catalog"
	"github.com/vexil-flags/vexil/projections/rulesets"
	"github.com/vexil-flags/vexil/services/console"
	"github.com/vexil-flags/vexil/services/postgres"
)

// Commands is what the console's pages ask of the application. Errors are *domain.Error where the
// caller can act on them: ENotFound, EInvalid with the field (a path in the request's words, e.g.
// "rules[0].clauses[1].values[0]"), EConflict when expected is not the current version.
// expected is console.AnyVersion to skip the check.
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
}

// AppCommands implements Commands over the management application of services/console.
type AppCommands struct {
	app   *console.App
	store *postgres.EventStore
	pool  *pgxpool.Pool
}

// NewAppCommands builds Commands over app and its event store.
func NewAppCommands(app *console.App, store *postgres.EventStore) (*AppCommands, error) {
	if app == nil || store == nil {
		return nil, fmt.Errorf("web: NewAppCommands needs the application and the event store")
	}
	return &AppCommands{app: app, store: store, pool: app.Pool()}, nil
}

var _ Commands = (*AppCommands)(nil)

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
	return a.app.LoadProject(ctx, project)
}

// Flags lists a page of flags from the catalog read model.
func (a *AppCommands) Flags(ctx context.Context, q catalog.ListQuery) ([]*domain.Flag, string, error) {
	return catalog.ListFlags(ctx, a.pool, q)
}

// Flag loads a flag from its events (current, not eventually consistent).
func (a *AppCommands) Flag(ctx context.Context, project, flag string) (*domain.Flag, error) {
	return a.app.LoadFlag(ctx, project, flag)
}

// FlagAt folds a flag's events up to a moment.
func (a *AppCommands) FlagAt(ctx context.Context, project, flag string, at time.Time) (*domain.Flag, error) {
	stream := domain.FlagStream(project, flag)
	events, err := a.store.LoadUntil(ctx, stream, at)
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, domain.Errorf(domain.ENotFound, "flag %q did not exist at %s", flag, at.UTC().Format(time.RFC3339))
	}
	agg, err := projections.Fold(stream, events)
	if err != nil {
		return nil, err
	}
	return agg.(*domain.Flag), nil
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
	return a.app.RulesetAt(ctx, project, env, at)
}

// InstanceAdminToken looks the token up in the access read model, as the API does.
func (a *AppCommands) InstanceAdminToken(ctx context.Context, secret string) (bool, error) {
	t, err := access.LookupToken(ctx, a.pool, console.HashToken(secret))
	if domain.ErrorCode(err) == domain.ENotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !t.Revoked && t.Project == "" && t.Scope == domain.ScopeAdmin, nil
}

// CreateFlag creates a flag with a fresh salt.
func (a *AppCommands) CreateFlag(ctx context.Context, meta domain.Metadata, in domain.NewFlag) (*domain.Flag, error) {
	if !domain.ValidKey(in.Key) {
		return nil, domain.Invalid("key", "key must start with a letter or digit and use only letters, digits, '.', '_' and '-' (at most 100)")
	}
	cat, err := a.app.Catalog(ctx, in.Project)
	if err != nil {
		return nil, err
	}
	in.Salt = console.NewID(8)
	agg, _, err := a.app.Execute(ctx, domain.FlagStream(in.Project, in.Key), 0, meta,
		func(projections.Aggregate) ([]domain.Event, error) { return domain.CreateFlag(in, cat) })
	if domain.ErrorCode(err) == domain.EConflict {
		return nil, &domain.Error{Code: domain.EConflict, Message: fmt.Sprintf("a flag with key %q exists already", in.Key), Field: "key"}
	}
	if err != nil {
		return nil, err
	}
	return agg.(*domain.Flag), nil
}

// flagCommand runs cmd on a flag with the project's catalog, as the REST API's flag routes do.
func (a *AppCommands) flagCommand(ctx context.Context, meta domain.Metadata, project, key string, expected int64,
	cmd func(*domain.Flag, *domain.Catalog) ([]domain.Event, error)) (*domain.Flag, error) {
	cat, err := a.app.Catalog(ctx, project)
	if err != nil {
		return nil, err
	}
	agg, _, err := a.app.Execute(ctx, domain.FlagStream(project, key), expected, meta,
		func(cur projections.Aggregate) ([]domain.Event, error) {
			if cur == nil {
				return nil, domain.Errorf(domain.ENotFound, "flag %q not found in project %q", key, project)
			}
			return cmd(cur.(*domain.Flag), cat)
		})
	if err != nil {
		return nil, err
	}
	return agg.(*domain.Flag), nil
}

// UpdateFlag replaces a flag's descriptive settings.
func (a *AppCommands) UpdateFlag(ctx context.Context, meta domain.Metadata, project, flag string, expected int64, s domain.FlagSettings) (*domain.Flag, error) {
	return a.flagCommand(ctx, meta, project, flag, expected, func(f *domain.Flag, _ *domain.Catalog) ([]domain.Event, error) {
		return f.Update(s)
	})
}

// UpdateVariations replaces a flag's variations.
func (a *AppCommands) UpdateVariations(ctx context.Context, meta domain.Metadata, project, flag string, expected int64, vs []domain.Variation) (*domain.Flag, error) {
	return a.flagCommand(ctx, meta, project, flag, expected, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.UpdateVariations(vs, cat)
	})
}

// UpdateTargeting replaces a flag's targeting in one environment.
func (a *AppCommands) UpdateTargeting(ctx context.Context, meta domain.Metadata, project, flag, env string, expected int64, t domain.Targeting) (*domain.Flag, error) {
	return a.flagCommand(ctx, meta, project, flag, expected, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.UpdateTargeting(env, t, cat)
	})
}

// Toggle turns a flag on or off in one environment.
func (a *AppCommands) Toggle(ctx context.Context, meta domain.Metadata, project, flag, env string, expected int64, on bool) (*domain.Flag, error) {
	return a.flagCommand(ctx, meta, project, flag, expected, func(f *domain.Flag, cat *domain.Catalog) ([]domain.Event, error) {
		return f.Toggle(env, on, cat)
	})
}
