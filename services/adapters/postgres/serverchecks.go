package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Supported versions (docs/timescaledb.md). Plain PostgreSQL from 14; TimescaleDB 2.13 or later
// within major version 2 (create_hypertable's by_range form, which the migrations use) on
// PostgreSQL 15 to 17: TimescaleDB 2.29 dropped PostgreSQL 15. Measured here: TimescaleDB 2.28.3 on
// PostgreSQL 15.20 (native) and TimescaleDB 2.23 on PostgreSQL 17 (PGlite).
const (
	MinPostgresMajor          = 14
	MaxPostgresMajor          = 17
	MinTimescalePostgresMajor = 15
	MinTimescaleMinor         = 13 // 2.13
)

// VexilJobsPerDatabase is how many TimescaleDB jobs Vexil's migrations create in one database: a
// refresh policy per continuous aggregate (8), compression policies on the three raw event tables,
// retention policies on the four raw tables and five rollups.
const VexilJobsPerDatabase = 8 + 3 + 4 + 5

// ServerSettings are what the start-up checks read from the server.
type ServerSettings struct {
	PostgresVersionNum int    // server_version_num, e.g. 150020
	PostgresVersion    string // server_version's first word
	// TimescaleVersion is the extension's version in this database, else the server's available
	// default version, else "".
	TimescaleVersion string
	TimescaleCreated bool // the extension exists in this database
	// MaxWorkerProcesses is max_worker_processes; MaxBackgroundWorkers is
	// timescaledb.max_background_workers (-1 when TimescaleDB is not loaded).
	MaxWorkerProcesses   int
	MaxBackgroundWorkers int
	// TimescaleDatabases counts the databases whose TimescaleDB scheduler runs now (each takes a
	// background worker), at least 1 when this database has the extension.
	TimescaleDatabases int
	// Jobs is the number of TimescaleDB jobs in this database (Vexil's and any other).
	Jobs int
}

// ReadServerSettings asks the server. It never loads TimescaleDB.
func ReadServerSettings(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (ServerSettings, error) {
	var s ServerSettings
	var maxBgw string
	err := db.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, split_part(current_setting('server_version'), ' ', 1),
		  coalesce((SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
		           (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'), ''),
		  EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
		  current_setting('max_worker_processes')::int,
		  coalesce(current_setting('timescaledb.max_background_workers', true), ''),
		  (SELECT count(DISTINCT datname) FROM pg_stat_activity WHERE backend_type = 'TimescaleDB Background Worker Scheduler')::int`).
		Scan(&s.PostgresVersionNum, &s.PostgresVersion, &s.TimescaleVersion, &s.TimescaleCreated,
			&s.MaxWorkerProcesses, &maxBgw, &s.TimescaleDatabases)
	if err != nil {
		return ServerSettings{}, fmt.Errorf("postgres: read server settings: %w", err)
	}
	s.MaxBackgroundWorkers = -1
	if n, err := strconv.Atoi(maxBgw); err == nil {
		s.MaxBackgroundWorkers = n
	}
	if s.TimescaleCreated {
		s.TimescaleDatabases = max(s.TimescaleDatabases, 1)
		if err := db.QueryRow(ctx, `SELECT count(*)::int FROM timescaledb_information.jobs WHERE job_id >= 1000`).Scan(&s.Jobs); err != nil {
			return ServerSettings{}, fmt.Errorf("postgres: count TimescaleDB jobs: %w", err)
		}
	}
	return s, nil
}

// Warnings are what an operator should fix on the server, each a sentence that says what to
// change (TimescaleDB installed but not preloaded is Storage.Advice's): too few background workers for the jobs
// (counted: each TimescaleDB database's scheduler plus every job of this database at once, as
// when the migrations create them or the server restarts); versions outside the supported
// matrix; the known PostgreSQL 15.20 job issue.
func (s ServerSettings) Warnings() []string {
	var out []string
	major := s.PostgresVersionNum / 10000
	switch {
	case major < MinPostgresMajor:
		out = append(out, fmt.Sprintf("PostgreSQL %s is older than Vexil supports (%d to %d): upgrade PostgreSQL", s.PostgresVersion, MinPostgresMajor, MaxPostgresMajor))
	case major > MaxPostgresMajor:
		out = append(out, fmt.Sprintf("PostgreSQL %s is newer than Vexil was tested with (%d to %d)", s.PostgresVersion, MinPostgresMajor, MaxPostgresMajor))
	}
	if !s.TimescaleCreated {
		return out
	}
	if v := s.TimescaleVersion; !timescaleSupported(v) {
		out = append(out, fmt.Sprintf("TimescaleDB %s is outside the versions Vexil supports (2.%d or later within 2.x)", v, MinTimescaleMinor))
	}
	if major < MinTimescalePostgresMajor {
		out = append(out, fmt.Sprintf("TimescaleDB on PostgreSQL %s is outside the versions Vexil supports (PostgreSQL %d to %d with TimescaleDB)",
			s.PostgresVersion, MinTimescalePostgresMajor, MaxPostgresMajor))
	}
	if s.PostgresVersionNum == 150020 {
		out = append(out, "PostgreSQL 15.20 records every TimescaleDB job as failed after its work is committed "+
			"(cannot drop portal \"\" while it is being set up) and TimescaleDB then backs the jobs off up to 5x their schedule; "+
			"with rollup-refresh auto (the default) the projector refreshes the continuous aggregates itself, and /metrics and "+
			"/readyz show the jobs' failures (docs/timescaledb.md)")
	}
	if s.MaxBackgroundWorkers >= 0 {
		need := s.TimescaleDatabases + max(s.Jobs, VexilJobsPerDatabase)
		if s.MaxBackgroundWorkers < need {
			out = append(out, fmt.Sprintf("timescaledb.max_background_workers = %d is too few: %d TimescaleDB database(s) need a "+
				"scheduler each and this one has %d jobs that start together (after the migrations and after a restart), so set at "+
				"least %d (one scheduler per database plus its jobs) and max_worker_processes to at least that plus 1 plus max_parallel_workers",
				s.MaxBackgroundWorkers, s.TimescaleDatabases, max(s.Jobs, VexilJobsPerDatabase), need))
		}
		if s.MaxWorkerProcesses < s.MaxBackgroundWorkers+1 {
			out = append(out, fmt.Sprintf("max_worker_processes = %d is below timescaledb.max_background_workers + 1 (%d): "+
				"TimescaleDB's jobs fail to start (\"failed to start a background worker\"); raise max_worker_processes and restart PostgreSQL",
				s.MaxWorkerProcesses, s.MaxBackgroundWorkers+1))
		}
	}
	return out
}

// timescaleSupported reports whether version (e.g. "2.28.3") is 2.13 or later within 2.x.
func timescaleSupported(version string) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return err1 == nil && err2 == nil && major == 2 && minor >= MinTimescaleMinor
}
