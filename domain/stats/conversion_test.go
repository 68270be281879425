package stats_test

import (
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

func conv(users, conversions int64) stats.ConversionArm {
	return stats.ConversionArm{Users: users, Conversions: conversions}
}

func analyzeConversion(t *testing.T, arms []stats.ConversionArm, prior stats.BetaPrior, dir domain.GoalDirection) stats.ConversionResult {
	t.Helper()
	res, err := stats.AnalyzeConversion(arms, 0, prior, dir)
	if err != nil {
		t.Fatalf("AnalyzeConversion: %v", err)
	}
	checkConversionInvariants(t, res)
	return res
}

// checkConversionInvariants holds for every valid analysis.
func checkConversionInvariants(t *testing.T, res stats.ConversionResult) {
	t.Helper()
	var sum float64
	for i, v := range res.Variations {
		checkFinite(t, v.Variation, v.Rate, v.PosteriorAlpha, v.PosteriorBeta, v.PosteriorMean, v.CI95[0], v.CI95[1],
			v.ChanceToBeatControl, v.ProbabilityToBeBest, v.ExpectedLoss, v.Uplift, v.UpliftCI95[0], v.UpliftCI95[1])
		checkProbability(t, "ChanceToBeatControl", v.ChanceToBeatControl)
		checkProbability(t, "ProbabilityToBeBest", v.ProbabilityToBeBest)
		checkProbability(t, "Rate", v.Rate)
		// (With a prior parameter below 1 and no data on that side, the posterior can be so skewed
		// that its mean lies outside the equal-tailed interval, so only the order is checked.)
		if !(0 <= v.CI95[0] && v.CI95[0] <= v.CI95[1] && v.CI95[1] <= 1) {
			t.Errorf("variation %d: CI95 %v not ordered within [0, 1]", i, v.CI95)
		}
		if v.UpliftCI95[0] > v.UpliftCI95[1] || v.UpliftCI95[0] < -1 {
			t.Errorf("variation %d: UpliftCI95 %v", i, v.UpliftCI95)
		}
		if v.ExpectedLoss < 0 {
			t.Errorf("variation %d: ExpectedLoss %v < 0", i, v.ExpectedLoss)
		}
		sum += v.ProbabilityToBeBest
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Errorf("probabilities to be best sum to %.12f", sum)
	}
}

// Two variations: chance to beat control against Evan Miller's exact sum (implemented separately
// in helpers_test.go), against hand-computed values, and against 30-digit mpmath evaluations of
// that sum at a million users.
func TestConversionChanceToBeatControlExact(t *testing.T) {
	for _, tc := range []struct {
		name             string
		control, variant stats.ConversionArm
		prior            stats.BetaPrior
		want             float64 // 0: compute with Evan Miller's sum
	}{
		// Beta(2,1) vs Beta(1,2): ∫ 2x·(2x − x²) dx = 4/3 − 1/2 = 5/6.
		{name: "one user each, by hand", control: conv(1, 0), variant: conv(1, 1), want: 5.0 / 6},
		{name: "identical", control: conv(1, 1), variant: conv(1, 1), want: 0.5},
		{name: "100 users", control: conv(100, 20), variant: conv(100, 30)},
		{name: "unequal sizes", control: conv(300, 50), variant: conv(120, 25)},
		{name: "1000 users", control: conv(1000, 200), variant: conv(1000, 230)},
		{name: "10000 users", control: conv(10000, 1000), variant: conv(10000, 1050)},
		{name: "rare conversions", control: conv(100000, 3), variant: conv(100000, 10)},
		{name: "prior Beta(2,8)", control: conv(50, 5), variant: conv(60, 9), prior: stats.BetaPrior{Alpha: 2, Beta: 8}},
		{name: "worse variation", control: conv(5000, 600), variant: conv(5200, 560)},
		// mpmath, 30 digits, Evan Miller's sum with 100501 and 99801 terms.
		{name: "1M users, mpmath", control: conv(1000000, 100000), variant: conv(1000000, 100500), want: 0.88044253676564556064},
		{name: "1M users worse, mpmath", control: conv(1000000, 100000), variant: conv(1000000, 99800), want: 0.3186015227864942284},
		{name: "1M users, Evan Miller", control: conv(1000000, 50000), variant: conv(1000000, 50300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prior := tc.prior
			if prior == (stats.BetaPrior{}) {
				prior = stats.DefaultBetaPrior
			}
			want := tc.want
			if want == 0 {
				want = evanMillerBeat(
					prior.Alpha+float64(tc.control.Conversions), prior.Beta+float64(tc.control.Users-tc.control.Conversions),
					prior.Alpha+float64(tc.variant.Conversions), prior.Beta+float64(tc.variant.Users-tc.variant.Conversions))
			}
			res := analyzeConversion(t, []stats.ConversionArm{tc.control, tc.variant}, tc.prior, domain.GoalIncrease)
			v := res.Variations[1]
			near(t, "ChanceToBeatControl", v.ChanceToBeatControl, want, 1e-9)
			// With two variations, being best is beating the other one.
			near(t, "ProbabilityToBeBest", v.ProbabilityToBeBest, want, 1e-9)
			near(t, "control ProbabilityToBeBest", res.Variations[0].ProbabilityToBeBest, 1-want, 1e-9)

			low := analyzeConversion(t, []stats.ConversionArm{tc.control, tc.variant}, tc.prior, domain.GoalDecrease)
			near(t, "lower-is-better ChanceToBeatControl", low.Variations[1].ChanceToBeatControl, 1-want, 1e-9)
		})
	}
}

func TestConversionEvanMillerHelper(t *testing.T) {
	// The reference itself, against values derivable by hand: P(Beta(2,1) > Beta(1,1)) = 2/3,
	// P(Beta(1,1) > Beta(1,1)) = 1/2, P(Beta(1,2) > Beta(2,1)) = 1/6.
	near(t, "2/3", evanMillerBeat(1, 1, 2, 1), 2.0/3, 1e-15)
	near(t, "1/2", evanMillerBeat(1, 1, 1, 1), 0.5, 1e-15)
	near(t, "1/6", evanMillerBeat(2, 1, 1, 2), 1.0/6, 1e-15)
	// And against the mpmath evaluation at a million users.
	near(t, "mpmath", evanMillerBeat(100001, 900001, 100501, 899501), 0.88044253676564556064, 1e-10)
}

// Expected loss with two variations has a closed form in terms of the same sum:
// E[max(X_c − X_t, 0)] = m_c·P(X_c' > X_t) − m_t·P(X_c > X_t') with X' ~ Beta(α+1, β).
func TestConversionExpectedLossTwoArms(t *testing.T) {
	for _, tc := range []struct {
		name             string
		control, variant stats.ConversionArm
	}{
		{"small", conv(40, 8), conv(45, 12)},
		{"1000 users", conv(1000, 200), conv(1000, 215)},
		{"worse variation", conv(20000, 2000), conv(20000, 1950)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac, bc := 1+float64(tc.control.Conversions), 1+float64(tc.control.Users-tc.control.Conversions)
			at, bt := 1+float64(tc.variant.Conversions), 1+float64(tc.variant.Users-tc.variant.Conversions)
			mc, mt := ac/(ac+bc), at/(at+bt)
			lossVariant := mc*(1-evanMillerBeat(ac+1, bc, at, bt)) - mt*(1-evanMillerBeat(ac, bc, at+1, bt))
			lossControl := lossVariant + mt - mc // E[max − X_c] = E[max − X_t] + E[X_t] − E[X_c]

			res := analyzeConversion(t, []stats.ConversionArm{tc.control, tc.variant}, stats.BetaPrior{}, domain.GoalIncrease)
			near(t, "variant ExpectedLoss", res.Variations[1].ExpectedLoss, lossVariant, 1e-11)
			near(t, "control ExpectedLoss", res.Variations[0].ExpectedLoss, lossControl, 1e-11)
		})
	}
}

// Three or more variations: probability to be best and expected loss against a seeded Monte Carlo
// of two million draws, within four standard errors.
func TestConversionThreeArmsMonteCarlo(t *testing.T) {
	t.Parallel() // two million draws per case
	for _, tc := range []struct {
		name  string
		arms  []stats.ConversionArm
		prior stats.BetaPrior
		dir   domain.GoalDirection
	}{
		{"three close variations", []stats.ConversionArm{conv(1000, 100), conv(1000, 112), conv(1000, 95)}, stats.BetaPrior{}, domain.GoalIncrease},
		{"Jeffreys prior, no conversions (densities unbounded at 0)",
			[]stats.ConversionArm{conv(200, 0), conv(150, 1), conv(300, 0)}, stats.BetaPrior{Alpha: 0.5, Beta: 0.5}, domain.GoalIncrease},
		{"four variations of mixed sizes, lower is better",
			[]stats.ConversionArm{conv(50, 5), conv(5000, 480), conv(500, 40), conv(20000, 2000)}, stats.BetaPrior{}, domain.GoalDecrease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := analyzeConversion(t, tc.arms, tc.prior, tc.dir)
			draws := make([]func() float64, len(tc.arms))
			for i, v := range res.Variations {
				draws[i] = betaDraw(v.PosteriorAlpha, v.PosteriorBeta, uint64(i+1))
			}
			mc := monteCarlo(draws, mcDraws, tc.dir == domain.GoalDecrease)
			for i, v := range res.Variations {
				near(t, "ProbabilityToBeBest", v.ProbabilityToBeBest, mc.best[i], 4*mc.bestSE[i]+1e-12)
				near(t, "ExpectedLoss", v.ExpectedLoss, mc.loss[i], 4*mc.lossSE[i]+1e-12)
			}
		})
	}
}

// Credible intervals against gonum's Beta quantiles, computed directly.
func TestConversionCredibleIntervals(t *testing.T) {
	for _, tc := range []struct {
		arm   stats.ConversionArm
		prior stats.BetaPrior
	}{
		{conv(0, 0), stats.BetaPrior{}},
		{conv(1, 1), stats.BetaPrior{}},
		{conv(100, 7), stats.BetaPrior{}},
		{conv(100, 0), stats.BetaPrior{Alpha: 0.5, Beta: 0.5}},
		{conv(1000, 1000), stats.BetaPrior{}},
		{conv(25000, 1200), stats.BetaPrior{Alpha: 3, Beta: 40}},
		{conv(1000000, 100000), stats.BetaPrior{}},
	} {
		res := analyzeConversion(t, []stats.ConversionArm{tc.arm}, tc.prior, domain.GoalIncrease)
		v := res.Variations[0]
		b := distuv.Beta{Alpha: v.PosteriorAlpha, Beta: v.PosteriorBeta}
		lo, hi := b.Quantile(0.025), b.Quantile(0.975)
		near(t, "CI95 low", v.CI95[0], lo, 1e-9*math.Max(lo, 1e-3))
		near(t, "CI95 high", v.CI95[1], hi, 1e-9*math.Max(hi, 1e-3))
		near(t, "PosteriorMean", v.PosteriorMean, b.Mean(), 1e-15)
		if !(v.CI95[0] < v.PosteriorMean && v.PosteriorMean < v.CI95[1]) {
			t.Errorf("CI95 %v does not hold the mean %v", v.CI95, v.PosteriorMean)
		}
	}
}

// The uplift interval inverts P(X_t/X_c ≤ r): check that the CDF of the ratio, computed here
// independently on the rate axis (gonum's Beta density and incomplete beta, 2000-node
// Gauss–Legendre over the control's posterior), is 2.5% and 97.5% at the interval's ends.
func TestConversionUpliftInterval(t *testing.T) {
	t.Parallel() // two million draws per case
	ratioCDF := func(at, bt, ac, bc, r float64) float64 {
		fc := distuv.Beta{Alpha: ac, Beta: bc}
		m, s := fc.Mean(), fc.StdDev()
		lo, hi := math.Max(0, m-14*s), math.Min(1, m+14*s)
		return quad.Fixed(func(y float64) float64 {
			return fc.Prob(y) * mathext.RegIncBeta(at, bt, math.Min(1, r*y))
		}, lo, hi, 2000, quad.Legendre{}, 0)
	}
	for _, tc := range []struct {
		name             string
		control, variant stats.ConversionArm
	}{
		{"small", conv(100, 20), conv(100, 30)},
		{"1000 users", conv(1000, 100), conv(1100, 95)},
		{"100000 users", conv(100000, 5000), conv(100000, 5150)},
		{"1M users", conv(1000000, 100000), conv(1000000, 100500)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := analyzeConversion(t, []stats.ConversionArm{tc.control, tc.variant}, stats.BetaPrior{}, domain.GoalIncrease)
			c, v := res.Variations[0], res.Variations[1]
			near(t, "Uplift", v.Uplift, v.PosteriorMean/c.PosteriorMean-1, 1e-14)
			near(t, "P(ratio ≤ low)", ratioCDF(v.PosteriorAlpha, v.PosteriorBeta, c.PosteriorAlpha, c.PosteriorBeta, 1+v.UpliftCI95[0]), 0.025, 1e-8)
			near(t, "P(ratio ≤ high)", ratioCDF(v.PosteriorAlpha, v.PosteriorBeta, c.PosteriorAlpha, c.PosteriorBeta, 1+v.UpliftCI95[1]), 0.975, 1e-8)
		})
	}
	// And by sampling, for a small case where the ratio is skewed.
	res := analyzeConversion(t, []stats.ConversionArm{conv(30, 3), conv(30, 6)}, stats.BetaPrior{}, domain.GoalIncrease)
	c, v := res.Variations[0], res.Variations[1]
	xc, xt := betaDraw(c.PosteriorAlpha, c.PosteriorBeta, 11), betaDraw(v.PosteriorAlpha, v.PosteriorBeta, 12)
	var below, above float64
	for range mcDraws {
		u := xt()/xc() - 1
		if u < v.UpliftCI95[0] {
			below++
		}
		if u > v.UpliftCI95[1] {
			above++
		}
	}
	se := math.Sqrt(0.025 * 0.975 / mcDraws)
	near(t, "MC below the interval", below/mcDraws, 0.025, 4*se)
	near(t, "MC above the interval", above/mcDraws, 0.025, 4*se)
}

func TestConversionPriors(t *testing.T) {
	arms := []stats.ConversionArm{conv(100, 10), conv(100, 18)}
	flat := analyzeConversion(t, arms, stats.BetaPrior{}, domain.GoalIncrease)
	if flat.Prior != stats.DefaultBetaPrior {
		t.Errorf("zero prior reported as %+v, want the default", flat.Prior)
	}
	// A strong prior centred on 10% (worth 500 users) pulls both rates toward 10% and shrinks
	// the evidence of a difference.
	strong := analyzeConversion(t, arms, stats.BetaPrior{Alpha: 50, Beta: 450}, domain.GoalIncrease)
	fv, sv := flat.Variations[1], strong.Variations[1]
	if sv.PosteriorAlpha != 50+18 || sv.PosteriorBeta != 450+82 {
		t.Errorf("posterior Beta(%v, %v), want Beta(68, 532)", sv.PosteriorAlpha, sv.PosteriorBeta)
	}
	if !(math.Abs(sv.PosteriorMean-0.1) < math.Abs(fv.PosteriorMean-0.1)) {
		t.Errorf("strong prior: mean %v not closer to 0.1 than %v", sv.PosteriorMean, fv.PosteriorMean)
	}
	if !(sv.ChanceToBeatControl < fv.ChanceToBeatControl && sv.ChanceToBeatControl > 0.5) {
		t.Errorf("strong prior: chance %v, want between 0.5 and %v", sv.ChanceToBeatControl, fv.ChanceToBeatControl)
	}
	if !(sv.CI95[1]-sv.CI95[0] < fv.CI95[1]-fv.CI95[0]) {
		t.Errorf("strong prior: interval %v not narrower than %v", sv.CI95, fv.CI95)
	}
	// An optimistic prior (centred on 50%) raises the rates of small samples.
	opt := analyzeConversion(t, arms, stats.BetaPrior{Alpha: 10, Beta: 10}, domain.GoalIncrease)
	if !(opt.Variations[0].PosteriorMean > flat.Variations[0].PosteriorMean) {
		t.Errorf("optimistic prior: mean %v not above %v", opt.Variations[0].PosteriorMean, flat.Variations[0].PosteriorMean)
	}
}

func TestConversionDirection(t *testing.T) {
	arms := []stats.ConversionArm{conv(1000, 50), conv(1000, 40), conv(1000, 65)}
	up := analyzeConversion(t, arms, stats.BetaPrior{}, domain.GoalIncrease)
	down := analyzeConversion(t, arms, stats.BetaPrior{}, domain.GoalDecrease)
	for i := 1; i < 3; i++ {
		near(t, "chance flips", down.Variations[i].ChanceToBeatControl, 1-up.Variations[i].ChanceToBeatControl, 1e-12)
		if down.Variations[i].Uplift != up.Variations[i].Uplift {
			t.Errorf("uplift depends on direction")
		}
	}
	// Fewer conversions win when lower is better.
	if !(down.Variations[1].ProbabilityToBeBest > 0.8 && up.Variations[2].ProbabilityToBeBest > 0.9) {
		t.Errorf("best: lower %v, higher %v", down.Variations[1].ProbabilityToBeBest, up.Variations[2].ProbabilityToBeBest)
	}
	if down.Direction != domain.GoalDecrease {
		t.Errorf("direction %v", down.Direction)
	}
}

func TestConversionDegenerate(t *testing.T) {
	uniform := [2]float64{0.025, 0.975} // Beta(1,1) quantiles
	for _, tc := range []struct {
		name  string
		arms  []stats.ConversionArm
		check func(t *testing.T, r stats.ConversionResult)
	}{
		{"no users anywhere", []stats.ConversionArm{conv(0, 0), conv(0, 0), conv(0, 0)}, func(t *testing.T, r stats.ConversionResult) {
			for _, v := range r.Variations {
				near(t, "best", v.ProbabilityToBeBest, 1.0/3, 1e-15)
				near(t, "chance", v.ChanceToBeatControl, 0.5, 0)
				near(t, "CI low", v.CI95[0], uniform[0], 1e-12)
				near(t, "CI high", v.CI95[1], uniform[1], 1e-12)
				if v.Rate != 0 || v.ExpectedLoss != 0 || v.Uplift != 0 || v.UpliftCI95 != [2]float64{} {
					t.Errorf("%+v", v)
				}
			}
		}},
		{"variation without users", []stats.ConversionArm{conv(1000, 100), conv(0, 0), conv(1000, 120)}, func(t *testing.T, r stats.ConversionResult) {
			v := r.Variations[1]
			if v.ChanceToBeatControl != 0.5 || v.ProbabilityToBeBest != 0 || v.ExpectedLoss != 0 || v.UpliftCI95 != [2]float64{} {
				t.Errorf("%+v", v)
			}
			near(t, "others' best", r.Variations[0].ProbabilityToBeBest+r.Variations[2].ProbabilityToBeBest, 1, 1e-12)
		}},
		{"control without users", []stats.ConversionArm{conv(0, 0), conv(1000, 100), conv(1000, 120)}, func(t *testing.T, r stats.ConversionResult) {
			for _, v := range r.Variations {
				if v.ChanceToBeatControl != 0.5 || v.Uplift != 0 || v.UpliftCI95 != [2]float64{} {
					t.Errorf("%+v", v)
				}
			}
			if r.Variations[0].ProbabilityToBeBest != 0 || !(r.Variations[2].ProbabilityToBeBest > 0.9) {
				t.Errorf("best %v %v", r.Variations[0].ProbabilityToBeBest, r.Variations[2].ProbabilityToBeBest)
			}
		}},
		{"no conversions, equal sizes", []stats.ConversionArm{conv(1000, 0), conv(1000, 0)}, func(t *testing.T, r stats.ConversionResult) {
			near(t, "chance", r.Variations[1].ChanceToBeatControl, 0.5, 0)
			near(t, "best", r.Variations[1].ProbabilityToBeBest, 0.5, 1e-12)
			near(t, "uplift", r.Variations[1].Uplift, 0, 1e-15)
			if r.Variations[1].CI95[0] != 0 && r.Variations[1].CI95[0] > 1e-4 {
				t.Errorf("CI %v", r.Variations[1].CI95)
			}
		}},
		{"no conversions, more users", []stats.ConversionArm{conv(1000, 0), conv(3000, 0)}, func(t *testing.T, r stats.ConversionResult) {
			// Beta(1, 3001) vs Beta(1, 1001): P = 1001/(1001+3001) by the exponential-like form.
			near(t, "chance", r.Variations[1].ChanceToBeatControl, evanMillerBeat(1, 1001, 1, 3001), 1e-9)
		}},
		{"everyone converted", []stats.ConversionArm{conv(10, 10), conv(20, 20)}, func(t *testing.T, r stats.ConversionResult) {
			near(t, "chance", r.Variations[1].ChanceToBeatControl, evanMillerBeat(11, 1, 21, 1), 1e-9)
			if r.Variations[1].Rate != 1 || r.Variations[1].CI95[1] > 1 {
				t.Errorf("%+v", r.Variations[1])
			}
		}},
		{"identical variations", []stats.ConversionArm{conv(500, 60), conv(500, 60), conv(500, 60)}, func(t *testing.T, r stats.ConversionResult) {
			for _, v := range r.Variations {
				near(t, "chance", v.ChanceToBeatControl, 0.5, 0)
				near(t, "best", v.ProbabilityToBeBest, 1.0/3, 1e-12)
				near(t, "loss equal", v.ExpectedLoss, r.Variations[0].ExpectedLoss, 1e-15)
			}
			near(t, "uplift", r.Variations[2].Uplift, 0, 0)
			if u := r.Variations[2].UpliftCI95; !(u[0] < 0 && u[1] > 0) {
				t.Errorf("uplift CI %v does not straddle 0", u)
			}
		}},
		{"control alone", []stats.ConversionArm{conv(1000, 100)}, func(t *testing.T, r stats.ConversionResult) {
			v := r.Variations[0]
			if v.ProbabilityToBeBest != 1 || v.ExpectedLoss != 0 || v.ChanceToBeatControl != 0.5 || !v.Control {
				t.Errorf("%+v", v)
			}
		}},
		{"one user each", []stats.ConversionArm{conv(1, 0), conv(1, 1), conv(1, 0)}, func(t *testing.T, r stats.ConversionResult) {
			near(t, "chance", r.Variations[1].ChanceToBeatControl, 5.0/6, 1e-9)
			near(t, "chance identical", r.Variations[2].ChanceToBeatControl, 0.5, 0)
		}},
		{"far apart", []stats.ConversionArm{conv(100000, 100), conv(100000, 90000)}, func(t *testing.T, r stats.ConversionResult) {
			near(t, "chance", r.Variations[1].ChanceToBeatControl, 1, 1e-13)
			near(t, "loss", r.Variations[1].ExpectedLoss, 0, 1e-13)
			near(t, "control loss", r.Variations[0].ExpectedLoss, r.Variations[1].PosteriorMean-r.Variations[0].PosteriorMean, 1e-12)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dir := range []domain.GoalDirection{domain.GoalIncrease, domain.GoalDecrease} {
				r := analyzeConversion(t, tc.arms, stats.BetaPrior{}, dir)
				if dir == domain.GoalIncrease {
					tc.check(t, r)
				}
			}
		})
	}
}

func TestConversionDeterministic(t *testing.T) {
	arms := []stats.ConversionArm{conv(12345, 678), conv(12000, 700), conv(11000, 640)}
	a := analyzeConversion(t, arms, stats.BetaPrior{}, domain.GoalIncrease)
	b := analyzeConversion(t, arms, stats.BetaPrior{}, domain.GoalIncrease)
	for i := range a.Variations {
		if a.Variations[i] != b.Variations[i] {
			t.Errorf("variation %d differs between runs:\n%+v\n%+v", i, a.Variations[i], b.Variations[i])
		}
	}
}

func TestConversionValidation(t *testing.T) {
	ok := []stats.ConversionArm{conv(10, 1), conv(10, 2)}
	for _, tc := range []struct {
		name    string
		arms    []stats.ConversionArm
		control int
		prior   stats.BetaPrior
		dir     domain.GoalDirection
		field   string
	}{
		{"no arms", nil, 0, stats.BetaPrior{}, "", "arms"},
		{"control out of range", ok, 2, stats.BetaPrior{}, "", "control"},
		{"negative control", ok, -1, stats.BetaPrior{}, "", "control"},
		{"negative users", []stats.ConversionArm{conv(10, 1), conv(-1, 0)}, 0, stats.BetaPrior{}, "", "arms[1].users"},
		{"negative conversions", []stats.ConversionArm{conv(10, -1)}, 0, stats.BetaPrior{}, "", "arms[0].conversions"},
		{"conversions above users", []stats.ConversionArm{conv(10, 1), conv(10, 11)}, 0, stats.BetaPrior{}, "", "arms[1].conversions"},
		{"too many users", []stats.ConversionArm{conv(stats.MaxUsers+1, 1)}, 0, stats.BetaPrior{}, "", "arms[0].users"},
		{"negative prior", ok, 0, stats.BetaPrior{Alpha: -1, Beta: 1}, "", "prior.alpha"},
		{"zero prior beta", ok, 0, stats.BetaPrior{Alpha: 1}, "", "prior.beta"},
		{"NaN prior", ok, 0, stats.BetaPrior{Alpha: 1, Beta: math.NaN()}, "", "prior.beta"},
		{"unknown direction", ok, 0, stats.BetaPrior{}, "sideways", "direction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stats.AnalyzeConversion(tc.arms, tc.control, tc.prior, tc.dir)
			wantInvalid(t, err, tc.field)
		})
	}
}

func TestConversionEmptyDirectionIsIncrease(t *testing.T) {
	arms := []stats.ConversionArm{conv(100, 10), conv(100, 15)}
	a := analyzeConversion(t, arms, stats.BetaPrior{}, "")
	b := analyzeConversion(t, arms, stats.BetaPrior{}, domain.GoalIncrease)
	if a.Direction != domain.GoalIncrease || a.Variations[1] != b.Variations[1] {
		t.Errorf("empty direction: %+v vs %+v", a, b)
	}
}
