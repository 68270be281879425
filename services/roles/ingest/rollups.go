package ingest

import (
	"context"
	"time"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// refreshWindow is how a continuous aggregate is refreshed: over [now - start, now - end) every
// interval. It is read from the aggregate's refresh policy; these are migration 0011's, used when
// the policy was removed.
type refreshWindow struct{ start, end, every time.Duration }

const day = 24 * time.Hour

var defaultRefreshWindows = map[string]refreshWindow{
	"evaluations_per_minute":      {3 * day, time.Minute, time.Minute},
	"evaluations_per_hour":        {3 * day, time.Hour, 15 * time.Minute},
	"evaluations_per_day":         {7 * day, day, time.Hour},
	"goals_per_hour":              {3 * day, time.Hour, 10 * time.Minute},
	"goals_per_day":               {7 * day, day, time.Hour},
	"goal_variations_per_hour":    {3 * day, time.Hour, 10 * time.Minute},
	"goal_variations_per_day":     {7 * day, day, time.Hour},
	"telemetry_ingest_per_minute": {day, time.Minute, time.Minute},
}

// rollupLock is the advisory lock key of the projector's own refreshes: with several projector
// instances one refreshes.
const rollupLock = "vexil-rollup-refresh"

// RollupCheckEvery is how often the maintainer reads the TimescaleDB jobs and decides which
// continuous aggregates to refresh itself: its maintenance interval, at most 15 s, so an
// aggregate refreshed by the projector is never more than one policy interval behind.
func (m *Maintainer) RollupCheckEvery() time.Duration { return min(m.cfg.Interval, 15*time.Second) }

// CheckRollups reads Vexil's TimescaleDB jobs and reports them (gauges per job, a log line when a
// job's state changes). Unless rollup-refresh is policies, it then refreshes from this session,
// in dependency order, each continuous aggregate that has not been brought current for about one
// policy interval and whose refresh policy fails, lags (no success for an interval plus a check
// period), is paused or missing (auto), or any such aggregate (vexil). On PostgreSQL 15.20 every
// job is recorded as failed (docs/timescaledb.md), so auto refreshes every aggregate once per
// interval there. It does nothing on plain PostgreSQL.
func (m *Maintainer) CheckRollups(ctx context.Context) error {
	conn, err := m.cfg.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	db := conn.Conn()
	if ts, err := telemetry.HasTimescale(ctx, db); err != nil || !ts {
		return err
	}
	jobs, err := telemetry.ReadJobs(ctx, db)
	if err != nil {
		return err
	}
	m.cfg.Metrics.observeJobs(jobs)
	m.jobs.log(m.log, jobs)
	m.jobsMu.Lock()
	m.lastJobs = jobs
	m.jobsMu.Unlock()
	refreshJobs := map[string]telemetry.Job{}
	for _, j := range jobs {
		if j.Policy == telemetry.PolicyRefresh {
			refreshJobs[j.Relation] = j
		}
	}
	if m.cfg.RollupRefresh == config.RollupRefreshPolicies {
		for view, j := range refreshJobs {
			m.cfg.Metrics.rollupCurrentAt(view, j.LastSuccess)
		}
		return nil
	}
	var locked bool
	if err := db.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, rollupLock).Scan(&locked); err != nil {
		return err
	}
	if !locked {
		return nil
	}
	defer func() {
		_, _ = db.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext($1))`, rollupLock)
	}()
	check := m.RollupCheckEvery()
	for _, view := range telemetry.Rollups {
		job, has := refreshJobs[view]
		w := defaultRefreshWindows[view]
		if has {
			w = refreshWindow{start: job.StartOffset, end: job.EndOffset, every: job.ScheduleInterval}
		}
		current := m.refreshedAt[view]
		if job.LastSuccess.After(current) {
			current = job.LastSuccess
		}
		m.cfg.Metrics.rollupCurrentAt(view, current)
		now := time.Now()
		reason := ""
		switch {
		case m.cfg.RollupRefresh == config.RollupRefreshVexil:
			reason = "mode_vexil"
		case !has:
			reason = "policy_missing"
		case !job.Scheduled:
			reason = "policy_paused"
		case job.Failing():
			reason = "policy_failing"
		case now.Sub(current) > w.every+check:
			reason = "policy_lagging"
		}
		m.logRefreshReason(view, reason, job)
		if reason == "" || now.Sub(current) < w.every-check {
			continue
		}
		err := telemetry.RefreshRollup(ctx, db, view, w.start, w.end)
		switch {
		case err == nil:
			m.refreshedAt[view] = now
			m.cfg.Metrics.rollupRefreshed(view, reason, "done", now)
		case telemetry.IsRefreshBusy(err):
			// A policy's run holds it and brings it current: try again at the next check.
			m.cfg.Metrics.rollupRefreshed(view, reason, "busy", now)
		default:
			m.cfg.Metrics.rollupRefreshed(view, reason, "failed", now)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The aggregates above it read it: stop here and try again at the next check.
			return err
		}
	}
	return nil
}

// logRefreshReason logs once per change why the projector refreshes view itself, or that it
// stopped because the policy succeeds again.
func (m *Maintainer) logRefreshReason(view, reason string, job telemetry.Job) {
	prev, seen := m.refreshReason[view]
	m.refreshReason[view] = reason
	if prev == reason || (!seen && reason == "") {
		return
	}
	if reason == "" {
		m.log.Info("continuous aggregate: its refresh policy succeeds again; the projector leaves the refresh to it", "view", view)
		return
	}
	m.log.Info("continuous aggregate refreshed by the projector once per policy interval", "view", view, "reason", reason,
		"rollup_refresh", m.cfg.RollupRefresh, "policy_last_status", job.LastRunStatus,
		"policy_consecutive_failures", job.ConsecutiveFailures, "policy_error", job.LastError)
}

// Jobs returns Vexil's TimescaleDB jobs as the last check read them (nil before it, and on plain
// PostgreSQL).
func (m *Maintainer) Jobs() []telemetry.Job {
	m.jobsMu.Lock()
	defer m.jobsMu.Unlock()
	return m.lastJobs
}
