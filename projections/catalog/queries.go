package catalog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// Querier is a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Page limits.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// ListQuery filters and pages a list. Cursor is the opaque NextCursor of the previous page.
type ListQuery struct {
	Project  string
	Tag      string
	Search   string // case-insensitive substring of key, name or description
	Archived *bool  // nil or false: live ones only; true: archived ones only
	Cursor   string
	Limit    int
}

// EncodeCursor and DecodeCursor keep cursors opaque: clients must not build them.
func EncodeCursor(lastKey string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastKey))
}

// maxCursorBytes bounds a decoded position: a key, an id, or a time and an id.
const maxCursorBytes = 512

// DecodeCursor reverses EncodeCursor; a malformed cursor is an input error.
func DecodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	// The position goes to the database as text: it must be text the database can hold.
	if err != nil || len(b) > maxCursorBytes || !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return "", domain.Invalid("cursor", "malformed cursor; pass next_cursor from the previous page")
	}
	return string(b), nil
}

func (q *ListQuery) normalize() (after string, err error) {
	if q.Limit <= 0 {
		q.Limit = DefaultPageSize
	}
	if q.Limit > MaxPageSize {
		return "", domain.Invalid("limit", "limit must be at most %d", MaxPageSize)
	}
	return DecodeCursor(q.Cursor)
}

// likePattern escapes LIKE metacharacters so a search is a plain substring match.
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// ListFlags returns a page of a project's flags ordered by key, and the cursor of the next page
// ("" when this is the last). Archived nil lists live flags only.
func ListFlags(ctx context.Context, db Querier, q ListQuery) ([]*domain.Flag, string, error) {
	return list[domain.Flag](ctx, db, "rm_flags", q)
}

// ListSegments is ListFlags for segments.
func ListSegments(ctx context.Context, db Querier, q ListQuery) ([]*domain.Segment, string, error) {
	return list[domain.Segment](ctx, db, "rm_segments", q)
}

func list[T any](ctx context.Context, db Querier, table string, q ListQuery) ([]*T, string, error) {
	after, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	archived := false
	if q.Archived != nil {
		archived = *q.Archived
	}
	sql := `SELECT key, state FROM ` + table + ` WHERE project = $1 AND key > $2 AND archived = $3`
	args := []any{q.Project, after, archived}
	if q.Tag != "" {
		args = append(args, q.Tag)
		sql += fmt.Sprintf(` AND tags @> ARRAY[$%d::text]`, len(args))
	}
	if q.Search != "" {
		args = append(args, likePattern(q.Search))
		n := len(args)
		sql += fmt.Sprintf(` AND (key ILIKE $%d OR name ILIKE $%d OR description ILIKE $%d)`, n, n, n)
	}
	args = append(args, q.Limit+1)
	sql += fmt.Sprintf(` ORDER BY key LIMIT $%d`, len(args))
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", fmt.Errorf("catalog: list %s: %w", table, err)
	}
	defer rows.Close()
	var out []*T
	var keys []string
	for rows.Next() {
		var key string
		var state []byte
		if err := rows.Scan(&key, &state); err != nil {
			return nil, "", fmt.Errorf("catalog: scan %s: %w", table, err)
		}
		v := new(T)
		if err := json.Unmarshal(state, v); err != nil {
			return nil, "", fmt.Errorf("catalog: decode %s %s: %w", table, key, err)
		}
		out = append(out, v)
		keys = append(keys, key)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("catalog: list %s: %w", table, err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = EncodeCursor(keys[q.Limit-1])
	}
	return out, next, nil
}

// ProjectSummary is a project as listed.
type ProjectSummary struct {
	Key          string   `json:"key"`
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	Environments []string `json:"environments"`
}

// ListProjects returns a page of projects ordered by key. Projects are filtered to one key when
// only is non-empty (tokens restricted to one project).
func ListProjects(ctx context.Context, db Querier, cursor string, limit int, only string) ([]ProjectSummary, string, error) {
	q := ListQuery{Cursor: cursor, Limit: limit}
	after, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	rows, err := db.Query(ctx, `SELECT p.key, p.name, p.description,
		  COALESCE((SELECT array_agg(e.key ORDER BY e.ordinal) FROM rm_environments e WHERE e.project = p.key), '{}')
		FROM rm_projects p WHERE p.key > $1 AND ($2 = '' OR p.key = $2) ORDER BY p.key LIMIT $3`, after, only, q.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("catalog: list projects: %w", err)
	}
	defer rows.Close()
	var out []ProjectSummary
	for rows.Next() {
		var p ProjectSummary
		if err := rows.Scan(&p.Key, &p.Name, &p.Description, &p.Environments); err != nil {
			return nil, "", fmt.Errorf("catalog: scan project: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("catalog: list projects: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = EncodeCursor(out[q.Limit-1].Key)
	}
	return out, next, nil
}

// ServerExposuresOff lists the environments ("project/environment") whose server-side exposure
// logging is turned off. An environment projected before the setting existed has no such member
// in its state and counts as on, its default.
func ServerExposuresOff(ctx context.Context, db Querier) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT p.key || '/' || e.key FROM rm_projects p,
		  jsonb_each(CASE WHEN jsonb_typeof(p.state->'environments') = 'object' THEN p.state->'environments' END) AS e(key, env)
		WHERE (e.env->>'server_exposures')::boolean IS FALSE
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("catalog: environments without server-side exposures: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("catalog: environments without server-side exposures: %w", err)
	}
	return out, nil
}
