package domain

import (
	"fmt"
	"math"
	"slices"
)

// Statistics engines of an experiment (ExperimentAnalysis.Engine).
const (
	EngineBayesian    = "bayesian"
	EngineFrequentist = "frequentist"
)

// Multiple-comparison corrections across variations × goals (ExperimentAnalysis.Correction).
const (
	CorrectionNone              = "none"
	CorrectionHolm              = "holm"               // Holm–Bonferroni: family-wise error rate
	CorrectionBenjaminiHochberg = "benjamini_hochberg" // false discovery rate
)

// Defaults and limits of the analysis settings.
const (
	DefaultAlpha = 0.05
	// DefaultSequentialTuning is GrowthBook's default tuning parameter of its always-valid
	// confidence sequences: the sample size at which the sequence is tightest.
	DefaultSequentialTuning = 5000
	MaxCUPEDLookbackDays    = 180
	MaxConversionWindowHrs  = 24 * 365
)

// ExperimentAnalysis is how an experiment's data is analysed. The zero value is the Bayesian
// engine, no corrections, no CUPED, and every goal counted from the unit's first exposure to the
// end of the experiment with the goal kind's default prior.
type ExperimentAnalysis struct {
	// Engine is bayesian (default) or frequentist.
	Engine string `json:"engine,omitempty"`
	// Alpha is the frequentist significance level (two-sided); 0 means DefaultAlpha.
	Alpha float64 `json:"alpha,omitempty"`
	// Sequential makes the frequentist intervals and p-values always valid (GrowthBook's
	// confidence sequences), so looking at a running experiment any number of times is safe.
	Sequential bool `json:"sequential,omitempty"`
	// SequentialTuning is the confidence sequence's tuning parameter n* (users); 0 means
	// DefaultSequentialTuning.
	SequentialTuning float64 `json:"sequential_tuning,omitempty"`
	// Correction is none (default), holm or benjamini_hochberg, across variations × goals
	// (frequentist engine).
	Correction string `json:"correction,omitempty"`
	// CUPEDLookbackDays enables CUPED when positive: each goal's figures are adjusted by the
	// same goal in this many days before each unit's first exposure.
	CUPEDLookbackDays int `json:"cuped_lookback_days,omitempty"`
	// Goals holds per-goal settings; goals not listed use the defaults.
	Goals []GoalAnalysis `json:"goals,omitempty"`
	// RatioMetrics are metrics of one goal over another per unit (revenue per session: the
	// numerator goal's metric summed over units divided by the denominator's), analysed with
	// delta-method variances.
	RatioMetrics []RatioMetric `json:"ratio_metrics,omitempty"`
}

// RatioMetric is a ratio of two goals the experiment measures. The numerator contributes its
// metric per unit (value, events or converted), the denominator its events per unit.
type RatioMetric struct {
	Key         string `json:"key"`
	Numerator   string `json:"numerator"`
	Denominator string `json:"denominator"`
}

// GoalAnalysis is one goal's analysis settings in an experiment.
type GoalAnalysis struct {
	Goal string `json:"goal"`
	// ConversionWindowHours, when positive, counts only goal events within this many hours after
	// the unit's first exposure.
	ConversionWindowHours float64 `json:"conversion_window_hours,omitempty"`
	// Prior replaces the goal kind's default prior (Bayesian engine): Beta(alpha, beta) for
	// conversion goals, Gamma(shape, rate) for count goals, a normal N(mean, sd²) on the
	// relative effect for value goals.
	Prior *GoalPrior `json:"prior,omitempty"`
	// Quantile, for a value goal, adds the q quantile of the per-unit values (0.5: the median,
	// 0.9: p90) per variation with its distribution-free interval, compared with the control's.
	// 0 is off.
	Quantile float64 `json:"quantile,omitempty"`
}

// GoalPrior is a prior for one goal; which fields apply depends on the goal's kind.
type GoalPrior struct {
	Alpha float64 `json:"alpha,omitempty"`
	Beta  float64 `json:"beta,omitempty"`
	Shape float64 `json:"shape,omitempty"`
	Rate  float64 `json:"rate,omitempty"`
	Mean  float64 `json:"mean,omitempty"`
	SD    float64 `json:"sd,omitempty"`
}

// GoalSettings returns the settings of goal (the zero value when not listed).
func (a ExperimentAnalysis) GoalSettings(goal string) GoalAnalysis {
	for _, g := range a.Goals {
		if g.Goal == goal {
			return g
		}
	}
	return GoalAnalysis{Goal: goal}
}

// EffectiveAlpha is Alpha or its default.
func (a ExperimentAnalysis) EffectiveAlpha() float64 {
	if a.Alpha == 0 {
		return DefaultAlpha
	}
	return a.Alpha
}

// EffectiveSequentialTuning is SequentialTuning or its default.
func (a ExperimentAnalysis) EffectiveSequentialTuning() float64 {
	if a.SequentialTuning == 0 {
		return DefaultSequentialTuning
	}
	return a.SequentialTuning
}

func (a ExperimentAnalysis) clone() ExperimentAnalysis {
	out := a
	out.RatioMetrics = append([]RatioMetric(nil), a.RatioMetrics...)
	out.Goals = nil
	for _, g := range a.Goals {
		if g.Prior != nil {
			p := *g.Prior
			g.Prior = &p
		}
		out.Goals = append(out.Goals, g)
	}
	return out
}

func finitePositive(x float64) bool { return x > 0 && !math.IsInf(x, 1) }

// validateAnalysis checks the settings against the experiment's goals (kind gives a goal's kind
// when known: a quantile needs a value goal); field paths start at "analysis".
func validateAnalysis(a ExperimentAnalysis, goals []string, kind func(goal string) (GoalKind, bool)) *Error {
	switch a.Engine {
	case "", EngineBayesian, EngineFrequentist:
	default:
		return Invalid("analysis.engine", "engine must be %s or %s, not %q", EngineBayesian, EngineFrequentist, truncate(a.Engine, 40))
	}
	if a.Alpha != 0 && !(a.Alpha > 0 && a.Alpha < 0.5) {
		return Invalid("analysis.alpha", "alpha must be between 0 and 0.5 (exclusive), got %g", a.Alpha)
	}
	if a.SequentialTuning != 0 && !(finitePositive(a.SequentialTuning) && a.SequentialTuning <= 1e12) {
		return Invalid("analysis.sequential_tuning", "sequential tuning must be a positive number of users up to 1e12, got %g", a.SequentialTuning)
	}
	switch a.Correction {
	case "", CorrectionNone, CorrectionHolm, CorrectionBenjaminiHochberg:
	default:
		return Invalid("analysis.correction", "correction must be %s, %s or %s, not %q", CorrectionNone, CorrectionHolm,
			CorrectionBenjaminiHochberg, truncate(a.Correction, 40))
	}
	if a.CUPEDLookbackDays < 0 || a.CUPEDLookbackDays > MaxCUPEDLookbackDays {
		return Invalid("analysis.cuped_lookback_days", "CUPED lookback must be 0 (off) to %d days, got %d", MaxCUPEDLookbackDays, a.CUPEDLookbackDays)
	}
	ratios := map[string]int{}
	for i, r := range a.RatioMetrics {
		field := fmt.Sprintf("analysis.ratio_metrics[%d]", i)
		if !ValidKey(r.Key) {
			return Invalid(field+".key", "invalid ratio metric key %q", truncate(r.Key, 120))
		}
		if j, dup := ratios[r.Key]; dup {
			return Invalid(field+".key", "ratio metric %q is already defined (analysis.ratio_metrics[%d])", r.Key, j)
		}
		ratios[r.Key] = i
		for _, g := range []struct{ name, goal string }{{"numerator", r.Numerator}, {"denominator", r.Denominator}} {
			if !slices.Contains(goals, g.goal) {
				return Invalid(field+"."+g.name, "goal %q is not measured by the experiment", truncate(g.goal, 120))
			}
		}
		if r.Numerator == r.Denominator {
			return Invalid(field+".denominator", "a ratio needs two different goals")
		}
	}
	seen := map[string]int{}
	for i, g := range a.Goals {
		field := fmt.Sprintf("analysis.goals[%d]", i)
		if !slices.Contains(goals, g.Goal) {
			return Invalid(field+".goal", "goal %q is not measured by the experiment", truncate(g.Goal, 120))
		}
		if j, dup := seen[g.Goal]; dup {
			return Invalid(field+".goal", "goal %q already has settings (analysis.goals[%d])", g.Goal, j)
		}
		seen[g.Goal] = i
		if w := g.ConversionWindowHours; w != 0 && !(finitePositive(w) && w <= MaxConversionWindowHrs) {
			return Invalid(field+".conversion_window_hours", "conversion window must be 0 (none) or up to %d hours, got %g", MaxConversionWindowHrs, w)
		}
		if q := g.Quantile; q != 0 {
			if !(q > 0 && q < 1) {
				return Invalid(field+".quantile", "quantile must be between 0 and 1 (exclusive), e.g. 0.5 for the median or 0.9 for p90, got %g", q)
			}
			if k, ok := kind(g.Goal); ok && k != GoalValue {
				return Invalid(field+".quantile", "goal %q is a %s goal: quantiles apply to value goals only", truncate(g.Goal, 120), k)
			}
		}
		if p := g.Prior; p != nil {
			for _, f := range []struct {
				name string
				v    float64
				pos  bool
			}{{"alpha", p.Alpha, true}, {"beta", p.Beta, true}, {"shape", p.Shape, true}, {"rate", p.Rate, true},
				{"mean", p.Mean, false}, {"sd", p.SD, true}} {
				if math.IsNaN(f.v) || math.IsInf(f.v, 0) || (f.pos && f.v < 0) {
					return Invalid(field+".prior."+f.name, "prior %s must be finite%s, got %g", f.name, map[bool]string{true: " and not negative"}[f.pos], f.v)
				}
			}
		}
	}
	return nil
}
