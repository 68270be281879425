package stats

import (
	"math"

	"gonum.org/v1/gonum/integrate/quad"
	"gonum.org/v1/gonum/mathext"
)

// Gauss–Legendre rules on [-1, 1]: gl10 for the comparison grids, gl5 for the short pieces of a
// CDF table (one anchor interval, or half of one, where the density is smooth on that scale).
var (
	gl10x, gl10w = legendre(10)
	gl5x, gl5w   = legendre(5)
)

func legendre(n int) (x, w []float64) {
	x, w = make([]float64, n), make([]float64, n)
	quad.Legendre{}.FixedLocations(x, w, -1, 1)
	return x, w
}

// softplus is log(1+e^t) without overflow or loss of precision in either tail.
func softplus(t float64) float64 {
	if t > 0 {
		return t + math.Log1p(math.Exp(-t))
	}
	return math.Log1p(math.Exp(t))
}

// logistic is 1/(1+e^-t), precise in the lower tail (it returns e^t for very negative t).
func logistic(t float64) float64 {
	if t >= 0 {
		return 1 / (1 + math.Exp(-t))
	}
	e := math.Exp(t)
	return e / (1 + e)
}

// digamma is ψ(x) = d/dx log Γ(x).
func digamma(x float64) float64 { return mathext.Digamma(x) }

// trigamma is ψ'(x) for x > 0: the recurrence ψ'(x) = ψ'(x+1) + 1/x² up to x >= 8, then the
// asymptotic series (error below 1e-13 there). It sets scales and first guesses only.
func trigamma(x float64) float64 {
	var acc float64
	for x < 8 {
		acc += 1 / (x * x)
		x++
	}
	z := 1 / (x * x)
	return acc + 1/x + z/2 + z/x*(1.0/6-z*(1.0/30-z*(1.0/42-z/30)))
}

// normalCDF and normalSF are Φ(z) and 1-Φ(z), each precise in its own tail.
func normalCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }
func normalSF(z float64) float64  { return 0.5 * math.Erfc(z/math.Sqrt2) }

// normalPDF is φ(z).
func normalPDF(z float64) float64 { return math.Exp(-0.5*z*z) / math.Sqrt(2*math.Pi) }

// z975 is Φ⁻¹(0.975), the half-width of a 95% normal interval in standard deviations.
const z975 = 1.959963984540054

// clamp01 maps x into [0, 1]; NaN (which callers never produce) becomes 0.5, a neutral answer.
func clamp01(x float64) float64 {
	switch {
	case x != x:
		return 0.5
	case x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}

// finite returns x, or fallback when x is NaN or infinite: the last guard of every exported number.
func finite(x, fallback float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return fallback
	}
	return x
}

// representable maps ±Inf to ±MaxFloat64 and NaN to 0: for bounds that can honestly be beyond
// the range of a float64 (the uplift over a control whose rate is all but zero).
func representable(x float64) float64 {
	switch {
	case math.IsNaN(x):
		return 0
	case math.IsInf(x, 1):
		return math.MaxFloat64
	case math.IsInf(x, -1):
		return -math.MaxFloat64
	}
	return x
}

// ordered returns the interval [a, b] with its ends in order. Quantiles are solved to about
// 1e-12 (relative, on the axis where they are found), so the two ends of an interval narrower
// than that can come out crossed; in order, the interval is as accurate.
func ordered(a, b float64) [2]float64 {
	if b < a {
		a, b = b, a
	}
	return [2]float64{a, b}
}

// solveIncreasing finds s with f(s) = 0 for an increasing f, given f and its derivative, a first
// guess s0 and a typical scale: safeguarded Newton, falling back on bisection once the root is
// bracketed, and on steps of growing size until it is. Deterministic; tol is on s.
func solveIncreasing(f func(s float64) (v, d float64), s0, scale, tol float64) float64 {
	if !(scale > 0) || math.IsInf(scale, 0) {
		scale = 1
	}
	lo, hi := math.Inf(-1), math.Inf(1)
	s := s0
	for range 200 {
		v, d := f(s)
		if v == 0 {
			return s
		}
		if v < 0 {
			lo = s
		} else {
			hi = s
		}
		next := s - v/d
		if d > 0 && math.Abs(next-s) <= tol*(1+math.Abs(s)) {
			return next
		}
		bracketed := !math.IsInf(lo, 0) && !math.IsInf(hi, 0)
		switch {
		case d > 0 && next > lo && next < hi && math.Abs(next-s) <= 8*scale:
			// Newton step inside what is known.
		case bracketed:
			next = lo + (hi-lo)/2
		case v < 0:
			next = s + scale
			scale *= 2
		default:
			next = s - scale
			scale *= 2
		}
		if math.Abs(next-s) <= tol*(1+math.Abs(s)) || (bracketed && hi-lo <= tol*(1+math.Abs(s))) {
			return next
		}
		s = next
	}
	return s
}
