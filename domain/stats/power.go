package stats

import (
	"math"

	"github.com/vexil-flags/vexil/domain"
	"gonum.org/v1/gonum/stat/distuv"
)

// PlanInput is what sizing an experiment needs.
type PlanInput struct {
	// Proportion is true for a conversion goal: Baseline is then the control's conversion rate
	// and the standard deviation follows from it.
	Proportion bool `json:"proportion"`
	// Baseline is the control's conversion rate or mean per user.
	Baseline float64 `json:"baseline"`
	// StandardDeviation is the metric's standard deviation per user (count and value goals).
	StandardDeviation float64 `json:"standard_deviation"`
	// MDE is the minimum detectable effect, relative to the baseline (0.05: a 5% change).
	MDE float64 `json:"mde"`
	// Power is the probability of detecting an effect of MDE (0.8 if 0); Alpha the two-sided
	// significance level (0.05 if 0).
	Power float64 `json:"power"`
	Alpha float64 `json:"alpha"`
	// Variations is the number of variations, the control included (2 if 0).
	Variations int `json:"variations"`
	// DailyUsers is the users who reach the flag per day, and Allocation the share of them in
	// the experiment (1 if 0); both only for the duration.
	DailyUsers float64 `json:"daily_users"`
	Allocation float64 `json:"allocation"`
}

// Plan is the size and expected duration of an experiment.
type Plan struct {
	UsersPerVariation int64   `json:"users_per_variation"`
	TotalUsers        int64   `json:"total_users"`
	Power             float64 `json:"power"`
	Alpha             float64 `json:"alpha"`
	// Days is the expected duration at DailyUsers × Allocation new users a day (0 when the
	// traffic is unknown or zero: the duration cannot be estimated).
	Days float64 `json:"days"`
}

// PlanExperiment sizes a two-sided fixed-horizon test of each variation against the control:
//
//	n = (z_{1−α/2}·s₀ + z_{power}·s₁)² / δ²
//
// per variation, with δ = MDE × Baseline. For proportions (Evan Miller's sample size
// calculator) s₀ = √(2p(1−p)) under the null and s₁ = √(p(1−p) + p′(1−p′)) under the
// alternative, p′ = p + δ; for means s₀ = s₁ = σ√2. No correction for several variations is
// applied (as GrowthBook and Evan Miller): with a Holm or Benjamini–Hochberg correction, size
// with alpha divided by the number of comparisons. A sequential analysis needs more users than
// this fixed-horizon size.
//
// Errors (*domain.Error, EInvalid): a baseline that is not positive and finite (or not below 1
// for a proportion), an MDE that is not positive (or takes a proportion out of (0, 1)), a
// standard deviation that is not positive for a mean, power or alpha outside (0, 1), fewer than
// 2 variations, a negative daily traffic, an allocation outside [0, 1].
func PlanExperiment(in PlanInput) (Plan, error) {
	if in.Power == 0 {
		in.Power = 0.8
	}
	if in.Alpha == 0 {
		in.Alpha = 0.05
	}
	if in.Variations == 0 {
		in.Variations = 2
	}
	if in.Allocation == 0 {
		in.Allocation = 1
	}
	switch {
	case !(in.Baseline > 0) || math.IsInf(in.Baseline, 1) || (in.Proportion && in.Baseline >= 1):
		return Plan{}, domain.Invalid("baseline", "baseline must be a positive finite number (a rate below 1 for a conversion goal), got %g", in.Baseline)
	case !(in.MDE > 0) || math.IsInf(in.MDE, 1):
		return Plan{}, domain.Invalid("mde", "the minimum detectable effect must be a positive relative change, got %g", in.MDE)
	case in.Proportion && in.Baseline*(1+in.MDE) >= 1:
		return Plan{}, domain.Invalid("mde", "a %g%% change takes the conversion rate %g to 1 or more", 100*in.MDE, in.Baseline)
	case !in.Proportion && (!(in.StandardDeviation > 0) || math.IsInf(in.StandardDeviation, 1)):
		return Plan{}, domain.Invalid("standard_deviation", "the standard deviation per user must be positive and finite, got %g", in.StandardDeviation)
	case !(in.Power > 0 && in.Power < 1):
		return Plan{}, domain.Invalid("power", "power must be between 0 and 1, got %g", in.Power)
	case !(in.Alpha > 0 && in.Alpha < 1):
		return Plan{}, domain.Invalid("alpha", "alpha must be between 0 and 1, got %g", in.Alpha)
	case in.Variations < 2 || in.Variations > 1000:
		return Plan{}, domain.Invalid("variations", "an experiment has 2 to 1000 variations, got %d", in.Variations)
	case !(in.DailyUsers >= 0) || math.IsInf(in.DailyUsers, 1):
		return Plan{}, domain.Invalid("daily_users", "daily users must be a finite number, not negative, got %g", in.DailyUsers)
	case !(in.Allocation > 0 && in.Allocation <= 1):
		return Plan{}, domain.Invalid("allocation", "allocation must be a share between 0 and 1, got %g", in.Allocation)
	}
	za := distuv.UnitNormal.Quantile(1 - in.Alpha/2)
	zb := distuv.UnitNormal.Quantile(in.Power)
	delta := in.MDE * in.Baseline
	var s0, s1 float64
	if in.Proportion {
		p, q := in.Baseline, in.Baseline+delta
		s0 = math.Sqrt(2 * p * (1 - p))
		s1 = math.Sqrt(p*(1-p) + q*(1-q))
	} else {
		s0 = in.StandardDeviation * math.Sqrt2
		s1 = s0
	}
	root := (za*s0 + zb*s1) / delta
	n := math.Ceil(root * root)
	if !(n < 1e15) {
		return Plan{}, domain.Invalid("mde", "the effect is too small to detect with any practical number of users")
	}
	plan := Plan{UsersPerVariation: int64(n), TotalUsers: int64(n) * int64(in.Variations), Power: in.Power, Alpha: in.Alpha}
	if in.DailyUsers > 0 {
		plan.Days = math.Ceil(float64(plan.TotalUsers) / (in.DailyUsers * in.Allocation))
	}
	return plan, nil
}
