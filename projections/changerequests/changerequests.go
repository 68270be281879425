// Package changerequests is the read model of change requests (four eyes in protected
// environments): one row per request with the columns its lists filter on and the folded state.
package changerequests

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
)

// Name of this projection.
const Name = "changerequests"

// Projection maintains rm_change_requests.
type Projection struct{}

func (Projection) Name() string { return Name }

// Tables implements projections.TableOwner.
func (Projection) Tables() []string { return []string{"rm_change_requests"} }

// VolatileColumns implements projections.TableOwner: every column is a function of the events.
func (Projection) VolatileColumns() map[string][]string { return nil }

// Apply upserts the folded state after the new events (idempotent: whole states).
func (Projection) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	if len(newEvents) == 0 || domain.StreamKind(newEvents[0].StreamID) != "changerequest" {
		return nil
	}
	all := append(append([]domain.RecordedEvent(nil), history...), newEvents...)
	agg, err := projections.Fold(newEvents[0].StreamID, all)
	if err != nil {
		return err
	}
	r := agg.(*domain.ChangeRequest)
	state, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("changerequests: marshal %s: %w", r.ID, err)
	}
	var applyAt *time.Time
	if !r.ApplyAt.IsZero() {
		applyAt = &r.ApplyAt
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_change_requests (project, id, environment, flag, segment, status, author,
		apply_at, state, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
		ON CONFLICT (project, id) DO UPDATE SET status=$6, apply_at=$8, state=$9, version=$10, updated_at=$12`,
		r.Project, r.ID, r.Environment, r.Flag, r.Segment, string(r.Status), r.Author, applyAt, state, r.Version,
		r.CreatedAt, r.UpdatedAt); err != nil {
		return fmt.Errorf("changerequests: upsert %s/%s: %w", r.Project, r.ID, err)
	}
	return nil
}

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ListQuery filters one project's change requests. Empty filters match all; Pending keeps the
// open and approved ones.
type ListQuery struct {
	Project     string
	Flag        string
	Environment string
	Status      string
	Pending     bool
	Limit       int // 100 when 0
}

// MaxList bounds one list: open requests are few; older ones are in the audit log.
const MaxList = 500

// List returns change requests, newest first.
func List(ctx context.Context, q Querier, lq ListQuery) ([]*domain.ChangeRequest, error) {
	if lq.Limit <= 0 {
		lq.Limit = 100
	}
	if lq.Limit > MaxList {
		return nil, domain.Invalid("limit", "limit must be at most %d", MaxList)
	}
	rows, err := q.Query(ctx, `SELECT state FROM rm_change_requests
		WHERE project = $1 AND ($2 = '' OR flag = $2) AND ($3 = '' OR environment = $3) AND ($4 = '' OR status = $4)
		  AND (NOT $5 OR status IN ('open', 'approved'))
		ORDER BY created_at DESC, id DESC LIMIT $6`, lq.Project, lq.Flag, lq.Environment, lq.Status, lq.Pending, lq.Limit)
	if err != nil {
		return nil, fmt.Errorf("changerequests: list %s: %w", lq.Project, err)
	}
	return scan(rows)
}

// Due returns approved requests whose apply_at has come, oldest first.
func Due(ctx context.Context, q Querier, now time.Time, limit int) ([]*domain.ChangeRequest, error) {
	rows, err := q.Query(ctx, `SELECT state FROM rm_change_requests
		WHERE status = 'approved' AND apply_at IS NOT NULL AND apply_at <= $1 ORDER BY apply_at LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("changerequests: due: %w", err)
	}
	return scan(rows)
}

func scan(rows pgx.Rows) ([]*domain.ChangeRequest, error) {
	defer rows.Close()
	out := []*domain.ChangeRequest{}
	for rows.Next() {
		var state []byte
		if err := rows.Scan(&state); err != nil {
			return nil, fmt.Errorf("changerequests: scan: %w", err)
		}
		r := new(domain.ChangeRequest)
		if err := json.Unmarshal(state, r); err != nil {
			return nil, fmt.Errorf("changerequests: decode: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("changerequests: list: %w", err)
	}
	return out, nil
}
