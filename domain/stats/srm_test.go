package stats_test

import (
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain/stats"
)

func TestSampleRatioMismatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		observed []int64
		weights  []float64
		chi2, p  float64
		checked  bool
		mismatch bool
	}{
		// χ² = 2·300²/5000 = 36 on 1 df: p = P(|Z| > 6) = erfc(6/√2).
		{"skewed 50/50", []int64{5300, 4700}, []float64{50, 50}, 36, math.Erfc(6 / math.Sqrt2), true, true},
		// χ² = 2·20²/5000 = 0.16: p = erfc(0.4/√2).
		{"fair 50/50", []int64{5020, 4980}, []float64{0.5, 0.5}, 0.16, math.Erfc(0.4 / math.Sqrt2), true, false},
		// On 2 df the survival is exp(−χ²/2): χ² = 10²/250 + 10²/250 + 0 = 0.8.
		{"three-way 25/25/50", []int64{260, 240, 500}, []float64{1, 1, 2}, 0.8, math.Exp(-0.4), true, false},
		// χ² = 40²/1000 + 40²/1000 + 0 = 3.2: p = exp(−1.6).
		{"three-way, mild", []int64{1040, 960, 2000}, []float64{25, 25, 50}, 3.2, math.Exp(-1.6), true, false},
		// χ² = 100²/1000 + 100²/1000 + 0 = 20: p = exp(−10) = 4.5e-5, flagged.
		{"three-way, skewed", []int64{1100, 900, 2000}, []float64{25, 25, 50}, 20, math.Exp(-10), true, true},
		// 90 users: p is tiny (χ² = 2·25²/45) but the sample is below the minimum.
		{"small sample", []int64{70, 20}, []float64{1, 1}, 2 * 625.0 / 45, math.Erfc(math.Sqrt(2*625.0/45) / math.Sqrt2), false, false},
		// 1% arm expected 2 users of 200: the chi-square approximation does not hold.
		{"small expected count", []int64{190, 10}, []float64{99, 1}, 8*8/198.0 + 8*8/2.0, math.Erfc(math.Sqrt(8*8/198.0+8*8/2.0) / math.Sqrt2), false, false},
		{"single variation", []int64{1000}, []float64{1}, 0, 1, false, false},
		{"no users", []int64{0, 0}, []float64{1, 1}, 0, 1, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := stats.SampleRatioMismatch(tc.observed, tc.weights, 42)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "ChiSquare", r.ChiSquare, tc.chi2, 1e-9*math.Max(1, tc.chi2))
			near(t, "PValue", r.PValue, tc.p, 1e-12+1e-9*tc.p)
			if r.Checked != tc.checked || r.Mismatch != tc.mismatch {
				t.Errorf("checked %v mismatch %v, want %v %v", r.Checked, r.Mismatch, tc.checked, tc.mismatch)
			}
			if r.Excluded != 42 || r.DegreesOfFreedom != len(tc.observed)-1 {
				t.Errorf("excluded %d df %d", r.Excluded, r.DegreesOfFreedom)
			}
			var total int64
			var expected float64
			for i, o := range tc.observed {
				total += o
				expected += r.Expected[i]
			}
			if r.Total != total || math.Abs(expected-float64(total)) > 1e-9 {
				t.Errorf("total %d, expected sum %v", r.Total, expected)
			}
		})
	}
}

func TestSampleRatioMismatchValidation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		observed []int64
		weights  []float64
		excluded int64
		field    string
	}{
		{"nothing", nil, nil, 0, "observed"},
		{"lengths differ", []int64{1, 2}, []float64{1}, 0, "weights"},
		{"negative users", []int64{1, -2}, []float64{1, 1}, 0, "observed[1]"},
		{"zero weight", []int64{1, 2}, []float64{1, 0}, 0, "weights[1]"},
		{"negative weight", []int64{1, 2}, []float64{-1, 1}, 0, "weights[0]"},
		{"NaN weight", []int64{1, 2}, []float64{1, math.NaN()}, 0, "weights[1]"},
		{"negative excluded", []int64{1, 2}, []float64{1, 1}, -1, "excluded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stats.SampleRatioMismatch(tc.observed, tc.weights, tc.excluded)
			wantInvalid(t, err, tc.field)
		})
	}
}

// Users of a variation outside the experiment are a mismatch, however few, even when the known
// split is fair or too small to test (Bucketeer's rule), and they do not enter the chi-square.
func TestSampleRatioMismatchUnknownVariations(t *testing.T) {
	for _, tc := range []struct {
		name     string
		observed []int64
		unknown  int64
		mismatch bool
	}{
		{"fair split, no unknown", []int64{5020, 4980}, 0, false},
		{"fair split, one unknown user", []int64{5020, 4980}, 1, true},
		{"too small to test, unknown users", []int64{3, 4}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := stats.SampleRatioMismatchWithUnknown(tc.observed, []float64{1, 1}, 0, tc.unknown)
			if err != nil {
				t.Fatal(err)
			}
			plain, _ := stats.SampleRatioMismatch(tc.observed, []float64{1, 1}, 0)
			if r.Mismatch != tc.mismatch || r.Unknown != tc.unknown || r.ChiSquare != plain.ChiSquare || r.Total != plain.Total {
				t.Errorf("got %+v, plain %+v", r, plain)
			}
		})
	}
	if _, err := stats.SampleRatioMismatchWithUnknown([]int64{1, 1}, []float64{1, 1}, 0, -1); err == nil {
		t.Error("negative unknown accepted")
	}
}
