package stats_test

import (
	"testing"

	"github.com/vexil-flags/vexil/domain/stats"
)

// Evan Miller's sample size formula for two proportions (the one behind his online calculator):
// n = (z_{1−α/2}·√(2p(1−p)) + z_{power}·√(p(1−p) + p′(1−p′)))² / δ². Reference values computed
// independently with mpmath at 30 digits: p = 0.2, δ = 0.05 (a 25% relative MDE), α = 0.05,
// power 0.8 gives 1030.219..., so 1031 users per variation; for a mean of 50 with σ = 10 and a 5%
// MDE, ((z_{0.975} + z_{0.8})·10·√2/2.5)² = 251.164..., so 252.
func TestPlanExperiment(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   stats.PlanInput
		want stats.Plan
	}{
		{"proportion", stats.PlanInput{Proportion: true, Baseline: 0.2, MDE: 0.25},
			stats.Plan{UsersPerVariation: 1031, TotalUsers: 2062, Power: 0.8, Alpha: 0.05}},
		{"proportion, three variations, 500 a day at half allocation", stats.PlanInput{Proportion: true, Baseline: 0.2, MDE: 0.25, Variations: 3, DailyUsers: 500, Allocation: 0.5},
			stats.Plan{UsersPerVariation: 1031, TotalUsers: 3093, Power: 0.8, Alpha: 0.05, Days: 13}},
		{"mean", stats.PlanInput{Baseline: 50, StandardDeviation: 10, MDE: 0.05, DailyUsers: 100},
			stats.Plan{UsersPerVariation: 252, TotalUsers: 504, Power: 0.8, Alpha: 0.05, Days: 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stats.PlanExperiment(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, field string
		in          stats.PlanInput
	}{
		{"no baseline", "baseline", stats.PlanInput{Proportion: true, MDE: 0.1}},
		{"rate of 1", "baseline", stats.PlanInput{Proportion: true, Baseline: 1, MDE: 0.1}},
		{"effect beyond 1", "mde", stats.PlanInput{Proportion: true, Baseline: 0.6, MDE: 1}},
		{"no standard deviation", "standard_deviation", stats.PlanInput{Baseline: 3, MDE: 0.1}},
		{"power", "power", stats.PlanInput{Proportion: true, Baseline: 0.2, MDE: 0.1, Power: 1}},
		{"one variation", "variations", stats.PlanInput{Proportion: true, Baseline: 0.2, MDE: 0.1, Variations: 1}},
		{"tiny effect", "mde", stats.PlanInput{Proportion: true, Baseline: 0.2, MDE: 1e-12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stats.PlanExperiment(tc.in)
			wantInvalid(t, err, tc.field)
		})
	}
}
