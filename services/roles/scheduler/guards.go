package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"github.com/vexil-flags/vexil/services/app"
)

// Outcomes of guarded steps and the notifications the scheduler emits, as Prometheus counters:
// vexil_rollout_guard_decisions_total{outcome="healthy|waiting|fired"} per guarded step decision,
// and vexil_delivery_notifications_total{event="GuardFired|RolloutPaused|PipelineAwaitingApproval"}
// per domain event of those kinds this scheduler records (the events themselves are what outgoing
// webhooks read).
type notifier struct {
	guards        *prometheus.CounterVec
	notifications *prometheus.CounterVec
}

func newNotifier(reg prometheus.Registerer) (*notifier, error) {
	n := &notifier{
		guards: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_rollout_guard_decisions_total",
			Help: "Decisions on guarded rollout steps by outcome (healthy: the step applied, waiting: it waits on its guards, fired: a guard failed)."},
			[]string{"outcome"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vexil_delivery_notifications_total",
			Help: "Notification events recorded by the scheduler: GuardFired, RolloutPaused (by a guard, a halted step or auto-ops), PipelineAwaitingApproval."},
			[]string{"event"}),
	}
	for _, c := range []*prometheus.CounterVec{n.guards, n.notifications} {
		if reg == nil {
			continue
		}
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("delivery: register metrics: %w", err)
		}
	}
	return n, nil
}

func (n *notifier) notify(event string) { n.notifications.WithLabelValues(event).Inc() }

// guardStep measures the guards of a rollout whose step i is due and records what they say. It
// returns ok when every guard is healthy (apply the step with the evidence), or the outcome to
// report: "waiting" (the step waits; RolloutStepWaiting recorded when the reason changed) or
// "retry" (a guard fired and GuardFired is recorded: the next attempt acts on it), with
// ok false.
func (s *Scheduler) guardStep(ctx context.Context, r *domain.Rollout, events []domain.RecordedEvent, i int, now time.Time) (evidence []domain.GuardEvidence, outcome string, err error) {
	evidence, err = s.measureGuards(ctx, r, events)
	if err != nil {
		return nil, "", err
	}
	ok, decided, err := r.GuardStep(i, evidence, now)
	if err != nil {
		return nil, "", err
	}
	if ok {
		s.notes.guards.WithLabelValues("healthy").Inc()
		return evidence, "", nil
	}
	fired := len(decided) > 0 && isGuardFired(decided[0])
	if fired {
		s.notes.guards.WithLabelValues("fired").Inc()
	} else {
		s.notes.guards.WithLabelValues("waiting").Inc()
	}
	if len(decided) == 0 {
		return nil, "waiting", nil
	}
	meta := app.Meta{Actor: "system:rollout/" + r.ID, CommandID: fmt.Sprintf("%s:guard:%d", r.ID, r.Version),
		Reason: reasonText(fmt.Sprintf("rollout %s, step %d of %d: %s", r.ID, i+1, len(r.Steps), guardReason(decided[0])))}
	err = s.app.Commands.RecordRollout(ctx, meta, app.RecordRollout{Rollout: r, Events: decided})
	switch {
	case app.IsDuplicateCommand(err), app.IsVersionConflict(err):
		return nil, "retry", nil
	case err != nil:
		return nil, "", err
	}
	if fired {
		s.notes.notify("GuardFired")
		g := decided[0].(*domain.GuardFired)
		s.log.Warn("rollout guard fired", "project", r.Project, "rollout", r.ID, "flag", r.Flag,
			"environment", r.Environment, "step", i, "guard", g.Guard, "action", g.Action)
		return nil, "retry", nil
	}
	s.log.Info("rollout step waits on its guards", "project", r.Project, "rollout", r.ID, "step", i,
		"reason", decided[0].(*domain.RolloutStepWaiting).Reason)
	return nil, "waiting", nil
}

func isGuardFired(e domain.Event) bool { _, ok := e.(*domain.GuardFired); return ok }

func guardReason(e domain.Event) string {
	switch e := e.(type) {
	case *domain.GuardFired:
		for _, ev := range e.Evidence {
			if ev.Guard == e.Guard {
				return ev.Decision + "; the rollout will " + string(e.Action)
			}
		}
	case *domain.RolloutStepWaiting:
		return "waits: " + e.Reason
	}
	return ""
}

// actOnGuard performs the action of a fired guard: roll the flag back to 0% and pause
// (flag first, then RolloutRolledBack and RolloutPaused, command id "<rollout>:rollback:guard:<v>",
// which recovery knows), or pause the rollout.
func (s *Scheduler) actOnGuard(ctx context.Context, r *domain.Rollout, now time.Time) (string, error) {
	g := r.PendingGuard
	meta := app.Meta{Actor: "system:rollout/" + r.ID,
		Reason: reasonText(fmt.Sprintf("rollout %s: guard %q fired at step %d: %s", r.ID, g.Guard, g.Step+1, guardReason(g)))}
	var err error
	if g.Action == domain.GuardPause {
		meta.CommandID = fmt.Sprintf("guard:%d", r.Version)
		err = s.pauseRollout(ctx, r, meta, now)
	} else {
		meta.CommandID = fmt.Sprintf("guard:%d", r.Version)
		err = s.rollBack(ctx, r, meta, now)
	}
	if err != nil {
		return "", err
	}
	s.notes.notify("RolloutPaused")
	s.log.Warn("rollout stopped by its guard", "project", r.Project, "rollout", r.ID, "guard", g.Guard, "action", g.Action)
	return "guard_fired", nil
}

// measureGuards measures every guard of r: the rolled-out variation against the control (Other)
// among the users first exposed since the rollout started serving the variation (see guardSince).
func (s *Scheduler) measureGuards(ctx context.Context, r *domain.Rollout, events []domain.RecordedEvent) ([]domain.GuardEvidence, error) {
	since := guardSince(events)
	out := make([]domain.GuardEvidence, len(r.Guards))
	for k, g := range r.Guards {
		goal, _, err := s.app.Queries.Goal(ctx, r.Project, g.Goal)
		if err != nil && domain.ErrorCode(err) != domain.ENotFound {
			return nil, err
		}
		if goal == nil {
			out[k] = g.Judge(domain.GuardMetrics{}) // no sample: waits, and says so
			out[k].Decision = fmt.Sprintf("guard %q waits: goal %q does not exist", g.Name, g.Goal)
			continue
		}
		arms, err := s.metrics.Arms(ctx, MetricsQuery{Project: r.Project, Environment: r.Environment, Flag: r.Flag,
			Goal: goal.Key, GoalKind: goal.Kind, ValueCap: goal.ValueCap, Variations: []string{r.Variation, r.Other}, Since: since})
		if err != nil {
			return nil, err
		}
		out[k] = g.Judge(MeasureGuard(g, r.Variation, r.Other, goal.Kind, arms))
	}
	return out, nil
}

// MeasureGuard computes a guard's metrics from the arms' counts: the observed rates and the
// probability that the variation is worse than the control (as Measure does for an auto-ops rule
// with a control), and, for a sequential guard, the always-valid confidence sequence of the
// difference of the means per user (stats.CompareMeans, sequential) at two-sided level
// 1 − 2(1 − MinProbability), so each side holds with MinProbability.
func MeasureGuard(g domain.RolloutGuard, variation, control string, kind domain.GoalKind, arms map[string]ArmCounts) domain.GuardMetrics {
	rule := &domain.AutoOpsRule{AutoOpsDefinition: domain.AutoOpsDefinition{Comparison: g.Comparison, Threshold: g.Threshold,
		Metric: domain.AutoOpsMetric{Variation: variation, Control: control}}}
	m := Measure(rule, kind, arms)
	out := domain.GuardMetrics{Treatment: m.Treatment, Control: m.Control, Probability: m.Probability}
	if g.Sequential {
		res := stats.CompareMeans(meanStatistic(kind, arms[control]), meanStatistic(kind, arms[variation]),
			stats.FrequentistOptions{Alpha: 2 * (1 - g.MinProbability), Sequential: true})
		if res.Valid {
			ci := res.CI
			out.Interval = &ci
		}
	}
	return out
}

// meanStatistic is an arm's goal per user as the frequentist tests take it: a proportion for
// conversions, the value totals for values, and for counts the events with a Poisson variance
// (the per-user sum of squares is not kept for counts).
func meanStatistic(kind domain.GoalKind, a ArmCounts) stats.MeanStatistic {
	n := float64(a.Exposed)
	switch kind {
	case domain.GoalValue:
		return stats.MeanStatistic{N: a.Exposed, Sum: a.ValueSum, SumSquares: a.ValueSumSquares}
	case domain.GoalCount:
		if n == 0 {
			return stats.MeanStatistic{}
		}
		mean := float64(a.Events) / n
		return stats.MeanStatistic{N: a.Exposed, Sum: float64(a.Events), SumSquares: mean*(n-1) + float64(a.Events)*mean}
	default:
		return stats.MeanStatistic{N: a.Exposed, Sum: float64(a.Converted), SumSquares: float64(a.Converted), Proportion: true}
	}
}

// guardSince is when the rollout started serving the variation this time: its first applied step
// after its last rollback. Guards measure the users first exposed since then, so a rollout
// resumed after a rollback starts a fresh sample.
func guardSince(events []domain.RecordedEvent) time.Time {
	var since time.Time
	applied := (&domain.RolloutStepApplied{}).EventType()
	rolledBack := (&domain.RolloutRolledBack{}).EventType()
	for _, e := range events {
		switch e.Type {
		case rolledBack:
			since = time.Time{}
		case applied:
			if since.IsZero() {
				since = e.OccurredAt
			}
		}
	}
	return since
}
