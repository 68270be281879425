package stats_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/stat/distuv"
)

// valueArm summarises raw values per user into sufficient statistics.
func valueArm(values ...float64) stats.ValueArm {
	a := stats.ValueArm{Users: int64(len(values))}
	for _, v := range values {
		a.Sum += v
		a.SumSquares += v * v
	}
	return a
}

// valueStats builds sufficient statistics from a mean and a sample variance.
func valueStats(users int64, mean, variance float64) stats.ValueArm {
	n := float64(users)
	return stats.ValueArm{Users: users, Sum: n * mean, SumSquares: variance*(n-1) + n*mean*mean}
}

func analyzeValue(t *testing.T, arms []stats.ValueArm, opts stats.ValueOptions) stats.ValueResult {
	t.Helper()
	res, err := stats.AnalyzeValue(arms, 0, opts)
	if err != nil {
		t.Fatalf("AnalyzeValue: %v", err)
	}
	checkValueInvariants(t, res)
	return res
}

func checkValueInvariants(t *testing.T, res stats.ValueResult) {
	t.Helper()
	var sum float64
	for i, v := range res.Variations {
		w := v.Welch
		checkFinite(t, "value variation", v.Mean, v.Variance, v.StandardError, v.CI95[0], v.CI95[1], v.Difference,
			v.DifferenceCI95[0], v.DifferenceCI95[1], v.ChanceToBeatControl, v.Risk, v.Uplift, v.UpliftCI95[0], v.UpliftCI95[1],
			v.ProbabilityToBeBest, v.ExpectedLoss, w.Difference, w.T, w.DegreesOfFreedom, w.PValue, w.CI95[0], w.CI95[1])
		checkProbability(t, "ChanceToBeatControl", v.ChanceToBeatControl)
		checkProbability(t, "ProbabilityToBeBest", v.ProbabilityToBeBest)
		checkProbability(t, "PValue", w.PValue)
		if v.Risk < 0 || v.ExpectedLoss < 0 || v.Variance < 0 || v.StandardError < 0 {
			t.Errorf("variation %d: negative risk, loss, variance or standard error: %+v", i, v)
		}
		for _, ci := range [][2]float64{v.CI95, v.DifferenceCI95, v.UpliftCI95, w.CI95} {
			if ci[0] > ci[1] {
				t.Errorf("variation %d: interval %v reversed", i, ci)
			}
		}
		sum += v.ProbabilityToBeBest
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Errorf("probabilities to be best sum to %.12f", sum)
	}
}

// Welch's t-test on published examples, and on 30-digit mpmath evaluations of the same data
// (t from the formula, the p-value from the regularized incomplete beta function, the quantile by
// root finding).
func TestWelchTextbook(t *testing.T) {
	for _, tc := range []struct {
		name               string
		variation, control stats.ValueArm
		// published, with their precision
		pubT, pubDF, pubP, pubTol float64
		// mpmath
		t, df, p float64
		ci       [2]float64
	}{
		{
			name:      "Wikipedia, Student's t-test, worked example (unequal variances)",
			variation: valueArm(30.02, 29.99, 30.11, 29.97, 30.01, 29.99),
			control:   valueArm(29.89, 29.93, 29.72, 29.98, 30.02, 29.98),
			pubT:      1.959, pubDF: 7.031, pubP: 0.090, pubTol: 1e-3,
			t: 1.9590058081081015, df: 7.0305599598843143, p: 0.090773324285666888,
			ci: [2]float64{-0.019569089646042089, 0.20956908964604209},
		},
		{
			name:      "Rosetta Code, Welch's t-test (R's t.test p-value 0.0107516)",
			variation: valueArm(3.0, 4.0, 1.0, 2.1),
			control:   valueArm(490.2, 340.0, 433.9),
			pubT:      -9.559, pubDF: 2.001, pubP: 0.0107516, pubTol: 1e-3,
			t: -9.5594977219326583, df: 2.0008523488562839, p: 0.010751561149784497,
			ci: [2]float64{-607.28198198998088, -230.40135134335245},
		},
		{
			name:      "Wikipedia, Welch's t-test, example 1",
			variation: valueArm(27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4),
			control:   valueArm(27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4),
			pubT:      -2.46, pubDF: 25.0, pubP: 0.021, pubTol: 1e-2,
			t: -2.4553563982860051, df: 24.988529290231414, p: 0.021378001462867032,
			ci: [2]float64{-3.9840962671409281, -0.34923706619240523},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := stats.WelchTTest(tc.variation, tc.control)
			if err != nil {
				t.Fatal(err)
			}
			if !w.Valid {
				t.Fatal("not valid")
			}
			near(t, "published t", w.T, tc.pubT, tc.pubTol*math.Abs(tc.pubT))
			near(t, "published df", w.DegreesOfFreedom, tc.pubDF, tc.pubTol*tc.pubDF)
			near(t, "published p", w.PValue, tc.pubP, tc.pubTol)
			near(t, "t", w.T, tc.t, 1e-9*math.Abs(tc.t))
			near(t, "df", w.DegreesOfFreedom, tc.df, 1e-9*tc.df)
			near(t, "p", w.PValue, tc.p, 1e-9)
			near(t, "CI low", w.CI95[0], tc.ci[0], 1e-8*math.Abs(tc.ci[0]))
			near(t, "CI high", w.CI95[1], tc.ci[1], 1e-8*math.Abs(tc.ci[1]))

			// The same test inside AnalyzeValue.
			res := analyzeValue(t, []stats.ValueArm{tc.control, tc.variation}, stats.ValueOptions{})
			if res.Variations[1].Welch != w {
				t.Errorf("AnalyzeValue's Welch %+v differs from WelchTTest %+v", res.Variations[1].Welch, w)
			}
		})
	}
}

// Welch's t-test against the formula written out here, with gonum's Student's t for the p-value
// and the quantile, across sizes up to millions of users (where the package uses the
// Cornish–Fisher expansion for the quantile).
func TestWelchByHand(t *testing.T) {
	for _, tc := range []struct {
		variation, control stats.ValueArm
	}{
		{valueStats(20, 100, 225), valueStats(20, 95, 400)},
		{valueStats(12, 3.1, 0.8), valueStats(40, 2.7, 2.5)},
		{valueStats(500, 10, 90), valueStats(450, 11, 120)},
		{valueStats(150, 5, 30), valueStats(4000, 5.5, 31)},
		{valueStats(1_000_000, 2.53, 16.4), valueStats(1_000_000, 2.5, 15.8)},
	} {
		n1, n2 := float64(tc.variation.Users), float64(tc.control.Users)
		m1, m2 := tc.variation.Sum/n1, tc.control.Sum/n2
		v1 := (tc.variation.SumSquares - n1*m1*m1) / (n1 - 1)
		v2 := (tc.control.SumSquares - n2*m2*m2) / (n2 - 1)
		se := math.Sqrt(v1/n1 + v2/n2)
		tt := (m1 - m2) / se
		df := math.Pow(v1/n1+v2/n2, 2) / (math.Pow(v1/n1, 2)/(n1-1) + math.Pow(v2/n2, 2)/(n2-1))
		st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}
		p := 2 * st.CDF(-math.Abs(tt))
		q := st.Quantile(0.975)

		w, err := stats.WelchTTest(tc.variation, tc.control)
		if err != nil {
			t.Fatal(err)
		}
		near(t, "t", w.T, tt, 1e-9*math.Abs(tt))
		near(t, "df", w.DegreesOfFreedom, df, 1e-9*df)
		near(t, "p", w.PValue, p, 1e-9)
		near(t, "CI low", w.CI95[0], m1-m2-q*se, 1e-9*q*se)
		near(t, "CI high", w.CI95[1], m1-m2+q*se, 1e-9*q*se)
	}
}

// The Bayesian model of the difference against its closed forms, with the risk checked by
// integrating the normal density numerically.
func TestValueGaussianModel(t *testing.T) {
	control, variation := valueStats(2000, 10, 64), valueStats(2100, 10.4, 81)
	res := analyzeValue(t, []stats.ValueArm{control, variation}, stats.ValueOptions{})
	c, v := res.Variations[0], res.Variations[1]
	near(t, "control mean", c.Mean, 10, 1e-12)
	near(t, "control variance", c.Variance, 64, 1e-9)
	near(t, "control se", c.StandardError, math.Sqrt(64.0/2000), 1e-12)
	near(t, "control CI", c.CI95[1], 10+1.959963984540054*math.Sqrt(64.0/2000), 1e-12)

	d := 0.4
	sd := math.Sqrt(64.0/2000 + 81.0/2100)
	near(t, "Difference", v.Difference, d, 1e-12)
	near(t, "DifferenceCI95 low", v.DifferenceCI95[0], d-1.959963984540054*sd, 1e-12)
	near(t, "DifferenceCI95 high", v.DifferenceCI95[1], d+1.959963984540054*sd, 1e-12)
	near(t, "AbsoluteChanceToBeatControl", v.AbsoluteChanceToBeatControl, distuv.Normal{Mu: d, Sigma: sd}.Survival(0), 1e-12)
	risk := quad.Fixed(func(x float64) float64 { return -x * distuv.Normal{Mu: d, Sigma: sd}.Prob(x) }, d-40*sd, 0, 2000, quad.Legendre{}, 0)
	near(t, "AbsoluteRisk", v.AbsoluteRisk, risk, 1e-12)

	rel := 10.4/10 - 1
	relSD := math.Sqrt(81.0/2100/100 + 10.4*10.4*(64.0/2000)/10000)
	near(t, "Uplift", v.Uplift, rel, 1e-12)
	near(t, "UpliftCI95 low", v.UpliftCI95[0], rel-1.959963984540054*relSD, 1e-12)
	// Chance and risk on the relative scale, consistent with the uplift interval.
	near(t, "ChanceToBeatControl", v.ChanceToBeatControl, distuv.Normal{Mu: rel, Sigma: relSD}.Survival(0), 1e-12)
	relRisk := quad.Fixed(func(x float64) float64 { return -x * distuv.Normal{Mu: rel, Sigma: relSD}.Prob(x) }, rel-40*relSD, 0, 2000, quad.Legendre{}, 0)
	near(t, "Risk", v.Risk, relRisk, 1e-12)
	if v.Scale != stats.ScaleRelative {
		t.Errorf("scale %q", v.Scale)
	}

	// With two variations, the probability to be best is the chance to beat control, and the
	// expected loss of the variation is the risk (both flat).
	near(t, "ProbabilityToBeBest", v.ProbabilityToBeBest, v.AbsoluteChanceToBeatControl, 1e-9)
	near(t, "ExpectedLoss", v.ExpectedLoss, v.AbsoluteRisk, 1e-10)
	near(t, "control ExpectedLoss", c.ExpectedLoss, v.AbsoluteRisk+d, 1e-10)
}

func TestValuePriors(t *testing.T) {
	arms := []stats.ValueArm{valueStats(300, 10, 100), valueStats(300, 11.5, 100)}
	flat := analyzeValue(t, arms, stats.ValueOptions{})
	v := flat.Variations[1]
	obsVar := 2 * 100.0 / 300

	// A sceptical prior N(0, 0.5²) on the difference: precision-weighted by hand.
	prior := &stats.NormalPrior{Mean: 0, SD: 0.5}
	sc := analyzeValue(t, arms, stats.ValueOptions{Prior: prior}).Variations[1]
	postVar := 1 / (1/obsVar + 1/0.25)
	near(t, "posterior mean", sc.Difference, postVar*(1.5/obsVar), 1e-12)
	near(t, "posterior CI", sc.DifferenceCI95[1]-sc.DifferenceCI95[0], 2*1.959963984540054*math.Sqrt(postVar), 1e-12)
	if !(sc.Difference < v.Difference && sc.AbsoluteChanceToBeatControl < v.AbsoluteChanceToBeatControl && sc.AbsoluteChanceToBeatControl > 0.5) {
		t.Errorf("sceptical prior: %+v vs flat %+v", sc, v)
	}
	// A prior expecting a gain raises the chance.
	opt := analyzeValue(t, arms, stats.ValueOptions{Prior: &stats.NormalPrior{Mean: 2, SD: 0.5}}).Variations[1]
	if !(opt.Difference > v.Difference && opt.AbsoluteChanceToBeatControl > v.AbsoluteChanceToBeatControl) {
		t.Errorf("optimistic prior: %+v vs flat %+v", opt, v)
	}
	// A very wide prior is flat.
	wide := analyzeValue(t, arms, stats.ValueOptions{Prior: &stats.NormalPrior{SD: 1e12}}).Variations[1]
	near(t, "wide prior", wide.Difference, v.Difference, 1e-9)
	// The relative prior acts on the uplift only.
	rel := analyzeValue(t, arms, stats.ValueOptions{RelativePrior: &stats.NormalPrior{SD: 0.01}}).Variations[1]
	if !(math.Abs(rel.Uplift) < math.Abs(v.Uplift)/2) || rel.Difference != v.Difference {
		t.Errorf("relative prior: uplift %v vs %v, difference %v vs %v", rel.Uplift, v.Uplift, rel.Difference, v.Difference)
	}
}

// Three or more variations: probability to be best and expected loss of the means against a
// seeded Monte Carlo of two million draws.
func TestValueThreeArmsMonteCarlo(t *testing.T) {
	t.Parallel() // two million draws per case
	for _, dir := range []domain.GoalDirection{domain.GoalIncrease, domain.GoalDecrease} {
		arms := []stats.ValueArm{valueStats(1000, 5, 40), valueStats(800, 5.3, 50), valueStats(5000, 5.1, 45), valueStats(200, 4.9, 30)}
		res := analyzeValue(t, arms, stats.ValueOptions{Direction: dir})
		draws := make([]func() float64, len(arms))
		for i, v := range res.Variations {
			draws[i] = normalDraw(v.Mean, v.StandardError, uint64(100+i))
		}
		mc := monteCarlo(draws, mcDraws, dir == domain.GoalDecrease)
		for i, v := range res.Variations {
			near(t, string(dir)+" ProbabilityToBeBest", v.ProbabilityToBeBest, mc.best[i], 4*mc.bestSE[i]+1e-12)
			near(t, string(dir)+" ExpectedLoss", v.ExpectedLoss, mc.loss[i], 4*mc.lossSE[i]+1e-12)
		}
	}
}

func TestValueDirection(t *testing.T) {
	arms := []stats.ValueArm{valueStats(400, 3, 4), valueStats(400, 2.8, 4)}
	up := analyzeValue(t, arms, stats.ValueOptions{}).Variations[1]
	down := analyzeValue(t, arms, stats.ValueOptions{Direction: domain.GoalDecrease}).Variations[1]
	near(t, "chance flips", down.ChanceToBeatControl, 1-up.ChanceToBeatControl, 1e-12)
	near(t, "risk", up.AbsoluteRisk-down.AbsoluteRisk, 0.2, 1e-12) // E[max(0,−D)] − E[max(0,D)] = −E[D]
	near(t, "relative risk", up.Risk-down.Risk, 0.2/3, 1e-12)      // the same over the control's mean
	if down.Difference != up.Difference || down.Welch != up.Welch {
		t.Errorf("difference or Welch depends on direction")
	}
}

func TestValueDegenerate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		arms  []stats.ValueArm
		check func(t *testing.T, r stats.ValueResult)
	}{
		{"no users anywhere", []stats.ValueArm{{}, {}}, func(t *testing.T, r stats.ValueResult) {
			for _, v := range r.Variations {
				if v.ProbabilityToBeBest != 0.5 || v.ChanceToBeatControl != 0.5 || v.Mean != 0 || v.Welch.Valid || v.Welch.PValue != 1 {
					t.Errorf("%+v", v)
				}
			}
		}},
		{"variation without users", []stats.ValueArm{valueStats(100, 5, 4), {}, valueStats(100, 6, 4)}, func(t *testing.T, r stats.ValueResult) {
			v := r.Variations[1]
			if v.ChanceToBeatControl != 0.5 || v.ProbabilityToBeBest != 0 || v.Risk != 0 || v.Difference != 0 || v.Welch.Valid {
				t.Errorf("%+v", v)
			}
		}},
		{"control without users", []stats.ValueArm{{}, valueStats(100, 5, 4)}, func(t *testing.T, r stats.ValueResult) {
			v := r.Variations[1]
			if v.ChanceToBeatControl != 0.5 || v.ProbabilityToBeBest != 1 || v.Difference != 0 || v.Uplift != 0 {
				t.Errorf("%+v", v)
			}
		}},
		{"one user borrows the pooled variance", []stats.ValueArm{valueStats(101, 5, 4), valueArm(7), valueStats(51, 5, 10)}, func(t *testing.T, r stats.ValueResult) {
			v := r.Variations[1]
			pooled := (100*4.0 + 50*10.0) / 150
			near(t, "se", v.StandardError, math.Sqrt(pooled), 1e-12)
			if v.Variance != 0 || v.Welch.Valid || v.Welch.PValue != 1 || v.Welch.CI95 != [2]float64{2, 2} {
				t.Errorf("%+v", v)
			}
		}},
		{"one user each", []stats.ValueArm{valueArm(3), valueArm(5)}, func(t *testing.T, r stats.ValueResult) {
			// No variance anywhere: the difference is taken as certain.
			v := r.Variations[1]
			if v.ChanceToBeatControl != 1 || v.Risk != 0 || v.DifferenceCI95 != [2]float64{2, 2} || v.ProbabilityToBeBest != 1 {
				t.Errorf("%+v", v)
			}
		}},
		{"zero variance, different means", []stats.ValueArm{valueArm(10, 10, 10), valueArm(12, 12, 12, 12)}, func(t *testing.T, r stats.ValueResult) {
			v := r.Variations[1]
			if v.ChanceToBeatControl != 1 || v.Risk != 0 || v.Welch.PValue != 0 || v.Welch.T != math.MaxFloat64 || v.ProbabilityToBeBest != 1 {
				t.Errorf("%+v", v)
			}
			near(t, "control loss", r.Variations[0].ExpectedLoss, 2, 1e-9)
		}},
		{"zero variance, equal means", []stats.ValueArm{valueArm(10, 10), valueArm(10, 10, 10), valueArm(10, 10, 10, 10)}, func(t *testing.T, r stats.ValueResult) {
			for _, v := range r.Variations {
				near(t, "best", v.ProbabilityToBeBest, 1.0/3, 1e-9)
				if v.ChanceToBeatControl != 0.5 || v.Welch.PValue != 1 || v.Welch.T != 0 {
					t.Errorf("%+v", v)
				}
			}
		}},
		{"identical variations", []stats.ValueArm{valueStats(1000, 4, 9), valueStats(1000, 4, 9)}, func(t *testing.T, r stats.ValueResult) {
			v := r.Variations[1]
			near(t, "chance", v.ChanceToBeatControl, 0.5, 0)
			near(t, "best", v.ProbabilityToBeBest, 0.5, 1e-12)
			near(t, "p", v.Welch.PValue, 1, 1e-12)
		}},
		{"control mean zero", []stats.ValueArm{valueArm(0, 0, 0, 0), valueArm(0, 1, 0, 2)}, func(t *testing.T, r stats.ValueResult) {
			v := r.Variations[1]
			if v.Uplift != 0 || v.UpliftCI95 != [2]float64{} || !(v.ChanceToBeatControl > 0.5) {
				t.Errorf("%+v", v)
			}
		}},
		{"control alone", []stats.ValueArm{valueStats(10, 1, 1)}, func(t *testing.T, r stats.ValueResult) {
			v := r.Variations[0]
			if v.ProbabilityToBeBest != 1 || v.ExpectedLoss != 0 || v.ChanceToBeatControl != 0.5 || !v.Control {
				t.Errorf("%+v", v)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, analyzeValue(t, tc.arms, stats.ValueOptions{}))
			analyzeValue(t, tc.arms, stats.ValueOptions{Direction: domain.GoalDecrease, Prior: &stats.NormalPrior{SD: 1}, RelativePrior: &stats.NormalPrior{SD: 0.1}})
		})
	}
}

func TestValueValidation(t *testing.T) {
	ok := []stats.ValueArm{valueArm(1, 2), valueArm(2, 3)}
	for _, tc := range []struct {
		name    string
		arms    []stats.ValueArm
		control int
		opts    stats.ValueOptions
		field   string
	}{
		{"no arms", nil, 0, stats.ValueOptions{}, "arms"},
		{"control out of range", ok, 5, stats.ValueOptions{}, "control"},
		{"negative users", []stats.ValueArm{{Users: -1}}, 0, stats.ValueOptions{}, "arms[0].users"},
		{"NaN sum", []stats.ValueArm{valueArm(1), {Users: 1, Sum: math.NaN()}}, 0, stats.ValueOptions{}, "arms[1].sum"},
		{"infinite squares", []stats.ValueArm{{Users: 1, SumSquares: math.Inf(1)}}, 0, stats.ValueOptions{}, "arms[0].sum_squares"},
		{"negative squares", []stats.ValueArm{{Users: 1, SumSquares: -1}}, 0, stats.ValueOptions{}, "arms[0].sum_squares"},
		{"huge sum", []stats.ValueArm{{Users: 2, Sum: 1e300, SumSquares: 1}}, 0, stats.ValueOptions{}, "arms[0].sum"},
		{"sums without users", []stats.ValueArm{{Sum: 1}}, 0, stats.ValueOptions{}, "arms[0].sum"},
		{"prior sd zero", ok, 0, stats.ValueOptions{Prior: &stats.NormalPrior{}}, "prior.sd"},
		{"relative prior mean NaN", ok, 0, stats.ValueOptions{RelativePrior: &stats.NormalPrior{Mean: math.NaN(), SD: 1}}, "relative_prior.mean"},
		{"unknown direction", ok, 0, stats.ValueOptions{Direction: "up"}, "direction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stats.AnalyzeValue(tc.arms, tc.control, tc.opts)
			wantInvalid(t, err, tc.field)
		})
	}
	_, err := stats.WelchTTest(stats.ValueArm{Users: -2}, valueArm(1))
	wantInvalid(t, err, "arms[0].users")
}

// Issue 21, defect 3: a value goal's chance to beat control, risk and uplift interval are on one
// (relative) scale, so a chance above 97.5% always comes with a 95% uplift interval above zero,
// and the reverse, whatever the data; the absolute chance may disagree (it did: 0.990 against an
// interval that included zero).
func TestValueChanceAgreesWithUpliftInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 3))
	disagreedBefore := 0
	for range 2000 {
		c := valueStats(int64(50+rng.IntN(5000)), 1+10*rng.Float64(), 1+100*rng.Float64())
		v := valueStats(int64(50+rng.IntN(5000)), c.Sum/float64(c.Users)*(0.9+0.25*rng.Float64()), 1+100*rng.Float64())
		r := analyzeValue(t, []stats.ValueArm{c, v}, stats.ValueOptions{}).Variations[1]
		if r.Scale != stats.ScaleRelative {
			t.Fatalf("scale %q", r.Scale)
		}
		if math.Abs(r.ChanceToBeatControl-0.975) > 1e-9 && (r.ChanceToBeatControl > 0.975) != (r.UpliftCI95[0] > 0) {
			t.Fatalf("chance %v with uplift interval %v", r.ChanceToBeatControl, r.UpliftCI95)
		}
		if (r.AbsoluteChanceToBeatControl > 0.975) != (r.UpliftCI95[0] > 0) {
			disagreedBefore++
		}
	}
	t.Logf("the absolute chance disagreed with the uplift interval in %d of 2000 cases", disagreedBefore)
}
