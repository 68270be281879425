package stats

import (
	"fmt"
	"math"

	"github.com/vexil-flags/vexil/domain"
)

// MaxUsers bounds the users of one variation. Far above any real experiment, it keeps every
// count exact in a float64 and the posterior densities accurate to about 1e-7 (the error of the
// log density grows with the counts).
const MaxUsers = 10_000_000_000

// Prior parameters are accepted in [minPriorParameter, maxPriorParameter]. Below 0.001 a Beta or
// Gamma prior is improper for every practical purpose and its posterior with no data cannot be
// integrated in double precision; above MaxUsers it would outweigh any experiment.
const (
	minPriorParameter = 1e-3
	maxPriorParameter = MaxUsers
)

// BetaPrior is the prior of a conversion rate, Beta(Alpha, Beta): Alpha-1 conversions and Beta-1
// non-conversions seen before the experiment, roughly. The zero value means DefaultBetaPrior.
type BetaPrior struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
}

// DefaultBetaPrior is the uniform prior Beta(1, 1): every rate equally likely.
var DefaultBetaPrior = BetaPrior{Alpha: 1, Beta: 1}

// ConversionArm is one variation's data for a conversion goal: users exposed (first exposure
// decides the variation) and, of those, users who converted at least once.
type ConversionArm struct {
	Variation   string `json:"variation"`
	Users       int64  `json:"users"`
	Conversions int64  `json:"conversions"`
}

// ConversionVariation is the analysis of one variation for a conversion goal.
type ConversionVariation struct {
	Variation   string `json:"variation"`
	Control     bool   `json:"control"`
	Users       int64  `json:"users"`
	Conversions int64  `json:"conversions"`
	// Rate is the observed conversion rate, Conversions/Users (0 with no users).
	Rate float64 `json:"rate"`
	// PosteriorAlpha and PosteriorBeta are the parameters of the posterior Beta of the rate.
	PosteriorAlpha float64 `json:"posterior_alpha"`
	PosteriorBeta  float64 `json:"posterior_beta"`
	// PosteriorMean is the posterior mean of the rate, PosteriorAlpha/(PosteriorAlpha+PosteriorBeta).
	PosteriorMean float64 `json:"posterior_mean"`
	// CI95 is the equal-tailed 95% credible interval of the rate (posterior 2.5% and 97.5%
	// quantiles).
	CI95 [2]float64 `json:"ci95"`
	// ChanceToBeatControl is the posterior probability that this variation's rate is better than
	// the control's (higher, or lower for a GoalDecrease goal). 0.5 for the control itself.
	ChanceToBeatControl float64 `json:"chance_to_beat_control"`
	// ProbabilityToBeBest is the posterior probability that this variation has the best rate of
	// all; the values of all variations sum to 1.
	ProbabilityToBeBest float64 `json:"probability_to_be_best"`
	// ExpectedLoss (risk) is the expected shortfall of this variation's rate from the best rate
	// if it were chosen, E[max_j X_j − X_i] (E[X_i − min_j X_j] when lower is better), in
	// absolute rate units (0.001 is a tenth of a percentage point).
	ExpectedLoss float64 `json:"expected_loss"`
	// Uplift is the relative change of the posterior mean over the control's,
	// PosteriorMean/control PosteriorMean − 1 (0 for the control).
	Uplift float64 `json:"uplift"`
	// UpliftCI95 is the equal-tailed 95% credible interval of X/X_control − 1.
	UpliftCI95 [2]float64 `json:"uplift_ci95"`
}

// ConversionResult is the analysis of a conversion goal across the variations of an experiment.
type ConversionResult struct {
	Control    int                   `json:"control"`
	Direction  domain.GoalDirection  `json:"direction"`
	Prior      BetaPrior             `json:"prior"`
	Variations []ConversionVariation `json:"variations"`
}

// AnalyzeConversion analyses a conversion goal with a Beta-Binomial model: each variation's rate
// has the posterior Beta(prior.Alpha + conversions, prior.Beta + users − conversions),
// independently. control indexes arms. The zero prior means DefaultBetaPrior.
//
// Every probability is a deterministic integral (see the package documentation for the method
// and its error bound); repeated calls give identical results.
//
// Degenerate inputs give defined answers:
//   - A variation with no users has Rate 0 and the prior as its posterior (CI95 is the prior's
//     interval); it takes no part in the comparisons: ChanceToBeatControl 0.5,
//     ProbabilityToBeBest 0, ExpectedLoss 0, Uplift 0 and UpliftCI95 [0, 0]. If the control has no
//     users, every variation gets those values for its comparison with the control. If no
//     variation has users, ProbabilityToBeBest is 1/len(arms) for each.
//   - A single variation (the control alone) has ProbabilityToBeBest 1 and ExpectedLoss 0.
//   - No conversions, or all users converted, are ordinary posteriors (Beta(α, β+n), Beta(α+n, β)).
//   - Variations with identical posteriors have ChanceToBeatControl exactly 0.5 against each
//     other and equal ProbabilityToBeBest.
//
// Errors (*domain.Error, code domain.EInvalid): no arms, control out of range, negative counts,
// conversions above users, more than MaxUsers users, a prior parameter outside [0.001, MaxUsers],
// a direction other than increase, decrease or empty (increase).
func AnalyzeConversion(arms []ConversionArm, control int, prior BetaPrior, dir domain.GoalDirection) (ConversionResult, error) {
	if prior == (BetaPrior{}) {
		prior = DefaultBetaPrior
	}
	dir, err := direction(dir)
	if err != nil {
		return ConversionResult{}, err
	}
	if err := validateConversion(arms, control, prior); err != nil {
		return ConversionResult{}, err
	}
	res := ConversionResult{Control: control, Direction: dir, Prior: prior,
		Variations: make([]ConversionVariation, len(arms))}
	posts := make([]*posterior, len(arms))
	means := make([]float64, len(arms))
	for i, a := range arms {
		pa := prior.Alpha + float64(a.Conversions)
		pb := prior.Beta + float64(a.Users-a.Conversions)
		posts[i], means[i] = newBeta(pa, pb), pa/(pa+pb)
		v := ConversionVariation{
			Variation: a.Variation, Control: i == control, Users: a.Users, Conversions: a.Conversions,
			PosteriorAlpha: pa, PosteriorBeta: pb, PosteriorMean: means[i],
		}
		if a.Users > 0 {
			v.Rate = float64(a.Conversions) / float64(a.Users)
		}
		res.Variations[i] = v
	}
	outs := compareRates(posts, means, control, func(i int) bool { return arms[i].Users > 0 },
		dir == domain.GoalDecrease, logistic,
		func(t, c *posterior) (lo, hi float64) {
			return betaRatioQuantile(t, c, 0.025) - 1, betaRatioQuantile(t, c, 0.975) - 1
		})
	for i, o := range outs {
		v := &res.Variations[i]
		v.CI95, v.ChanceToBeatControl, v.ProbabilityToBeBest, v.ExpectedLoss = o.ci95, o.chance, o.best, o.loss
		v.Uplift, v.UpliftCI95 = o.uplift, o.upliftCI95
	}
	return res, nil
}

func validateConversion(arms []ConversionArm, control int, prior BetaPrior) error {
	if err := validateArms(len(arms), control); err != nil {
		return err
	}
	if err := validatePriorParameter("prior.alpha", prior.Alpha); err != nil {
		return err
	}
	if err := validatePriorParameter("prior.beta", prior.Beta); err != nil {
		return err
	}
	for i, a := range arms {
		field := fmt.Sprintf("arms[%d]", i)
		if err := validateUsers(field+".users", a.Users); err != nil {
			return err
		}
		if a.Conversions < 0 {
			return domain.Invalid(field+".conversions", "conversions must not be negative, got %d", a.Conversions)
		}
		if a.Conversions > a.Users {
			return domain.Invalid(field+".conversions", "conversions (%d) exceed users (%d)", a.Conversions, a.Users)
		}
	}
	return nil
}

func validateArms(n, control int) error {
	if n == 0 {
		return domain.Invalid("arms", "at least one variation is required")
	}
	if control < 0 || control >= n {
		return domain.Invalid("control", "control index %d is outside the %d variations", control, n)
	}
	return nil
}

func validateUsers(field string, users int64) error {
	if users < 0 {
		return domain.Invalid(field, "users must not be negative, got %d", users)
	}
	if users > MaxUsers {
		return domain.Invalid(field, "users (%d) exceed the maximum of %d", users, int64(MaxUsers))
	}
	return nil
}

func validatePriorParameter(field string, v float64) error {
	if !(v >= minPriorParameter && v <= maxPriorParameter) {
		return domain.Invalid(field, "prior parameter must be between %g and %g, got %g", minPriorParameter, float64(maxPriorParameter), v)
	}
	return nil
}

// participants lists the arms that take part in the comparisons and the control's position
// among them (-1 when the control does not take part).
func participants(n, control int, ok func(i int) bool) (active []int, activeControl int) {
	activeControl = -1
	for i := range n {
		if ok(i) {
			if i == control {
				activeControl = len(active)
			}
			active = append(active, i)
		}
	}
	return active, activeControl
}

func pick(posts []*posterior, idx []int) []*posterior {
	out := make([]*posterior, len(idx))
	for j, i := range idx {
		out[j] = posts[i]
	}
	return out
}

// spread copies a comparison of the participating arms back onto all variations; arms that do not
// take part keep chance 0.5 and loss 0, with best 0, or 1/n each when nobody takes part.
func spread[V any](vs []V, active []int, cmp comparison, set func(v *V, chance, best, loss float64)) {
	if len(active) == 0 {
		for i := range vs {
			set(&vs[i], 0.5, 1/float64(len(vs)), 0)
		}
		return
	}
	for i := range vs {
		set(&vs[i], 0.5, 0, 0)
	}
	for j, i := range active {
		set(&vs[i], cmp.chance[j], cmp.best[j], cmp.loss[j])
	}
}

// betaRatioQuantile is the q-quantile of X_t/X_c for independent Beta posteriors: the root in
// s = log r of H(s) − q, with H(s) = P(X_t ≤ e^s X_c) a one-dimensional integral (see ratioGrid).
// The first guess is the normal approximation of log X_t − log X_c with its exact moments (ψ and
// ψ'); safeguarded Newton then solves to 1e-12 on s on a grid fitted at the guess, and the grid
// is refitted at the solution, until H there is within 1e-9 of q or the solution is within a
// thousandth of a log-rate standard deviation of where the grid was fitted.
func betaRatioQuantile(tr, c *posterior, q float64) float64 {
	m := digamma(tr.a) - digamma(tr.a+tr.b) - digamma(c.a) + digamma(c.a+c.b)
	v := trigamma(tr.a) - trigamma(tr.a+tr.b) + trigamma(c.a) - trigamma(c.a+c.b)
	sd := math.Sqrt(math.Max(v, 1e-30))
	// A shift of s by a small fraction of either log-rate's spread moves the carried density by a
	// small fraction of its width on u, so the grid fitted before the shift still resolves it.
	stay := 1e-3 * math.Sqrt(math.Max(1e-300, math.Min(
		trigamma(tr.a)-trigamma(tr.a+tr.b), trigamma(c.a)-trigamma(c.a+c.b))))
	s := m + sd*normalQuantile(q)
	var g ratioGrid
	for range 8 {
		g.fit(tr, c, s)
		if h, _ := g.cdf(s); math.Abs(h-q) <= 1e-9 {
			break
		}
		s = solveIncreasing(func(s float64) (float64, float64) {
			h, dh := g.cdf(s)
			return h - q, dh
		}, s, sd, 1e-12)
		if math.Abs(s-g.fitted) <= stay && (s > 0) == g.upper {
			break
		}
	}
	return math.Exp(s)
}

// ratioGrid holds the quadrature of H(s) = P(X_t ≤ e^s X_c), taken on the logit axis u of the
// variation with the larger rate at the point of comparison: for s ≤ 0 (r ≤ 1) the control's,
//
//	H(s) = ∫ f_c(u) F_t(logit(e^s x(u))) du,
//
// and for s > 0 the treatment's, H(s) = ∫ f_t(u) (1 − F_c(logit(e^−s x(u)))) du. Either way the
// other variation is evaluated at y = e^σ x(u) with σ ≤ 0, so y ≤ x and the map from u to the
// other's logit τ contracts (dτ/du = (1−x)/(1−y) ≤ 1): the other's density, carried onto u, is
// never narrower than on its own axis. (Integrating on the wrong side stretches it without bound
// when one rate is near 1 and the other near 0.) The grid is cut where the other's axis, at two
// standard deviations spacing, maps onto u, and refined like every grid (to ratioTol).
type ratioGrid struct {
	over, other *posterior
	upper       bool // integrating over the treatment: H is 1 − the other's CDF
	fitted      float64
	nodes       []ratioNode
}

// ratioNode is a node on u with its weight times the density there, and log x(u).
type ratioNode struct{ wd, lx float64 }

func (g *ratioGrid) fit(tr, c *posterior, s float64) {
	g.over, g.other, g.upper = c, tr, false
	if s > 0 {
		g.over, g.other, g.upper = tr, c, true
	}
	g.fitted = s
	sigma := g.sigma(s)
	over, other := g.over, g.other
	// mapped is the u at which e^σ x(u) = x(τ), +Inf when x(τ) ≥ e^σ.
	mapped := func(tau float64) float64 {
		lu := -softplus(-tau) - sigma
		if lu >= 0 {
			return math.Inf(1)
		}
		return lu - math.Log(-math.Expm1(lu))
	}
	features := []feature{{over.lo, over.hi, over.sd, over.density, nil}}
	lo, hi := math.Max(mapped(other.lo), over.lo), math.Min(mapped(other.hi), over.hi)
	if lo < hi {
		n := int(math.Ceil((other.hi - other.lo) / (2 * other.sd)))
		n = max(1, min(n, maxIntervals))
		cuts := make([]float64, 0, n+1)
		for j := range n + 1 {
			if u := mapped(other.lo + float64(j)*(other.hi-other.lo)/float64(n)); u > lo && u < hi {
				cuts = append(cuts, u)
			}
		}
		// The other's density carried onto u: f(τ(u))·dτ/du, τ(u) = logit(e^σ x(u)).
		carried := func(u float64) float64 {
			ly := -softplus(-u) + sigma
			omy := -math.Expm1(ly)
			return other.density(ly-math.Log(omy)) * logistic(-u) / omy
		}
		features = append(features, feature{lo, hi, math.Inf(1), carried, cuts})
	}
	g.nodes = g.nodes[:0]
	for _, nd := range grid(features, ratioTol, nil) {
		if wd := nd.w * over.density(nd.t); wd != 0 {
			g.nodes = append(g.nodes, ratioNode{wd: wd, lx: -softplus(-nd.t)})
		}
	}
}

// sigma is the shift of the other variation's rate for s: s over the control, −s over the
// treatment.
func (g *ratioGrid) sigma(s float64) float64 {
	if g.upper {
		return -s
	}
	return s
}

// cdf returns H(s) and dH/ds on the fitted nodes (valid for s near the fitted one, on the same
// side of 0).
func (g *ratioGrid) cdf(s float64) (h, dh float64) {
	sigma := g.sigma(s)
	if (s > 0) != g.upper {
		// Newton crossed r = 1: the other side's grid is needed; refit there.
		g.fit(g.treatment(), g.control(), s)
		sigma = g.sigma(s)
	}
	for _, nd := range g.nodes {
		ly := nd.lx + sigma // log y ≤ log x < 0
		if ly >= 0 {
			continue
		}
		omy := -math.Expm1(ly)
		tau := ly - math.Log(omy)
		f := g.other.cdf(tau)
		if g.upper {
			f = 1 - f
		}
		h += nd.wd * f
		dh += nd.wd * g.other.density(tau) / omy
	}
	return h, dh
}

func (g *ratioGrid) treatment() *posterior {
	if g.upper {
		return g.over
	}
	return g.other
}

func (g *ratioGrid) control() *posterior {
	if g.upper {
		return g.other
	}
	return g.over
}
