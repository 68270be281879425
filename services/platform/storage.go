package platform

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// telemetryPolicies are the configured storage intervals of the raw telemetry tables.
func telemetryPolicies(cfg *config.Config) telemetry.Policies {
	return telemetry.Policies{ChunkInterval: cfg.TelemetryChunkInterval, CompressAfter: cfg.TelemetryCompressAfter,
		Retention: cfg.TelemetryRetention}
}

// logStorage logs once which storage the database uses, and at WARN what the operator should do
// when TimescaleDB is installed but not preloaded, or loadable but not used yet, and when the
// server's worker limits or versions are off (postgres.ServerSettings.Warnings). A failure to ask
// is logged, never fatal: the storage mode does not decide whether Vexil can run.
func logStorage(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool) {
	s, err := postgres.DetectStorage(ctx, pool)
	if err != nil {
		log.Warn("storage mode unknown", "err", err)
		return
	}
	attrs := []any{"mode", s.Mode, "postgresql", s.PostgresVersion, "timescaledb", s.TimescaleVersion,
		"timescaledb_installed", s.TimescaleInstalled, "timescaledb_loadable", s.TimescaleLoadable}
	if advice := s.Advice(); advice != "" {
		log.Warn(advice, attrs...)
	} else {
		log.Info("storage", attrs...)
	}
	// Server settings and versions (docs/timescaledb.md): worker limits, the supported matrix.
	settings, err := postgres.ReadServerSettings(ctx, pool)
	if err != nil {
		log.Warn("server settings unknown", "err", err)
		return
	}
	for _, w := range settings.Warnings() {
		log.Warn(w, "postgresql", settings.PostgresVersion, "timescaledb", settings.TimescaleVersion,
			"max_worker_processes", settings.MaxWorkerProcesses, "timescaledb_max_background_workers", settings.MaxBackgroundWorkers,
			"timescaledb_databases", settings.TimescaleDatabases, "timescaledb_jobs", settings.Jobs)
	}
}

// storageCheck is the storage entry of /readyz: the mode and, when TimescaleDB is installed but
// unused, what to do about it. It never makes the process unready. The answer is cached for a
// minute: it changes only when PostgreSQL restarts with another configuration or someone runs
// vexil migrate timescale.
type storageCheck struct {
	pool *pgxpool.Pool

	mu        sync.Mutex
	last      check
	checkedAt time.Time
}

func (s *storageCheck) state(ctx context.Context) (check, bool) {
	if s == nil {
		return check{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checkedAt.IsZero() && time.Since(s.checkedAt) < time.Minute {
		return s.last, true
	}
	st, err := postgres.DetectStorage(ctx, s.pool)
	if err != nil {
		return check{}, false
	}
	s.last, s.checkedAt = check{OK: true, Detail: st.Summary()}, time.Now()
	return s.last, true
}
