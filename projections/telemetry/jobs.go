package telemetry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Policies of TimescaleDB jobs that Vexil's migrations create.
const (
	PolicyRefresh     = "refresh"     // policy_refresh_continuous_aggregate
	PolicyCompression = "compression" // policy_compression
	PolicyRetention   = "retention"   // policy_retention
)

// Job is one of Vexil's TimescaleDB background jobs and what TimescaleDB recorded of its runs
// (timescaledb_information.jobs, job_stats, job_errors).
type Job struct {
	ID       int32
	Policy   string // PolicyRefresh, PolicyCompression or PolicyRetention
	Relation string // the hypertable or continuous aggregate (its view name) the job works on
	// Scheduled is false when someone paused the job (alter_job(..., scheduled => false)).
	Scheduled        bool
	ScheduleInterval time.Duration
	// StartOffset and EndOffset bound a refresh policy's window (now - start, now - end); zero for
	// other policies and for an unbounded start.
	StartOffset, EndOffset time.Duration
	LastRunStatus          string    // "Success", "Failed", or "" before its first run
	LastRunStarted         time.Time // zero before its first run
	LastSuccess            time.Time // zero when it never succeeded
	NextStart              time.Time // zero when not scheduled
	TotalRuns              int64
	TotalFailures          int64
	ConsecutiveFailures    int64
	// LastError is the message of the job's most recent recorded error (job_errors), or "".
	LastError string
}

// Failing reports whether the job's last run failed.
func (j Job) Failing() bool { return j.LastRunStatus == "Failed" }

// KnownJobIssuePostgres1520 is the error every TimescaleDB job ends with on PostgreSQL 15.20 after
// its work committed (PortalDrop refuses the portal TimescaleDB's job runner created and never
// started; docs/timescaledb.md).
const KnownJobIssuePostgres1520 = `cannot drop portal "" while it is being set up`

// vexilJobRelations are the relations whose policies the migrations create: the raw event
// hypertables, the batch log and every rollup.
var vexilJobRelations = append(append(slices.Clone(EventTables), "telemetry_batches"), Rollups...)

// sqlJobs reads the jobs of the relations in $1. The catalog table bgw_job_stat has the
// consecutive failures (the information views only have totals).
const sqlJobs = `SELECT j.job_id, j.proc_name, coalesce(a.view_name, j.hypertable_name)::text, j.scheduled,
       j.schedule_interval,
       coalesce((j.config->>'start_offset')::interval, INTERVAL '0'), coalesce((j.config->>'end_offset')::interval, INTERVAL '0'),
       coalesce(s.last_run_status, ''),
       CASE WHEN isfinite(s.last_run_started_at) THEN s.last_run_started_at END,
       CASE WHEN isfinite(s.last_successful_finish) THEN s.last_successful_finish END,
       CASE WHEN isfinite(s.next_start) THEN s.next_start END,
       coalesce(s.total_runs, 0), coalesce(s.total_failures, 0), %s,
       coalesce((SELECT e.err_message FROM timescaledb_information.job_errors e
                 WHERE e.job_id = j.job_id ORDER BY e.start_time DESC NULLS LAST LIMIT 1), '')
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.continuous_aggregates a
  ON a.materialization_hypertable_schema = j.hypertable_schema AND a.materialization_hypertable_name = j.hypertable_name
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
%s
WHERE j.proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression', 'policy_retention')
  AND coalesce(a.view_name, j.hypertable_name) = ANY($1)
ORDER BY j.job_id`

var (
	sqlJobsWithStat = fmt.Sprintf(sqlJobs, `coalesce(st.consecutive_failures, 0)::bigint`,
		`LEFT JOIN _timescaledb_internal.bgw_job_stat st ON st.job_id = j.job_id`)
	// Where the catalog table is elsewhere or hidden: a failing job counts one consecutive failure.
	sqlJobsWithoutStat = fmt.Sprintf(sqlJobs, `CASE WHEN s.last_run_status = 'Failed' THEN 1 ELSE 0 END::bigint`, ``)
)

// ReadJobs returns Vexil's TimescaleDB jobs in this database (none on plain PostgreSQL).
func ReadJobs(ctx context.Context, db DB) ([]Job, error) {
	ts, err := HasTimescale(ctx, db)
	if err != nil || !ts {
		return nil, err
	}
	jobs, err := readJobs(ctx, db, sqlJobsWithStat)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42501" || pgErr.Code == "3F000") {
		jobs, err = readJobs(ctx, db, sqlJobsWithoutStat)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: read TimescaleDB jobs: %w", err)
	}
	return jobs, nil
}

func readJobs(ctx context.Context, db DB, sql string) ([]Job, error) {
	rows, err := db.Query(ctx, sql, vexilJobRelations)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Job, error) {
		var j Job
		var proc string
		var started, success, next *time.Time
		err := row.Scan(&j.ID, &proc, &j.Relation, &j.Scheduled, &j.ScheduleInterval, &j.StartOffset, &j.EndOffset,
			&j.LastRunStatus, &started, &success, &next, &j.TotalRuns, &j.TotalFailures, &j.ConsecutiveFailures, &j.LastError)
		switch proc {
		case "policy_refresh_continuous_aggregate":
			j.Policy = PolicyRefresh
		case "policy_compression":
			j.Policy = PolicyCompression
		default:
			j.Policy = PolicyRetention
		}
		for _, t := range []struct {
			from *time.Time
			to   *time.Time
		}{{started, &j.LastRunStarted}, {success, &j.LastSuccess}, {next, &j.NextStart}} {
			if t.from != nil {
				*t.to = *t.from
			}
		}
		return j, err
	})
}

// RefreshRollup refreshes one continuous aggregate over the window its refresh policy would use
// (now - start, now - end; an unbounded start when start is 0), from this client session: what
// the policy's background job does. It returns an error for which IsRefreshBusy is true, at
// once, when a policy's run holds the aggregate (that run brings it current). db must not be in
// a transaction.
func RefreshRollup(ctx context.Context, db DB, view string, start, end time.Duration) error {
	var from any
	if start > 0 {
		from = intervalText(start)
	}
	_, err := db.Exec(ctx, `CALL refresh_continuous_aggregate($1::regclass, now() - $2::interval, now() - $3::interval)`,
		view, from, intervalText(end))
	if err != nil {
		return fmt.Errorf("telemetry: refresh %s: %w", view, err)
	}
	return nil
}
