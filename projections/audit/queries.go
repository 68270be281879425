package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// Entry is one audit log row as the API returns it.
type Entry struct {
	Position    int64           `json:"position"`
	StreamID    string          `json:"stream_id"`
	Version     int64           `json:"version"`
	Project     string          `json:"project"`
	EntityKind  string          `json:"entity_kind"`
	EntityKey   string          `json:"entity_key"`
	Environment string          `json:"environment,omitempty"`
	EventType   string          `json:"event_type"`
	Actor       string          `json:"actor"`
	Reason      string          `json:"reason,omitempty"`
	RequestID   string          `json:"request_id,omitempty"`
	OccurredAt  time.Time       `json:"occurred_at"`
	Data        json.RawMessage `json:"data"`
	Before      json.RawMessage `json:"before"`
	After       json.RawMessage `json:"after"`
}

// Query filters the audit log. Entries come newest first; Cursor continues a previous page.
type Query struct {
	Project     string
	EntityKind  string // "flag", "segment", "project", ...; empty: all
	EntityKey   string
	Environment string
	Actor       string
	From, To    time.Time // zero: unbounded
	Cursor      string
	Limit       int
}

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// MaxPageSize bounds one page.
const MaxPageSize = 500

// List returns a page of entries, newest first, and the cursor of the next page.
func List(ctx context.Context, db Querier, q Query) ([]Entry, string, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	if q.Limit > MaxPageSize {
		return nil, "", domain.Invalid("limit", "limit must be at most %d", MaxPageSize)
	}
	before := int64(1<<63 - 1)
	if q.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err == nil {
			before, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil {
			return nil, "", domain.Invalid("cursor", "malformed cursor; pass next_cursor from the previous page")
		}
	}
	sql := `SELECT position, stream_id, version, project, entity_kind, entity_key, environment, event_type,
		actor, reason, request_id, occurred_at, data, before, after FROM rm_audit_log WHERE position < $1`
	args := []any{before}
	add := func(cond string, v any) {
		args = append(args, v)
		sql += fmt.Sprintf(" AND "+cond, len(args))
	}
	if q.Project != "" {
		add("project = $%d", q.Project)
	}
	if q.EntityKind != "" {
		add("entity_kind = $%d", q.EntityKind)
	}
	if q.EntityKey != "" {
		add("entity_key = $%d", q.EntityKey)
	}
	if q.Environment != "" {
		add("environment = $%d", q.Environment)
	}
	if q.Actor != "" {
		add("actor = $%d", q.Actor)
	}
	if !q.From.IsZero() {
		add("occurred_at >= $%d", q.From)
	}
	if !q.To.IsZero() {
		add("occurred_at < $%d", q.To)
	}
	args = append(args, q.Limit+1)
	sql += fmt.Sprintf(" ORDER BY position DESC LIMIT $%d", len(args))
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var data, bef, aft []byte
		if err := rows.Scan(&e.Position, &e.StreamID, &e.Version, &e.Project, &e.EntityKind, &e.EntityKey,
			&e.Environment, &e.EventType, &e.Actor, &e.Reason, &e.RequestID, &e.OccurredAt, &data, &bef, &aft); err != nil {
			return nil, "", fmt.Errorf("audit: scan: %w", err)
		}
		e.Data, e.Before, e.After = data, bef, aft
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(out[q.Limit-1].Position, 10)))
	}
	return out, next, nil
}
