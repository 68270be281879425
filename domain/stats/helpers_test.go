package stats_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vexil-flags/vexil/domain"
	"gonum.org/v1/gonum/stat/distuv"
)

// evanMillerBeat is P(X_B > X_A) for X_A ~ Beta(aA, bA) and X_B ~ Beta(aB, bB) with integer aB, by
// Evan Miller's closed form
//
//	P = Σ_{i=0}^{aB−1} B(aA+i, bA+bB) / ((bB+i) B(1+i, bB) B(aA, bA)),
//
// evaluated independently of the package: the ratio of successive terms is rational,
// (aA+i)(bB+i) / ((aA+bA+bB+i)(1+i)), and the first term is B(aA, bA+bB)/B(aA, bA), whose log is
// Σ_{j<bB} log1p(−aA/(aA+bA+j)) when bB is an integer (as with integer priors) and a difference
// of log-gammas otherwise. Everything is summed in log space with compensated sums, so the
// result keeps about 1e-12 even with 10^5 terms.
func evanMillerBeat(aA, bA, aB, bB float64) float64 {
	var logT0 float64
	if bB == math.Trunc(bB) && bB < 5e6 {
		var k kahan
		for j := 0.0; j < bB; j++ {
			k.add(math.Log1p(-aA / (aA + bA + j)))
		}
		logT0 = k.sum()
	} else {
		l1, _ := math.Lgamma(bA + bB)
		l2, _ := math.Lgamma(aA + bA + bB)
		l3, _ := math.Lgamma(bA)
		l4, _ := math.Lgamma(aA + bA)
		logT0 = (l1 - l3) - (l2 - l4)
	}
	// Terms rise then fall; sum exp(logTerm − peak) after finding the peak.
	logs := make([]float64, int(aB))
	var acc kahan
	acc.add(logT0)
	peak := math.Inf(-1)
	for i := range logs {
		logs[i] = acc.sum()
		peak = math.Max(peak, logs[i])
		fi := float64(i)
		acc.add(math.Log((aA+fi)/(aA+bA+bB+fi)) + math.Log((bB+fi)/(1+fi)))
	}
	var s kahan
	for _, l := range logs {
		s.add(math.Exp(l - peak))
	}
	return s.sum() * math.Exp(peak)
}

// kahan is a compensated sum.
type kahan struct{ s, c float64 }

func (k *kahan) add(x float64) {
	y := x - k.c
	t := k.s + y
	k.c = (t - k.s) - y
	k.s = t
}
func (k *kahan) sum() float64 { return k.s }

// monteCarlo draws n joint samples of independent variations and returns, per variation, the
// fraction of draws in which it was the best and the mean and standard error of best − own (the
// loss), best meaning highest (or lowest when lower is true).
type mcResult struct{ best, bestSE, loss, lossSE []float64 }

func monteCarlo(draw []func() float64, n int, lower bool) mcResult {
	k := len(draw)
	wins := make([]float64, k)
	sum := make([]float64, k)
	sum2 := make([]float64, k)
	x := make([]float64, k)
	for range n {
		bi := 0
		for i, d := range draw {
			x[i] = d()
			if (!lower && x[i] > x[bi]) || (lower && x[i] < x[bi]) {
				bi = i
			}
		}
		wins[bi]++
		for i := range x {
			l := x[bi] - x[i]
			if lower {
				l = -l
			}
			sum[i] += l
			sum2[i] += l * l
		}
	}
	r := mcResult{best: make([]float64, k), bestSE: make([]float64, k), loss: make([]float64, k), lossSE: make([]float64, k)}
	fn := float64(n)
	for i := range k {
		p := wins[i] / fn
		r.best[i], r.bestSE[i] = p, math.Sqrt(p*(1-p)/fn)
		m := sum[i] / fn
		r.loss[i], r.lossSE[i] = m, math.Sqrt(math.Max(0, sum2[i]/fn-m*m)/fn)
	}
	return r
}

func betaDraw(a, b float64, seed uint64) func() float64 {
	d := distuv.Beta{Alpha: a, Beta: b, Src: rand.NewPCG(seed, 0x5eed)}
	return d.Rand
}

func gammaDraw(shape, rate float64, seed uint64) func() float64 {
	d := distuv.Gamma{Alpha: shape, Beta: rate, Src: rand.NewPCG(seed, 0x5eed)}
	return d.Rand
}

func normalDraw(mu, sigma float64, seed uint64) func() float64 {
	d := distuv.Normal{Mu: mu, Sigma: sigma, Src: rand.NewPCG(seed, 0x5eed)}
	return d.Rand
}

// mcDraws is the Monte Carlo sample size required by the issue.
const mcDraws = 2_000_000

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Errorf("%s = %.15g, want %.15g (±%.3g, off by %.3g)", name, got, want, tol, math.Abs(got-want))
	}
}

// checkFinite fails on any NaN or infinity among the values.
func checkFinite(t *testing.T, name string, vs ...float64) {
	t.Helper()
	for i, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("%s[%d] = %v", name, i, v)
		}
	}
}

func checkProbability(t *testing.T, name string, p float64) {
	t.Helper()
	if !(p >= 0 && p <= 1) {
		t.Errorf("%s = %v, not a probability", name, p)
	}
}

// wantInvalid checks that err is a *domain.Error with code EInvalid about field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v, want a *domain.Error", err)
	}
	if de.Code != domain.EInvalid || de.Field != field {
		t.Errorf("error = %+v, want code %q field %q", de, domain.EInvalid, field)
	}
}
