// Package experiments is the read model of goals and experiments: what the console lists, and
// what the experiment role reads to know which experiments to analyse.
package experiments

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
)

// Name of this projection.
const Name = "experiments"

// Projection maintains rm_goals and rm_experiments.
type Projection struct{}

func (Projection) Name() string { return Name }

// Tables implements projections.TableOwner.
func (Projection) Tables() []string { return []string{"rm_goals", "rm_experiments"} }

// VolatileColumns implements projections.TableOwner.
func (Projection) VolatileColumns() map[string][]string { return nil }

// Apply upserts the folded state of a goal or experiment stream.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	if len(newEvents) == 0 {
		return nil
	}
	streamID := newEvents[0].StreamID
	kind := domain.StreamKind(streamID)
	if kind != "goal" && kind != "experiment" {
		return nil
	}
	agg, err := projections.Fold(streamID, append(append([]domain.RecordedEvent(nil), history...), newEvents...))
	if err != nil {
		return err
	}
	state, err := json.Marshal(agg)
	if err != nil {
		return fmt.Errorf("experiments: marshal %s: %w", streamID, err)
	}
	switch v := agg.(type) {
	case *domain.Goal:
		_, err = tx.Exec(ctx, `INSERT INTO rm_goals (project, key, name, kind, direction, archived, state, version, created_at, updated_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (project, key) DO UPDATE
			SET name=$3, kind=$4, direction=$5, archived=$6, state=$7, version=$8, updated_at=$10`,
			v.Project, v.Key, v.Name, string(v.Kind), string(v.Direction), v.Archived, state, v.Version, v.CreatedAt, v.UpdatedAt)
	case *domain.Experiment:
		_, err = tx.Exec(ctx, `INSERT INTO rm_experiments (project, key, name, flag, environment, status, archived, state, version, created_at, updated_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (project, key) DO UPDATE
			SET name=$3, flag=$4, environment=$5, status=$6, archived=$7, state=$8, version=$9, updated_at=$11`,
			v.Project, v.Key, v.Name, v.Flag, v.Environment, string(v.Status), v.Archived, state, v.Version, v.CreatedAt, v.UpdatedAt)
	}
	if err != nil {
		return fmt.Errorf("experiments: upsert %s: %w", streamID, err)
	}
	return nil
}

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// List returns a project's goals or experiments (T is domain.Goal or domain.Experiment), by key.
func List[T any](ctx context.Context, db Querier, project string, archived bool) ([]*T, error) {
	table := "rm_goals"
	var zero T
	if _, ok := any(&zero).(*domain.Experiment); ok {
		table = "rm_experiments"
	}
	rows, err := db.Query(ctx, `SELECT state FROM `+table+` WHERE project = $1 AND archived = $2 ORDER BY key`, project, archived)
	if err != nil {
		return nil, fmt.Errorf("experiments: list %s: %w", table, err)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		var state []byte
		if err := rows.Scan(&state); err != nil {
			return nil, fmt.Errorf("experiments: scan: %w", err)
		}
		v := new(T)
		if err := json.Unmarshal(state, v); err != nil {
			return nil, fmt.Errorf("experiments: decode: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Running returns every running experiment of every project (the experiment role analyses them).
func Running(ctx context.Context, db Querier) ([]*domain.Experiment, error) {
	rows, err := db.Query(ctx, `SELECT state FROM rm_experiments WHERE status = $1 AND NOT archived ORDER BY project, key`,
		string(domain.ExperimentStatusRunning))
	if err != nil {
		return nil, fmt.Errorf("experiments: running: %w", err)
	}
	defer rows.Close()
	var out []*domain.Experiment
	for rows.Next() {
		var state []byte
		if err := rows.Scan(&state); err != nil {
			return nil, fmt.Errorf("experiments: scan: %w", err)
		}
		e := new(domain.Experiment)
		if err := json.Unmarshal(state, e); err != nil {
			return nil, fmt.Errorf("experiments: decode: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
