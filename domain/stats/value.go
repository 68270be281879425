package stats

import (
	"fmt"
	"math"

	"github.com/vexil-flags/vexil/domain"
	"gonum.org/v1/gonum/stat/distuv"
)

// ValueArm is one variation's data for a value goal (revenue, items, time) as sufficient
// statistics over its users: the number of users, the sum of their values and the sum of their
// squared values (each user's value may be capped upstream). Users without the goal count with a
// value of 0.
type ValueArm struct {
	Variation  string  `json:"variation"`
	Users      int64   `json:"users"`
	Sum        float64 `json:"sum"`
	SumSquares float64 `json:"sum_squares"`
}

// Scales of a value goal's chance to beat control and risk (ValueVariation.Scale).
const (
	ScaleRelative = "relative"
	ScaleAbsolute = "absolute"
)

// MaxValue bounds the magnitude of a value per user (on average over a variation): 10^15, a
// quadrillion of whatever unit, far above any real metric, keeps every sum, square and product of
// the analysis finite.
const MaxValue = 1e15

// NormalPrior is a normal prior N(Mean, SD²) on a difference between a variation and the control.
type NormalPrior struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

// ValueOptions configures AnalyzeValue. The zero value is a goal to increase, with flat priors.
type ValueOptions struct {
	Direction domain.GoalDirection `json:"direction"`
	// Prior, if set, is the prior of the absolute difference (variation mean − control mean), in
	// the metric's units. Nil means flat: the posterior is the data's normal likelihood.
	Prior *NormalPrior `json:"prior"`
	// RelativePrior, if set, is the prior of the relative difference (variation mean / control
	// mean − 1). Nil means flat.
	RelativePrior *NormalPrior `json:"relative_prior"`
}

// ValueVariation is the analysis of one variation for a value goal.
type ValueVariation struct {
	Variation string `json:"variation"`
	Control   bool   `json:"control"`
	Users     int64  `json:"users"`
	// Mean is the mean value per user, Sum/Users (0 with no users).
	Mean float64 `json:"mean"`
	// Variance is the sample variance of the value per user, with the n−1 denominator (0 with
	// fewer than two users, or when rounding makes it negative).
	Variance float64 `json:"variance"`
	// StandardError is the standard error of Mean used by the Bayesian model: √(Variance/Users),
	// where a variation with a single user borrows the pooled variance of the variations with
	// two or more users. 0 with no users.
	StandardError float64 `json:"standard_error"`
	// CI95 is the 95% credible interval of the mean per user, Mean ± 1.96·StandardError.
	CI95 [2]float64 `json:"ci95"`

	// Difference is the posterior mean of (this mean − control mean), DifferenceCI95 its 95%
	// credible interval, under ValueOptions.Prior.
	Difference     float64    `json:"difference"`
	DifferenceCI95 [2]float64 `json:"difference_ci95"`
	// AbsoluteChanceToBeatControl is the posterior probability that the difference is in the
	// good direction, and AbsoluteRisk the expected loss of shipping this variation instead of
	// the control, per user in the metric's units: E[max(0, −D)] for a difference D
	// (E[max(0, D)] when lower is better). Shown beside the relative figures.
	AbsoluteChanceToBeatControl float64 `json:"absolute_chance_to_beat_control"`
	AbsoluteRisk                float64 `json:"absolute_risk"`
	// Uplift is the posterior mean of the relative difference R = (this mean − control
	// mean)/|control mean| (this mean / control mean − 1 for a positive control) and UpliftCI95
	// its 95% credible interval, under ValueOptions.RelativePrior, from the delta method. 0 and
	// [0, 0] when the control's mean is 0 (the ratio is undefined).
	Uplift     float64    `json:"uplift"`
	UpliftCI95 [2]float64 `json:"uplift_ci95"`
	// ChanceToBeatControl is P(R in the good direction) and Risk E[max(0, −R)] (E[max(0, R)]
	// when lower is better), a fraction of the control's mean: on the same (relative) scale as
	// the uplift and its interval, so that a chance above 97.5% always comes with an interval
	// that excludes zero (GrowthBook's scale). When the control's mean is 0 the relative scale
	// does not exist and both fall back to the absolute figures; Scale says which one is used
	// (0.5 and "" for the control).
	ChanceToBeatControl float64 `json:"chance_to_beat_control"`
	Risk                float64 `json:"risk"`
	Scale               string  `json:"scale,omitempty"`

	// ProbabilityToBeBest and ExpectedLoss compare all variations at once, each mean with its own
	// flat-prior posterior N(Mean, StandardError²) (ValueOptions priors are about pairwise
	// differences and do not apply). ExpectedLoss is E[max_j μ_j − μ_i] (lower: E[μ_i − min_j μ_j]).
	ProbabilityToBeBest float64 `json:"probability_to_be_best"`
	ExpectedLoss        float64 `json:"expected_loss"`

	// Welch is the frequentist comparison with the control (Valid false for the control).
	Welch WelchTest `json:"welch"`
}

// ValueResult is the analysis of a value goal across the variations of an experiment.
type ValueResult struct {
	Control    int              `json:"control"`
	Options    ValueOptions     `json:"options"`
	Variations []ValueVariation `json:"variations"`
}

// WelchTest is Welch's unequal-variances t-test of a variation's mean against the control's.
type WelchTest struct {
	// Valid is false when either side has fewer than two users: the variances are unknown and
	// the test is not defined; then T = 0, DegreesOfFreedom = 0, PValue = 1 and CI95 collapses on
	// the observed difference.
	Valid bool `json:"valid"`
	// Difference is the observed difference of means, variation − control.
	Difference float64 `json:"difference"`
	// T is the t statistic. When both variances are 0 and the means differ it is ±MaxFloat64
	// (the difference is certain) with PValue 0.
	T float64 `json:"t"`
	// DegreesOfFreedom is the Welch–Satterthwaite approximation.
	DegreesOfFreedom float64 `json:"degrees_of_freedom"`
	// PValue is two-sided.
	PValue float64 `json:"p_value"`
	// CI95 is the 95% confidence interval of the difference.
	CI95 [2]float64 `json:"ci95"`
}

// valueSummary is one variation's mean, sample variance and users.
type valueSummary struct {
	n        float64
	mean     float64
	variance float64
}

func summarize(a ValueArm) valueSummary {
	s := valueSummary{n: float64(a.Users)}
	if a.Users == 0 {
		return s
	}
	s.mean = a.Sum / s.n
	if a.Users >= 2 {
		// Sum of squared deviations from the sufficient statistics; rounding can push it a
		// hair below zero for constant values.
		ss := a.SumSquares - a.Sum*s.mean
		s.variance = finite(math.Max(0, ss/(s.n-1)), 0)
	}
	return s
}

// AnalyzeValue analyses a value goal. Each mean per user has the flat-prior posterior
// N(Mean, Variance/Users) (a normal approximation justified by the central limit theorem at the
// sample sizes of experiments). The difference D = μ_t − μ_c is N(d, se_t² + se_c²), updated by
// opts.Prior when given: the absolute chance is Φ(±mean/sd), the absolute risk the normal
// expected loss sd·φ(mean/sd) ∓ mean·Φ(∓mean/sd). The relative difference uses the delta method,
// Var(μ_t/μ_c) ≈ se_t²/μ_c² + μ_t²·se_c²/μ_c⁴, whose error shrinks as 1/Users, updated by
// opts.RelativePrior; the reported chance and risk are the same formulas on it, so chance,
// risk and uplift interval agree. Probability to be best and expected loss among all variations
// are deterministic integrals.
//
// Degenerate inputs give defined answers:
//   - No users: Mean, Variance, StandardError 0 and CI95 [0, 0]; the variation takes no part in
//     comparisons (chance 0.5, difference and uplift 0 with collapsed intervals, risk 0, best 0,
//     loss 0, Welch not valid). If the control has no users, every comparison with it is so.
//   - One user: the variance is unknown; the Bayesian model borrows the pooled variance of the
//     variations with two or more users (0 if none); Welch's test is not valid.
//   - Zero variance (all values equal) with no prior: the difference is certain; chance is 1, 0
//     or 0.5 (equal means), intervals collapse on the difference, risk is the shortfall if any.
//     For probability to be best a zero standard error is floored at 1e-9 of the largest mean or
//     standard error in the analysis, so equal certain means share the probability equally.
//   - A control mean of 0 makes the relative difference undefined: Uplift 0, UpliftCI95 [0, 0].
//
// Errors (*domain.Error, code domain.EInvalid): no arms, control out of range, negative users,
// more than MaxUsers users, a non-finite sum or sum of squares, a negative sum of squares, sums
// beyond MaxValue per user (MaxValue² for squares), sums with no users, a prior with a non-finite
// mean or an SD that is not positive and finite, a direction other than increase, decrease or
// empty (increase).
func AnalyzeValue(arms []ValueArm, control int, opts ValueOptions) (ValueResult, error) {
	var err error
	if opts.Direction, err = direction(opts.Direction); err != nil {
		return ValueResult{}, err
	}
	if err := validateValue(arms, control, opts); err != nil {
		return ValueResult{}, err
	}
	res := ValueResult{Control: control, Options: opts, Variations: make([]ValueVariation, len(arms))}
	sums := make([]valueSummary, len(arms))
	var pooledSS, pooledDF float64
	for i, a := range arms {
		sums[i] = summarize(a)
		if a.Users >= 2 {
			pooledSS += sums[i].variance * (sums[i].n - 1)
			pooledDF += sums[i].n - 1
		}
	}
	pooled := 0.0
	if pooledDF > 0 {
		pooled = pooledSS / pooledDF
	}
	se := make([]float64, len(arms))
	for i, s := range sums {
		switch {
		case s.n == 0:
		case s.n == 1:
			se[i] = math.Sqrt(pooled)
		default:
			se[i] = math.Sqrt(s.variance / s.n)
		}
		se[i] = finite(se[i], 0)
		res.Variations[i] = ValueVariation{
			Variation: arms[i].Variation, Control: i == control, Users: arms[i].Users,
			Mean: s.mean, Variance: s.variance, StandardError: se[i],
			CI95:                [2]float64{s.mean - z975*se[i], s.mean + z975*se[i]},
			ChanceToBeatControl: 0.5,
			Welch:               WelchTest{PValue: 1},
		}
	}

	// Probability to be best and expected loss, on normal posteriors of the means.
	active, activeControl := participants(len(arms), control, func(i int) bool { return arms[i].Users > 0 })
	var scale float64
	for _, i := range active {
		scale = math.Max(scale, math.Max(math.Abs(sums[i].mean), se[i]))
	}
	if scale == 0 {
		scale = 1
	}
	posts := make([]*posterior, len(arms))
	for _, i := range active {
		posts[i] = newNormal(sums[i].mean, math.Max(se[i], 1e-9*scale))
	}
	cmp := compare(pick(posts, active), -1, opts.Direction == domain.GoalDecrease)
	spread(res.Variations, active, cmp, func(v *ValueVariation, _, best, loss float64) {
		v.ProbabilityToBeBest, v.ExpectedLoss = best, loss
	})

	if activeControl < 0 {
		return res, nil
	}
	c := sums[control]
	for _, i := range active {
		if i == control {
			continue
		}
		v := &res.Variations[i]
		t := sums[i]
		v.Welch = welch(t, c)

		lower := opts.Direction == domain.GoalDecrease
		d := normalUpdate(t.mean-c.mean, se[i]*se[i]+se[control]*se[control], opts.Prior)
		v.Difference, v.DifferenceCI95 = d.mean, d.ci95()
		v.AbsoluteChanceToBeatControl, v.AbsoluteRisk = d.chanceAndRisk(lower)
		v.ChanceToBeatControl, v.Risk, v.Scale = v.AbsoluteChanceToBeatControl, v.AbsoluteRisk, ScaleAbsolute

		if c.mean != 0 {
			// (μ_t − μ_c)/|μ_c|: μ_t/μ_c − 1 for a positive control, and of the same sign as
			// the difference when the control's mean is negative (a loss, a net change).
			ac := math.Abs(c.mean)
			rel := (t.mean - c.mean) / ac
			rv := (se[i]*se[i] + t.mean*t.mean*se[control]*se[control]/(c.mean*c.mean)) / (c.mean * c.mean)
			r := normalUpdate(rel, rv, opts.RelativePrior)
			v.Uplift, v.UpliftCI95 = r.mean, r.ci95()
			// One scale: chance and risk on the relative difference the uplift interval shows.
			v.ChanceToBeatControl, v.Risk = r.chanceAndRisk(lower)
			v.Scale = ScaleRelative
		}
	}
	return res, nil
}

// normalPosterior is N(mean, sd²); sd 0 is a point mass.
type normalPosterior struct{ mean, sd float64 }

// normalUpdate combines an observed difference with variance v (the likelihood) and an optional
// normal prior N(μ0, τ²): the posterior mean moves from the observation toward μ0 by
// k = v/(v+τ²) and the variance is v·τ²/(v+τ²). A zero-variance likelihood is certain and ignores
// the prior.
func normalUpdate(obs, v float64, prior *NormalPrior) normalPosterior {
	tau2 := 0.0
	if prior != nil {
		tau2 = prior.SD * prior.SD
	}
	if prior == nil || v == 0 || math.IsInf(tau2, 1) {
		return normalPosterior{finite(obs, 0), finite(math.Sqrt(v), 0)}
	}
	k, omk := v/(v+tau2), tau2/(v+tau2)
	return normalPosterior{finite(obs+k*(prior.Mean-obs), 0), finite(math.Sqrt(v*omk), 0)}
}

func (d normalPosterior) ci95() [2]float64 {
	return [2]float64{d.mean - z975*d.sd, d.mean + z975*d.sd}
}

// chanceAndRisk returns P(D in the good direction) and the expected loss of acting on it,
// E[max(0, −D)] (or E[max(0, D)] when lower is better).
func (d normalPosterior) chanceAndRisk(lower bool) (chance, risk float64) {
	m := d.mean
	if lower {
		m = -m
	}
	if d.sd == 0 {
		switch {
		case m > 0:
			return 1, 0
		case m < 0:
			return 0, -m
		}
		return 0.5, 0
	}
	z := m / d.sd
	chance = clamp01(normalCDF(z))
	risk = math.Max(0, d.sd*normalPDF(z)-m*normalSF(z))
	return chance, finite(risk, 0)
}

// welch is Welch's t-test of t against c.
func welch(t, c valueSummary) WelchTest {
	diff := t.mean - c.mean
	w := WelchTest{Difference: diff, PValue: 1, CI95: [2]float64{diff, diff}}
	if t.n < 2 || c.n < 2 {
		return w
	}
	w.Valid = true
	vt, vc := t.variance/t.n, c.variance/c.n
	se2 := vt + vc
	if se2 == 0 {
		w.DegreesOfFreedom = t.n + c.n - 2
		if diff != 0 {
			w.T = math.Copysign(math.MaxFloat64, diff)
			w.PValue = 0
		}
		return w
	}
	df := se2 * se2 / (vt*vt/(t.n-1) + vc*vc/(c.n-1))
	se := math.Sqrt(se2)
	w.T = diff / se
	w.DegreesOfFreedom = df
	st := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}
	w.PValue = clamp01(2 * st.Survival(math.Abs(w.T)))
	q := t975(df)
	w.CI95 = [2]float64{finite(diff-q*se, diff), finite(diff+q*se, diff)}
	w.T = finite(w.T, 0)
	w.DegreesOfFreedom = finite(df, 0)
	return w
}

// t975 is the 97.5% quantile of Student's t with df degrees of freedom. From 300 degrees of
// freedom on it is the Cornish–Fisher expansion around the normal quantile to 1/df⁴ (error below
// 1e-12 there, 1e-15 from 1000 on), because gonum's inversion of the incomplete beta function
// takes a hundred microseconds at the millions of degrees of freedom of large experiments.
func t975(df float64) float64 {
	if df < 300 {
		return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(0.975)
	}
	z := z975
	z2 := z * z
	g1 := (z2 + 1) * z / 4
	g2 := ((5*z2+16)*z2 + 3) * z / 96
	g3 := (((3*z2+19)*z2+17)*z2 - 15) * z / 384
	g4 := ((((79*z2+776)*z2+1482)*z2-1920)*z2 - 945) * z / 92160
	return z + (g1+(g2+(g3+g4/df)/df)/df)/df
}

// WelchTTest is Welch's t-test of a variation's mean value per user against the control's, on
// their sufficient statistics (see WelchTest for the degenerate cases). Errors are those of
// AnalyzeValue's arm validation.
func WelchTTest(variation, control ValueArm) (WelchTest, error) {
	for i, a := range []ValueArm{variation, control} {
		if err := validateValueArm(fmt.Sprintf("arms[%d]", i), a); err != nil {
			return WelchTest{}, err
		}
	}
	return welch(summarize(variation), summarize(control)), nil
}

func validateValue(arms []ValueArm, control int, opts ValueOptions) error {
	if err := validateArms(len(arms), control); err != nil {
		return err
	}
	for _, fp := range []struct {
		field string
		p     *NormalPrior
	}{{"prior", opts.Prior}, {"relative_prior", opts.RelativePrior}} {
		field, p := fp.field, fp.p
		if p == nil {
			continue
		}
		if math.IsNaN(p.Mean) || math.IsInf(p.Mean, 0) {
			return domain.Invalid(field+".mean", "prior mean must be finite, got %g", p.Mean)
		}
		if !(p.SD > 0) || math.IsInf(p.SD, 0) {
			return domain.Invalid(field+".sd", "prior standard deviation must be positive and finite, got %g", p.SD)
		}
	}
	for i, a := range arms {
		if err := validateValueArm(fmt.Sprintf("arms[%d]", i), a); err != nil {
			return err
		}
	}
	return nil
}

func validateValueArm(field string, a ValueArm) error {
	if err := validateUsers(field+".users", a.Users); err != nil {
		return err
	}
	if math.IsNaN(a.Sum) || math.IsInf(a.Sum, 0) {
		return domain.Invalid(field+".sum", "sum must be finite, got %g", a.Sum)
	}
	if math.IsNaN(a.SumSquares) || math.IsInf(a.SumSquares, 0) || a.SumSquares < 0 {
		return domain.Invalid(field+".sum_squares", "sum of squares must be finite and not negative, got %g", a.SumSquares)
	}
	n := math.Max(1, float64(a.Users))
	if math.Abs(a.Sum) > MaxValue*n {
		return domain.Invalid(field+".sum", "sum must be at most %g per user in magnitude, got %g", MaxValue, a.Sum)
	}
	if a.SumSquares > MaxValue*MaxValue*n {
		return domain.Invalid(field+".sum_squares", "sum of squares must be at most %g per user, got %g", MaxValue*MaxValue, a.SumSquares)
	}
	if a.Users == 0 && (a.Sum != 0 || a.SumSquares != 0) {
		return domain.Invalid(field+".sum", "a variation with no users must have zero sums")
	}
	return nil
}
