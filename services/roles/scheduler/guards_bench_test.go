package scheduler_test

import (
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/services/roles/scheduler"
)

// BenchmarkGuardDecision: measuring and judging one guard (Bayesian and sequential) from the
// arms' counts, the work a waiting step costs per guard and pass besides its SQL query.
func BenchmarkGuardDecision(b *testing.B) {
	arms := map[string]scheduler.ArmCounts{"true": {Exposed: 1500, Converted: 60}, "false": {Exposed: 9000, Converted: 900}}
	for _, sequential := range []bool{false, true} {
		g := domain.RolloutGuard{Name: "conversion", Goal: "purchase", Comparison: domain.AutoOpsLessThan, Threshold: -0.01,
			MinSample: 1000, MinProbability: 0.95, Sequential: sequential}
		name := "bayesian"
		if sequential {
			name = "sequential"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if ev := g.Judge(scheduler.MeasureGuard(g, "true", "false", domain.GoalConversion, arms)); ev.Status != domain.GuardFailing {
					b.Fatalf("%s: %s", ev.Status, ev.Decision)
				}
			}
		})
	}
}
