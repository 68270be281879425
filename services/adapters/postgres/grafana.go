package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// GrafanaGrant is one relation the Grafana dashboards read and the columns they read of it (nil:
// every column, for the telemetry rollups, which hold nothing but counts per flag and variation).
type GrafanaGrant struct {
	Relation string
	Columns  []string
}

// GrafanaGrants is exactly what dashboards/*.json read. The read models are granted column by
// column: flag state (targeting rules can name people), audit payloads (before/after) and token
// hashes stay out of reach of a dashboard credential. dashboards' tests run every query as a role
// with these grants, so a panel that needs more fails there, not in front of a user.
var GrafanaGrants = []GrafanaGrant{
	{Relation: "rm_projects", Columns: []string{"key"}},
	{Relation: "rm_environments", Columns: []string{"project", "key", "ordinal"}},
	{Relation: "rm_flags", Columns: []string{"project", "key", "name", "archived", "created_at"}},
	{Relation: "rm_audit_log", Columns: []string{"project", "entity_kind", "entity_key", "environment", "event_type", "actor", "reason", "occurred_at"}},
	{Relation: "evaluations_per_minute"}, {Relation: "evaluations_per_hour"}, {Relation: "evaluations_per_day"},
	{Relation: "goals_per_hour"}, {Relation: "goals_per_day"}, {Relation: "goal_variations_per_hour"},
	{Relation: "telemetry_ingest_per_minute"},
	{Relation: "experiment_exposures"}, {Relation: "experiment_user_goals"},
}

// GrantGrafanaRole creates (or updates) the login role Grafana's datasource uses: it may connect
// to this database, read GrafanaGrants and nothing else, and its sessions are read-only by
// default. Re-running it sets the password again and re-applies the grants (idempotent), e.g.
// after a migration added a relation. Roles are per server, grants per database.
func GrantGrafanaRole(ctx context.Context, pool *pgxpool.Pool, role, password string) error {
	if role == "" || password == "" {
		return fmt.Errorf("grafana role: a role name and a password are required")
	}
	ident := pgx.Identifier{role}.Sanitize()
	var db string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		return fmt.Errorf("grafana role: %w", err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("grafana role: %w", err)
	}
	// The password is sent as a literal (DDL takes no parameters); pgx's quoting of a string
	// literal handles any character in it.
	pw, err := quoteLiteral(ctx, pool, password)
	if err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	stmts := []string{
		fmt.Sprintf(`%s ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %s`, verb, ident, pw),
		fmt.Sprintf(`ALTER ROLE %s SET default_transaction_read_only = on`, ident),
		fmt.Sprintf(`GRANT CONNECT ON DATABASE %s TO %s`, pgx.Identifier{db}.Sanitize(), ident),
		fmt.Sprintf(`GRANT USAGE ON SCHEMA public TO %s`, ident),
	}
	for _, g := range GrafanaGrants {
		cols := ""
		if g.Columns != nil {
			quoted := make([]string, len(g.Columns))
			for i, c := range g.Columns {
				quoted[i] = pgx.Identifier{c}.Sanitize()
			}
			cols = " (" + strings.Join(quoted, ", ") + ")"
		}
		stmts = append(stmts, fmt.Sprintf(`GRANT SELECT%s ON %s TO %s`, cols, pgx.Identifier{g.Relation}.Sanitize(), ident))
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("grafana role: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("grafana role: %s: %w", strings.Replace(s, pw, "'…'", 1), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("grafana role: %w", err)
	}
	return nil
}

func quoteLiteral(ctx context.Context, pool *pgxpool.Pool, s string) (string, error) {
	var q string
	if err := pool.QueryRow(ctx, `SELECT quote_literal($1::text)`, s).Scan(&q); err != nil {
		return "", fmt.Errorf("grafana role: quote password: %w", err)
	}
	return q, nil
}
