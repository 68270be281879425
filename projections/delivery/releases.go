package delivery

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/catalog"
)

func upsertPipeline(ctx context.Context, tx pgx.Tx, p *domain.Pipeline) error {
	state, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("delivery: marshal pipeline %s: %w", p.Key, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_delivery_pipelines (project, key, name, state, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7)
		ON CONFLICT (project, key) DO UPDATE SET name=$3, state=$4, version=$5, updated_at=$7`,
		p.Project, p.Key, p.Name, state, p.Version, p.CreatedAt, p.UpdatedAt); err != nil {
		return fmt.Errorf("delivery: upsert pipeline %s/%s: %w", p.Project, p.Key, err)
	}
	return nil
}

func upsertRelease(ctx context.Context, tx pgx.Tx, r *domain.Release) error {
	state, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("delivery: marshal release %s: %w", r.ID, err)
	}
	env := ""
	if r.Stage < len(r.Stages) {
		env = r.Stages[r.Stage].Environment
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_delivery_releases (project, id, pipeline, flag, status, stage, environment,
		state, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
		ON CONFLICT (project, id) DO UPDATE SET status=$5, stage=$6, environment=$7, state=$8, version=$9, updated_at=$11`,
		r.Project, r.ID, r.Pipeline, r.Flag, string(r.Status), r.Stage, env, state, r.Version, r.CreatedAt, r.UpdatedAt); err != nil {
		return fmt.Errorf("delivery: upsert release %s/%s: %w", r.Project, r.ID, err)
	}
	return nil
}

// ActiveReleases returns up to limit running or paused releases, least recently changed first:
// the scheduler advances the running ones (paused ones too, so a resume is seen at once even
// when this read model lags; a paused release's aggregate decides nothing).
func ActiveReleases(ctx context.Context, db Querier, limit int) ([]Ref, error) {
	return refs(ctx, db, `SELECT project, id FROM rm_delivery_releases WHERE status IN ('running', 'paused')
		ORDER BY updated_at, project, id LIMIT $1`, limit)
}

// ListReleases returns a page of releases ordered by id (filters: flag, environment of the
// current stage, status).
func ListReleases(ctx context.Context, db Querier, q ListQuery) ([]*domain.Release, string, error) {
	return listByID[domain.Release](ctx, db, "rm_delivery_releases", q, true, "", func(r *domain.Release) string { return r.ID })
}

// ListPipelines returns a page of pipelines ordered by key.
func ListPipelines(ctx context.Context, db Querier, q ListQuery) ([]*domain.Pipeline, string, error) {
	q.Flag, q.Environment = "", ""
	return listByKey(ctx, db, q)
}

func listByKey(ctx context.Context, db Querier, q ListQuery) ([]*domain.Pipeline, string, error) {
	after, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	items, err := states[domain.Pipeline](ctx, db, `SELECT state FROM rm_delivery_pipelines WHERE project = $1 AND key > $2
		ORDER BY key LIMIT $3`, q.Project, after, q.Limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > q.Limit {
		items = items[:q.Limit]
		next = catalog.EncodeCursor(items[len(items)-1].Key)
	}
	return items, next, nil
}
