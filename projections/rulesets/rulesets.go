// Package rulesets is the read model SDK serving reads: per environment, each live flag as seen
// from that environment (domain.FlagConfig) and the project's live segments, with a version that
// is the global position of the last event that changed the environment. The version only moves
// when the environment's compiled content really changed, so SDK ETags stay valid across
// unrelated changes, and it is the same after a replay.
package rulesets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
)

// Name of this projection.
const Name = "rulesets"

// Projection maintains rm_rulesets, rm_ruleset_flags, rm_ruleset_segments and rm_ruleset_flag_states.
type Projection struct{}

func (Projection) Name() string { return Name }

// Tables implements projections.TableOwner.
func (Projection) Tables() []string {
	return []string{"rm_rulesets", "rm_ruleset_flags", "rm_ruleset_segments", "rm_ruleset_flag_states", "rm_ruleset_experiments"}
}

// VolatileColumns implements projections.TableOwner: an environment's version is a change
// counter whose value depends on the order streams were delivered in (see the package doc).
func (Projection) VolatileColumns() map[string][]string {
	return map[string][]string{"rm_rulesets": {"version", "updated_at"}}
}

// Apply updates the environments a stream's new events touch.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	if len(newEvents) == 0 {
		return nil
	}
	streamID := newEvents[0].StreamID
	last := newEvents[len(newEvents)-1]
	switch domain.StreamKind(streamID) {
	case "project":
		return applyProject(ctx, tx, streamID, newEvents)
	case "flag":
		all := append(append([]domain.RecordedEvent(nil), history...), newEvents...)
		agg, err := projections.Fold(streamID, all)
		if err != nil {
			return err
		}
		return applyFlag(ctx, tx, agg.(*domain.Flag), last)
	case "segment":
		all := append(append([]domain.RecordedEvent(nil), history...), newEvents...)
		agg, err := projections.Fold(streamID, all)
		if err != nil {
			return err
		}
		return applySegment(ctx, tx, agg.(*domain.Segment), last)
	case "experiment":
		all := append(append([]domain.RecordedEvent(nil), history...), newEvents...)
		agg, err := projections.Fold(streamID, all)
		if err != nil {
			return err
		}
		return applyExperiment(ctx, tx, agg.(*domain.Experiment), last)
	}
	return nil
}

// applyExperiment attaches a running experiment's split to its flag in its environment, or
// detaches it once the experiment stops, and recomputes that flag's served configuration.
func applyExperiment(ctx context.Context, tx pgx.Tx, e *domain.Experiment, last domain.RecordedEvent) error {
	if e.Running() {
		split, err := json.Marshal(e.Split())
		if err != nil {
			return fmt.Errorf("rulesets: marshal experiment %s: %w", e.Key, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rm_ruleset_experiments (project, environment, flag, experiment, split)
			VALUES ($1,$2,$3,$4,$5) ON CONFLICT (project, environment, flag) DO UPDATE SET experiment = $4, split = $5`,
			e.Project, e.Environment, e.Flag, e.Key, split); err != nil {
			return fmt.Errorf("rulesets: attach experiment %s: %w", e.Key, err)
		}
	} else if _, err := tx.Exec(ctx, `DELETE FROM rm_ruleset_experiments WHERE project=$1 AND environment=$2 AND flag=$3 AND experiment=$4`,
		e.Project, e.Environment, e.Flag, e.Key); err != nil {
		return fmt.Errorf("rulesets: detach experiment %s: %w", e.Key, err)
	}
	var state []byte
	err := tx.QueryRow(ctx, `SELECT state FROM rm_ruleset_flag_states WHERE project=$1 AND flag=$2`, e.Project, e.Flag).Scan(&state)
	if err == pgx.ErrNoRows {
		return nil // the flag's own events will build its configuration, experiment included
	}
	if err != nil {
		return fmt.Errorf("rulesets: flag state %s: %w", e.Flag, err)
	}
	f := new(domain.Flag)
	if err := json.Unmarshal(state, f); err != nil {
		return fmt.Errorf("rulesets: decode flag state %s: %w", e.Flag, err)
	}
	return applyFlag(ctx, tx, f, last)
}

// experimentOf returns the split of the experiment running on a flag in an environment, if any.
func experimentOf(ctx context.Context, tx pgx.Tx, project, env, flag string) (*domain.ExperimentSplit, error) {
	var split []byte
	err := tx.QueryRow(ctx, `SELECT split FROM rm_ruleset_experiments WHERE project=$1 AND environment=$2 AND flag=$3`,
		project, env, flag).Scan(&split)
	if err == pgx.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rulesets: experiment of %s/%s/%s: %w", project, env, flag, err)
	}
	s := new(domain.ExperimentSplit)
	if err := json.Unmarshal(split, s); err != nil {
		return nil, fmt.Errorf("rulesets: decode experiment of %s: %w", flag, err)
	}
	return s, nil
}

func applyProject(ctx context.Context, tx pgx.Tx, streamID string, events []domain.RecordedEvent) error {
	project := strings.TrimPrefix(streamID, "project/")
	for _, r := range events {
		if r.Type != (&domain.EnvironmentCreated{}).EventType() {
			continue
		}
		e, err := r.Decode()
		if err != nil {
			return err
		}
		env := e.(*domain.EnvironmentCreated).Key
		tag, err := tx.Exec(ctx, `INSERT INTO rm_rulesets (project, environment, version, updated_at)
			VALUES ($1,$2,$3,$4) ON CONFLICT (project, environment) DO NOTHING`, project, env, r.Position, r.OccurredAt)
		if err != nil {
			return fmt.Errorf("rulesets: create %s/%s: %w", project, env, err)
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		// Flags created before the environment serve their defaults in it.
		rows, err := tx.Query(ctx, `SELECT state FROM rm_ruleset_flag_states WHERE project = $1`, project)
		if err != nil {
			return fmt.Errorf("rulesets: flags of %s: %w", project, err)
		}
		var flags []*domain.Flag
		for rows.Next() {
			var state []byte
			if err := rows.Scan(&state); err != nil {
				rows.Close()
				return fmt.Errorf("rulesets: scan flag state: %w", err)
			}
			f := new(domain.Flag)
			if err := json.Unmarshal(state, f); err != nil {
				rows.Close()
				return fmt.Errorf("rulesets: decode flag state: %w", err)
			}
			flags = append(flags, f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("rulesets: flags of %s: %w", project, err)
		}
		for _, f := range flags {
			if f.Archived {
				continue
			}
			c := f.ConfigFor(env)
			if c.Experiment, err = experimentOf(ctx, tx, project, env, f.Key); err != nil {
				return err
			}
			if err := putFlagConfig(ctx, tx, project, env, c); err != nil {
				return err
			}
		}
	}
	return nil
}

func putFlagConfig(ctx context.Context, tx pgx.Tx, project, env string, c *domain.FlagConfig) error {
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("rulesets: marshal %s: %w", c.Key, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_ruleset_flags (project, environment, flag, config) VALUES ($1,$2,$3,$4)
		ON CONFLICT (project, environment, flag) DO UPDATE SET config = $4`, project, env, c.Key, body); err != nil {
		return fmt.Errorf("rulesets: put %s/%s/%s: %w", project, env, c.Key, err)
	}
	return nil
}

// applyFlag writes the flag's config into every environment of its project, and moves the version
// of exactly those environments whose config changed.
func applyFlag(ctx context.Context, tx pgx.Tx, f *domain.Flag, last domain.RecordedEvent) error {
	state, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("rulesets: marshal flag %s: %w", f.Key, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_ruleset_flag_states (project, flag, state) VALUES ($1,$2,$3)
		ON CONFLICT (project, flag) DO UPDATE SET state = $3`, f.Project, f.Key, state); err != nil {
		return fmt.Errorf("rulesets: put flag state %s: %w", f.Key, err)
	}
	envs, err := environments(ctx, tx, f.Project)
	if err != nil {
		return err
	}
	for _, env := range envs {
		var old []byte
		err := tx.QueryRow(ctx, `SELECT config FROM rm_ruleset_flags WHERE project=$1 AND environment=$2 AND flag=$3`,
			f.Project, env, f.Key).Scan(&old)
		if err != nil && err != pgx.ErrNoRows {
			return fmt.Errorf("rulesets: read %s/%s/%s: %w", f.Project, env, f.Key, err)
		}
		changed := false
		if f.Archived {
			if old != nil {
				if _, err := tx.Exec(ctx, `DELETE FROM rm_ruleset_flags WHERE project=$1 AND environment=$2 AND flag=$3`,
					f.Project, env, f.Key); err != nil {
					return fmt.Errorf("rulesets: remove archived %s: %w", f.Key, err)
				}
				changed = true
			}
		} else {
			c := f.ConfigFor(env)
			if c.Experiment, err = experimentOf(ctx, tx, f.Project, env, f.Key); err != nil {
				return err
			}
			body, err := json.Marshal(c)
			if err != nil {
				return fmt.Errorf("rulesets: marshal %s: %w", f.Key, err)
			}
			if !sameJSON(old, body) {
				if err := putFlagConfig(ctx, tx, f.Project, env, c); err != nil {
					return err
				}
				changed = true
			}
		}
		if changed {
			if err := bump(ctx, tx, f.Project, env, last); err != nil {
				return err
			}
		}
	}
	return nil
}

func applySegment(ctx context.Context, tx pgx.Tx, s *domain.Segment, last domain.RecordedEvent) error {
	var old []byte
	err := tx.QueryRow(ctx, `SELECT definition FROM rm_ruleset_segments WHERE project=$1 AND segment=$2`,
		s.Project, s.Key).Scan(&old)
	if err != nil && err != pgx.ErrNoRows {
		return fmt.Errorf("rulesets: read segment %s: %w", s.Key, err)
	}
	changed := false
	if s.Archived {
		if old != nil {
			if _, err := tx.Exec(ctx, `DELETE FROM rm_ruleset_segments WHERE project=$1 AND segment=$2`, s.Project, s.Key); err != nil {
				return fmt.Errorf("rulesets: remove archived segment %s: %w", s.Key, err)
			}
			changed = true
		}
	} else {
		body, err := json.Marshal(servedSegment(s))
		if err != nil {
			return fmt.Errorf("rulesets: marshal segment %s: %w", s.Key, err)
		}
		if !sameJSON(old, body) {
			if _, err := tx.Exec(ctx, `INSERT INTO rm_ruleset_segments (project, segment, definition) VALUES ($1,$2,$3)
				ON CONFLICT (project, segment) DO UPDATE SET definition = $3`, s.Project, s.Key, body); err != nil {
				return fmt.Errorf("rulesets: put segment %s: %w", s.Key, err)
			}
			changed = true
		}
	}
	if !changed {
		return nil
	}
	envs, err := environments(ctx, tx, s.Project)
	if err != nil {
		return err
	}
	for _, env := range envs {
		if err := bump(ctx, tx, s.Project, env, last); err != nil {
			return err
		}
	}
	return nil
}

// servedSegment is the segment as SDKs need it: the definition, without the console's metadata
// that changes nothing in evaluation (name, description, tags, timestamps).
func servedSegment(s *domain.Segment) *domain.Segment {
	return &domain.Segment{Project: s.Project, Key: s.Key, Match: s.Match, Clauses: s.Clauses,
		Included: s.Included, Excluded: s.Excluded, Version: s.Version}
}

func environments(ctx context.Context, tx pgx.Tx, project string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT environment FROM rm_rulesets WHERE project = $1 ORDER BY environment`, project)
	if err != nil {
		return nil, fmt.Errorf("rulesets: environments of %s: %w", project, err)
	}
	envs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("rulesets: environments of %s: %w", project, err)
	}
	return envs, nil
}

func bump(ctx context.Context, tx pgx.Tx, project, env string, last domain.RecordedEvent) error {
	if _, err := tx.Exec(ctx, `UPDATE rm_rulesets SET version = GREATEST(version + 1, $3), updated_at = $4
		WHERE project = $1 AND environment = $2`, project, env, last.Position, last.OccurredAt); err != nil {
		return fmt.Errorf("rulesets: bump %s/%s: %w", project, env, err)
	}
	return nil
}

func sameJSON(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	// jsonb normalizes key order and spacing; compare decoded values.
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
