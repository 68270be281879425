package ingest

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// jobMetrics are the TimescaleDB job gauges, per job (policy, relation), and the projector's own
// refreshes of the continuous aggregates.
type jobMetrics struct {
	lastSuccess  *prometheus.GaugeVec
	consecutive  *prometheus.GaugeVec
	failures     *prometheus.GaugeVec
	lastRunOK    *prometheus.GaugeVec
	nextStart    *prometheus.GaugeVec
	refreshes    *prometheus.CounterVec // by view, reason, outcome
	refreshedAt  *prometheus.GaugeVec   // by view
	jobsObserved prometheus.Gauge
}

func newJobMetrics() *jobMetrics {
	labels := []string{"policy", "relation"}
	return &jobMetrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vexil_timescaledb_job_last_success_timestamp_seconds",
			Help: "When Vexil's TimescaleDB job last finished successfully (timescaledb_information.job_stats), Unix time; 0 if never."}, labels),
		consecutive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vexil_timescaledb_job_consecutive_failures",
			Help: "Runs of Vexil's TimescaleDB job that failed in a row (TimescaleDB backs its schedule off up to 5x meanwhile)."}, labels),
		failures: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vexil_timescaledb_job_failures",
			Help: "Failed runs of Vexil's TimescaleDB job recorded by TimescaleDB since it was created."}, labels),
		lastRunOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vexil_timescaledb_job_last_run_ok",
			Help: "1 when the last run of Vexil's TimescaleDB job succeeded, 0 when it failed or never ran."}, labels),
		nextStart: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vexil_timescaledb_job_next_start_timestamp_seconds",
			Help: "When TimescaleDB next runs the job, Unix time; 0 when it is not scheduled."}, labels),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_timescaledb_rollup_refreshes_total",
			Help: "Refreshes of a continuous aggregate run by the projector itself (rollup-refresh), by view, reason (policy_failing, policy_lagging, policy_missing, mode_vexil) and outcome (done, busy: a policy's run held it, failed)."},
			[]string{"view", "reason", "outcome"}),
		refreshedAt: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vexil_timescaledb_rollup_refreshed_timestamp_seconds",
			Help: "When the continuous aggregate was last brought current, by its policy's last success or by the projector, Unix time."}, []string{"view"}),
		jobsObserved: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_timescaledb_jobs",
			Help: "Vexil's TimescaleDB jobs in the database (refresh, compression and retention policies)."}),
	}
}

func (j *jobMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{j.lastSuccess, j.consecutive, j.failures, j.lastRunOK, j.nextStart, j.refreshes, j.refreshedAt, j.jobsObserved}
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func (m *Metrics) observeJobs(jobs []telemetry.Job) {
	if m == nil {
		return
	}
	j := m.jobs
	j.jobsObserved.Set(float64(len(jobs)))
	for _, job := range jobs {
		l := prometheus.Labels{"policy": job.Policy, "relation": job.Relation}
		j.lastSuccess.With(l).Set(unix(job.LastSuccess))
		j.consecutive.With(l).Set(float64(job.ConsecutiveFailures))
		j.failures.With(l).Set(float64(job.TotalFailures))
		ok := 0.0
		if job.LastRunStatus == "Success" {
			ok = 1
		}
		j.lastRunOK.With(l).Set(ok)
		next := job.NextStart
		if !job.Scheduled {
			next = time.Time{}
		}
		j.nextStart.With(l).Set(unix(next))
	}
}

func (m *Metrics) rollupRefreshed(view, reason, outcome string, at time.Time) {
	if m == nil {
		return
	}
	m.jobs.refreshes.WithLabelValues(view, reason, outcome).Inc()
	if outcome == "done" {
		m.jobs.refreshedAt.WithLabelValues(view).Set(unix(at))
	}
}

func (m *Metrics) rollupCurrentAt(view string, at time.Time) {
	if m != nil && !at.IsZero() {
		m.jobs.refreshedAt.WithLabelValues(view).Set(unix(at))
	}
}

// JobsSummary says in one line how Vexil's TimescaleDB jobs fare, for /readyz and the logs: ok is
// false when some job's last run failed. The known PostgreSQL 15.20 issue (the job's work is
// committed, then the run is recorded as failed) is named as such.
func JobsSummary(jobs []telemetry.Job, refresh string) (ok bool, detail string) {
	failing, known := 0, 0
	var names []string
	for _, j := range jobs {
		if !j.Failing() {
			continue
		}
		failing++
		if strings.Contains(j.LastError, telemetry.KnownJobIssuePostgres1520) {
			known++
		}
		if len(names) < 3 {
			names = append(names, j.Policy+" "+j.Relation)
		}
	}
	if failing == 0 {
		return true, fmt.Sprintf("%d TimescaleDB jobs, none failing", len(jobs))
	}
	detail = fmt.Sprintf("%d of %d TimescaleDB jobs failing (%s", failing, len(jobs), strings.Join(names, ", "))
	if failing > len(names) {
		detail += ", ..."
	}
	detail += ")"
	if known == failing {
		detail += "; all with the known PostgreSQL 15.20 job issue: their work is committed, then the run is recorded as failed and TimescaleDB backs off up to 5x the schedule"
	}
	switch refresh {
	case config.RollupRefreshPolicies:
		detail += "; rollup-refresh is policies: continuous aggregates rely on real-time aggregation between the backed-off runs"
	default:
		detail += "; the projector refreshes the continuous aggregates itself (rollup-refresh " + refresh + ")"
	}
	return false, detail
}

// jobWatch logs a job's state once per change: a failing job with its error, and its recovery.
type jobWatch struct {
	mu   sync.Mutex
	last map[int32]string
}

func (w *jobWatch) log(log *slog.Logger, jobs []telemetry.Job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[int32]string{}
	}
	for _, j := range jobs {
		state := j.LastRunStatus
		if !j.Scheduled {
			state = "paused"
		}
		prev, seen := w.last[j.ID]
		w.last[j.ID] = state
		if prev == state || (!seen && (state == "Success" || state == "")) {
			continue
		}
		attrs := []any{"job_id", j.ID, "policy", j.Policy, "relation", j.Relation, "consecutive_failures", j.ConsecutiveFailures,
			"total_failures", j.TotalFailures, "next_start", j.NextStart}
		switch state {
		case "Failed":
			msg := "TimescaleDB job failing"
			if strings.Contains(j.LastError, telemetry.KnownJobIssuePostgres1520) {
				msg = "TimescaleDB job recorded as failed by the known PostgreSQL 15.20 job issue (its work is committed; TimescaleDB backs its schedule off)"
			}
			log.Warn(msg, append(attrs, "err", j.LastError)...)
		case "paused":
			log.Warn("TimescaleDB job paused (scheduled = false)", attrs...)
		default:
			log.Info("TimescaleDB job succeeds again", attrs...)
		}
	}
}
