package stats

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// QuantileRanks returns the 1-based ranks (lo, hi) of the order statistics X_(lo) ≤ X_(hi) that
// bound a 1 − alpha confidence interval for the q quantile of n units: lo = nq − z√(nq(1−q)) and
// hi = 1 + nq + z√(nq(1−q)), rounded to the nearest integer and kept in [1, n] (the normal
// approximation to the binomial of Campbell and Gardner, "Calculating confidence intervals for
// some non-parametric analyses", BMJ 1988). Why this interval: the number of units below the true
// quantile is Binomial(n, q) whatever the metric's distribution, so [X_(lo), X_(hi)] covers it
// with probability P(lo ≤ B < hi), about 1 − alpha, without assuming a shape or estimating a
// density (revenue per user is skewed and has a mass at 0, where density estimates fail).
// n = 0 gives (0, 0).
func QuantileRanks(n int64, q, alpha float64) (lo, hi int64) {
	if n <= 0 {
		return 0, 0
	}
	z := distuv.UnitNormal.Quantile(1 - alpha/2)
	fn := float64(n)
	h := z * math.Sqrt(fn*q*(1-q))
	lo = int64(math.Round(fn*q - h))
	hi = int64(math.Round(1 + fn*q + h))
	return max(1, min(lo, n)), max(1, min(hi, n))
}

// QuantileStatistic is one variation's q quantile of a metric per unit, with the order
// statistics at QuantileRanks(N, Quantile, alpha) that bound its confidence interval.
type QuantileStatistic struct {
	N        int64   `json:"n"`
	Quantile float64 `json:"quantile"`
	Estimate float64 `json:"estimate"`
	Lower    float64 `json:"lower"`
	Upper    float64 `json:"upper"`
}

// CompareQuantiles tests the q quantile of a variation against the control's. Each quantile's
// standard error is implied by its distribution-free interval, (Upper − Lower)/(2 z_{1−α/2})
// (asymptotically √(q(1−q)/n)/f(ξ_q), the quantile's standard error, without estimating the
// density f); the difference (or the relative difference, by the delta method) is then normal,
// as GrowthBook's quantile metrics do. opts.Alpha must be the alpha of the ranks. Not enough
// data (fewer than two units, or an interval of zero width on either side) is an invalid result.
func CompareQuantiles(control, variation QuantileStatistic, opts FrequentistOptions) FrequentistResult {
	z := distuv.UnitNormal.Quantile(1 - opts.alpha()/2)
	se := func(s QuantileStatistic) float64 { return (s.Upper - s.Lower) / (2 * z) }
	sa, sb := se(control), se(variation)
	if control.N < 2 || variation.N < 2 || !(sa > 0) || !(sb > 0) || math.IsInf(sa, 0) || math.IsInf(sb, 0) {
		return invalid(ReasonNoVariance, opts)
	}
	if opts.Relative && control.Estimate == 0 {
		return invalid(ReasonControlMeanZero, opts)
	}
	na, nb := float64(control.N), float64(variation.N)
	// Variances per unit, so that effectOf's se²/n terms are the squared standard errors.
	return test(effectOf(control.Estimate, variation.Estimate, control.Estimate, sa*sa*na, sb*sb*nb, na, nb, opts.Relative), opts)
}
