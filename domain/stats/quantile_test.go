package stats_test

import (
	"math"
	"testing"

	"github.com/vexil-flags/vexil/domain/stats"
	"gonum.org/v1/gonum/stat/distuv"
)

// The ranks of the 95% interval of a median of 100 units are 40 and 61 (Campbell and Gardner's
// rule: 50 ∓ 1.96·5, plus one for the upper, rounded); their coverage P(lo ≤ B < hi) for
// B ~ Binomial(n, q) is computed here exactly (gonum's binomial CDF) and must be near 95% for
// every size and quantile with enough units on both sides, which is what makes the interval distribution-free.
func TestQuantileRanks(t *testing.T) {
	if lo, hi := stats.QuantileRanks(100, 0.5, 0.05); lo != 40 || hi != 61 {
		t.Fatalf("median of 100: ranks %d, %d", lo, hi)
	}
	for _, n := range []int64{50, 100, 1000, 100000} {
		for _, q := range []float64{0.5, 0.9, 0.99} {
			lo, hi := stats.QuantileRanks(n, q, 0.05)
			b := distuv.Binomial{N: float64(n), P: q}
			coverage := b.CDF(float64(hi-1)) - b.CDF(float64(lo-1))
			// The normal approximation needs about ten units on the small side of the quantile;
			// its rounding errs on the side of coverage.
			if float64(n)*math.Min(q, 1-q) >= 10 && (coverage < 0.94 || coverage > 0.98) {
				t.Errorf("n %d q %g: ranks %d-%d cover %.4f", n, q, lo, hi, coverage)
			}
			if lo < 1 || hi > n || lo > hi {
				t.Errorf("n %d q %g: ranks %d-%d", n, q, lo, hi)
			}
		}
	}
	if lo, hi := stats.QuantileRanks(0, 0.5, 0.05); lo != 0 || hi != 0 {
		t.Fatal("no units")
	}
}

func TestCompareQuantiles(t *testing.T) {
	z := 1.959963984540054
	a := stats.QuantileStatistic{N: 10000, Quantile: 0.9, Estimate: 100, Lower: 98, Upper: 102}
	b := stats.QuantileStatistic{N: 10000, Quantile: 0.9, Estimate: 106, Lower: 103, Upper: 109}
	r := stats.CompareQuantiles(a, b, stats.FrequentistOptions{})
	se := math.Sqrt(math.Pow(4/(2*z), 2) + math.Pow(6/(2*z), 2))
	if !r.Valid || math.Abs(r.Estimate-6) > 1e-12 || math.Abs(r.StandardError-se) > 1e-12 || !r.Significant {
		t.Fatalf("%+v, want se %v", r, se)
	}
	rel := stats.CompareQuantiles(a, b, stats.FrequentistOptions{Relative: true})
	if math.Abs(rel.Estimate-0.06) > 1e-12 || !rel.Significant {
		t.Fatalf("relative %+v", rel)
	}
	// Degenerate: an interval of zero width, a control quantile of 0 on the relative scale.
	flat := stats.QuantileStatistic{N: 100, Quantile: 0.5, Estimate: 0, Lower: 0, Upper: 0}
	for _, r := range []stats.FrequentistResult{stats.CompareQuantiles(flat, b, stats.FrequentistOptions{}),
		stats.CompareQuantiles(stats.QuantileStatistic{N: 100, Lower: -1, Upper: 1}, b, stats.FrequentistOptions{Relative: true})} {
		if r.Valid || r.PValue != 1 || r.Reason == "" {
			t.Fatalf("degenerate %+v", r)
		}
	}
}
