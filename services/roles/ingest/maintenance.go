package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// MaintenanceConfig configures a Maintainer.
type MaintenanceConfig struct {
	Pool *pgxpool.Pool
	// Interval between maintenance passes: refresh of the rollups on plain PostgreSQL, the goal
	// re-attribution pass, retention on plain PostgreSQL (at most hourly). Default 1m.
	Interval time.Duration
	// Policies of the raw event tables (TimescaleDB: applied at start; plain PostgreSQL: the
	// retention is applied by deleting).
	Policies telemetry.Policies
	Metrics  *Metrics
	Logger   *slog.Logger
	// RollupRefresh says who refreshes TimescaleDB's continuous aggregates: config.RollupRefresh*
	// (default auto). See CheckRollups.
	RollupRefresh string
}

// Maintainer runs the telemetry housekeeping of the projector role. Passes are serialized across
// instances by a PostgreSQL advisory lock: with several projector instances one does each pass.
type Maintainer struct {
	cfg MaintenanceConfig
	log *slog.Logger

	lastSweep     time.Time
	lastRetention time.Time

	// TimescaleDB: the projector's own refreshes (CheckRollups), from the Run goroutine only.
	refreshedAt   map[string]time.Time // when the projector last brought each aggregate current
	refreshReason map[string]string    // why it refreshes each aggregate itself ("" when it does not)
	jobs          jobWatch
	jobsMu        sync.Mutex
	lastJobs      []telemetry.Job
}

// maintenanceLock is the advisory lock key of a maintenance pass. Migration 0050's
// vexil_timescale_upgrade() takes it too, so no pass refreshes a plain view being replaced.
const maintenanceLock = "vexil-telemetry-maintenance"

// NewMaintainer validates cfg.
func NewMaintainer(cfg MaintenanceConfig) (*Maintainer, error) {
	if cfg.Pool == nil {
		return nil, errors.New("telemetry: maintainer needs a pool")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch cfg.RollupRefresh {
	case "":
		cfg.RollupRefresh = config.RollupRefreshAuto
	case config.RollupRefreshPolicies, config.RollupRefreshVexil, config.RollupRefreshAuto:
	default:
		return nil, fmt.Errorf("telemetry: rollup refresh %q: want policies, vexil or auto", cfg.RollupRefresh)
	}
	return &Maintainer{cfg: cfg, log: cfg.Logger.With("role", "projector", "component", "telemetry-maintenance"),
		refreshedAt: map[string]time.Time{}, refreshReason: map[string]string{}}, nil
}

// Run applies the policies, then runs a pass every Interval until ctx ends. Failures are logged
// and retried at the next interval.
func (m *Maintainer) Run(ctx context.Context) error {
	policiesApplied, checkedRollups := false, false
	// The first re-attribution pass after a start covers what a previous process may have missed.
	m.lastSweep = time.Now().Add(-10 * m.cfg.Interval)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	rollups := time.NewTicker(m.RollupCheckEvery())
	defer rollups.Stop()
	checkRollups := func() {
		start := time.Now()
		err := m.CheckRollups(ctx)
		m.cfg.Metrics.maintained("rollups", time.Since(start).Seconds(), err)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("TimescaleDB jobs and rollup refresh check failed; retrying", "err", err)
		}
	}
	for {
		if !policiesApplied {
			start := time.Now()
			n, err := telemetry.ApplyPolicies(ctx, m.cfg.Pool, m.cfg.Policies)
			m.cfg.Metrics.maintained("policies", time.Since(start).Seconds(), err)
			switch {
			case err != nil && ctx.Err() == nil:
				m.log.Warn("telemetry storage policies not applied; retrying", "err", err)
			case err == nil:
				policiesApplied = true
				if n > 0 {
					m.log.Info("telemetry storage policies applied", "changes", n, "retention", m.cfg.Policies.Retention,
						"compress_after", m.cfg.Policies.CompressAfter, "chunk_interval", m.cfg.Policies.ChunkInterval)
				}
			}
		}
		if policiesApplied && !checkedRollups {
			checkedRollups = true
			checkRollups()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-rollups.C:
			checkRollups()
			continue
		case <-t.C:
		}
		if err := m.Pass(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("telemetry maintenance pass failed; retrying at the next interval", "err", err)
		}
	}
}

// Pass runs one maintenance pass now, unless another instance holds the lock (then it returns
// nil at once).
func (m *Maintainer) Pass(ctx context.Context) error {
	conn, err := m.cfg.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, maintenanceLock).Scan(&locked); err != nil {
		return err
	}
	if !locked {
		return nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, maintenanceLock)
	}()
	db := conn.Conn()
	ts, err := telemetry.HasTimescale(ctx, db)
	if err != nil {
		return err
	}
	var errs []error
	// Re-attribution: overlapping windows, so a transaction that committed just after the
	// previous pass started is covered by this one.
	started := time.Now()
	since := m.lastSweep.Add(-m.cfg.Interval)
	n, err := telemetry.Reattribute(ctx, db, since)
	m.cfg.Metrics.maintained("reattribute", time.Since(started).Seconds(), err)
	if err != nil {
		errs = append(errs, err)
	} else {
		m.lastSweep = started
		if n > 0 {
			m.log.Info("goals re-attributed to exposures stored concurrently", "attributions", n)
		}
	}
	if !ts {
		start := time.Now()
		err := telemetry.RefreshRollups(ctx, db, time.Time{}, time.Time{})
		m.cfg.Metrics.maintained("refresh", time.Since(start).Seconds(), err)
		if err != nil {
			errs = append(errs, err)
		}
		if time.Since(m.lastRetention) >= time.Hour {
			start := time.Now()
			deleted, err := telemetry.DeleteExpired(ctx, db, m.cfg.Policies.Retention)
			m.cfg.Metrics.maintained("retention", time.Since(start).Seconds(), err)
			if err != nil {
				errs = append(errs, err)
			} else {
				m.lastRetention = start
				if deleted > 0 {
					m.log.Info("expired telemetry rows deleted", "rows", deleted)
				}
			}
		}
	}
	return errors.Join(errs...)
}
