// Package catalog is the console's read model: projects with their environments, flags and
// segments, with the columns the list endpoints filter on and the full folded state beside them.
package catalog

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
)

// Name of this projection.
const Name = "catalog"

// Projection maintains rm_projects, rm_environments, rm_flags and rm_segments. Flags and segments
// carry, beside their folded state, the compact reference data write-side validation reads
// (domain.FlagInfo / SegmentInfo in column info, computed at info_version): every flag or segment
// write validates against the whole project, and decoding every folded state for it was a third of
// the process's CPU in bulk creation (docs/write-path.md).
type Projection struct{}

func (Projection) Name() string { return Name }

// Tables implements projections.TableOwner.
func (Projection) Tables() []string {
	return []string{"rm_projects", "rm_environments", "rm_flags", "rm_segments"}
}

// VolatileColumns implements projections.TableOwner.
func (Projection) VolatileColumns() map[string][]string { return nil }

// Apply upserts the state after the new events; it is idempotent because it writes the whole
// folded state, never increments.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	if len(newEvents) == 0 {
		return nil
	}
	all := append(append([]domain.RecordedEvent(nil), history...), newEvents...)
	agg, err := projections.Fold(newEvents[0].StreamID, all)
	if err != nil {
		return err
	}
	switch s := agg.(type) {
	case *domain.Project:
		return upsertProject(ctx, tx, s)
	case *domain.Flag:
		return upsertFlag(ctx, tx, s)
	case *domain.Segment:
		return upsertSegment(ctx, tx, s)
	}
	return nil // tokens live in the access read model
}

// RedactProject hides SDK server keys, which are secrets, from read models shown broadly. Client
// keys are public by design.
func RedactProject(p *domain.Project) *domain.Project {
	c := *p
	c.Environments = make(map[string]*domain.Environment, len(p.Environments))
	for k, e := range p.Environments {
		ec := *e
		ec.ServerKey = Redact(e.ServerKey)
		c.Environments[k] = &ec
	}
	return &c
}

// Redact keeps the last four characters of a secret.
func Redact(secret string) string {
	if len(secret) <= 4 {
		return "****"
	}
	return "****" + secret[len(secret)-4:]
}

func upsertProject(ctx context.Context, tx pgx.Tx, p *domain.Project) error {
	state, err := json.Marshal(RedactProject(p))
	if err != nil {
		return fmt.Errorf("catalog: marshal project %s: %w", p.Key, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_projects (key, name, description, state, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7)
		ON CONFLICT (key) DO UPDATE SET name=$2, description=$3, state=$4, version=$5, updated_at=$7`,
		p.Key, p.Name, p.Description, state, p.Version, p.CreatedAt, p.UpdatedAt); err != nil {
		return fmt.Errorf("catalog: upsert project %s: %w", p.Key, err)
	}
	for i, key := range p.EnvironmentOrder {
		e := p.Environments[key]
		if e == nil {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rm_environments (project, key, name, color, ordinal, created_at)
			VALUES ($1,$2,$3,$4,$5,$6)
			ON CONFLICT (project, key) DO UPDATE SET name=$3, color=$4, ordinal=$5`,
			p.Key, e.Key, e.Name, e.Color, i, e.CreatedAt); err != nil {
			return fmt.Errorf("catalog: upsert environment %s/%s: %w", p.Key, e.Key, err)
		}
	}
	return nil
}

func upsertFlag(ctx context.Context, tx pgx.Tx, f *domain.Flag) error {
	state, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("catalog: marshal flag %s: %w", f.Key, err)
	}
	info, err := json.Marshal(domain.FlagInfoOf(f))
	if err != nil {
		return fmt.Errorf("catalog: marshal flag info %s: %w", f.Key, err)
	}
	tags := f.Tags
	if tags == nil {
		tags = []string{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_flags (project, key, name, description, tags, type, client_side, archived, state, version, created_at, updated_at, info, info_version)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$10)
		ON CONFLICT (project, key) DO UPDATE SET name=$3, description=$4, tags=$5, type=$6, client_side=$7,
		  archived=$8, state=$9, version=$10, updated_at=$12, info=$13, info_version=$10`,
		f.Project, f.Key, f.Name, f.Description, tags, string(f.Type), f.ClientSide, f.Archived, state,
		f.Version, f.CreatedAt, f.UpdatedAt, info); err != nil {
		return fmt.Errorf("catalog: upsert flag %s/%s: %w", f.Project, f.Key, err)
	}
	return nil
}

func upsertSegment(ctx context.Context, tx pgx.Tx, s *domain.Segment) error {
	state, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("catalog: marshal segment %s: %w", s.Key, err)
	}
	info, err := json.Marshal(domain.SegmentInfoOf(s))
	if err != nil {
		return fmt.Errorf("catalog: marshal segment info %s: %w", s.Key, err)
	}
	tags := s.Tags
	if tags == nil {
		tags = []string{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_segments (project, key, name, description, tags, archived, state, version, created_at, updated_at, info, info_version)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$8)
		ON CONFLICT (project, key) DO UPDATE SET name=$3, description=$4, tags=$5, archived=$6, state=$7,
		  version=$8, updated_at=$10, info=$11, info_version=$8`,
		s.Project, s.Key, s.Name, s.Description, tags, s.Archived, state, s.Version, s.CreatedAt, s.UpdatedAt, info); err != nil {
		return fmt.Errorf("catalog: upsert segment %s/%s: %w", s.Project, s.Key, err)
	}
	return nil
}
