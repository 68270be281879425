package platform

import (
	"github.com/prometheus/client_golang/prometheus"
)

// streamMetrics counts what the relay and the projector do, for /metrics.
type streamMetrics struct {
	forwarded     prometheus.Counter
	publishFailed prometheus.Counter
	handled       *prometheus.CounterVec
	failed        *prometheus.CounterVec
	deadLettered  prometheus.Counter
}

func newStreamMetrics(reg prometheus.Registerer) *streamMetrics {
	m := &streamMetrics{
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_relay_forwarded_total",
			Help: "Outbox messages forwarded to the domain stream."}),
		publishFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_relay_publish_failures_total",
			Help: "Failed attempts to publish an outbox message (retried)."}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_projector_events_applied_total",
			Help: "Events applied to read models, by projection."}, []string{"projection"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_projector_failures_total",
			Help: "Failed attempts at a domain stream message (retried, then dead-lettered)."}, []string{"projection"}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "vexil_projector_dead_letters_total",
			Help: "Domain stream messages sent to the dead-letter stream."}),
	}
	reg.MustRegister(m.forwarded, m.publishFailed, m.handled, m.failed, m.deadLettered)
	return m
}

func (m *streamMetrics) MessageForwarded()   { m.forwarded.Inc() }
func (m *streamMetrics) PublishFailed(error) { m.publishFailed.Inc() }

func (m *streamMetrics) MessageHandled()      {}
func (m *streamMetrics) MessageFailed(error)  { m.failed.WithLabelValues("any").Inc() }
func (m *streamMetrics) MessageDeadLettered() { m.deadLettered.Inc() }
func (m *streamMetrics) EventsApplied(projection string, n int) {
	m.handled.WithLabelValues(projection).Add(float64(n))
}
