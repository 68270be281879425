package stats

import (
	"fmt"
	"math"

	"github.com/vexil-flags/vexil/domain"
	"gonum.org/v1/gonum/stat/distuv"
)

// Sample-ratio mismatch thresholds. The chi-square test is only trusted when its approximation
// holds: at least SRMMinUsers users in total and an expected count of at least SRMMinExpected in
// every variation (the textbook rule for Pearson's test). Below that no mismatch is flagged, so a
// young experiment with a handful of users never raises a false alarm.
const (
	SRMThreshold   = 0.001
	SRMMinUsers    = 100
	SRMMinExpected = 5.0
)

// SRMResult is a chi-square goodness-of-fit test of the users observed per variation against the
// configured allocation.
type SRMResult struct {
	Observed []int64 `json:"observed"`
	// Expected is the users each variation should have had: total × weight / Σ weights.
	Expected []float64 `json:"expected"`
	Total    int64     `json:"total"`
	// Excluded is the number of users excluded from the analysis because they were exposed to more
	// than one variation, passed through for the report (it does not enter the test).
	Excluded         int64   `json:"excluded"`
	ChiSquare        float64 `json:"chi_square"`
	DegreesOfFreedom int     `json:"degrees_of_freedom"`
	// PValue is P(χ²_{k−1} ≥ ChiSquare); 1 with a single variation or no users.
	PValue float64 `json:"p_value"`
	// Checked is true when the sample is large enough for the test (see SRMMinUsers and
	// SRMMinExpected).
	Checked bool `json:"checked"`
	// Unknown is the number of users exposed to a variation that is not in the experiment
	// (served by a stale or foreign configuration, or forged); they are outside Observed and
	// Total and do not enter the chi-square test.
	Unknown int64 `json:"unknown"`
	// Mismatch is true when Checked and PValue < SRMThreshold, or when Unknown > 0 (as
	// Bucketeer does: a variation the allocation cannot produce means assignment is broken,
	// whatever their number): the split is not what was configured, and the experiment's results
	// should not be trusted until the cause is found.
	Mismatch bool `json:"mismatch"`
}

// SampleRatioMismatch tests observed users per variation against allocation weights (any positive
// scale: percentages, bucket counts or fractions). Errors (*domain.Error, code domain.EInvalid):
// no variations, lengths that differ, a negative count, a weight that is not positive and finite,
// a negative excluded count.
func SampleRatioMismatch(observed []int64, weights []float64, excluded int64) (SRMResult, error) {
	return SampleRatioMismatchWithUnknown(observed, weights, excluded, 0)
}

// SampleRatioMismatchWithUnknown is SampleRatioMismatch with the users of variations outside the
// experiment: any of them is a mismatch (see SRMResult.Unknown). A negative unknown count is
// EInvalid.
func SampleRatioMismatchWithUnknown(observed []int64, weights []float64, excluded, unknown int64) (SRMResult, error) {
	if unknown < 0 {
		return SRMResult{}, domain.Invalid("unknown", "unknown users must not be negative, got %d", unknown)
	}
	if len(observed) == 0 {
		return SRMResult{}, domain.Invalid("observed", "at least one variation is required")
	}
	if len(weights) != len(observed) {
		return SRMResult{}, domain.Invalid("weights", "%d weights for %d variations", len(weights), len(observed))
	}
	if excluded < 0 {
		return SRMResult{}, domain.Invalid("excluded", "excluded users must not be negative, got %d", excluded)
	}
	var total int64
	var wsum float64
	for i, o := range observed {
		if o < 0 {
			return SRMResult{}, domain.Invalid(fmt.Sprintf("observed[%d]", i), "users must not be negative, got %d", o)
		}
		if total > math.MaxInt64-o {
			return SRMResult{}, domain.Invalid(fmt.Sprintf("observed[%d]", i), "total users overflow")
		}
		total += o
		w := weights[i]
		if !(w > 0) || math.IsInf(w, 0) {
			return SRMResult{}, domain.Invalid(fmt.Sprintf("weights[%d]", i), "weight must be positive and finite, got %g", w)
		}
		wsum += w
	}
	res := SRMResult{
		Observed: append([]int64(nil), observed...), Expected: make([]float64, len(observed)),
		Total: total, Excluded: excluded, DegreesOfFreedom: len(observed) - 1, PValue: 1,
	}
	minExpected := math.Inf(1)
	for i, o := range observed {
		e := float64(total) * (weights[i] / wsum)
		res.Expected[i] = e
		minExpected = math.Min(minExpected, e)
		if e > 0 {
			d := float64(o) - e
			res.ChiSquare += d * d / e
		}
	}
	res.ChiSquare = finite(res.ChiSquare, 0)
	if res.DegreesOfFreedom > 0 && total > 0 {
		res.PValue = clamp01(distuv.ChiSquared{K: float64(res.DegreesOfFreedom)}.Survival(res.ChiSquare))
	}
	res.Checked = total >= SRMMinUsers && minExpected >= SRMMinExpected && res.DegreesOfFreedom > 0
	res.Unknown = unknown
	res.Mismatch = (res.Checked && res.PValue < SRMThreshold) || unknown > 0
	return res, nil
}
