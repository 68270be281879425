package stats

import (
	"math"
	"slices"
)

// tolerance is how finely a grid resolves its densities: the largest accepted difference, summed
// over the densities a panel must resolve, between the 10-point Gauss–Legendre integral over the
// panel and the sum over its two halves (halves, whose error is about 2^-20 of that difference,
// are then kept), and the difference below which the panel itself is kept (its error is about
// that difference), which halves the work where the densities are smooth on the panel's scale.
type tolerance struct{ halves, whole float64 }

// comparisonTol serves the probabilities reported directly; ratioTol the integrals inside the
// root finding of uplift quantiles, which need far less than the 1e-9 the quantiles are solved to
// in probability (a quantile error of 1e-10 relative is invisible in an interval).
var (
	comparisonTol = tolerance{halves: 1e-11, whole: 1e-14}
	ratioTol      = tolerance{halves: 1e-9, whole: 1e-12}
)

// feature is a density that a quadrature grid must resolve, and its window on t. Panels are at
// most two scales wide, and also cut at cuts (points of the window where the density's own scale
// changes, for a density carried from another axis; its scale is then +Inf).
type feature struct {
	lo, hi, scale float64
	density       func(t float64) float64
	cuts          []float64
}

// node is one quadrature point on t with its weight.
type node struct{ t, w float64 }

// grid places composite Gauss–Legendre nodes over the union of the features' windows. The axis is
// cut at every window's ends; each piece starts with panels two standard deviations wide of the
// narrowest feature that covers it, and each panel is halved until every covering density is
// integrated to gridTol (so a precise variation next to a vague one, or a skewed density whose
// shape changes faster than its standard deviation, is resolved). Pieces that no window covers
// hold no mass and get no nodes.
func grid(features []feature, tol tolerance, dst []node) []node {
	cuts := make([]float64, 0, 2*len(features))
	for _, f := range features {
		if f.hi > f.lo {
			cuts = append(cuts, f.lo, f.hi)
			cuts = append(cuts, f.cuts...)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	active := make([]feature, 0, len(features))
	for i := 0; i+1 < len(cuts); i++ {
		p, q := cuts[i], cuts[i+1]
		active = active[:0]
		scale := math.Inf(1)
		for _, f := range features {
			if f.lo <= p && f.hi >= q {
				active = append(active, f)
				scale = math.Min(scale, f.scale)
			}
		}
		if len(active) == 0 || q <= p {
			continue
		}
		panels := 1
		if !math.IsInf(scale, 1) {
			panels = int(math.Ceil((q - p) / (2 * scale)))
		}
		panels = max(1, min(panels, maxIntervals))
		width := (q - p) / float64(panels)
		for k := range panels {
			u, v := p+float64(k)*width, p+float64(k+1)*width
			if k == panels-1 {
				v = q
			}
			dst = refinePanel(active, tol, u, v, 0, dst)
		}
	}
	return dst
}

func refinePanel(fs []feature, tol tolerance, u, v float64, depth int, dst []node) []node {
	m := u + (v-u)/2
	var diff float64
	for _, f := range fs {
		diff += math.Abs(gl10(f.density, u, m) + gl10(f.density, m, v) - gl10(f.density, u, v))
	}
	switch {
	case diff <= tol.whole:
		return appendNodes(dst, u, v)
	case diff <= tol.halves || depth >= maxDepth:
		return appendNodes(appendNodes(dst, u, m), m, v)
	}
	dst = refinePanel(fs, tol, u, m, depth+1, dst)
	return refinePanel(fs, tol, m, v, depth+1, dst)
}

func gl10(f func(float64) float64, u, v float64) float64 {
	c, r := (u+v)/2, (v-u)/2
	var s float64
	for i, x := range gl10x {
		s += gl10w[i] * f(c+r*x)
	}
	return s * r
}

func appendNodes(dst []node, u, v float64) []node {
	c, r := (u+v)/2, (v-u)/2
	for j, x := range gl10x {
		dst = append(dst, node{t: c + r*x, w: gl10w[j] * r})
	}
	return dst
}

// comparison is what a set of posteriors says about choosing among them.
type comparison struct {
	chance []float64 // P(arm beats control) in the goal's direction; 0.5 for the control
	best   []float64 // P(arm is the best of all); sums to 1
	loss   []float64 // E[best of all − arm] in the goal's direction, in the metric's units
}

// compare integrates, on one grid shared by all arms, with f_i the density and F_i the CDF:
//
//	chance_i = ∫ f_i F_c          (higher is better; lower: ∫ f_i (1 − F_c))
//	best_i   = ∫ f_i Π_{j≠i} F_j  (lower: Π (1 − F_j))
//	E[max]   = Σ_i ∫ x f_i Π_{j≠i} F_j,  loss_i = E[max] − E[X_i]  (lower: E[X_i] − E[min])
//
// Arms whose posterior equals the control's get chance exactly 0.5, and identical arms get
// identical best probabilities, by symmetry of the computation.
func compare(arms []*posterior, control int, lower bool) comparison {
	k := len(arms)
	res := comparison{chance: make([]float64, k), best: make([]float64, k), loss: make([]float64, k)}
	if k == 0 {
		return res
	}
	if k == 1 {
		res.chance[0], res.best[0] = 0.5, 1
		return res
	}
	features := make([]feature, k)
	for i, a := range arms {
		features[i] = feature{a.lo, a.hi, a.sd, a.density, nil}
	}
	nodes := grid(features, comparisonTol, make([]node, 0, 512))

	dens := make([]float64, k)
	tail := make([]float64, k) // F_j, or 1 − F_j when lower is better
	prefix := make([]float64, k+1)
	means := make([]float64, k)
	var extreme float64 // E[max] or E[min]
	for _, nd := range nodes {
		x := arms[0].x(nd.t)
		for j, a := range arms {
			if nd.t <= a.lo || nd.t >= a.hi {
				dens[j] = 0
			} else {
				dens[j] = a.density(nd.t)
			}
			f := a.cdf(nd.t)
			if lower {
				f = 1 - f
			}
			tail[j] = f
		}
		// Products of the others' tails without division (a tail can be 0).
		prefix[0] = 1
		for j := range k {
			prefix[j+1] = prefix[j] * tail[j]
		}
		suffix := 1.0
		for j := k - 1; j >= 0; j-- {
			if dens[j] != 0 {
				wd := nd.w * dens[j]
				pb := wd * prefix[j] * suffix
				res.best[j] += pb
				extreme += x * pb
				means[j] += x * wd
				if control >= 0 && j != control {
					res.chance[j] += wd * tail[control]
				}
			}
			suffix *= tail[j]
		}
	}
	var sum float64
	for j := range k {
		res.best[j] = clamp01(res.best[j])
		sum += res.best[j]
	}
	for j := range k {
		if sum > 0 {
			res.best[j] /= sum
		} else {
			res.best[j] = 1 / float64(k)
		}
		if lower {
			res.loss[j] = math.Max(0, means[j]-extreme)
		} else {
			res.loss[j] = math.Max(0, extreme-means[j])
		}
		res.loss[j] = finite(res.loss[j], 0)
		switch {
		case control < 0:
			res.chance[j] = 0.5
		case j == control || arms[j].same(arms[control]):
			res.chance[j] = 0.5
		default:
			res.chance[j] = clamp01(res.chance[j])
		}
	}
	return res
}
