package platform

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/roles/ingest"
)

// jobsCheck is the timescaledb_jobs entry of /readyz: how Vexil's TimescaleDB jobs fare and who
// refreshes the continuous aggregates (docs/timescaledb.md). It never makes the process unready:
// failing policies cost freshness of the materialized rollups, which real-time aggregation and
// the projector's own refreshes cover. The answer is cached for 30 s (every probe would
// otherwise read the job catalog). Nothing is shown on plain PostgreSQL.
type jobsCheck struct {
	pool    *pgxpool.Pool
	refresh string // rollup-refresh

	mu        sync.Mutex
	last      *check
	checkedAt time.Time
}

func (j *jobsCheck) state(ctx context.Context) *check {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.checkedAt.IsZero() && time.Since(j.checkedAt) < 30*time.Second {
		return j.last
	}
	jobs, err := telemetry.ReadJobs(ctx, j.pool)
	switch {
	case err != nil:
		// The driver's text can name the database: /readyz says what it means.
		j.last = &check{State: stateDegraded, Detail: "Vexil's TimescaleDB jobs could not be read"}
	case jobs == nil:
		j.last = nil // plain PostgreSQL, or no policies
	default:
		ok, detail := ingest.JobsSummary(jobs, j.refresh)
		j.last = &check{OK: ok, State: stateUp, Detail: detail}
		if !ok {
			j.last.State = stateDegraded
		}
	}
	j.checkedAt = time.Now()
	return j.last
}
