package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// EventTables are the raw event hypertables (tables on plain PostgreSQL) whose chunk interval,
// compression and retention the configuration sets.
var EventTables = []string{"evaluation_events", "goal_events", "goal_attributions"}

// Rollups are the aggregate relations in refresh order (each after what it reads).
var Rollups = []string{
	"evaluations_per_minute", "evaluations_per_hour", "evaluations_per_day",
	"goals_per_hour", "goals_per_day",
	"goal_variations_per_hour", "goal_variations_per_day",
	"telemetry_ingest_per_minute",
}

// BatchLogRetention is how long telemetry_batches rows are kept (the ingest panels).
const BatchLogRetention = 30 * 24 * time.Hour

// HasTimescale reports whether the database has TimescaleDB (migration 0001's function).
func HasTimescale(ctx context.Context, db DB) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, `SELECT vexil_has_timescale()`).Scan(&ok); err != nil {
		return false, fmt.Errorf("telemetry: vexil_has_timescale(): %w", err)
	}
	return ok, nil
}

// Policies are the storage intervals of the raw event tables.
type Policies struct {
	ChunkInterval time.Duration // TimescaleDB: the time range of one chunk (new chunks)
	CompressAfter time.Duration // TimescaleDB: chunks older than this are compressed
	Retention     time.Duration // rows (chunks) older than this are dropped
}

// ApplyPolicies sets the chunk interval and the compression and retention policies of the
// event hypertables on TimescaleDB (a policy already at the wanted interval is left alone), in
// one transaction under an advisory lock so concurrent projector instances do not race. It does
// nothing on plain PostgreSQL, where DeleteExpired does the retention.
func ApplyPolicies(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, p Policies) (changed int, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	ts, err := HasTimescale(ctx, tx)
	if err != nil || !ts {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('vexil-telemetry-policies'))`); err != nil {
		return 0, err
	}
	for _, table := range EventTables {
		var chunk, compress, retention *time.Duration
		if err := tx.QueryRow(ctx, `SELECT
			  (SELECT d.time_interval FROM timescaledb_information.dimensions d
			    WHERE d.hypertable_name = $1 AND d.dimension_number = 1),
			  (SELECT (j.config->>'compress_after')::interval FROM timescaledb_information.jobs j
			    WHERE j.hypertable_name = $1 AND j.proc_name = 'policy_compression'),
			  (SELECT (j.config->>'drop_after')::interval FROM timescaledb_information.jobs j
			    WHERE j.hypertable_name = $1 AND j.proc_name = 'policy_retention')`, table).Scan(&chunk, &compress, &retention); err != nil {
			return 0, fmt.Errorf("telemetry: read policies of %s: %w", table, err)
		}
		if p.ChunkInterval > 0 && (chunk == nil || *chunk != p.ChunkInterval) {
			if _, err := tx.Exec(ctx, `SELECT set_chunk_time_interval($1::regclass, $2::interval)`, table, intervalText(p.ChunkInterval)); err != nil {
				return 0, fmt.Errorf("telemetry: chunk interval of %s: %w", table, err)
			}
			changed++
		}
		if p.CompressAfter > 0 && (compress == nil || *compress != p.CompressAfter) {
			if _, err := tx.Exec(ctx, `SELECT remove_compression_policy($1::regclass, if_exists => true)`, table); err != nil {
				return 0, fmt.Errorf("telemetry: compression policy of %s: %w", table, err)
			}
			if _, err := tx.Exec(ctx, `SELECT add_compression_policy($1::regclass, $2::interval)`, table, intervalText(p.CompressAfter)); err != nil {
				return 0, fmt.Errorf("telemetry: compression policy of %s: %w", table, err)
			}
			changed++
		}
		if p.Retention > 0 && (retention == nil || *retention != p.Retention) {
			if _, err := tx.Exec(ctx, `SELECT remove_retention_policy($1::regclass, if_exists => true)`, table); err != nil {
				return 0, fmt.Errorf("telemetry: retention policy of %s: %w", table, err)
			}
			if _, err := tx.Exec(ctx, `SELECT add_retention_policy($1::regclass, $2::interval)`, table, intervalText(p.Retention)); err != nil {
				return 0, fmt.Errorf("telemetry: retention policy of %s: %w", table, err)
			}
			changed++
		}
	}
	return changed, tx.Commit(ctx)
}

// historyKeep is how long a plain-mode rollup table keeps its buckets; 0 while it is still a
// materialized view (before migration 0060), which a DELETE cannot touch.
func historyKeep(name string, db DB, ctx context.Context) time.Duration {
	if !isRelkindTable(ctx, db, name) {
		return 0
	}
	return plainRollupHistory[name].keep
}

// intervalText writes d as PostgreSQL reads it back in policies ("30 days", not "720:00:00").
func intervalText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return fmt.Sprintf("%d microseconds", d.Microseconds())
}

// RefreshRollups refreshes the materialized views of plain PostgreSQL, in dependency order,
// CONCURRENTLY (readers are never blocked). On TimescaleDB it refreshes the continuous
// aggregates over [from, to) instead (zero times: unbounded), for tests and operators:
// production relies on the refresh policies. Each CALL runs in its own transaction, so db must
// not be in one.
func RefreshRollups(ctx context.Context, db DB, from, to time.Time) error {
	ts, err := HasTimescale(ctx, db)
	if err != nil {
		return err
	}
	bound := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t
	}
	now := to
	if now.IsZero() {
		now = time.Now()
	}
	for _, view := range Rollups {
		switch plain, isTable := plainRollupHistory[view]; {
		case ts:
			// A policy's run holds the aggregate (SQLSTATE 55P03) on a server whose jobs run: wait it out.
			err = retryWhilePolicyRuns(ctx, func() error {
				_, err := db.Exec(ctx, `CALL refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)`,
					view, bound(from), bound(to))
				return err
			})
		case isTable && isRelkindTable(ctx, db, view):
			err = plain.refresh(ctx, db, view, now)
		default:
			_, err = db.Exec(ctx, `REFRESH MATERIALIZED VIEW CONCURRENTLY `+pgx.Identifier{view}.Sanitize())
		}
		if err != nil {
			return fmt.Errorf("telemetry: refresh %s: %w", view, err)
		}
	}
	return nil
}

// historyRollup is a rollup that plain PostgreSQL keeps as a table (migration 0060), so its history
// outlives the raw rows: each refresh recomputes only the buckets from window before now (aligned
// to the bucket width) from its source, and leaves older buckets alone. The windows are
// TimescaleDB's refresh policies' start offsets (3 days from raw events, 7 days for the day levels),
// inside raw retention (at least 7 days) and beyond the oldest event accepted (at most 60 hours).
type historyRollup struct {
	width, window time.Duration
	// recompute inserts the buckets at or after $1, from the source.
	recompute string
	// keep is how long buckets are kept (0: forever), as TimescaleDB's retention policies do.
	keep time.Duration
}

const origin = `TIMESTAMPTZ '2000-01-01 00:00:00+00'`

var plainRollupHistory = map[string]historyRollup{
	"evaluations_per_hour": {width: time.Hour, window: 3 * 24 * time.Hour, keep: 400 * 24 * time.Hour, recompute: `
		INSERT INTO evaluations_per_hour (bucket, project, environment, flag, variation, evaluations, last_evaluated_at)
		SELECT date_bin(INTERVAL '1 hour', occurred_at, ` + origin + `), project, environment, flag, variation,
		       sum(evaluations)::bigint, max(occurred_at)
		FROM evaluation_events WHERE occurred_at >= $1
		GROUP BY 1, 2, 3, 4, 5`},
	"evaluations_per_day": {width: 24 * time.Hour, window: 7 * 24 * time.Hour, recompute: `
		INSERT INTO evaluations_per_day (bucket, project, environment, flag, variation, evaluations, last_evaluated_at)
		SELECT date_bin(INTERVAL '1 day', bucket, ` + origin + `), project, environment, flag, variation,
		       sum(evaluations)::bigint, max(last_evaluated_at)
		FROM evaluations_per_hour WHERE bucket >= $1
		GROUP BY 1, 2, 3, 4, 5`},
	"goals_per_hour": {width: time.Hour, window: 3 * 24 * time.Hour, keep: 400 * 24 * time.Hour, recompute: `
		INSERT INTO goals_per_hour (bucket, project, environment, goal, conversions, users, value_sum, value_sum_squares)
		SELECT date_bin(INTERVAL '1 hour', occurred_at, ` + origin + `), project, environment, goal,
		       count(*), count(DISTINCT user_key), coalesce(sum(value), 0), coalesce(sum(value * value), 0)
		FROM goal_events WHERE occurred_at >= $1
		GROUP BY 1, 2, 3, 4`},
	"goals_per_day": {width: 24 * time.Hour, window: 7 * 24 * time.Hour, recompute: `
		INSERT INTO goals_per_day (bucket, project, environment, goal, conversions, value_sum, value_sum_squares)
		SELECT date_bin(INTERVAL '1 day', bucket, ` + origin + `), project, environment, goal,
		       sum(conversions)::bigint, sum(value_sum), sum(value_sum_squares)
		FROM goals_per_hour WHERE bucket >= $1
		GROUP BY 1, 2, 3, 4`},
	"goal_variations_per_hour": {width: time.Hour, window: 3 * 24 * time.Hour, keep: 400 * 24 * time.Hour, recompute: `
		INSERT INTO goal_variations_per_hour (bucket, project, environment, goal, subject_kind, subject, variation,
		                                      conversions, users, value_sum, value_sum_squares)
		SELECT date_bin(INTERVAL '1 hour', occurred_at, ` + origin + `), project, environment, goal, subject_kind, subject, variation,
		       count(*), count(DISTINCT user_key), coalesce(sum(value), 0), coalesce(sum(value * value), 0)
		FROM goal_attributions WHERE occurred_at >= $1
		GROUP BY 1, 2, 3, 4, 5, 6, 7`},
	"goal_variations_per_day": {width: 24 * time.Hour, window: 7 * 24 * time.Hour, recompute: `
		INSERT INTO goal_variations_per_day (bucket, project, environment, goal, subject_kind, subject, variation,
		                                     conversions, value_sum, value_sum_squares)
		SELECT date_bin(INTERVAL '1 day', bucket, ` + origin + `), project, environment, goal, subject_kind, subject, variation,
		       sum(conversions)::bigint, sum(value_sum), sum(value_sum_squares)
		FROM goal_variations_per_hour WHERE bucket >= $1
		GROUP BY 1, 2, 3, 4, 5, 6, 7`},
}

// refresh replaces the rollup's buckets from its window's start on, in one transaction when db
// can begin one (readers see the old buckets or the new ones, never none).
func (r historyRollup) refresh(ctx context.Context, db DB, table string, now time.Time) error {
	// UTC-aligned buckets (origin 2000-01-01 UTC).
	return r.recomputeFrom(ctx, db, table, now.Add(-r.window).UTC().Truncate(r.width))
}

// RecomputeRollup recomputes a plain-mode rollup as a whole from its source (a bulk load, the
// load tools): every bucket for a table of migration 0060, a refresh for a materialized view.
// Buckets whose raw rows have expired are lost, so it is no maintenance task.
func RecomputeRollup(ctx context.Context, db DB, view string) error {
	if r, ok := plainRollupHistory[view]; ok && isRelkindTable(ctx, db, view) {
		return r.recomputeFrom(ctx, db, view, time.Time{})
	}
	_, err := db.Exec(ctx, `REFRESH MATERIALIZED VIEW CONCURRENTLY `+pgx.Identifier{view}.Sanitize())
	return err
}

func (r historyRollup) recomputeFrom(ctx context.Context, db DB, table string, from time.Time) error {
	run := func(db DB) error {
		if _, err := db.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize()+` WHERE bucket >= $1`, from); err != nil {
			return err
		}
		_, err := db.Exec(ctx, r.recompute, from)
		return err
	}
	if b, ok := db.(interface {
		Begin(context.Context) (pgx.Tx, error)
	}); ok {
		return pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error { return run(tx) })
	}
	return run(db)
}

// isRelkindTable reports whether name is an ordinary table (a plain-mode rollup after 0060), not
// a materialized view (before it).
func isRelkindTable(ctx context.Context, db DB, name string) bool {
	var kind string
	if err := db.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)`, name).Scan(&kind); err != nil {
		return false
	}
	return kind == "r"
}

// CatchUpRollups materializes every continuous aggregate from its first bucket up to where its
// refresh policy stops (now minus the policy's end_offset), in dependency order: what a database
// just converted to TimescaleDB needs once. The buckets still filling are left to real-time
// aggregation and the policies, as on a fresh TimescaleDB database: a bucket materialized before
// it is complete would hide the rows that arrive later until a policy refreshes it, and the day
// level's policy never refreshes the current day. It does nothing on plain PostgreSQL. Each CALL
// runs in its own transaction, so db must not be in one.
func CatchUpRollups(ctx context.Context, db DB) error {
	ts, err := HasTimescale(ctx, db)
	if err != nil || !ts {
		return err
	}
	for _, view := range Rollups {
		var endOffset time.Duration
		if err := db.QueryRow(ctx, `SELECT coalesce((SELECT (j.config->>'end_offset')::interval
			  FROM timescaledb_information.jobs j
			  JOIN timescaledb_information.continuous_aggregates a
			    ON a.materialization_hypertable_schema = j.hypertable_schema AND a.materialization_hypertable_name = j.hypertable_name
			  WHERE a.view_name = $1 AND j.proc_name = 'policy_refresh_continuous_aggregate'), INTERVAL '0')`, view).Scan(&endOffset); err != nil {
			return fmt.Errorf("telemetry: refresh policy of %s: %w", view, err)
		}
		if err := refreshWaitingForPolicies(ctx, db, view, intervalText(endOffset)); err != nil {
			return fmt.Errorf("telemetry: refresh %s: %w", view, err)
		}
	}
	return nil
}

// refreshWaitingForPolicies materializes view up to now minus endOffset, waiting out a policy's
// run (retryWhilePolicyRuns).
func refreshWaitingForPolicies(ctx context.Context, db DB, view, endOffset string) error {
	return retryWhilePolicyRuns(ctx, func() error {
		_, err := db.Exec(ctx, `CALL refresh_continuous_aggregate($1::regclass, NULL, now() - $2::interval)`, view, endOffset)
		return err
	})
}

// retryWhilePolicyRuns runs refresh until it does not fail with SQLSTATE 55P03. The refresh
// policies created with the aggregates start their first run at once in TimescaleDB's background
// workers, and a refresh that meets a running one fails with 55P03 instead of waiting: such a
// refresh is tried again, with a growing pause, for up to a minute.
func retryWhilePolicyRuns(ctx context.Context, refresh func() error) error {
	pause := 100 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		err := refresh()
		if !IsRefreshBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// IsRefreshBusy reports whether err is a refresh of a continuous aggregate refused because
// another refresh of it (a policy's run) holds it: SQLSTATE 55P03, lock_not_available.
func IsRefreshBusy(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// sqlReattribute attributes stored goals to exposures recorded or moved since $1 (and adds the
// attributions inserted to the per-user goal sums). Write does the same in the transaction that
// stores an exposure; this pass repairs the one case it cannot see: a goal and its user's first
// exposure stored at the same moment by two concurrent transactions (each misses the other's
// uncommitted row). Idempotent: attributions already there are skipped.
const sqlReattribute = `WITH units AS (
  SELECT project, environment, user_key, subject_kind, subject, variation, first_exposed_at
  FROM experiment_exposures WHERE updated_at >= $1
),` + attributeAndSum + `
SELECT g.occurred_at, g.event_id, u.project, u.environment, g.goal, u.subject_kind, u.subject, u.variation,
       u.user_key, g.value
FROM units u CROSS JOIN LATERAL (
  SELECT occurred_at, event_id, goal, value FROM goal_events g
  WHERE g.project = u.project AND g.environment = u.environment AND g.user_key = u.user_key
    AND g.occurred_at >= u.first_exposed_at
  OFFSET 0) g` + attributeAndSumEnd + `
SELECT count(*) FROM att`

// Reattribute runs the repair pass over exposures recorded or moved since since, and returns
// how many attributions it added (0 unless a race was repaired).
func Reattribute(ctx context.Context, db DB, since time.Time) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, sqlReattribute, since).Scan(&n); err != nil {
		return 0, fmt.Errorf("telemetry: re-attribute goals: %w", err)
	}
	return n, nil
}

// DeleteExpired deletes raw rows older than retention (and batch log rows older than
// BatchLogRetention) on plain PostgreSQL; TimescaleDB drops whole chunks by policy instead.
func DeleteExpired(ctx context.Context, db DB, retention time.Duration) (int64, error) {
	ts, err := HasTimescale(ctx, db)
	if err != nil || ts || retention <= 0 {
		return 0, err
	}
	var total int64
	for _, t := range []struct {
		table, column string
		keep          time.Duration
	}{
		{"evaluation_events", "occurred_at", retention},
		{"goal_events", "occurred_at", retention},
		{"goal_attributions", "occurred_at", retention},
		{"telemetry_batches", "received_at", BatchLogRetention},
		// The hour levels kept as tables (0060) expire as on TimescaleDB; the day levels never.
		{"evaluations_per_hour", "bucket", historyKeep("evaluations_per_hour", db, ctx)},
		{"goals_per_hour", "bucket", historyKeep("goals_per_hour", db, ctx)},
		{"goal_variations_per_hour", "bucket", historyKeep("goal_variations_per_hour", db, ctx)},
	} {
		if t.keep <= 0 {
			continue
		}
		tag, err := db.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE %s < now() - $1::interval`, t.table, t.column), t.keep)
		if err != nil {
			return total, fmt.Errorf("telemetry: delete expired %s: %w", t.table, err)
		}
		total += tag.RowsAffected()
	}
	return total, nil
}
