package platform_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/adapters/postgres"
	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// On the native server (PostgreSQL 15.20, every TimescaleDB job recorded as failed) serve stays
// ready; /readyz has a timescaledb_jobs entry naming the failing jobs and the known issue, and
// the start-up log warns about it once.
func TestReadyzReportsTimescaleJobsOnNativeServer(t *testing.T) {
	t.Parallel()
	url := pgtest.NewNativeTimescale(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The migrations create the policies and their first runs start at once: wait for them, so
	// /readyz has runs to report.
	m, err := postgres.NewMigrator(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	testkit.WaitFor(t, 2*time.Minute, "the first run of every Vexil job", func() bool {
		jobs, err := telemetry.ReadJobs(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.TotalRuns == 0 {
				return false
			}
		}
		return len(jobs) == postgres.VexilJobsPerDatabase
	})
	p, logs := startServe(t, ctx, url)
	type entry struct {
		OK     bool   `json:"ok"`
		State  string `json:"state"`
		Detail string `json:"detail"`
	}
	var ready struct {
		Status string           `json:"status"`
		Checks map[string]entry `json:"checks"`
	}
	read := func() {
		t.Helper()
		res, err := http.Get("http://" + p.Addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if err := json.NewDecoder(res.Body).Decode(&ready); err != nil || res.StatusCode != http.StatusOK || ready.Status != "ready" {
			t.Fatalf("/readyz: %d %+v %v, want 200 ready", res.StatusCode, ready, err)
		}
	}
	read()
	jobs, ok := ready.Checks["timescaledb_jobs"]
	if !ok {
		t.Fatalf("/readyz has no timescaledb_jobs entry: %+v", ready.Checks)
	}
	t.Logf("/readyz timescaledb_jobs: %+v", jobs)
	if jobs.OK || (!strings.Contains(jobs.Detail, "20 of 20 TimescaleDB jobs failing") || !strings.Contains(jobs.Detail, "known PostgreSQL 15.20 job issue") ||
		!strings.Contains(jobs.Detail, "the projector refreshes the continuous aggregates itself (rollup-refresh auto)") || jobs.State != "degraded") {
		t.Fatalf("/readyz timescaledb_jobs %+v", jobs)
	}
	if n := strings.Count(logs.String(), "PostgreSQL 15.20 records every TimescaleDB job as failed"); n != 1 {
		t.Errorf("the start-up warning about PostgreSQL 15.20 was logged %d times, want once:\n%s", n, logs.String())
	}
}
