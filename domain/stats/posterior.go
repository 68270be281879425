package stats

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/mathext"
)

// family is the shape of a posterior distribution.
type family uint8

const (
	betaFamily   family = iota + 1 // conversion rate: Beta(a, b), integrated on t = logit(x)
	gammaFamily                    // events per user: Gamma(shape a, rate b), on t = log(x)
	normalFamily                   // mean value per user: Normal(a, b), on t = x
)

const (
	// tailMass bounds the posterior mass left outside an integration window on each side.
	tailMass = 1e-15
	// tableTol is the largest accepted difference between the 5-point Gauss–Legendre integral of
	// the density over a table interval and the sum over its two halves. The halves are kept, and
	// their error is about 2^-10 of that difference: below 1e-15 per interval.
	tableTol = 1e-12
	// maxDepth bounds the bisection of an interval (2^-40 of its width).
	maxDepth = 40
	// maxIntervals caps the initial intervals of a table or a grid piece; windows are at most a few
	// hundred standard deviations wide, so it never binds in practice.
	maxIntervals = 4096
)

// posterior is one variation's posterior distribution of its metric, handled on a transformed
// axis t on which its density is smooth and bounded whatever the parameters: the logit of a rate
// (a Beta(0.5, b) density is unbounded at 0 on the rate axis but decays like e^{t/2} on the logit
// axis), the log of a Poisson rate, the value itself for a normal. Every integral of this package
// is taken on t.
type posterior struct {
	fam      family
	a, b     float64 // beta: alpha, beta; gamma: shape, rate; normal: mean, sd
	logC     float64 // log normalising constant of the density on t, calibrated numerically
	t0, x0   float64 // beta and gamma: the mode on t, and x there
	logMode  float64 // log density at t0 (same calibration as logC)
	mean, sd float64 // mean and standard deviation on t (exact for beta and gamma)
	lo, hi   float64 // window on t holding all but tailMass on each side
	cdfLo    float64 // exact CDF at lo
	sfHi     float64 // exact survival at hi
	// The CDF table: the CDF at each anchor point at[i], at[0] = lo, at[len-1] = hi.
	at, cum []float64
}

func newBeta(a, b float64) *posterior {
	p := &posterior{fam: betaFamily, a: a, b: b}
	p.logC = -mathext.Lbeta(a, b)
	p.t0, p.x0 = math.Log(a)-math.Log(b), a/(a+b)
	p.logMode = a*math.Log(p.x0) + b*(math.Log(b)-math.Log(a+b)) + p.logC
	p.mean = digamma(a) - digamma(b)
	p.sd = math.Sqrt(trigamma(a) + trigamma(b))
	p.build()
	return p
}

func newGamma(shape, rate float64) *posterior {
	p := &posterior{fam: gammaFamily, a: shape, b: rate}
	lg, _ := math.Lgamma(shape)
	p.logC = shape*math.Log(rate) - lg
	p.t0 = math.Log(shape) - math.Log(rate)
	p.x0 = shape / rate
	p.logMode = shape*p.t0 - shape + p.logC
	p.mean = digamma(shape) - math.Log(rate)
	p.sd = math.Sqrt(trigamma(shape))
	p.build()
	return p
}

func newNormal(mean, sd float64) *posterior {
	p := &posterior{fam: normalFamily, a: mean, b: sd, mean: mean, sd: sd}
	p.logC = -math.Log(sd) - 0.5*math.Log(2*math.Pi)
	// Φ(-8.3) = 5e-17: the window needs no search and the CDF is direct, so no table.
	p.lo, p.hi = mean-8.3*sd, mean+8.3*sd
	return p
}

// same reports whether two posteriors are the same distribution.
func (p *posterior) same(q *posterior) bool { return p.fam == q.fam && p.a == q.a && p.b == q.b }

// x maps t back to the metric.
func (p *posterior) x(t float64) float64 {
	switch p.fam {
	case betaFamily:
		return logistic(t)
	case gammaFamily:
		return math.Exp(t)
	}
	return t
}

// logDensity is the log of the density on t.
//
// Near the mode (|t − t0| < 1, which holds the whole window once there are more than a handful
// of observations) it is written relative to the mode, so that the large terms cancel
// analytically rather than in floating point: with d = t − t0 and e = expm1(d),
//
//	beta:  −a·log1p(−(1−x0)·e/(1+e)) − b·log1p(x0·e) + log f(t0)
//	gamma: a·(d − e) + log f(t0)
//
// Their rounding error is about √a·ε instead of a·ε (1e-13 rather than 1e-10 at a million
// conversions); the error of the constant log f(t0) is removed by the calibration in build.
func (p *posterior) logDensity(t float64) float64 {
	if d := t - p.t0; p.fam != normalFamily && math.Abs(d) < 1 {
		e := math.Expm1(d)
		if p.fam == betaFamily {
			return -p.a*math.Log1p(-(1-p.x0)*e/(1+e)) - p.b*math.Log1p(p.x0*e) + p.logMode
		}
		return p.a*(d-e) + p.logMode
	}
	switch p.fam {
	case betaFamily:
		// log x = -softplus(-t), log(1-x) = -softplus(t), sharing one exp and one log1p.
		l := math.Log1p(math.Exp(-math.Abs(t)))
		if t > 0 {
			return -p.a*l - p.b*(t+l) + p.logC
		}
		return -p.a*(l-t) - p.b*l + p.logC
	case gammaFamily:
		return p.a*t - p.b*math.Exp(t) + p.logC
	}
	z := (t - p.a) / p.b
	return -0.5*z*z + p.logC
}

func (p *posterior) density(t float64) float64 { return math.Exp(p.logDensity(t)) }

// cdfExact and sfExact are the CDF and survival on t from the regularized incomplete beta and
// gamma functions, each computed in the tail where it is small, so that they keep relative
// precision there. They set the windows and anchor the tables.
func (p *posterior) cdfExact(t float64) float64 {
	switch p.fam {
	case betaFamily:
		return betaLower(p.a, p.b, t)
	case gammaFamily:
		return gammaLower(p.a, p.b, t)
	}
	return normalCDF((t - p.a) / p.b)
}

func (p *posterior) sfExact(t float64) float64 {
	switch p.fam {
	case betaFamily:
		return betaLower(p.b, p.a, -t) // 1 - I_x(a,b) = I_{1-x}(b,a)
	case gammaFamily:
		y := p.b * math.Exp(t)
		if math.IsInf(y, 1) {
			return 0
		}
		return mathext.GammaIncRegComp(p.a, y)
	}
	return normalSF((t - p.a) / p.b)
}

// betaLower is I_x(a, b) at x = logistic(t). Below x = 1e-300 it keeps the leading term of the
// series, x^a/(a B(a,b)), exact there to double precision for any b this package sees.
func betaLower(a, b, t float64) float64 {
	if t < -690 {
		return math.Exp(a*t - math.Log(a) - mathext.Lbeta(a, b))
	}
	return mathext.RegIncBeta(a, b, logistic(t))
}

// gammaLower is P(a, rate·e^t), with the leading series term (rate·x)^a/Γ(a+1) where rate·x
// underflows.
func gammaLower(a, rate, t float64) float64 {
	ly := t + math.Log(rate)
	if ly < -690 {
		lg, _ := math.Lgamma(a + 1)
		return math.Exp(a*ly - lg)
	}
	return mathext.GammaIncReg(a, math.Exp(ly))
}

// build finds the window and fills the CDF table. The CDF at lo is exact; each later anchor adds
// the 5-point Gauss–Legendre integral of the density over the interval before it. Intervals start
// one standard deviation wide and are halved until the rule agrees with the sum over the halves
// (tableTol), which adapts the table to skewed densities whose shape changes on a scale much
// shorter than their standard deviation (a Beta(0.01, 5) on the logit axis). The density is then
// rescaled so that the table reaches exactly 1 − sfHi at hi, which removes the rounding of the
// normalising constant (log B(a,b) of numbers near 10^7 carries about 1e-9 of it).
func (p *posterior) build() {
	k := 8.0
	for range 40 {
		p.lo = p.mean - k*p.sd
		if p.cdfExact(p.lo) <= tailMass {
			break
		}
		k *= 1.3
	}
	k = 8
	for range 40 {
		p.hi = p.mean + k*p.sd
		if p.sfExact(p.hi) <= tailMass {
			break
		}
		k *= 1.3
	}
	p.cdfLo, p.sfHi = p.cdfExact(p.lo), p.sfExact(p.hi)

	n := int(math.Ceil((p.hi - p.lo) / p.sd))
	n = max(1, min(n, maxIntervals))
	width := (p.hi - p.lo) / float64(n)
	p.at = append(make([]float64, 0, 8*n), p.lo)
	incs := make([]float64, 0, 8*n)
	for i := range n {
		u, v := p.lo+float64(i)*width, p.lo+float64(i+1)*width
		if i == n-1 {
			v = p.hi
		}
		incs = p.refine(u, v, p.integrate(u, v), 0, incs)
	}
	var total float64
	for _, inc := range incs {
		total += inc
	}
	scale := 1.0
	if want := 1 - p.cdfLo - p.sfHi; total > 0 && want > 0 {
		scale = want / total
	}
	p.logC += math.Log(scale)
	p.logMode += math.Log(scale)
	p.cum = make([]float64, len(p.at))
	acc := p.cdfLo
	p.cum[0] = acc
	for i, inc := range incs {
		acc += inc * scale
		p.cum[i+1] = acc
	}
}

// refine appends to p.at the anchors of [u, v] (whose integral is whole) after u, and returns
// incs with the integrals between them.
func (p *posterior) refine(u, v, whole float64, depth int, incs []float64) []float64 {
	m := u + (v-u)/2
	l, r := p.integrate(u, m), p.integrate(m, v)
	if math.Abs(l+r-whole) <= tableTol || depth >= maxDepth {
		p.at = append(p.at, m, v)
		return append(incs, l, r)
	}
	incs = p.refine(u, m, l, depth+1, incs)
	return p.refine(m, v, r, depth+1, incs)
}

// integrate is the 5-point Gauss–Legendre integral of the density over [u, v] (u > v allowed).
func (p *posterior) integrate(u, v float64) float64 {
	c, r := (u+v)/2, (v-u)/2
	var s float64
	for i, x := range gl5x {
		s += gl5w[i] * p.density(c+r*x)
	}
	return s * r
}

// cdf is the CDF on t: the nearest anchor plus the integral of the density from it (at most half
// an accepted table interval away). Outside the window it is 0 or 1, which is off by at most tailMass.
func (p *posterior) cdf(t float64) float64 {
	if p.fam == normalFamily {
		return normalCDF((t - p.a) / p.b)
	}
	if t <= p.lo {
		return 0
	}
	if t >= p.hi {
		return 1
	}
	// The nearest anchor: at[i-1] < t <= at[i].
	i := sort.SearchFloat64s(p.at, t)
	if i > 0 && t-p.at[i-1] < p.at[i]-t {
		i--
	}
	return clamp01(p.cum[i] + p.integrate(p.at[i], t))
}

// quantile is the t at which the CDF equals q, by safeguarded Newton on the table (so it agrees
// with every probability computed from the same table).
func (p *posterior) quantile(q float64) float64 {
	if p.fam == normalFamily {
		return p.a + p.b*normalQuantile(q)
	}
	s0 := p.mean + p.sd*normalQuantile(q)
	return solveIncreasing(func(t float64) (float64, float64) {
		return p.cdf(t) - q, p.density(t)
	}, s0, p.sd, 1e-13)
}

// normalQuantile is Φ⁻¹(q) for the first guesses and for normal intervals.
func normalQuantile(q float64) float64 { return mathext.NormalQuantile(q) }
