package dashboards_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/dashboards"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
)

type sqlTarget struct {
	RefID  string `json:"refId"`
	RawSQL string `json:"rawSql"`
	Format string `json:"format"`
	DS     struct {
		UID string `json:"uid"`
	} `json:"datasource"`
}

type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID      int         `json:"id"`
		Type    string      `json:"type"`
		Title   string      `json:"title"`
		Targets []sqlTarget `json:"targets"`
		Grid    *struct {
			W, H int
		} `json:"gridPos"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name   string     `json:"name"`
			Target *sqlTarget `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
}

// query is one SQL text of a dashboard with where it comes from.
type query struct {
	where string
	sql   string
	// mustReturnRows: the test data is made so that this query returns rows.
	mustReturnRows bool
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	files, err := fs.Glob(dashboards.FS, "*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := dashboards.FS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

// queries returns every SQL text of the dashboards.
func queries(t *testing.T) []query {
	var out []query
	for file, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out = append(out, query{where: fmt.Sprintf("%s panel %d %q target %s", file, p.ID, p.Title, tg.RefID), sql: tg.RawSQL, mustReturnRows: true})
			}
		}
		for _, a := range d.Annotations.List {
			if a.Target != nil {
				out = append(out, query{where: fmt.Sprintf("%s annotation %q", file, a.Name), sql: a.Target.RawSQL, mustReturnRows: true})
			}
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				out = append(out, query{where: fmt.Sprintf("%s variable %s", file, v.Name), sql: v.Query.(string), mustReturnRows: true})
			}
		}
	}
	return out
}

// The dashboards are well-formed for Grafana: unique panel ids, a grid position, every SQL
// target on the provisioned datasource, the variables they use defined.
func TestDashboardsAreWellFormed(t *testing.T) {
	for file, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", file)
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if ids[p.ID] || p.Grid == nil || p.Grid.W == 0 {
				t.Errorf("%s: panel %d: duplicate id or no grid position", file, p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %d %q has no query", file, p.ID, p.Title)
			}
			for _, tg := range p.Targets {
				if tg.DS.UID != "vexil-postgres" || strings.TrimSpace(tg.RawSQL) == "" || (tg.Format != "table" && tg.Format != "time_series") {
					t.Errorf("%s: panel %d target %s: datasource %q, format %q", file, p.ID, tg.RefID, tg.DS.UID, tg.Format)
				}
			}
		}
		for _, q := range queries(t) {
			for _, m := range regexp.MustCompile(`\$\{?([a-z][a-z_]*)`).FindAllStringSubmatch(q.sql, -1) {
				if !vars[m[1]] {
					t.Errorf("%s uses $%s, which is no variable", q.where, m[1])
				}
			}
		}
	}
	prov, err := fs.ReadFile(dashboards.FS, "provisioning/datasources/vexil.yaml")
	if err != nil || !strings.Contains(string(prov), "uid: vexil-postgres") {
		t.Fatalf("the provisioned datasource has another uid: %v", err)
	}
}

// expand replaces Grafana's macros and the dashboard variables as Grafana's PostgreSQL
// datasource does.
func expand(sql string, from, to time.Time, vars map[string]string) string {
	sql = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`).ReplaceAllStringFunc(sql, func(m string) string {
		col := regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`).FindStringSubmatch(m)[1]
		return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", strings.TrimSpace(col), from.Format(time.RFC3339), to.Format(time.RFC3339))
	})
	sql = strings.ReplaceAll(sql, "$__timeFrom()", "'"+from.Format(time.RFC3339)+"'")
	sql = strings.ReplaceAll(sql, "$__timeTo()", "'"+to.Format(time.RFC3339)+"'")
	for k, v := range vars {
		sql = strings.ReplaceAll(sql, "${"+k+"}", v)
		sql = regexp.MustCompile(`\$`+k+`\b`).ReplaceAllString(sql, v)
	}
	return sql
}

// Every panel, annotation and variable query runs, with macros expanded, on a migrated database
// with data: TimescaleDB (continuous aggregates, after a manual refresh) and plain PostgreSQL
// (materialized views, refreshed); each returns rows.
func TestDashboardQueriesRunOnBothDatabases(t *testing.T) {
	qs := queries(t)
	if len(qs) < 15 {
		t.Fatalf("only %d queries found", len(qs))
	}
	for _, kind := range []struct {
		name string
		url  func(testing.TB) string
	}{{"postgresql", pgtest.NewDatabase}, {"timescaledb", pgtest.NewTimescale}} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			url := kind.url(t)
			m, err := postgres.NewMigrator(url)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Up(); err != nil {
				t.Fatal(err)
			}
			m.Close()
			ctx := context.Background()
			pool, err := postgres.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			seed(t, ctx, pool)
			// On PostgreSQL the queries run as the read-only role Grafana gets (vexil grafana-role),
			// so the role has every grant the dashboards need; grafanaPool checks it has nothing
			// more. (The WASM TimescaleDB is one backend session of one user: no second login.)
			if kind.name == "postgresql" {
				pool = grafanaPool(t, ctx, url)
			}
			from, to := time.Now().Add(-6*time.Hour).UTC().Truncate(time.Second), time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			for _, rollup := range []string{"minute", "hour", "day"} {
				vars := map[string]string{"project": "shop", "environment": "production", "flag": "checkout",
					"goal": "purchase", "rollup": rollup, "stale_days": "30"}
				for _, q := range qs {
					if rollup != "hour" && !strings.Contains(q.sql, "${rollup}") {
						continue // the rollup variable only changes these
					}
					sql := expand(q.sql, from, to, vars)
					if strings.Contains(sql, "$") {
						t.Fatalf("%s: unexpanded macro or variable in\n%s", q.where, sql)
					}
					rows, err := pool.Query(ctx, sql)
					if err != nil {
						t.Fatalf("%s (rollup %s): %v\n%s", q.where, rollup, err, sql)
					}
					n := 0
					for rows.Next() {
						n++
					}
					if err := rows.Err(); err != nil {
						t.Fatalf("%s (rollup %s): %v\n%s", q.where, rollup, err, sql)
					}
					if q.mustReturnRows && n == 0 {
						t.Errorf("%s (rollup %s) returned no rows\n%s", q.where, rollup, sql)
					}
				}
			}
		})
	}
}

// seed writes read-model rows (the project, its environment, two flags, an audit entry) and
// telemetry (evaluations and goals over the last hours), then refreshes the rollups.
func seed(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	for _, sql := range []string{
		`INSERT INTO rm_projects (key, name, state, version, created_at, updated_at) VALUES ('shop', 'Shop', '{}', 1, now() - interval '90 days', now())`,
		`INSERT INTO rm_environments (project, key, name, ordinal, created_at) VALUES ('shop', 'production', 'Production', 1, now() - interval '90 days')`,
		`INSERT INTO rm_flags (project, key, name, type, client_side, state, version, created_at, updated_at) VALUES
		   ('shop', 'checkout', 'Checkout', 'boolean', false, '{}', 1, now() - interval '90 days', now()),
		   ('shop', 'unused', 'Unused', 'boolean', false, '{}', 1, now() - interval '90 days', now())`,
		`INSERT INTO rm_audit_log (position, stream_id, version, project, entity_kind, entity_key, environment, event_type, actor, reason, occurred_at, data)
		 VALUES (1, 'flag/shop/checkout', 2, 'shop', 'flag', 'checkout', 'production', 'FlagToggled', 'token:t1', 'launch', now() - interval '2 hours', '{}')`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	b := telemetry.NewBatch("shop", "production", time.Now())
	start := time.Now().Add(-3 * time.Hour)
	for m := 0; m < 180; m += 3 {
		at := start.Add(time.Duration(m) * time.Minute)
		user := fmt.Sprintf("u%d", m%9)
		b.AddEvaluation(telemetry.EvaluationEvent{EventID: telemetry.NewEventID(), OccurredAt: at, Flag: "checkout",
			Variation: []string{"on", "off"}[m%2], Reason: "SPLIT", User: user})
		if m%9 == 6 {
			v := float64(m)
			b.AddGoal(telemetry.GoalEvent{EventID: telemetry.NewEventID(), OccurredAt: at.Add(time.Minute), Goal: "purchase", User: user, Value: &v})
		}
	}
	if _, err := telemetry.Write(ctx, pool, b); err != nil {
		t.Fatal(err)
	}
	if err := telemetry.RefreshRollups(ctx, pool, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// grafanaPool creates a Grafana role with postgres.GrantGrafanaRole on the database at url and
// returns a pool logged in as it; the role is dropped when the test ends. It also checks that the
// role can do nothing beyond the dashboards' reads.
func grafanaPool(t *testing.T, ctx context.Context, url string) *pgxpool.Pool {
	t.Helper()
	admin, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	role := fmt.Sprintf("grafana_test_%d", time.Now().UnixNano())
	if err := postgres.GrantGrafanaRole(ctx, admin, role, "s3cret'\"; DROP TABLE x"); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second run (after a migration, say) re-applies the grants.
	if err := postgres.GrantGrafanaRole(ctx, admin, role, "s3cret'\"; DROP TABLE x"); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.User = role
	gp, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		gp.Close()
		defer admin.Close()
		for _, sql := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := admin.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	for _, sql := range []string{
		`INSERT INTO rm_projects (key, name, state, version, created_at, updated_at) VALUES ('x', 'X', '{}', 1, now(), now())`,
		`UPDATE rm_flags SET name = 'changed'`,
		`DELETE FROM rm_audit_log`,
		`CREATE TABLE grafana_was_here (x int)`,
		`SELECT state FROM rm_flags`,        // targeting rules: not for dashboards
		`SELECT data FROM rm_audit_log`,     // before/after of every change
		`SELECT hash FROM rm_api_tokens`,    // token hashes
		`SELECT data FROM events LIMIT 1`,   // the event store
		`SELECT * FROM evaluations LIMIT 1`, // raw events with user keys
	} {
		if _, err := gp.Exec(ctx, sql); err == nil {
			t.Errorf("the Grafana role may run %s", sql)
		}
	}
	return gp
}
