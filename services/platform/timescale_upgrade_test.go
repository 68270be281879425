package platform_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
	"github.com/vexil-flags/vexil/services/testkit"
)

// Issue 23: a PostgreSQL server whose extension directory has TimescaleDB but whose configuration
// does not preload it. `vexil migrate up` and the platform start succeed in plain mode and say
// what to do (log line, /readyz); the same database moved to a preloading server is converted by
// `vexil migrate timescale` into hypertables and continuous aggregates with its telemetry intact
// and read through the same names, exactly as a fresh TimescaleDB migration builds it, and a
// second run changes nothing.
func TestInstalledButNotPreloadedTimescaleRunsPlainThenUpgrades(t *testing.T) {
	t.Parallel()
	bin := pgtest.NativeTimescaleBinDir(t)
	srv := pgtest.StartNativeServer(t, bin) // the installation of the native test server, without shared_preload_libraries
	url := srv.URL("vexil")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// vexil migrate up: plain mode, with the warning; nothing kills the session.
	out, logs := runVexil(t, ctx, "migrate", "up", "--database-url", url)
	if !strings.Contains(out, fmt.Sprintf("version %d", postgres.LatestMigration())) {
		t.Fatalf("migrate up printed %q, want version %d", out, postgres.LatestMigration())
	}
	warn := findLog(t, logs, "WARN", "not preloaded")
	for _, want := range []string{postgres.PreloadSetting, "postgresql.conf", "restart", "vexil migrate timescale", "continuous aggregates"} {
		if !strings.Contains(warn["msg"].(string), want) {
			t.Errorf("migrate up warning %q does not say %q", warn["msg"], want)
		}
	}
	if warn["mode"] != postgres.ModePlain {
		t.Errorf("migrate up warning: mode %v, want %s", warn["mode"], postgres.ModePlain)
	}

	// serve: the platform starts, warns once, and /readyz says it too while staying ready.
	logText, storage := serveOnce(t, ctx, url)
	if n := strings.Count(logText, "not preloaded"); n != 1 {
		t.Errorf("serve logged the preload advice %d times, want once:\n%s", n, logText)
	}
	findLog(t, parseLogs(t, logText), "WARN", postgres.PreloadSetting)
	if !strings.Contains(storage, "plain PostgreSQL") || !strings.Contains(storage, postgres.PreloadSetting) ||
		!strings.Contains(storage, "vexil migrate timescale") {
		t.Fatalf("/readyz storage detail %q: want the plain mode and the setting to add", storage)
	}

	// Telemetry written in plain mode, rolled up by the plain rollups (tables and views).
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	seedTelemetry(t, ctx, pool)
	if err := telemetry.RefreshRollups(ctx, pool, time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	before := rollupAnswers(t, ctx, pool)
	pool.Close()

	// Refused, changing nothing, while the server does not preload TimescaleDB.
	if _, _, err := runVexilErr(ctx, "migrate", "timescale", "--database-url", url); err == nil ||
		!strings.Contains(err.Error(), postgres.PreloadSetting) {
		t.Fatalf("migrate timescale without preload: %v, want a refusal naming %s", err, postgres.PreloadSetting)
	}

	// The same database on a server that preloads TimescaleDB.
	srv.Stop()
	srv.AppendConfig("shared_preload_libraries = 'timescaledb'")
	srv.Start()
	_, logs = runVexil(t, ctx, "migrate", "up", "--database-url", url)
	findLog(t, logs, "WARN", "migrated on plain PostgreSQL")

	// Someone creates the extension by hand: the database stays in plain mode (its rollups are
	// still the tables and views the projector refreshes) until it is converted.
	pool, err = postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE EXTENSION timescaledb`); err != nil {
		t.Fatal(err)
	}
	if s, err := postgres.DetectStorage(ctx, pool); err != nil || s.Mode != postgres.ModePlain || s.TimescaleVersion == "" ||
		!strings.Contains(s.Advice(), "vexil migrate timescale") {
		t.Fatalf("storage with the extension created by hand: %+v %v, want plain mode advising the upgrade", s, err)
	}
	if err := telemetry.RefreshRollups(ctx, pool, time.Time{}, time.Time{}); err != nil {
		t.Fatalf("plain rollups with the extension created by hand: %v", err)
	}
	pool.Close()
	// Converted while Vexil runs on it.
	running, runningLog := startServe(t, ctx, url)
	demo, err := platform.SeedDemo(ctx, running.App)
	if err != nil {
		t.Fatal(err)
	}
	out, _ = runVexil(t, ctx, "migrate", "timescale", "--database-url", url)
	if !strings.Contains(out, "converted to TimescaleDB") || !strings.Contains(out, "evaluation_events: hypertable") {
		t.Fatalf("migrate timescale printed:\n%s", out)
	}

	pool, err = postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := postgres.DetectStorage(ctx, pool)
	if err != nil || s.Mode != postgres.ModeTimescale || s.Advice() != "" {
		t.Fatalf("storage after the upgrade: %+v %v", s, err)
	}
	var hypertables, caggs []string
	if err := scanStrings(ctx, pool, `SELECT hypertable_name::text FROM timescaledb_information.hypertables
		WHERE hypertable_schema = 'public' ORDER BY 1`, &hypertables); err != nil {
		t.Fatal(err)
	}
	if err := scanStrings(ctx, pool, `SELECT view_name::text FROM timescaledb_information.continuous_aggregates ORDER BY 1`, &caggs); err != nil {
		t.Fatal(err)
	}
	wantHyper := []string{"evaluation_events", "experiment_analyses", "experiment_results", "goal_attributions", "goal_events", "telemetry_batches"}
	wantCaggs := slices.Sorted(slices.Values(telemetry.Rollups))
	if !slices.Equal(hypertables, wantHyper) || !slices.Equal(caggs, wantCaggs) {
		t.Fatalf("after the upgrade: hypertables %v, continuous aggregates %v; want %v and %v", hypertables, caggs, wantHyper, wantCaggs)
	}
	if after := rollupAnswers(t, ctx, pool); !slices.Equal(after, before) {
		t.Fatalf("the rollups answer differently after the upgrade:\nbefore %v\nafter  %v", before, after)
	}
	var raw, results int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM evaluation_events), (SELECT count(*) FROM experiment_results)`).
		Scan(&raw, &results); err != nil || raw != seededEvaluations || results != 1 {
		t.Fatalf("raw rows after the upgrade: %d evaluations, %d results (%v); want %d and 1", raw, results, err, seededEvaluations)
	}

	// The running platform goes on storing telemetry, now into hypertables, read at once through
	// the continuous aggregates (real time).
	req, err := http.NewRequest(http.MethodPost, "http://"+running.Addr+"/sdk/v1/events", strings.NewReader(`{"events": [
		{"kind": "evaluation", "flag_key": "new-checkout", "variation_key": "true", "user_key": "after-1"},
		{"kind": "evaluation", "flag_key": "new-checkout", "variation_key": "true", "user_key": "after-2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+demo.Environments[0].ServerKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /sdk/v1/events after the conversion: %d, want 202", res.StatusCode)
	}
	waitUntil(t, time.Minute, "events posted after the conversion in evaluations_per_day", func() bool {
		var n int64
		_ = pool.QueryRow(ctx, `SELECT coalesce(sum(evaluations), 0) FROM evaluations_per_day WHERE flag = 'new-checkout'`).Scan(&n)
		return n == 2
	})
	running.Close()
	before = rollupAnswers(t, ctx, pool)
	for _, l := range parseLogs(t, runningLog.String()) {
		if l["level"] == "ERROR" {
			t.Errorf("the platform running during the conversion logged an error: %v", l)
		}
	}

	// Exactly what a fresh migration on this server builds.
	fresh := srv.URL("fresh")
	runVexil(t, ctx, "migrate", "up", "--database-url", fresh)
	freshPool, err := postgres.Open(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer freshPool.Close()
	if steps, err := postgres.UpgradeToTimescale(ctx, freshPool); err != nil || len(steps) != 0 {
		t.Fatalf("upgrade of a fresh TimescaleDB migration: %v %v, want nothing to do", steps, err)
	}
	if got, want := timescaleSchema(t, ctx, pool), timescaleSchema(t, ctx, freshPool); !slices.Equal(got, want) {
		var onlyGot, onlyWant []string
		for _, g := range got {
			if !slices.Contains(want, g) {
				onlyGot = append(onlyGot, g)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				onlyWant = append(onlyWant, w)
			}
		}
		t.Fatalf("the converted database differs from a fresh TimescaleDB migration:\nonly converted: %s\nonly fresh:     %s",
			strings.Join(onlyGot, "\n                "), strings.Join(onlyWant, "\n                "))
	}

	// serve on the converted database: TimescaleDB, no storage advice. This server runs with
	// PostgreSQL's default worker limits (max_worker_processes 8, TimescaleDB's 16 background
	// workers): the start-up checks say they are too few for Vexil's jobs.
	logText, storage = serveOnce(t, ctx, url)
	if !strings.HasPrefix(storage, "TimescaleDB 2.") {
		t.Fatalf("serve after the upgrade: /readyz storage %q, want TimescaleDB", storage)
	}
	var workerWarnings []string
	for _, l := range parseLogs(t, logText) {
		msg := fmt.Sprint(l["msg"])
		if l["level"] == "WARN" && (strings.Contains(msg, "not preloaded") || strings.Contains(msg, "vexil migrate timescale")) {
			t.Fatalf("serve after the upgrade still advises: %v", l["msg"])
		}
		if l["level"] == "WARN" && (strings.Contains(msg, "is too few") || strings.Contains(msg, "max_worker_processes = 8 is below")) {
			workerWarnings = append(workerWarnings, msg)
		}
	}
	if len(workerWarnings) != 2 {
		t.Errorf("serve on a server with default worker limits: worker warnings %q, want max_background_workers and max_worker_processes", workerWarnings)
	}
	if l := findLog(t, parseLogs(t, logText), "INFO", "storage"); l["mode"] != postgres.ModeTimescale {
		t.Fatalf("serve after the upgrade logged storage mode %v, want %s", l["mode"], postgres.ModeTimescale)
	}

	// Again: nothing to convert, same answers.
	out, _ = runVexil(t, ctx, "migrate", "timescale", "--database-url", url)
	if !strings.Contains(out, "already on TimescaleDB") {
		t.Fatalf("second migrate timescale printed:\n%s", out)
	}
	if after := rollupAnswers(t, ctx, pool); !slices.Equal(after, before) {
		t.Fatalf("the rollups answer differently after a second upgrade:\nbefore %v\nafter  %v", before, after)
	}
}

// startServe starts the platform (every role, migrations on) on url with a JSON log it returns;
// it is stopped when the test ends, or earlier by Close.
func startServe(t *testing.T, ctx context.Context, url string) (*platform.Platform, *testkit.SyncBuffer) {
	t.Helper()
	buf := &testkit.SyncBuffer{}
	cfg, err := config.Parse("test", []string{"--database-url", url, "--redis-url", redistest.URL(),
		"--stream-prefix", redistest.NewPrefix(t), "--http-addr", "127.0.0.1:0", "--admin-token", adminToken},
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p, err := platform.Open(ctx, cfg, slog.New(slog.NewJSONHandler(buf, nil)))
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Start(ctx); err != nil {
		t.Fatalf("serve: %v", err)
	}
	return p, buf
}

// serveOnce starts the platform on url, reads /readyz, which must answer ready, and stops it; it
// returns the JSON log and the detail of the storage check.
func serveOnce(t *testing.T, ctx context.Context, url string) (logText, storage string) {
	t.Helper()
	p, buf := startServe(t, ctx, url)
	defer p.Close()
	res, err := http.Get("http://" + p.Addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ready struct {
		Status string `json:"status"`
		Checks map[string]struct {
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
	}
	if err := json.NewDecoder(res.Body).Decode(&ready); err != nil || res.StatusCode != http.StatusOK || ready.Status != "ready" {
		t.Fatalf("/readyz: %d %+v %v, want 200 ready", res.StatusCode, ready, err)
	}
	st, ok := ready.Checks["storage"]
	if !ok || !st.OK {
		t.Fatalf("/readyz storage check %+v (present %v): want ok with a detail", st, ok)
	}
	return buf.String(), st.Detail
}

const seededEvaluations = 3 * 24 * 6 // every 10 minutes for 3 days

// seedTelemetry writes raw evaluations, goals, attributions, a batch log and an experiment result
// spread over the last 3 days, as the telemetry projector and the experiment role would.
func seedTelemetry(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	t.Helper()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO evaluation_events (occurred_at, event_id, project, environment, flag, variation, user_key, evaluations, received_at)
		  SELECT date_trunc('hour', now()) - i * INTERVAL '10 minutes', gen_random_uuid(), 'demo', 'production',
		         'checkout', CASE WHEN i %% 3 = 0 THEN 'off' ELSE 'on' END, 'user-' || (i %% 40), 1 + i %% 2, now()
		  FROM generate_series(1, %d) i`, seededEvaluations),
		`INSERT INTO goal_events (occurred_at, event_id, project, environment, goal, user_key, value, received_at)
		  SELECT date_trunc('hour', now()) - i * INTERVAL '37 minutes', gen_random_uuid(), 'demo', 'production',
		         'purchase', 'user-' || (i % 40), i, now()
		  FROM generate_series(1, 100) i`,
		`INSERT INTO goal_attributions (occurred_at, event_id, project, environment, goal, subject_kind, subject, variation, user_key, value)
		  SELECT occurred_at, event_id, project, environment, goal, 'flag', 'checkout', 'on', user_key, value FROM goal_events`,
		`INSERT INTO telemetry_batches (received_at, batch_id, project, environment, evaluations, goals, stored_at)
		  SELECT date_trunc('hour', now()) - i * INTERVAL '1 hour', gen_random_uuid(), 'demo', 'production', 10, 1,
		         date_trunc('hour', now()) - i * INTERVAL '1 hour' + INTERVAL '2 seconds'
		  FROM generate_series(1, 20) i`,
		`INSERT INTO experiment_results VALUES (now() - INTERVAL '1 day', 'demo', 'checkout-v2', 'purchase', 'conversion',
		  'on', false, 40, 0.2, 0.1, 0.3, 0.7, 0.7, 0.01, 0.1, '{}')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// rollupAnswers reads every rollup through its name, summed per coarse key, the way the console
// and dashboards do.
func rollupAnswers(t *testing.T, ctx context.Context, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 'minute ' || variation || ' ' || sum(evaluations) || ' ' || count(*) FROM evaluations_per_minute GROUP BY variation ORDER BY 1`,
		`SELECT 'hour ' || variation || ' ' || sum(evaluations) || ' ' || count(*) FROM evaluations_per_hour GROUP BY variation ORDER BY 1`,
		`SELECT 'day ' || bucket || ' ' || variation || ' ' || evaluations FROM evaluations_per_day ORDER BY 1`,
		`SELECT 'goals/h ' || sum(conversions) || ' ' || sum(value_sum) || ' ' || count(*) FROM goals_per_hour`,
		`SELECT 'goals/d ' || bucket || ' ' || conversions || ' ' || value_sum_squares FROM goals_per_day ORDER BY 1`,
		`SELECT 'variations/h ' || sum(conversions) || ' ' || sum(users) FROM goal_variations_per_hour`,
		`SELECT 'variations/d ' || bucket || ' ' || conversions FROM goal_variations_per_day ORDER BY 1`,
		`SELECT 'ingest ' || sum(batches) || ' ' || sum(evaluations) || ' ' || max(lag_seconds_max) FROM telemetry_ingest_per_minute`,
	} {
		var rows []string
		if err := scanStrings(ctx, pool, q, &rows); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out = append(out, rows...)
	}
	return out
}

// timescaleSchema describes the TimescaleDB objects of a database by name, without the ids that
// differ between databases: hypertables with their dimension and compression, continuous
// aggregates with their definitions, background jobs with their configuration, and indexes.
func timescaleSchema(t *testing.T, ctx context.Context, pool *pgxpool.Pool) []string {
	t.Helper()
	var out []string
	for _, q := range []string{
		`SELECT 'hypertable ' || h.hypertable_name || ' ' || h.compression_enabled || ' ' || d.column_name || ' ' || coalesce(d.time_interval::text, '')
		   FROM timescaledb_information.hypertables h JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)
		  WHERE h.hypertable_schema = 'public' ORDER BY 1`,
		`SELECT 'compression ' || hypertable::text || ' ' || coalesce(segmentby, '') || ' ' || coalesce(orderby, '')
		   FROM timescaledb_information.hypertable_compression_settings
		  WHERE hypertable::text NOT LIKE '%materialized%' ORDER BY 1`,
		`SELECT 'cagg ' || view_name || ' ' || materialized_only || ' ' || regexp_replace(view_definition, '\s+', ' ', 'g')
		   FROM timescaledb_information.continuous_aggregates ORDER BY 1`,
		`SELECT 'job ' || j.proc_name || ' ' || coalesce(a.view_name, j.hypertable_name, '') || ' ' || j.schedule_interval || ' ' ||
		        ((j.config - 'mat_hypertable_id') - 'hypertable_id')::text
		   FROM timescaledb_information.jobs j
		   LEFT JOIN timescaledb_information.continuous_aggregates a ON a.materialization_hypertable_name = j.hypertable_name
		  WHERE j.job_id >= 1000 ORDER BY 1`,
		`SELECT 'index ' || coalesce(a.view_name, i.tablename) || ' ' || regexp_replace(i.indexname, '_materialized_hypertable_\d+', 'M') || ' ' ||
		        regexp_replace(regexp_replace(i.indexdef, ' ON \S+ ', ' ON x '), 'INDEX \S+', 'INDEX')
		   FROM pg_indexes i
		   LEFT JOIN timescaledb_information.continuous_aggregates a
		     ON a.materialization_hypertable_schema = i.schemaname AND a.materialization_hypertable_name = i.tablename
		  WHERE i.schemaname = 'public' OR a.view_name IS NOT NULL ORDER BY 1`,
	} {
		var rows []string
		if err := scanStrings(ctx, pool, q, &rows); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(rows) == 0 {
			t.Fatalf("no rows for %s", q)
		}
		out = append(out, rows...)
	}
	return out
}

func scanStrings(ctx context.Context, pool *pgxpool.Pool, q string, into *[]string) error {
	rows, err := pool.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		*into = append(*into, s)
	}
	return rows.Err()
}

// runVexil runs the real command line and returns its stdout and its structured log lines.
func runVexil(t *testing.T, ctx context.Context, args ...string) (string, []map[string]any) {
	t.Helper()
	out, logs, err := runVexilErr(ctx, args...)
	if err != nil {
		t.Fatalf("vexil %s: %v\n%s", strings.Join(args, " "), err, logs)
	}
	return out, parseLogs(t, logs)
}

func runVexilErr(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	m := &platform.Main{Stdout: &o, Stderr: &e, Lookup: func(string) (string, bool) { return "", false }}
	err = m.Run(ctx, args)
	return o.String(), e.String(), err
}

// parseLogs reads the JSON log lines of a text (other lines are skipped).
func parseLogs(t *testing.T, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(text, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// findLog returns the first log line of level whose message contains text, failing otherwise.
func findLog(t *testing.T, logs []map[string]any, level, text string) map[string]any {
	t.Helper()
	for _, l := range logs {
		if l["level"] == level && strings.Contains(fmt.Sprint(l["msg"]), text) {
			return l
		}
	}
	b, _ := json.Marshal(logs)
	t.Fatalf("no %s log line containing %q in %s", level, text, b)
	return nil
}

var _ io.Writer = (*testkit.SyncBuffer)(nil)
