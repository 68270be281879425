package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/catalog"
)

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ListQuery filters and pages a list of one project's delivery objects. Empty filters match all.
// Lists are ordered by id (generated ids are UUIDv7, so creation order) except scheduled changes,
// which are ordered by due time.
type ListQuery struct {
	Project     string
	Flag        string
	Environment string
	Status      string // scheduled changes and rollouts only
	Cursor      string // the NextCursor of the previous page
	Limit       int    // catalog.DefaultPageSize when 0, at most catalog.MaxPageSize
}

func (q *ListQuery) normalize() (after string, err error) {
	if q.Limit <= 0 {
		q.Limit = catalog.DefaultPageSize
	}
	if q.Limit > catalog.MaxPageSize {
		return "", domain.Invalid("limit", "limit must be at most %d", catalog.MaxPageSize)
	}
	return catalog.DecodeCursor(q.Cursor)
}

// filters renders the common WHERE clause; args continue after the given ones.
func (q ListQuery) filters(args []any, status bool) (string, []any) {
	where := []string{fmt.Sprintf("project = $%d", len(args)+1)}
	args = append(args, q.Project)
	add := func(col, v string) {
		if v != "" {
			args = append(args, v)
			where = append(where, fmt.Sprintf("%s = $%d", col, len(args)))
		}
	}
	add("flag", q.Flag)
	add("environment", q.Environment)
	if status {
		add("status", q.Status)
	}
	return strings.Join(where, " AND "), args
}

// ListSchedules returns a page of scheduled changes ordered by due time, and the next cursor.
func ListSchedules(ctx context.Context, db Querier, q ListQuery) ([]*domain.ScheduledChange, string, error) {
	after, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	where, args := q.filters(nil, true)
	if after != "" {
		at, id, ok := strings.Cut(after, "|")
		t, perr := time.Parse(time.RFC3339Nano, at)
		if !ok || perr != nil {
			return nil, "", domain.Invalid("cursor", "malformed cursor; pass next_cursor from the previous page")
		}
		args = append(args, t, id)
		where += fmt.Sprintf(" AND (at, id) > ($%d, $%d)", len(args)-1, len(args))
	}
	args = append(args, q.Limit+1)
	items, err := states[domain.ScheduledChange](ctx, db, `SELECT state FROM rm_delivery_schedules WHERE `+where+
		fmt.Sprintf(` ORDER BY at, id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > q.Limit {
		items = items[:q.Limit]
		last := items[len(items)-1]
		next = catalog.EncodeCursor(last.At.UTC().Format(time.RFC3339Nano) + "|" + last.ID)
	}
	return items, next, nil
}

// ListRollouts returns a page of rollouts ordered by id.
func ListRollouts(ctx context.Context, db Querier, q ListQuery) ([]*domain.Rollout, string, error) {
	return listByID[domain.Rollout](ctx, db, "rm_delivery_rollouts", q, true, "", func(r *domain.Rollout) string { return r.ID })
}

// ListRules returns a page of the auto-ops rules (deleted ones excluded) ordered by id.
func ListRules(ctx context.Context, db Querier, q ListQuery) ([]*domain.AutoOpsRule, string, error) {
	return listByID[domain.AutoOpsRule](ctx, db, "rm_delivery_autoops_rules", q, false, "NOT deleted",
		func(r *domain.AutoOpsRule) string { return r.ID })
}

func listByID[T any](ctx context.Context, db Querier, table string, q ListQuery, status bool, extra string, id func(*T) string) ([]*T, string, error) {
	after, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	where, args := q.filters(nil, status)
	if extra != "" {
		where += " AND " + extra
	}
	if after != "" {
		args = append(args, after)
		where += fmt.Sprintf(" AND id > $%d", len(args))
	}
	args = append(args, q.Limit+1)
	items, err := states[T](ctx, db, `SELECT state FROM `+table+` WHERE `+where+fmt.Sprintf(` ORDER BY id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) > q.Limit {
		items = items[:q.Limit]
		next = catalog.EncodeCursor(id(items[len(items)-1]))
	}
	return items, next, nil
}

func states[T any](ctx context.Context, db Querier, sql string, args ...any) ([]*T, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery: list: %w", err)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("delivery: list: %w", err)
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("delivery: decode state: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Firing is one time an auto-ops rule fired, with the evidence it fired on.
type Firing struct {
	Rule     string                 `json:"rule"`
	Version  int64                  `json:"version"` // of the rule when it fired
	Action   domain.AutoOpsAction   `json:"action"`
	FiredAt  time.Time              `json:"fired_at"`
	Actor    string                 `json:"actor"`
	Evidence domain.AutoOpsEvidence `json:"evidence"`
}

// ListFirings returns a page of a rule's firings, newest first.
func ListFirings(ctx context.Context, db Querier, project, rule, cursor string, limit int) ([]Firing, string, error) {
	q := ListQuery{Project: project, Cursor: cursor, Limit: limit}
	after, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	args := []any{project, rule, q.Limit + 1}
	where := ""
	if after != "" {
		var v int64
		if _, err := fmt.Sscan(after, &v); err != nil {
			return nil, "", domain.Invalid("cursor", "malformed cursor; pass next_cursor from the previous page")
		}
		args = append(args, v)
		where = " AND version < $4"
	}
	rows, err := db.Query(ctx, `SELECT rule, version, action, fired_at, actor, evidence FROM rm_delivery_autoops_firings
		WHERE project = $1 AND rule = $2`+where+` ORDER BY version DESC LIMIT $3`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("delivery: firings: %w", err)
	}
	defer rows.Close()
	var out []Firing
	for rows.Next() {
		var f Firing
		var ev []byte
		var action string
		if err := rows.Scan(&f.Rule, &f.Version, &action, &f.FiredAt, &f.Actor, &ev); err != nil {
			return nil, "", fmt.Errorf("delivery: firings: %w", err)
		}
		f.Action, f.FiredAt = domain.AutoOpsAction(action), f.FiredAt.UTC()
		if err := json.Unmarshal(ev, &f.Evidence); err != nil {
			return nil, "", fmt.Errorf("delivery: decode evidence: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = catalog.EncodeCursor(fmt.Sprint(out[len(out)-1].Version))
	}
	return out, next, nil
}

// TriggerSummary is a webhook trigger as lists show it: never its secret or the secret's hash.
type TriggerSummary struct {
	ID          string               `json:"id"`
	Project     string               `json:"project"`
	Name        string               `json:"name"`
	Flag        string               `json:"flag"`
	Environment string               `json:"environment"`
	Action      domain.TriggerAction `json:"action"`
	Enabled     bool                 `json:"enabled"`
	Fired       int64                `json:"fired"`
	LastFiredAt *time.Time           `json:"last_fired_at,omitempty"`
	Version     int64                `json:"version"`
	CreatedAt   time.Time            `json:"created_at"`
	UpdatedAt   time.Time            `json:"updated_at"`
}

// SummarizeTrigger drops the secret's hash from a trigger.
func SummarizeTrigger(t *domain.Trigger) TriggerSummary {
	s := TriggerSummary{ID: t.ID, Project: t.Project, Name: t.Name, Flag: t.Flag, Environment: t.Environment,
		Action: t.Action, Enabled: t.Enabled, Fired: t.Fired, Version: t.Version, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
	if !t.LastFiredAt.IsZero() {
		at := t.LastFiredAt
		s.LastFiredAt = &at
	}
	return s
}

// ListTriggers returns a page of a project's triggers (deleted ones excluded) ordered by id.
func ListTriggers(ctx context.Context, db Querier, q ListQuery) ([]TriggerSummary, string, error) {
	after, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	where, args := q.filters(nil, false)
	where += " AND NOT deleted"
	if after != "" {
		args = append(args, after)
		where += fmt.Sprintf(" AND id > $%d", len(args))
	}
	args = append(args, q.Limit+1)
	rows, err := db.Query(ctx, `SELECT id, project, name, flag, environment, action, enabled, fired, last_fired_at,
		version, created_at, updated_at FROM rm_delivery_triggers WHERE `+where+fmt.Sprintf(` ORDER BY id LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, "", fmt.Errorf("delivery: triggers: %w", err)
	}
	defer rows.Close()
	var out []TriggerSummary
	for rows.Next() {
		var t TriggerSummary
		var action string
		if err := rows.Scan(&t.ID, &t.Project, &t.Name, &t.Flag, &t.Environment, &action, &t.Enabled, &t.Fired,
			&t.LastFiredAt, &t.Version, &t.CreatedAt, &t.UpdatedAt); err != nil {
			return nil, "", fmt.Errorf("delivery: triggers: %w", err)
		}
		t.Action = domain.TriggerAction(action)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = catalog.EncodeCursor(out[len(out)-1].ID)
	}
	return out, next, nil
}

// TriggerProject returns the project of the trigger with id (the id in a webhook URL). A trigger
// the read model does not know is ENotFound.
func TriggerProject(ctx context.Context, db Querier, id string) (string, error) {
	var project string
	err := db.QueryRow(ctx, `SELECT project FROM rm_delivery_triggers WHERE id = $1`, id).Scan(&project)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", domain.Errorf(domain.ENotFound, "trigger not found")
	}
	if err != nil {
		return "", fmt.Errorf("delivery: trigger %s: %w", id, err)
	}
	return project, nil
}

// Ref names one delivery aggregate.
type Ref struct {
	Project string
	ID      string
}

// DueSchedules returns up to limit pending scheduled changes due at now, the most overdue first.
func DueSchedules(ctx context.Context, db Querier, now time.Time, limit int) ([]Ref, error) {
	return refs(ctx, db, `SELECT project, id FROM rm_delivery_schedules WHERE status = 'pending' AND at <= $1
		ORDER BY at, project, id LIMIT $2`, now, limit)
}

// DueRollouts returns up to limit scheduled or running rollouts whose next step is due at now.
func DueRollouts(ctx context.Context, db Querier, now time.Time, limit int) ([]Ref, error) {
	return refs(ctx, db, `SELECT project, id FROM rm_delivery_rollouts WHERE next_at IS NOT NULL AND next_at <= $1
		ORDER BY next_at, project, id LIMIT $2`, now, limit)
}

// ActiveRollouts returns up to limit rollouts that are scheduled, running or paused.
func ActiveRollouts(ctx context.Context, db Querier, limit int) ([]Ref, error) {
	return refs(ctx, db, `SELECT project, id FROM rm_delivery_rollouts WHERE status IN ('scheduled', 'running', 'paused')
		ORDER BY project, id LIMIT $1`, limit)
}

// ArmedRules returns up to limit auto-ops rules that may fire: enabled, not triggered, not deleted.
func ArmedRules(ctx context.Context, db Querier, limit int) ([]Ref, error) {
	return refs(ctx, db, `SELECT project, id FROM rm_delivery_autoops_rules WHERE enabled AND NOT triggered AND NOT deleted
		ORDER BY project, id LIMIT $1`, limit)
}

func refs(ctx context.Context, db Querier, sql string, args ...any) ([]Ref, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("delivery: due work: %w", err)
	}
	defer rows.Close()
	var out []Ref
	for rows.Next() {
		var r Ref
		if err := rows.Scan(&r.Project, &r.ID); err != nil {
			return nil, fmt.Errorf("delivery: due work: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
