package stats

import "math"

// EffectPosterior is the normal posterior of a relative effect.
type EffectPosterior struct {
	Mean                float64    `json:"mean"`
	SD                  float64    `json:"sd"`
	CI95                [2]float64 `json:"ci95"`
	ChanceToBeatControl float64    `json:"chance_to_beat_control"`
	Risk                float64    `json:"risk"`
}

// NormalEffect is the Bayesian reading of an effect estimated as N(estimate, se²) (for example
// a CUPED-adjusted relative effect): the likelihood combined with the normal prior when given
// (flat otherwise), the posterior's 95% interval, P(effect in the good direction) and the
// expected loss E[max(0, −effect)] (E[max(0, effect)] when lower is better). This is
// GrowthBook's Bayesian engine on effect moments. A zero se is a certain effect; non-finite
// input gives the uninformative posterior (mean 0, chance 0.5).
func NormalEffect(estimate, se float64, prior *NormalPrior, lower bool) EffectPosterior {
	if !(se >= 0) || math.IsInf(se, 1) || math.IsNaN(estimate) || math.IsInf(estimate, 0) {
		return EffectPosterior{ChanceToBeatControl: 0.5}
	}
	if prior != nil && !(prior.SD > 0) {
		prior = nil
	}
	d := normalUpdate(estimate, se*se, prior)
	out := EffectPosterior{Mean: d.mean, SD: d.sd, CI95: d.ci95()}
	out.ChanceToBeatControl, out.Risk = d.chanceAndRisk(lower)
	return out
}
