package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/projections/telemetry"
)

// Metrics of the telemetry flow, for /metrics. One value serves the ingestor, the consumer and
// the maintainer of a process. A nil *Metrics records nothing.
type Metrics struct {
	ingestBatches *prometheus.CounterVec // by outcome: accepted, client_gone, invalid, too_large, backlog, unavailable
	ingestEvents  *prometheus.CounterVec // by outcome: accepted, rejected
	countsDropped prometheus.Counter
	streamLag     prometheus.Gauge
	messages      *prometheus.CounterVec // by outcome: stored, duplicate, failed, dead_lettered
	rows          *prometheus.CounterVec // by table
	duplicates    *prometheus.CounterVec // by table
	writeSeconds  prometheus.Histogram
	endToEnd      prometheus.Histogram
	maintenance   *prometheus.HistogramVec // by task
	maintFailures *prometheus.CounterVec   // by task
	jobs          *jobMetrics              // TimescaleDB jobs and the projector's own rollup refreshes
}

// NewMetrics registers the telemetry metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ingestBatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_telemetry_ingest_requests_total",
			Help: "POST /sdk/v1/events requests by outcome (accepted, client_gone: stored but the client left before the answer, invalid, too_large, backlog, unavailable: Redis did not take the batch)."}, []string{"outcome"}),
		ingestEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_telemetry_ingest_events_total",
			Help: "Events posted to /sdk/v1/events by outcome (accepted, rejected)."}, []string{"outcome"}),
		countsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_telemetry_counter_batches_dropped_total",
			Help: "Batches of server-side evaluation counts dropped because the telemetry stream stayed unreachable past the buffer."}),
		streamLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vexil_telemetry_stream_lag_messages",
			Help: "Telemetry stream messages not yet stored by the projector (pending + undelivered, sampled)."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_telemetry_messages_total",
			Help: "Telemetry stream messages handled by outcome (stored, duplicate, failed attempt, dead_lettered)."}, []string{"outcome"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_telemetry_rows_written_total",
			Help: "Rows inserted into telemetry tables, by table; rate() gives rows/s."}, []string{"table"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_telemetry_duplicate_events_total",
			Help: "Events skipped because the same event_id and occurred_at was stored already, by table."}, []string{"table"}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vexil_telemetry_write_seconds",
			Help: "Time of one telemetry write (the messages a projector worker stores together, in one transaction).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vexil_telemetry_end_to_end_seconds",
			Help: "From the edge receiving a batch to its storage.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		maintenance: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vexil_telemetry_maintenance_seconds",
			Help:    "Duration of telemetry maintenance tasks (refresh of rollups on plain PostgreSQL, re-attribution, retention).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"task"}),
		maintFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_telemetry_maintenance_failures_total",
			Help: "Failed telemetry maintenance tasks (retried at the next interval)."}, []string{"task"}),
		jobs: newJobMetrics(),
	}
	if reg != nil {
		reg.MustRegister(m.ingestBatches, m.ingestEvents, m.countsDropped, m.streamLag, m.messages, m.rows,
			m.duplicates, m.writeSeconds, m.endToEnd, m.maintenance, m.maintFailures)
		reg.MustRegister(m.jobs.collectors()...)
	}
	return m
}

func (m *Metrics) ingested(outcome string, accepted, rejected int) {
	if m == nil {
		return
	}
	m.ingestBatches.WithLabelValues(outcome).Inc()
	if accepted > 0 {
		m.ingestEvents.WithLabelValues("accepted").Add(float64(accepted))
	}
	if rejected > 0 {
		m.ingestEvents.WithLabelValues("rejected").Add(float64(rejected))
	}
}

func (m *Metrics) setLag(n int64) {
	if m != nil {
		m.streamLag.Set(float64(n))
	}
}

// stored records one write: the messages it stored together (isNew: first stored now, else a
// redelivered duplicate) and the rows it inserted.
func (m *Metrics) stored(batches []*telemetry.Batch, isNew []bool, r telemetry.WriteResult, seconds float64) {
	if m == nil {
		return
	}
	var evaluations, goals int64
	for i, b := range batches {
		evaluations, goals = evaluations+int64(len(b.Evaluations.EventID)), goals+int64(len(b.Goals.EventID))
		if !isNew[i] {
			m.messages.WithLabelValues("duplicate").Inc()
			continue
		}
		m.messages.WithLabelValues("stored").Inc()
		m.endToEnd.Observe(time.Since(b.ReceivedAt).Seconds())
	}
	m.rows.WithLabelValues("evaluation_events").Add(float64(r.Evaluations))
	m.rows.WithLabelValues("goal_events").Add(float64(r.Goals))
	m.rows.WithLabelValues("experiment_exposures").Add(float64(r.NewExposures))
	m.rows.WithLabelValues("goal_attributions").Add(float64(r.Attributions))
	m.duplicates.WithLabelValues("evaluation_events").Add(float64(evaluations - r.Evaluations))
	m.duplicates.WithLabelValues("goal_events").Add(float64(goals - r.Goals))
	m.writeSeconds.Observe(seconds)
}

func (m *Metrics) message(outcome string) {
	if m != nil {
		m.messages.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) maintained(task string, seconds float64, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.maintFailures.WithLabelValues(task).Inc()
		return
	}
	m.maintenance.WithLabelValues(task).Observe(seconds)
}
