package identity

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Actions of the account audit (table console_account_audit, migration 0111).
const (
	ActionUserCreated      = "user.created"
	ActionMemberAdded      = "member.added"
	ActionMemberRoleChange = "member.role_changed"
	ActionMemberRemoved    = "member.removed"
	ActionSessionsRevoked  = "user.sessions_revoked"
	ActionSignInRefused    = "user.sign_in_refused"
	ActionPasswordChanged  = "user.password_changed"
)

// AccountEntry is one recorded change of an account or membership.
type AccountEntry struct {
	ID         int64     `json:"id"`
	OccurredAt time.Time `json:"occurred_at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Project    string    `json:"project,omitempty"`
	Subject    string    `json:"subject"`
	Before     string    `json:"before,omitempty"`
	After      string    `json:"after,omitempty"`
	Client     string    `json:"client,omitempty"`
}

// execer is a pool or a transaction: an audit entry is written with the change it records.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func record(ctx context.Context, db execer, e AccountEntry) error {
	_, err := db.Exec(ctx, `INSERT INTO console_account_audit (actor, action, project, subject, before, after, client)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, e.Actor, e.Action, e.Project, e.Subject, e.Before, e.After, e.Client)
	if err != nil {
		return fmt.Errorf("identity: record %s of %s: %w", e.Action, e.Subject, err)
	}
	return nil
}

// RecordSignInRefused records a refused sign-in (wrong password, unknown email, rate limited).
// The email is recorded as typed (cut to 254 bytes): it is what an incident review looks for.
func (s *Store) RecordSignInRefused(ctx context.Context, email, client, why string) error {
	if len(email) > 254 {
		email = email[:254]
	}
	return record(ctx, s.pool, AccountEntry{Actor: "anonymous", Action: ActionSignInRefused, Subject: "email:" + email, After: why, Client: client})
}

// AccountQuery filters the account audit. Project "" with Instance false lists everything.
type AccountQuery struct {
	Project string // entries of this project, plus the instance-wide entries about its members
	Before  int64  // cursor: entries with a smaller id
	Limit   int
}

// AccountAudit lists account audit entries, newest first, and the cursor of the next page ("" at
// the end). With a project it lists that project's membership changes and the instance-wide
// entries (accounts created, sessions revoked) of the people who are its members now.
func (s *Store) AccountAudit(ctx context.Context, q AccountQuery) ([]AccountEntry, string, error) {
	return ListAccountAudit(ctx, s.pool, q)
}

// ListAccountAudit is AccountAudit over a pool (the management API reads it without a Store).
func ListAccountAudit(ctx context.Context, pool *pgxpool.Pool, q AccountQuery) ([]AccountEntry, string, error) {
	if q.Limit <= 0 || q.Limit > 500 {
		q.Limit = 50
	}
	before := q.Before
	if before <= 0 {
		before = 1<<63 - 1
	}
	var rows pgx.Rows
	var err error
	if q.Project == "" {
		rows, err = pool.Query(ctx, `SELECT id, occurred_at, actor, action, project, subject, before, after, client
			FROM console_account_audit WHERE id < $1 ORDER BY id DESC LIMIT $2`, before, q.Limit+1)
	} else {
		rows, err = pool.Query(ctx, `SELECT id, occurred_at, actor, action, project, subject, before, after, client
			FROM console_account_audit a WHERE id < $2 AND (project = $1 OR (project = '' AND action <> $4 AND subject IN
				(SELECT 'user:' || user_id FROM console_members WHERE project = $1)))
			ORDER BY id DESC LIMIT $3`, q.Project, before, q.Limit+1, ActionSignInRefused)
	}
	if err != nil {
		return nil, "", fmt.Errorf("identity: account audit: %w", err)
	}
	defer rows.Close()
	var out []AccountEntry
	for rows.Next() {
		var e AccountEntry
		if err := rows.Scan(&e.ID, &e.OccurredAt, &e.Actor, &e.Action, &e.Project, &e.Subject, &e.Before, &e.After, &e.Client); err != nil {
			return nil, "", fmt.Errorf("identity: account audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("identity: account audit: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = strconv.FormatInt(out[len(out)-1].ID, 10)
	}
	return out, next, nil
}
