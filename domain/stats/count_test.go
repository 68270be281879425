package stats_test

import (
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/stat/distuv"
)

func count(users, events int64) stats.CountArm { return stats.CountArm{Users: users, Events: events} }

func analyzeCount(t *testing.T, arms []stats.CountArm, prior stats.GammaPrior, dir domain.GoalDirection) stats.CountResult {
	t.Helper()
	res, err := stats.AnalyzeCount(arms, 0, prior, dir)
	if err != nil {
		t.Fatalf("AnalyzeCount: %v", err)
	}
	var sum float64
	for i, v := range res.Variations {
		checkFinite(t, "count variation", v.Rate, v.PosteriorShape, v.PosteriorRate, v.PosteriorMean, v.CI95[0], v.CI95[1],
			v.ChanceToBeatControl, v.ProbabilityToBeBest, v.ExpectedLoss, v.Uplift, v.UpliftCI95[0], v.UpliftCI95[1])
		checkProbability(t, "ChanceToBeatControl", v.ChanceToBeatControl)
		checkProbability(t, "ProbabilityToBeBest", v.ProbabilityToBeBest)
		// (A tiny prior shape makes the posterior so skewed that its mean can lie above the interval.)
		if !(0 <= v.CI95[0] && v.CI95[0] <= v.CI95[1]) || v.ExpectedLoss < 0 {
			t.Errorf("variation %d: CI95 %v, mean %v, loss %v", i, v.CI95, v.PosteriorMean, v.ExpectedLoss)
		}
		if v.UpliftCI95[0] > v.UpliftCI95[1] || v.UpliftCI95[0] < -1 {
			t.Errorf("variation %d: UpliftCI95 %v", i, v.UpliftCI95)
		}
		sum += v.ProbabilityToBeBest
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Errorf("probabilities to be best sum to %.12f", sum)
	}
	return res
}

// gammaBeatByBinomial is P(λ_t > λ_c) for λ ~ Gamma(shape, rate) with integer shapes, by the
// Poisson-process identity P = P(Binomial(a_c + a_t − 1, b_c/(b_c+b_t)) ≥ a_c), summed in log
// space here independently of the package.
func gammaBeatByBinomial(at, bt, ac, bc float64) float64 {
	n := ac + at - 1
	p := bc / (bc + bt)
	lp, lq := math.Log(p), math.Log1p(-p)
	ln, _ := math.Lgamma(n + 1)
	var s kahan
	for k := ac; k <= n; k++ {
		lk, _ := math.Lgamma(k + 1)
		lnk, _ := math.Lgamma(n - k + 1)
		s.add(math.Exp(ln - lk - lnk + k*lp + (n-k)*lq))
	}
	return s.sum()
}

func TestCountChanceToBeatControl(t *testing.T) {
	for _, tc := range []struct {
		name             string
		control, variant stats.CountArm
		prior            stats.GammaPrior
	}{
		{"few events", count(10, 3), count(10, 7), stats.GammaPrior{Shape: 1, Rate: 1}},
		{"page views", count(1000, 3200), count(1000, 3350), stats.GammaPrior{Shape: 2, Rate: 1}},
		{"fewer", count(5000, 900), count(5200, 880), stats.GammaPrior{Shape: 1, Rate: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := analyzeCount(t, []stats.CountArm{tc.control, tc.variant}, tc.prior, domain.GoalIncrease)
			c, v := res.Variations[0], res.Variations[1]
			want := gammaBeatByBinomial(v.PosteriorShape, v.PosteriorRate, c.PosteriorShape, c.PosteriorRate)
			near(t, "ChanceToBeatControl", v.ChanceToBeatControl, want, 1e-9)
			// The quadrature on the log-rate axis agrees with the closed form.
			near(t, "ProbabilityToBeBest", v.ProbabilityToBeBest, want, 1e-9)

			// And an independent integral ∫ f_t F_c on the rate axis.
			ft, fc := distuv.Gamma{Alpha: v.PosteriorShape, Beta: v.PosteriorRate}, distuv.Gamma{Alpha: c.PosteriorShape, Beta: c.PosteriorRate}
			m, s := ft.Mean(), ft.StdDev()
			direct := quad.Fixed(func(x float64) float64 { return ft.Prob(x) * fc.CDF(x) }, math.Max(0, m-14*s), m+14*s, 2000, quad.Legendre{}, 0)
			near(t, "direct integral", v.ChanceToBeatControl, direct, 1e-9)

			low := analyzeCount(t, []stats.CountArm{tc.control, tc.variant}, tc.prior, domain.GoalDecrease)
			near(t, "lower is better", low.Variations[1].ChanceToBeatControl, 1-want, 1e-9)
		})
	}
}

// The uplift interval is exact through the Beta relation: check P(λ_t ≤ r·λ_c) = 2.5% and 97.5%
// at its ends with the binomial identity (λ_t/r ~ Gamma(a_t, r·b_t)).
// At a million and a hundred million users, where float64 log-gammas are too coarse for the
// identity: 30-digit mpmath sums of it (the binomial tail from a_c, up to half a million terms,
// by the recurrence of successive terms).
func TestCountChanceToBeatControlLarge(t *testing.T) {
	for _, tc := range []struct {
		control, variant stats.CountArm
		want             float64
	}{
		{count(1_000_000, 3_200_000), count(1_000_000, 3_205_000), 0.97590289019373618098},
		{count(100_000_000, 320_000_000), count(100_000_000, 320_050_000), 0.97594221757049605086},
	} {
		res := analyzeCount(t, []stats.CountArm{tc.control, tc.variant}, stats.GammaPrior{}, domain.GoalIncrease)
		near(t, "ChanceToBeatControl", res.Variations[1].ChanceToBeatControl, tc.want, 1e-9)
	}
}

func TestCountUpliftInterval(t *testing.T) {
	res := analyzeCount(t, []stats.CountArm{count(2000, 4100), count(2100, 4500)}, stats.GammaPrior{}, domain.GoalIncrease)
	c, v := res.Variations[0], res.Variations[1]
	for i, q := range []float64{0.025, 0.975} {
		r := 1 + v.UpliftCI95[i]
		below := gammaBeatByBinomial(c.PosteriorShape, c.PosteriorRate, v.PosteriorShape, r*v.PosteriorRate)
		near(t, "P(λ_t/λ_c ≤ r)", below, q, 1e-9)
	}
	near(t, "Uplift", v.Uplift, v.PosteriorMean/c.PosteriorMean-1, 1e-14)
}

func TestCountCredibleIntervals(t *testing.T) {
	for _, tc := range []struct {
		arm   stats.CountArm
		prior stats.GammaPrior
	}{
		{count(0, 0), stats.GammaPrior{}},
		{count(100, 0), stats.GammaPrior{}},
		{count(100, 0), stats.GammaPrior{Shape: 0.5, Rate: 0.01}},
		{count(100, 250), stats.GammaPrior{}},
		{count(1_000_000, 3_200_000), stats.GammaPrior{}},
	} {
		res := analyzeCount(t, []stats.CountArm{tc.arm}, tc.prior, domain.GoalIncrease)
		v := res.Variations[0]
		g := distuv.Gamma{Alpha: v.PosteriorShape, Beta: v.PosteriorRate}
		lo, hi := g.Quantile(0.025), g.Quantile(0.975)
		near(t, "CI95 low", v.CI95[0], lo, 1e-9*lo)
		near(t, "CI95 high", v.CI95[1], hi, 1e-9*hi)
	}
}

func TestCountThreeArmsMonteCarlo(t *testing.T) {
	t.Parallel() // two million draws per case
	for _, tc := range []struct {
		name  string
		arms  []stats.CountArm
		prior stats.GammaPrior
		dir   domain.GoalDirection
	}{
		{"events per user", []stats.CountArm{count(500, 1500), count(520, 1640), count(480, 1420)}, stats.GammaPrior{}, domain.GoalIncrease},
		{"errors, lower is better, one without events", []stats.CountArm{count(300, 3), count(300, 0), count(250, 5)}, stats.GammaPrior{Shape: 0.5, Rate: 0.001}, domain.GoalDecrease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := analyzeCount(t, tc.arms, tc.prior, tc.dir)
			draws := make([]func() float64, len(tc.arms))
			for i, v := range res.Variations {
				draws[i] = gammaDraw(v.PosteriorShape, v.PosteriorRate, uint64(200+i))
			}
			mc := monteCarlo(draws, mcDraws, tc.dir == domain.GoalDecrease)
			for i, v := range res.Variations {
				near(t, "ProbabilityToBeBest", v.ProbabilityToBeBest, mc.best[i], 4*mc.bestSE[i]+1e-12)
				near(t, "ExpectedLoss", v.ExpectedLoss, mc.loss[i], 4*mc.lossSE[i]+1e-12)
			}
		})
	}
}

func TestCountPriors(t *testing.T) {
	arms := []stats.CountArm{count(20, 10), count(20, 16)}
	def := analyzeCount(t, arms, stats.GammaPrior{}, domain.GoalIncrease)
	if def.Prior != stats.DefaultGammaPrior || def.Variations[1].PosteriorShape != 17 || def.Variations[1].PosteriorRate != 20.001 {
		t.Errorf("default prior: %+v %+v", def.Prior, def.Variations[1])
	}
	// A strong prior of 0.5 events per user worth 200 users pulls both rates to 0.5.
	strong := analyzeCount(t, arms, stats.GammaPrior{Shape: 100, Rate: 200}, domain.GoalIncrease)
	d, s := def.Variations[1], strong.Variations[1]
	if !(math.Abs(s.PosteriorMean-0.5) < math.Abs(d.PosteriorMean-0.5) && s.ChanceToBeatControl < d.ChanceToBeatControl && s.ChanceToBeatControl > 0.5) {
		t.Errorf("strong prior: %+v vs default %+v", s, d)
	}
}

func TestCountDegenerate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		arms  []stats.CountArm
		check func(t *testing.T, r stats.CountResult)
	}{
		{"no users anywhere", []stats.CountArm{{}, {}, {}}, func(t *testing.T, r stats.CountResult) {
			for _, v := range r.Variations {
				near(t, "best", v.ProbabilityToBeBest, 1.0/3, 1e-15)
				if v.ChanceToBeatControl != 0.5 || v.Rate != 0 || v.Uplift != 0 {
					t.Errorf("%+v", v)
				}
			}
		}},
		{"control without users", []stats.CountArm{{}, count(10, 4)}, func(t *testing.T, r stats.CountResult) {
			if v := r.Variations[1]; v.ChanceToBeatControl != 0.5 || v.ProbabilityToBeBest != 1 || v.UpliftCI95 != [2]float64{} {
				t.Errorf("%+v", v)
			}
		}},
		{"no events", []stats.CountArm{count(1000, 0), count(1000, 0)}, func(t *testing.T, r stats.CountResult) {
			v := r.Variations[1]
			near(t, "chance", v.ChanceToBeatControl, 0.5, 0)
			near(t, "best", v.ProbabilityToBeBest, 0.5, 1e-12)
			// Gamma(1, 1000.001): the interval is [−ln 0.975, −ln 0.025]/1000.001.
			near(t, "CI high", v.CI95[1], -math.Log(0.025)/1000.001, 1e-12)
		}},
		{"identical", []stats.CountArm{count(50, 80), count(50, 80), count(50, 80)}, func(t *testing.T, r stats.CountResult) {
			for _, v := range r.Variations {
				near(t, "best", v.ProbabilityToBeBest, 1.0/3, 1e-12)
				near(t, "chance", v.ChanceToBeatControl, 0.5, 0)
			}
		}},
		{"control alone", []stats.CountArm{count(5, 5)}, func(t *testing.T, r stats.CountResult) {
			if v := r.Variations[0]; v.ProbabilityToBeBest != 1 || v.ExpectedLoss != 0 {
				t.Errorf("%+v", v)
			}
		}},
		{"one user", []stats.CountArm{count(1, 0), count(1, 3)}, func(t *testing.T, r stats.CountResult) {
			v := r.Variations[1]
			near(t, "chance", v.ChanceToBeatControl, gammaBeatByBinomial(4, 1.001, 1, 1.001), 1e-9)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, analyzeCount(t, tc.arms, stats.GammaPrior{}, domain.GoalIncrease))
			analyzeCount(t, tc.arms, stats.GammaPrior{Shape: 0.001, Rate: 0.001}, domain.GoalDecrease)
		})
	}
}

func TestCountValidation(t *testing.T) {
	ok := []stats.CountArm{count(10, 1)}
	for _, tc := range []struct {
		name  string
		arms  []stats.CountArm
		prior stats.GammaPrior
		field string
	}{
		{"no arms", nil, stats.GammaPrior{}, "arms"},
		{"negative events", []stats.CountArm{count(10, -1)}, stats.GammaPrior{}, "arms[0].events"},
		{"negative users", []stats.CountArm{count(-10, 1)}, stats.GammaPrior{}, "arms[0].users"},
		{"prior shape too small", ok, stats.GammaPrior{Shape: 1e-9, Rate: 1}, "prior.shape"},
		{"prior rate infinite", ok, stats.GammaPrior{Shape: 1, Rate: math.Inf(1)}, "prior.rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stats.AnalyzeCount(tc.arms, 0, tc.prior, domain.GoalIncrease)
			wantInvalid(t, err, tc.field)
		})
	}
	_, err := stats.AnalyzeCount(ok, 1, stats.GammaPrior{}, domain.GoalIncrease)
	wantInvalid(t, err, "control")
}
