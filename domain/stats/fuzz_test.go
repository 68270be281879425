package stats_test

import (
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
)

// clampCount maps any int64 into [0, limit].
func clampCount(x int64, limit int64) int64 { return int64(uint64(x) % uint64(limit+1)) }

// clampParameter maps any float into the accepted prior range [0.001, MaxUsers].
func clampParameter(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	return math.Min(math.Max(math.Abs(x), 1e-3), stats.MaxUsers)
}

// FuzzConversion: any counts (made valid by clamping), any prior in range, one to four
// variations, either direction: no error, no NaN or infinity, probabilities in [0, 1],
// probabilities to be best summing to 1, no panic.
func FuzzConversion(f *testing.F) {
	f.Add(int64(1000), int64(100), int64(1000), int64(120), int64(1000), int64(90), 1.0, 1.0, uint8(3), false)
	f.Add(int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), 1.0, 1.0, uint8(3), false)
	f.Add(int64(1), int64(1), int64(1), int64(0), int64(1), int64(1), 0.5, 0.5, uint8(3), true)
	f.Add(int64(10), int64(10), int64(20), int64(20), int64(5), int64(0), 0.001, 0.001, uint8(2), false)
	f.Add(int64(1_000_000), int64(100_000), int64(1_000_000), int64(100_500), int64(1_000_000), int64(99_800), 1.0, 1.0, uint8(3), true)
	f.Add(int64(10_000_000_000), int64(3), int64(10_000_000_000), int64(9_999_999_999), int64(7), int64(7), 1e10, 0.001, uint8(4), false)
	f.Add(int64(100), int64(0), int64(100), int64(100), int64(100), int64(50), 1e-3, 1e10, uint8(1), false)
	// Found by fuzzing: rates within 1e-13 of 1, an uplift interval narrower than the solver's
	// tolerance came out crossed.
	f.Add(int64(10), int64(10), int64(20), int64(20), int64(7), int64(0), 107.001, 0.001, uint8(2), false)
	f.Fuzz(func(t *testing.T, u0, c0, u1, c1, u2, c2 int64, alpha, beta float64, k uint8, lower bool) {
		n := 1 + int(k%4)
		raw := [][2]int64{{u0, c0}, {u1, c1}, {u2, c2}, {c0 ^ u2, u1 ^ c2}}
		arms := make([]stats.ConversionArm, n)
		for i := range arms {
			users := clampCount(raw[i][0], stats.MaxUsers)
			arms[i] = stats.ConversionArm{Users: users, Conversions: clampCount(raw[i][1], users)}
		}
		dir := domain.GoalIncrease
		if lower {
			dir = domain.GoalDecrease
		}
		res, err := stats.AnalyzeConversion(arms, int(k/4)%n, stats.BetaPrior{Alpha: clampParameter(alpha), Beta: clampParameter(beta)}, dir)
		if err != nil {
			t.Fatalf("%+v: %v", arms, err)
		}
		checkConversionInvariants(t, res)
	})
}

// FuzzValue: any users, sums and sums of squares (made valid by clamping), optional priors,
// one to three variations, either direction.
func FuzzValue(f *testing.F) {
	f.Add(int64(1000), 2500.0, 40000.0, int64(1000), 2530.0, 41000.0, int64(1000), 2480.0, 39500.0, 0.0, uint8(2), false)
	f.Add(int64(0), 0.0, 0.0, int64(0), 0.0, 0.0, int64(0), 0.0, 0.0, 0.0, uint8(2), false)
	f.Add(int64(1), 5.0, 25.0, int64(1), 7.0, 49.0, int64(2), 10.0, 50.0, 1.0, uint8(2), true)
	f.Add(int64(3), 30.0, 300.0, int64(4), 48.0, 576.0, int64(3), 30.0, 300.0, 0.5, uint8(2), false)
	f.Add(int64(2), 1e15, 1e30, int64(5), -5e15, 5e30, int64(10), 0.0, 1e31, 1e-300, uint8(2), true)
	f.Add(int64(1_000_000), 0.0, 0.0, int64(1_000_000), 1.0, 1.0, int64(1), 0.0, 0.0, 1e300, uint8(1), false)
	f.Fuzz(func(t *testing.T, n0 int64, s0, q0 float64, n1 int64, s1, q1 float64, n2 int64, s2, q2 float64, priorSD float64, k uint8, lower bool) {
		count := 1 + int(k%3)
		raw := []struct {
			n    int64
			s, q float64
		}{{n0, s0, q0}, {n1, s1, q1}, {n2, s2, q2}}
		arms := make([]stats.ValueArm, count)
		for i := range arms {
			users := clampCount(raw[i].n, stats.MaxUsers)
			s, q := raw[i].s, math.Abs(raw[i].q)
			if math.IsNaN(s) || math.IsInf(s, 0) || users == 0 {
				s = 0
			}
			if math.IsNaN(q) || math.IsInf(q, 0) || users == 0 {
				q = 0
			}
			lim := stats.MaxValue * math.Max(1, float64(users))
			s = math.Max(-lim, math.Min(lim, s))
			q = math.Min(q, stats.MaxValue*lim)
			arms[i] = stats.ValueArm{Users: users, Sum: s, SumSquares: q}
		}
		opts := stats.ValueOptions{}
		if lower {
			opts.Direction = domain.GoalDecrease
		}
		if sd := math.Abs(priorSD); sd > 0 && !math.IsInf(sd, 0) {
			opts.Prior = &stats.NormalPrior{Mean: sd / 2, SD: sd}
			opts.RelativePrior = &stats.NormalPrior{Mean: -sd, SD: sd}
		}
		res, err := stats.AnalyzeValue(arms, int(k/3)%count, opts)
		if err != nil {
			t.Fatalf("%+v: %v", arms, err)
		}
		checkValueInvariants(t, res)
	})
}

// FuzzCount: any users and events, any prior in range, one to three variations.
func FuzzCount(f *testing.F) {
	f.Add(int64(1000), int64(3200), int64(1000), int64(3350), int64(900), int64(2800), 1.0, 0.001, uint8(2), false)
	f.Add(int64(0), int64(0), int64(10), int64(0), int64(1), int64(5), 0.001, 0.001, uint8(2), true)
	f.Add(int64(10_000_000_000), int64(10_000_000_000_000), int64(1), int64(0), int64(5), int64(5), 1e10, 1e-3, uint8(2), false)
	f.Fuzz(func(t *testing.T, u0, e0, u1, e1, u2, e2 int64, shape, rate float64, k uint8, lower bool) {
		n := 1 + int(k%3)
		raw := [][2]int64{{u0, e0}, {u1, e1}, {u2, e2}}
		arms := make([]stats.CountArm, n)
		for i := range arms {
			arms[i] = stats.CountArm{Users: clampCount(raw[i][0], stats.MaxUsers), Events: clampCount(raw[i][1], stats.MaxEvents)}
		}
		dir := domain.GoalIncrease
		if lower {
			dir = domain.GoalDecrease
		}
		res, err := stats.AnalyzeCount(arms, int(k/3)%n, stats.GammaPrior{Shape: clampParameter(shape), Rate: clampParameter(rate)}, dir)
		if err != nil {
			t.Fatalf("%+v: %v", arms, err)
		}
		var sum float64
		for _, v := range res.Variations {
			checkFinite(t, "count", v.PosteriorMean, v.CI95[0], v.CI95[1], v.ChanceToBeatControl, v.ProbabilityToBeBest,
				v.ExpectedLoss, v.Uplift, v.UpliftCI95[0], v.UpliftCI95[1])
			checkProbability(t, "ChanceToBeatControl", v.ChanceToBeatControl)
			checkProbability(t, "ProbabilityToBeBest", v.ProbabilityToBeBest)
			if v.CI95[0] > v.CI95[1] || v.UpliftCI95[0] > v.UpliftCI95[1] || v.ExpectedLoss < 0 {
				t.Errorf("%+v", v)
			}
			sum += v.ProbabilityToBeBest
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("probabilities to be best sum to %v", sum)
		}
	})
}
