package stats_test

import (
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
)

// A conversion goal of three variations with a million users each.
func BenchmarkConversion3Arms(b *testing.B) {
	arms := []stats.ConversionArm{conv(1_000_000, 100_000), conv(1_000_000, 100_500), conv(1_000_000, 99_800)}
	for b.Loop() {
		if _, err := stats.AnalyzeConversion(arms, 0, stats.BetaPrior{}, domain.GoalIncrease); err != nil {
			b.Fatal(err)
		}
	}
}

// A revenue goal of three variations with a million users each.
func BenchmarkValue3Arms(b *testing.B) {
	arms := []stats.ValueArm{
		{Users: 1_000_000, Sum: 2_500_000, SumSquares: 40_000_000},
		{Users: 1_000_000, Sum: 2_530_000, SumSquares: 41_000_000},
		{Users: 1_000_000, Sum: 2_480_000, SumSquares: 39_500_000},
	}
	for b.Loop() {
		if _, err := stats.AnalyzeValue(arms, 0, stats.ValueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// A count goal (page views per user) of three variations with a million users each.
func BenchmarkCount3Arms(b *testing.B) {
	arms := []stats.CountArm{{Users: 1_000_000, Events: 3_200_000}, {Users: 1_000_000, Events: 3_215_000}, {Users: 1_000_000, Events: 3_190_000}}
	for b.Loop() {
		if _, err := stats.AnalyzeCount(arms, 0, stats.GammaPrior{}, domain.GoalIncrease); err != nil {
			b.Fatal(err)
		}
	}
}

// The whole statistics of an experiment of three variations and five goals (two conversion, two
// value, one count) with a million users per variation: the budget is well under 100 ms.
func BenchmarkExperiment3Arms5Goals(b *testing.B) {
	c1 := []stats.ConversionArm{conv(1_000_000, 100_000), conv(1_000_000, 100_500), conv(1_000_000, 99_800)}
	c2 := []stats.ConversionArm{conv(1_000_000, 3_000), conv(1_000_000, 3_100), conv(1_000_000, 2_950)}
	v := []stats.ValueArm{
		{Users: 1_000_000, Sum: 2_500_000, SumSquares: 40_000_000},
		{Users: 1_000_000, Sum: 2_530_000, SumSquares: 41_000_000},
		{Users: 1_000_000, Sum: 2_480_000, SumSquares: 39_500_000},
	}
	n := []stats.CountArm{{Users: 1_000_000, Events: 3_200_000}, {Users: 1_000_000, Events: 3_215_000}, {Users: 1_000_000, Events: 3_190_000}}
	for b.Loop() {
		_, _ = stats.AnalyzeConversion(c1, 0, stats.BetaPrior{}, domain.GoalIncrease)
		_, _ = stats.AnalyzeConversion(c2, 0, stats.BetaPrior{}, domain.GoalDecrease)
		_, _ = stats.AnalyzeValue(v, 0, stats.ValueOptions{})
		_, _ = stats.AnalyzeValue(v, 0, stats.ValueOptions{Direction: domain.GoalDecrease, Prior: &stats.NormalPrior{SD: 0.1}})
		_, _ = stats.AnalyzeCount(n, 0, stats.GammaPrior{}, domain.GoalIncrease)
	}
}
