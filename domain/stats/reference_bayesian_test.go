package stats_test

import (
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain/stats"
)

// PostHog's Bayesian engine (products/experiments/stats/bayesian: method.py, tests.py, utils.py)
// is a Gaussian model of the effect: the relative effect (T − C)/C with the delta-method variance
// Var(T)/(n_T C²) + T²Var(C)/(n_C C⁴), a normal prior on it (flat by default: the posterior is
// the likelihood), chance to win P(effect > 0), a central credible interval and the risks
// E[max(0, ±effect)]. That is GrowthBook's shape and ours for value goals (AnalyzeValue) and for
// any effect read through NormalEffect (CUPED under the Bayesian engine, ratio and quantile
// metrics); conversion and count goals use exact Beta and Gamma posteriors here instead, which
// PostHog does not have, so only what the models share is reproduced.

// TestBayesianPostHogReference reproduces the figures asserted in PostHog's
// products/experiments/stats/tests/test_bayesian.py, to the 4 decimals asserted there
// (TestBayesianMethod.test_realistic_example: run_test(treatment, control), treatment first).
func TestBayesianPostHogReference(t *testing.T) {
	control := stats.ValueArm{Variation: "control", Users: 2507, Sum: 1196.87, SumSquares: 37377.9767}
	treatment := stats.ValueArm{Variation: "test", Users: 2461, Sum: 1922.7, SumSquares: 94698.29}
	r, err := stats.AnalyzeValue([]stats.ValueArm{control, treatment}, 0, stats.ValueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := r.Variations[1]
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"effect_size", v.Uplift, 0.63646},
		{"credible_interval[0]", v.UpliftCI95[0], -0.0873},
		{"credible_interval[1]", v.UpliftCI95[1], 1.36026},
		{"chance_to_win", v.ChanceToBeatControl, 0.95759},
	} {
		if math.Abs(c.got-c.want) >= 0.5e-4 {
			t.Errorf("%s = %.6f, PostHog %.5f", c.name, c.got, c.want)
		}
	}
	// The same effect read through NormalEffect (the path of CUPED, ratio and quantile metrics).
	m := stats.CompareMeans(stats.MeanStatistic{N: control.Users, Sum: control.Sum, SumSquares: control.SumSquares},
		stats.MeanStatistic{N: treatment.Users, Sum: treatment.Sum, SumSquares: treatment.SumSquares}, stats.FrequentistOptions{Relative: true})
	e := stats.NormalEffect(m.Estimate, m.StandardError, nil, false)
	if math.Abs(e.Mean-0.63646) >= 0.5e-4 || math.Abs(e.ChanceToBeatControl-0.95759) >= 0.5e-4 ||
		math.Abs(e.CI95[0]+0.0873) >= 0.5e-4 || math.Abs(e.CI95[1]-1.36026) >= 0.5e-4 {
		t.Errorf("NormalEffect %+v", e)
	}
}

// TestBayesianPostHogProperties reproduces the assertions of PostHog's test_bayesian.py that are
// properties rather than figures (TestBayesianUtils, TestEdgeCases, TestNumericalStability), on
// the same inputs, and pins the closed forms they imply.
func TestBayesianPostHogProperties(t *testing.T) {
	mean := func(n int64, sum, ss float64) stats.MeanStatistic {
		return stats.MeanStatistic{N: n, Sum: sum, SumSquares: ss}
	}
	rel := stats.FrequentistOptions{Relative: true}
	abs := stats.FrequentistOptions{}

	// test_effect_size_calculation_absolute: 5.5 − 5.0, variance Var_T/n_T + Var_C/n_C.
	a := stats.CompareMeans(mean(100, 500, 2550), mean(100, 550, 3050), abs)
	wantVar := (3050-550.0*550/100)/99/100 + (2550-500.0*500/100)/99/100
	if math.Abs(a.Estimate-0.5) > 1e-10 || math.Abs(a.StandardError*a.StandardError-wantVar) > 1e-6 {
		t.Errorf("absolute effect %v, variance %v (want 0.5, %v)", a.Estimate, a.StandardError*a.StandardError, wantVar)
	}
	// test_effect_size_calculation_relative and TestBayesianGaussianTest.test_proportion_test:
	// 11% against 10% is +10% with a positive variance and a chance above one half.
	p := stats.CompareMeans(stats.MeanStatistic{N: 1000, Sum: 100, Proportion: true}, stats.MeanStatistic{N: 1000, Sum: 110, Proportion: true}, rel)
	if math.Abs(p.Estimate-0.1) > 1e-10 || !(p.StandardError > 0) || !(stats.NormalEffect(p.Estimate, p.StandardError, nil, false).ChanceToBeatControl > 0.5) {
		t.Errorf("proportions %+v", p)
	}
	// test_posterior_calculation: a flat prior leaves the likelihood; N(0.05, 0.02) with an
	// observed 0.1 of variance 0.01 gives the precision-weighted mean (50·0.05 + 100·0.1)/150
	// and variance 1/150, between the two and below both variances.
	if e := stats.NormalEffect(0.1, 0.1, nil, false); e.Mean != 0.1 || math.Abs(e.SD-0.1) > 1e-15 {
		t.Errorf("flat prior %+v", e)
	}
	e := stats.NormalEffect(0.1, 0.1, &stats.NormalPrior{Mean: 0.05, SD: math.Sqrt(0.02)}, false)
	if math.Abs(e.Mean-(50*0.05+100*0.1)/150) > 1e-12 || math.Abs(e.SD*e.SD-1.0/150) > 1e-12 || !(e.Mean > 0.05 && e.Mean < 0.1) || !(e.SD*e.SD < 0.01) {
		t.Errorf("informative prior %+v", e)
	}
	// test_chance_to_win: N(±0.1, 0.01²); inverse is our "lower is better".
	if c := stats.NormalEffect(0.1, 0.01, nil, false).ChanceToBeatControl; !(c > 0.99) {
		t.Errorf("clearly positive: %v", c)
	}
	if c := stats.NormalEffect(-0.1, 0.01, nil, false).ChanceToBeatControl; !(c < 0.01) {
		t.Errorf("clearly negative: %v", c)
	}
	if c := stats.NormalEffect(-0.1, 0.01, nil, true).ChanceToBeatControl; !(c > 0.99) {
		t.Errorf("negative, lower is better: %v", c)
	}
	// test_credible_interval: N(0.1, 0.05²), 95%: contains the mean and is wider than 0.15
	// (2 · 1.959964 · 0.05 = 0.195996).
	if ci := stats.NormalEffect(0.1, 0.05, nil, false).CI95; !(ci[0] < 0.1 && 0.1 < ci[1]) || math.Abs(ci[1]-ci[0]-0.19599639845) > 1e-9 {
		t.Errorf("credible interval %v", ci)
	}
	// test_risk_calculation: N(0.05, 0.02²): the risk of keeping the control, E[max(0, D)],
	// exceeds that of shipping, E[max(0, −D)] (our Risk in each direction), and both are ≥ 0.
	ship := stats.NormalEffect(0.05, 0.02, nil, false).Risk
	keep := stats.NormalEffect(0.05, 0.02, nil, true).Risk
	if !(keep > ship && keep > 0 && ship >= 0) || math.Abs(keep-ship-0.05) > 1e-12 {
		t.Errorf("risks: control %v, treatment %v (their difference must be the mean)", keep, ship)
	}
	// TestEdgeCases.test_zero_control_mean_relative: no relative effect of a zero control.
	if z := stats.CompareMeans(mean(100, 0, 0), mean(100, 100, 100), rel); z.Valid {
		t.Errorf("relative effect of a zero control: %+v", z)
	}
	// test_extreme_sample_sizes: two units each, the control without variance: uncertain, not
	// invalid (Var_T/(n_T C²) = 0.5/2 gives sd 0.5 around +50%: chance Φ(1)).
	tiny, err := stats.AnalyzeValue([]stats.ValueArm{{Variation: "c", Users: 2, Sum: 2, SumSquares: 2}, {Variation: "t", Users: 2, Sum: 3, SumSquares: 5}}, 0, stats.ValueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := tiny.Variations[1].ChanceToBeatControl; !(c > 0.1 && c < 0.9) {
		t.Errorf("two units each: chance %v", c)
	}
	// test_very_small_variances, test_large_numbers, test_small_differences: finite, with the
	// sign of the difference.
	for _, c := range []struct{ control, treatment stats.ValueArm }{
		{stats.ValueArm{Users: 1000, Sum: 9999, SumSquares: 99990.001}, stats.ValueArm{Users: 1000, Sum: 10000, SumSquares: 100001}},
		{stats.ValueArm{Users: 1000000, Sum: 10000000, SumSquares: 100000001}, stats.ValueArm{Users: 1000000, Sum: 10500000, SumSquares: 110250001}},
		{stats.ValueArm{Users: 10000, Sum: 10000, SumSquares: 10000.0001}, stats.ValueArm{Users: 10000, Sum: 10001, SumSquares: 10002.0002}},
	} {
		r, err := stats.AnalyzeValue([]stats.ValueArm{c.control, c.treatment}, 0, stats.ValueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v := r.Variations[1]
		if math.IsNaN(v.Uplift) || math.IsInf(v.Uplift, 0) || !(v.Uplift > 0) || !(v.ChanceToBeatControl >= 0 && v.ChanceToBeatControl <= 1) {
			t.Errorf("%+v against %+v: uplift %v, chance %v", c.treatment, c.control, v.Uplift, v.ChanceToBeatControl)
		}
	}
}

// TestCUPEDPostHogReference reproduces the deterministic cases of PostHog's
// products/experiments/stats/tests/test_cuped.py (test_theta_zero_when_no_pre_variance,
// test_no_adjustment_when_zero_pre_variance): a constant pre-exposure metric gives θ = 0, no
// variance reduction and the unadjusted means. (The file's other cases draw their data from
// numpy's default_rng and assert properties — θ ≈ 2 for Y = 2X + noise, a smaller interval —
// which TestFrequentistGrowthBookReference asserts on GrowthBook's published CUPED figures, and
// the platform test TestExperimentCUPEDNarrowsTheInterval end to end.)
func TestCUPEDPostHogReference(t *testing.T) {
	pre := stats.MeanStatistic{N: 100, Sum: 500, SumSquares: 2500} // all 5.0
	control := stats.CUPEDStatistic{Post: stats.MeanStatistic{N: 100, Sum: 480, SumSquares: 2800}, Pre: pre, SumProducts: 2400}
	treatment := stats.CUPEDStatistic{Post: stats.MeanStatistic{N: 100, Sum: 500, SumSquares: 3000}, Pre: pre, SumProducts: 2500}
	for _, relative := range []bool{false, true} {
		opts := stats.FrequentistOptions{Relative: relative}
		got, fig := stats.CompareCUPED(control, treatment, opts)
		plain := stats.CompareMeans(control.Post, treatment.Post, opts)
		if fig.Theta != 0 || fig.Applied || fig.VarianceReduction != 0 {
			t.Errorf("relative %v: CUPED figures %+v, want θ 0 and no reduction", relative, fig)
		}
		if got.Estimate != plain.Estimate || got.StandardError != plain.StandardError {
			t.Errorf("relative %v: adjusted %+v, unadjusted %+v", relative, got, plain)
		}
	}
}

// TestConversionBucketeerReference reproduces Bucketeer's binomial model test
// (github.com/bucketeer-io/bucketeer, python/tests/lib/calculator/stats/binomial_test.py, the model in
// python/src/lib/calculator/stats/binomial.py): 38 of 101 against 51 of 99, the first the
// baseline. Bucketeer samples p ~ Uniform(0, 1) = Beta(1, 1) per variation with Stan (NUTS, 5
// chains of 20000 draws) and asserts ranges around its Monte Carlo figures; ours are the exact
// Beta(1, 1) posteriors, inside every range. The sd of prob_best is that of a 0/1 draw,
// √(p(1−p)). Bucketeer reports 0 as the baseline's own chance to beat the baseline; ours is 0.5
// (a variation against itself). (Its value model, normal_inverse_gamma.py (normal_inverse_gamma_test.py), is tested on unseeded
// random data and reports the predictive distribution of a user's value, not of the mean: no
// figure of ours corresponds.)
func TestConversionBucketeerReference(t *testing.T) {
	r, err := stats.AnalyzeConversion([]stats.ConversionArm{{Variation: "vid1", Users: 101, Conversions: 38}, {Variation: "vid2", Users: 99, Conversions: 51}},
		0, stats.DefaultBetaPrior, "")
	if err != nil {
		t.Fatal(err)
	}
	in := func(name string, x, lo, hi float64) {
		t.Helper()
		if !(x >= lo && x <= hi) {
			t.Errorf("%s = %.5f, Bucketeer asserts [%g, %g]", name, x, lo, hi)
		}
	}
	for i, want := range []struct{ meanLo, meanHi, bestLo, bestHi float64 }{{0.37, 0.38, 0.024, 0.026}, {0.49, 0.52, 0.97, 0.98}} {
		v := r.Variations[i]
		a, b := v.PosteriorAlpha, v.PosteriorBeta
		if a != float64(v.Conversions)+1 || b != float64(v.Users-v.Conversions)+1 {
			t.Fatalf("%s: posterior Beta(%v, %v)", v.Variation, a, b)
		}
		in(v.Variation+" cvr_prob.mean", v.PosteriorMean, want.meanLo, want.meanHi)
		in(v.Variation+" cvr_prob.sd", math.Sqrt(a*b/((a+b)*(a+b)*(a+b+1))), 0.045, 0.05)
		in(v.Variation+" cvr_prob_best.mean", v.ProbabilityToBeBest, want.bestLo, want.bestHi)
		in(v.Variation+" cvr_prob_best.sd", math.Sqrt(v.ProbabilityToBeBest*(1-v.ProbabilityToBeBest)), 0.15, 0.16)
	}
	in("vid2 cvr_prob_beat_baseline.mean", r.Variations[1].ChanceToBeatControl, 0.97, 0.98)
	in("vid2 cvr_prob_beat_baseline.sd", math.Sqrt(r.Variations[1].ChanceToBeatControl*(1-r.Variations[1].ChanceToBeatControl)), 0.15, 0.16)
}
