package sdkapi

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/access"
	"github.com/vexil-flags/vexil/projections/rulesets"
)

// Source is where the snapshots read rulesets and SDK keys: the read models in PostgreSQL (the
// api role) or the mirror of a core that an edge process follows (services/roles/edge). The snapshots
// ask for versions first and load only the rulesets whose version moved.
type Source interface {
	// Versions lists every environment served with its current ruleset version; project ""
	// means every project.
	Versions(ctx context.Context, project string) ([]rulesets.EnvironmentVersion, error)
	// Ruleset returns one environment's whole ruleset, its version matching its content.
	Ruleset(ctx context.Context, project, environment string) (*domain.Ruleset, error)
	// Keys returns every valid SDK key.
	Keys(ctx context.Context) (map[string]access.SDKKey, error)
}

// PostgresSource reads the rulesets and SDK keys read models: the api role's source.
type PostgresSource struct{ Pool *pgxpool.Pool }

// Versions implements Source.
func (p PostgresSource) Versions(ctx context.Context, project string) ([]rulesets.EnvironmentVersion, error) {
	if project == "" {
		return rulesets.Versions(ctx, p.Pool)
	}
	rows, err := p.Pool.Query(ctx, `SELECT project, environment, version FROM rm_rulesets WHERE project = $1`, project)
	if err != nil {
		return nil, fmt.Errorf("sdkapi: versions of %s: %w", project, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rulesets.EnvironmentVersion, error) {
		var v rulesets.EnvironmentVersion
		return v, r.Scan(&v.Project, &v.Environment, &v.Version)
	})
	if err != nil {
		return nil, fmt.Errorf("sdkapi: versions of %s: %w", project, err)
	}
	return list, nil
}

// Ruleset implements Source.
func (p PostgresSource) Ruleset(ctx context.Context, project, environment string) (*domain.Ruleset, error) {
	return rulesets.Load(ctx, p.Pool, project, environment)
}

// Keys implements Source.
func (p PostgresSource) Keys(ctx context.Context) (map[string]access.SDKKey, error) {
	rows, err := p.Pool.Query(ctx, `SELECT key, project, environment, kind FROM rm_sdk_keys`)
	if err != nil {
		return nil, fmt.Errorf("sdkapi: load SDK keys: %w", err)
	}
	defer rows.Close()
	keys := map[string]access.SDKKey{}
	for rows.Next() {
		var key string
		var k access.SDKKey
		if err := rows.Scan(&key, &k.Project, &k.Environment, &k.Kind); err != nil {
			return nil, fmt.Errorf("sdkapi: scan SDK key: %w", err)
		}
		keys[key] = k
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sdkapi: load SDK keys: %w", err)
	}
	return keys, nil
}
