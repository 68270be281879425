package rulesets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Version returns an environment's ruleset version; ENotFound for an unknown environment.
func Version(ctx context.Context, db Querier, project, env string) (int64, error) {
	var v int64
	err := db.QueryRow(ctx, `SELECT version FROM rm_rulesets WHERE project=$1 AND environment=$2`, project, env).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, domain.Errorf(domain.ENotFound, "environment %s/%s has no ruleset", project, env)
	}
	if err != nil {
		return 0, fmt.Errorf("rulesets: version %s/%s: %w", project, env, err)
	}
	return v, nil
}

// Load reads an environment's whole ruleset in one repeatable-read snapshot, so the version and the
// content always match.
func Load(ctx context.Context, db interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}, project, env string) (*domain.Ruleset, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("rulesets: begin: %w", err)
	}
	defer tx.Rollback(ctx)
	v, err := Version(ctx, tx, project, env)
	if err != nil {
		return nil, err
	}
	rs := &domain.Ruleset{Project: project, Environment: env, Version: v,
		Flags: map[string]*domain.FlagConfig{}, Segments: map[string]*domain.Segment{}}
	rows, err := tx.Query(ctx, `SELECT flag, config FROM rm_ruleset_flags WHERE project=$1 AND environment=$2`, project, env)
	if err != nil {
		return nil, fmt.Errorf("rulesets: flags %s/%s: %w", project, env, err)
	}
	for rows.Next() {
		var key string
		var body []byte
		if err := rows.Scan(&key, &body); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rulesets: scan flag: %w", err)
		}
		c := new(domain.FlagConfig)
		if err := json.Unmarshal(body, c); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rulesets: decode flag %s: %w", key, err)
		}
		rs.Flags[key] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rulesets: flags %s/%s: %w", project, env, err)
	}
	rows, err = tx.Query(ctx, `SELECT segment, definition FROM rm_ruleset_segments WHERE project=$1`, project)
	if err != nil {
		return nil, fmt.Errorf("rulesets: segments %s: %w", project, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var body []byte
		if err := rows.Scan(&key, &body); err != nil {
			return nil, fmt.Errorf("rulesets: scan segment: %w", err)
		}
		s := new(domain.Segment)
		if err := json.Unmarshal(body, s); err != nil {
			return nil, fmt.Errorf("rulesets: decode segment %s: %w", key, err)
		}
		rs.Segments[key] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rulesets: segments %s: %w", project, err)
	}
	return rs, nil
}

// EnvironmentVersion is one environment's current ruleset version.
type EnvironmentVersion struct {
	Project, Environment string
	Version              int64
}

// Versions lists every environment's version, for the serving role's reconciliation.
func Versions(ctx context.Context, db Querier) ([]EnvironmentVersion, error) {
	rows, err := db.Query(ctx, `SELECT project, environment, version FROM rm_rulesets`)
	if err != nil {
		return nil, fmt.Errorf("rulesets: versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EnvironmentVersion, error) {
		var v EnvironmentVersion
		err := r.Scan(&v.Project, &v.Environment, &v.Version)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("rulesets: versions: %w", err)
	}
	return out, nil
}
