package stats

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// MeanStatistic is one variation's sufficient statistics of a metric per unit: the units, the sum
// of the metric over them and the sum of its squares. Proportion marks a 0/1 metric (converted or
// not), whose variance is p(1 − p) (GrowthBook's ProportionStatistic); otherwise the variance is
// the sample variance with the n − 1 denominator (SampleMeanStatistic).
type MeanStatistic struct {
	N          int64   `json:"n"`
	Sum        float64 `json:"sum"`
	SumSquares float64 `json:"sum_squares"`
	Proportion bool    `json:"proportion,omitempty"`
}

// Mean is Sum/N (0 with no units).
func (s MeanStatistic) Mean() float64 {
	if s.N == 0 {
		return 0
	}
	return s.Sum / float64(s.N)
}

// Variance is p(1 − p) for a proportion, the sample variance otherwise (0 below two units, and
// never negative).
func (s MeanStatistic) Variance() float64 { return math.Max(0, s.rawVariance()) }

// rawVariance is Variance before the floor at 0: the delta method of a ratio takes its terms as
// computed (as GrowthBook does), and floors only the ratio's variance.
func (s MeanStatistic) rawVariance() float64 {
	if s.Proportion {
		m := s.Mean()
		return m * (1 - m)
	}
	if s.N <= 1 {
		return 0
	}
	n := float64(s.N)
	return finite((s.SumSquares-s.Sum*s.Sum/n)/(n-1), 0)
}

// covariance of two metrics over the same n units from their sums and the sum of their products
// (GrowthBook's compute_covariance: the population form for two proportions, the sample form
// otherwise).
func covariance(n int64, a, b MeanStatistic, sumProducts float64) float64 {
	if n <= 1 {
		return 0
	}
	fn := float64(n)
	if a.Proportion && b.Proportion {
		return sumProducts/fn - a.Sum*b.Sum/(fn*fn)
	}
	return (sumProducts - a.Sum*b.Sum/fn) / (fn - 1)
}

// CUPEDStatistic is one variation's metric after exposure (Post) and the same metric over a
// lookback window before each unit's first exposure (Pre, the covariate), over the same units,
// with the sum over units of post × pre.
type CUPEDStatistic struct {
	Post        MeanStatistic `json:"post"`
	Pre         MeanStatistic `json:"pre"`
	SumProducts float64       `json:"sum_products"`
}

// RatioStatistic is one variation's ratio metric (e.g. revenue per session): per unit a
// numerator and a denominator, with the sum over units of their product. The metric is
// ΣNumerator/ΣDenominator; its variance comes from the delta method.
type RatioStatistic struct {
	N           int64         `json:"n"`
	Numerator   MeanStatistic `json:"numerator"`
	Denominator MeanStatistic `json:"denominator"`
	SumProducts float64       `json:"sum_products"`
}

// Mean is ΣNumerator/ΣDenominator (0 when the denominator sums to 0).
func (r RatioStatistic) Mean() float64 {
	if r.Denominator.Sum == 0 {
		return 0
	}
	return r.Numerator.Sum / r.Denominator.Sum
}

// Variance is the delta-method variance of the ratio of means per unit (times n):
// Var(M)/D² + Var(D)·M²/D⁴ − 2·Cov(M, D)·M/D³ with M, D the means per unit.
func (r RatioStatistic) Variance() float64 {
	d := r.Denominator.Mean()
	if d == 0 || r.N <= 1 {
		return 0
	}
	m := r.Numerator.Mean()
	c := covariance(r.N, r.Numerator, r.Denominator, r.SumProducts)
	return finite(math.Max(0, varianceOfRatio(m, r.Numerator.rawVariance(), d, r.Denominator.rawVariance(), c)), 0)
}

// varianceOfRatio is the delta-method variance of M/D for means m, d with variances vm, vd and
// covariance c.
func varianceOfRatio(m, vm, d, vd, c float64) float64 {
	if d == 0 {
		return 0
	}
	return vm/(d*d) + vd*m*m/(d*d*d*d) - 2*c*m/(d*d*d)
}

// FrequentistOptions configures a frequentist comparison.
type FrequentistOptions struct {
	// Alpha is the two-sided significance level; 0 means 0.05.
	Alpha float64 `json:"alpha"`
	// Relative compares (variation − control)/|control| (delta method) instead of the absolute
	// difference.
	Relative bool `json:"relative"`
	// Sequential gives always-valid intervals and p-values (see SequentialHalfWidth), with
	// SequentialTuning the tuning parameter n* (0 means 5000, GrowthBook's default).
	Sequential       bool    `json:"sequential"`
	SequentialTuning float64 `json:"sequential_tuning"`
}

func (o FrequentistOptions) alpha() float64 {
	if o.Alpha > 0 && o.Alpha < 1 {
		return o.Alpha
	}
	return 0.05
}

func (o FrequentistOptions) tuning() float64 {
	if o.SequentialTuning > 0 && !math.IsInf(o.SequentialTuning, 1) {
		return o.SequentialTuning
	}
	return 5000
}

// NotEnoughData is the reason of a comparison that cannot be made.
const (
	ReasonNoVariance      = "not enough data: a variation has fewer than two units or no variance"
	ReasonControlMeanZero = "not enough data: the control's mean is 0, so a relative effect is undefined"
)

// FrequentistResult is a two-sided test of a variation against the control.
type FrequentistResult struct {
	// Valid is false when the test cannot be made (Reason says why: too few units, zero
	// variance, a control mean of 0 for a relative effect): then Estimate 0, CI [0, 0],
	// PValue 1, as GrowthBook's default output.
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
	// Relative says whether Estimate is (variation − control)/|control| or the difference.
	Relative bool `json:"relative"`
	// Estimate is the point estimate of the effect, StandardError its standard error.
	Estimate      float64 `json:"estimate"`
	StandardError float64 `json:"standard_error"`
	// DegreesOfFreedom is Welch–Satterthwaite's (the t distribution of the fixed-horizon test).
	DegreesOfFreedom float64 `json:"degrees_of_freedom"`
	// CI is the 1 − alpha confidence interval (a confidence sequence when Sequential).
	CI [2]float64 `json:"ci"`
	// PValue is two-sided (always valid when Sequential); PValueAdjusted is set by a
	// multiple-comparison correction (equal to PValue without one).
	PValue         float64 `json:"p_value"`
	PValueAdjusted float64 `json:"p_value_adjusted"`
	Alpha          float64 `json:"alpha"`
	Sequential     bool    `json:"sequential"`
	// Significant is PValueAdjusted < Alpha.
	Significant bool `json:"significant"`
}

func invalid(reason string, opts FrequentistOptions) FrequentistResult {
	return FrequentistResult{Reason: reason, Relative: opts.Relative, PValue: 1, PValueAdjusted: 1, Alpha: opts.alpha(), Sequential: opts.Sequential}
}

// effect is what every comparison reduces to: the point estimate and its variance, and per side
// the units and the variance per unit that Welch's degrees of freedom need.
type effect struct {
	point, variance float64
	na, nb          float64
	va, vb          float64
}

// CompareMeans tests a variation's mean per unit against the control's (GrowthBook's
// TwoSidedTTest / SequentialTwoSidedTTest on Proportion- or SampleMeanStatistics).
func CompareMeans(control, variation MeanStatistic, opts FrequentistOptions) FrequentistResult {
	va, vb := control.Variance(), variation.Variance()
	if control.N <= 1 || variation.N <= 1 || va <= 0 || vb <= 0 {
		return invalid(ReasonNoVariance, opts)
	}
	ma, mb := control.Mean(), variation.Mean()
	if opts.Relative && ma == 0 {
		return invalid(ReasonControlMeanZero, opts)
	}
	return test(effectOf(ma, mb, ma, va, vb, float64(control.N), float64(variation.N), opts.Relative), opts)
}

// effectOf is the effect of mean mb against ma (unadjusted control mean ua for the relative
// scale) with variances per unit va, vb over na, nb units.
func effectOf(ma, mb, ua, va, vb, na, nb float64, relative bool) effect {
	e := effect{na: na, nb: nb, va: va, vb: vb}
	if relative {
		e.point = (mb - ma) / math.Abs(ua)
		e.variance = varianceOfRatio(mb, vb/nb, ua, va/na, 0)
	} else {
		e.point = mb - ma
		e.variance = vb/nb + va/na
	}
	return e
}

// CompareCUPED tests a variation against the control after CUPED (regression adjustment): each
// mean becomes post − θ·pre with θ = Cov(post, pre)/Var(pre) pooled over both variations, which
// removes the part of the variance the pre-exposure covariate explains without biasing the
// difference (exposure is random, so the pre-period means differ by chance only). As GrowthBook:
// a θ of 0 (no variance in a period) falls back to CompareMeans on the post statistics; the
// relative effect divides by the unadjusted control mean, with the delta-method variance of
// frequentist_variance_relative_cuped. It returns θ and the variance reduction 1 − Var(adjusted
// effect)/Var(unadjusted effect) beside the result.
func CompareCUPED(control, variation CUPEDStatistic, opts FrequentistOptions) (FrequentistResult, CUPEDFigures) {
	theta := cupedTheta(control, variation)
	plain := CompareMeans(control.Post, variation.Post, opts)
	if theta == 0 || !plain.Valid {
		return plain, CUPEDFigures{}
	}
	e, ok := cupedEffect(control, variation, theta, opts.Relative)
	if !ok {
		return invalid(ReasonNoVariance, opts), CUPEDFigures{Theta: theta}
	}
	if control.Post.Mean() == 0 && opts.Relative {
		return invalid(ReasonControlMeanZero, opts), CUPEDFigures{Theta: theta}
	}
	res := test(e, opts)
	fig := CUPEDFigures{Theta: theta, Applied: true}
	if plain.StandardError > 0 {
		fig.VarianceReduction = 1 - (res.StandardError*res.StandardError)/(plain.StandardError*plain.StandardError)
	}
	return res, fig
}

// CUPEDFigures reports what CUPED did to one comparison.
type CUPEDFigures struct {
	Applied bool    `json:"applied"`
	Theta   float64 `json:"theta"`
	// VarianceReduction is 1 − Var(adjusted effect)/Var(unadjusted effect): the share of the
	// effect's variance the pre-exposure covariate removed (its interval narrows by
	// 1 − √(1 − VarianceReduction)).
	VarianceReduction float64 `json:"variance_reduction"`
}

// cupedTheta is Cov(post, pre)/Var(pre) over the units of both variations together (GrowthBook's
// compute_theta), 0 when either period has no variance.
func cupedTheta(a, b CUPEDStatistic) float64 {
	n := a.Post.N + b.Post.N
	join := func(x, y MeanStatistic) MeanStatistic {
		return MeanStatistic{N: n, Sum: x.Sum + y.Sum, SumSquares: x.SumSquares + y.SumSquares, Proportion: x.Proportion && y.Proportion}
	}
	post, pre := join(a.Post, b.Post), join(a.Pre, b.Pre)
	vpre, vpost := pre.Variance(), post.Variance()
	if vpre == 0 || vpost == 0 {
		return 0
	}
	return finite(covariance(n, post, pre, a.SumProducts+b.SumProducts)/vpre, 0)
}

// adjustedVariance is Var(post − θ·pre) per unit.
func (s CUPEDStatistic) adjustedVariance(theta float64) float64 {
	if s.Post.N <= 1 {
		return 0
	}
	return s.Post.Variance() + theta*theta*s.Pre.Variance() - 2*theta*covariance(s.Post.N, s.Post, s.Pre, s.SumProducts)
}

func cupedEffect(a, b CUPEDStatistic, theta float64, relative bool) (effect, bool) {
	va, vb := a.adjustedVariance(theta), b.adjustedVariance(theta)
	if va <= 0 || vb <= 0 {
		return effect{}, false
	}
	na, nb := float64(a.Post.N), float64(b.Post.N)
	ma := a.Post.Mean() - theta*a.Pre.Mean()
	mb := b.Post.Mean() - theta*b.Pre.Mean()
	ua := a.Post.Mean()
	e := effect{na: na, nb: nb, va: va, vb: vb}
	if !relative {
		e.point, e.variance = mb-ma, vb/nb+va/na
		return e, true
	}
	e.point = (mb - ma) / math.Abs(ua)
	// frequentist_variance_relative_cuped: the gradient of (m_b − m_a)/ū_a in the control's
	// post mean carries −m_b/ū_a (the unadjusted treatment post mean over the control's).
	covA, covB := covariance(a.Post.N, a.Post, a.Pre, a.SumProducts), covariance(b.Post.N, b.Post, b.Pre, b.SumProducts)
	vTrt := (b.Post.Variance() + theta*theta*b.Pre.Variance() - 2*theta*covB) / (nb * ua * ua)
	c := -b.Post.Mean()
	vCtrl := (a.Post.Variance()*c*c/(ua*ua) + 2*theta*covA*c/ua + theta*theta*a.Pre.Variance()) / (na * ua * ua)
	e.variance = vTrt + vCtrl
	return e, e.variance > 0
}

// CompareRatios tests a ratio metric of a variation against the control's, the variances by the
// delta method (GrowthBook's RatioStatistic).
func CompareRatios(control, variation RatioStatistic, opts FrequentistOptions) FrequentistResult {
	va, vb := control.Variance(), variation.Variance()
	if control.N <= 1 || variation.N <= 1 || va <= 0 || vb <= 0 {
		return invalid(ReasonNoVariance, opts)
	}
	ma, mb := control.Mean(), variation.Mean()
	if opts.Relative && ma == 0 {
		return invalid(ReasonControlMeanZero, opts)
	}
	return test(effectOf(ma, mb, ma, va, vb, float64(control.N), float64(variation.N), opts.Relative), opts)
}

// test turns an effect into the two-sided test's figures.
func test(e effect, opts FrequentistOptions) FrequentistResult {
	alpha := opts.alpha()
	if !(e.variance > 0) || math.IsInf(e.variance, 0) || math.IsNaN(e.point) || math.IsInf(e.point, 0) {
		return invalid(ReasonNoVariance, opts)
	}
	se := math.Sqrt(e.variance)
	df := welchDF(e)
	r := FrequentistResult{Valid: true, Relative: opts.Relative, Estimate: e.point, StandardError: se,
		DegreesOfFreedom: df, Alpha: alpha, Sequential: opts.Sequential}
	if opts.Sequential {
		n := e.na + e.nb
		rho := SequentialRho(alpha, opts.tuning())
		hw := SequentialHalfWidth(e.variance*n, n, rho, alpha)
		r.CI = [2]float64{e.point - hw, e.point + hw}
		r.PValue = sequentialPValue(e.point, e.variance, n, rho)
	} else {
		q := tQuantile(1-alpha/2, df)
		r.CI = [2]float64{e.point - q*se, e.point + q*se}
		r.PValue = clamp01(2 * tSurvival(math.Abs(e.point/se), df))
	}
	r.CI = [2]float64{finite(r.CI[0], e.point), finite(r.CI[1], e.point)}
	r.PValueAdjusted = r.PValue
	r.Significant = r.PValue < alpha
	return r
}

// welchDF is the Welch–Satterthwaite degrees of freedom of the two variances per unit.
func welchDF(e effect) float64 {
	a, b := e.va/e.na, e.vb/e.nb
	den := a*a/(e.na-1) + b*b/(e.nb-1)
	if den == 0 {
		return e.na + e.nb - 2
	}
	return finite((a+b)*(a+b)/den, e.na+e.nb-2)
}

// tSurvival is P(T_df > x); the normal's beyond 1e7 degrees of freedom, where they agree to
// double precision and the incomplete beta function gets slow.
func tSurvival(x, df float64) float64 {
	if df > 1e7 {
		return normalSF(x)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(x)
}

// tQuantile is the p quantile of Student's t with df degrees of freedom.
func tQuantile(p, df float64) float64 {
	if p == 0.975 {
		return t975(df)
	}
	if df > 1e7 {
		return distuv.UnitNormal.Quantile(p)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(p)
}

// SequentialRho is the mixing parameter of the normal-mixture confidence sequence that is
// tightest at n* = tuning units: ρ = √((−2 ln α + ln(−2 ln α + 1))/n*) (Waudby-Smith et al.,
// "Time-uniform central limit theory and asymptotic confidence sequences", arXiv:2103.06476v7,
// eq. 161; GrowthBook's sequential_rho).
func SequentialRho(alpha, tuning float64) float64 {
	l := -2 * math.Log(alpha)
	return math.Sqrt((l + math.Log(l+1)) / tuning)
}

// SequentialHalfWidth is the half-width of the two-sided asymptotic confidence sequence after n
// units for an estimator whose variance is s2/n (eq. 9 of the same paper; GrowthBook's
// sequential_interval_halfwidth): √s2 · √(2(nρ²+1)/(n²ρ²) · ln(√(nρ²+1)/α)). It holds at every n
// at once, so the interval may be looked at after every analysis.
func SequentialHalfWidth(s2, n, rho, alpha float64) float64 {
	nr2 := n * rho * rho
	return math.Sqrt(s2) * math.Sqrt(2*(nr2+1)*math.Log(math.Sqrt(nr2+1)/alpha)/(nr2*n))
}

// sequentialPValue is the always-valid p-value 1/e-value of the same mixture (eq. 155):
// e = exp(ρ² S_t² / (2(nρ²+1))) / √(nρ²+1) with S_t² = point² n / variance.
func sequentialPValue(point, variance, n, rho float64) float64 {
	st2 := point * point * n / variance
	tr := n*rho*rho + 1
	logE := rho*rho*st2/(2*tr) - 0.5*math.Log(tr)
	if logE <= 0 {
		return 1
	}
	return math.Exp(-logE)
}

// Correct sets PValueAdjusted and Significant of every result by the correction across all of
// them (the family: variations × goals). "holm" is Holm–Bonferroni (controls the family-wise
// error rate), "benjamini_hochberg" Benjamini–Hochberg (controls the false discovery rate),
// anything else leaves the p-values as they are. Invalid results keep p = 1 and take part (a
// comparison that could not be made is still one of the family).
func Correct(results []*FrequentistResult, method string) {
	ps := make([]float64, len(results))
	for i, r := range results {
		ps[i] = r.PValue
	}
	var adj []float64
	switch method {
	case "holm":
		adj = HolmBonferroni(ps)
	case "benjamini_hochberg":
		adj = BenjaminiHochberg(ps)
	default:
		adj = ps
	}
	for i, r := range results {
		r.PValueAdjusted = adj[i]
		r.Significant = r.Valid && adj[i] < r.Alpha
	}
}

// HolmBonferroni returns Holm's step-down adjusted p-values, in the order given: sorted
// ascending, p_(i)·(m − i) (i from 0), capped at 1, then made non-decreasing.
func HolmBonferroni(p []float64) []float64 {
	m := len(p)
	idx := sortedIndex(p, false)
	out := make([]float64, m)
	running := 0.0
	for rank, i := range idx {
		v := math.Min(1, p[i]*float64(m-rank))
		running = math.Max(running, v)
		out[i] = running
	}
	return out
}

// BenjaminiHochberg returns the Benjamini–Hochberg adjusted p-values (q-values), in the order
// given: sorted descending, p_(i)·m/(m − i) (i from 0), capped at 1, then made non-increasing.
func BenjaminiHochberg(p []float64) []float64 {
	m := len(p)
	idx := sortedIndex(p, true)
	out := make([]float64, m)
	running := 1.0
	for rank, i := range idx {
		v := math.Min(1, p[i]*float64(m)/float64(m-rank))
		running = math.Min(running, v)
		out[i] = running
	}
	return out
}

// sortedIndex is the permutation sorting p (stable, so ties keep their order).
func sortedIndex(p []float64, descending bool) []int {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if descending {
			a, b = b, a
		}
		switch {
		case p[a] < p[b]:
			return -1
		case p[a] > p[b]:
			return 1
		}
		return 0
	})
	return idx
}
