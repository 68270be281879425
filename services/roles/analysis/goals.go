package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
)

// analyzeGoal runs the goal kind's Bayesian model (always: it gives each variation's estimate and
// interval, and the probabilities of the Bayesian engine), then, per variation against the
// control, CUPED when configured and the frequentist test under the frequentist engine.
func analyzeGoal(exp *domain.Experiment, g *domain.Goal, control int, d *data) (GoalResult, error) {
	settings := exp.Analysis.GoalSettings(g.Key)
	gr := GoalResult{Goal: g.Key, Kind: g.Kind, Direction: g.Direction, ConversionWindowHours: settings.ConversionWindowHours}
	sums := func(v string) *goalSums {
		if s := d.goals[g.Key][v]; s != nil {
			return s
		}
		return &goalSums{}
	}
	prior := settings.Prior
	switch g.Kind {
	case domain.GoalConversion:
		arms := make([]stats.ConversionArm, len(exp.Variations))
		for i, v := range exp.Variations {
			arms[i] = stats.ConversionArm{Variation: v.Variation, Users: d.users[v.Variation], Conversions: min(sums(v.Variation).converters, d.users[v.Variation])}
		}
		bp := stats.DefaultBetaPrior
		if prior != nil && prior.Alpha > 0 && prior.Beta > 0 {
			bp = stats.BetaPrior{Alpha: prior.Alpha, Beta: prior.Beta}
		}
		r, err := stats.AnalyzeConversion(arms, control, bp, g.Direction)
		if err != nil {
			return gr, err
		}
		for _, v := range r.Variations {
			gr.Variations = append(gr.Variations, VariationResult{Variation: v.Variation, Control: v.Control, Users: v.Users,
				Estimate: v.Rate, CI95: v.CI95, ChanceToBeatControl: v.ChanceToBeatControl, ProbabilityToBeBest: v.ProbabilityToBeBest,
				ExpectedLoss: v.ExpectedLoss, Uplift: v.Uplift, UpliftCI95: v.UpliftCI95, Figures: VariationFigures{Conversion: &v}})
		}
	case domain.GoalCount:
		arms := make([]stats.CountArm, len(exp.Variations))
		for i, v := range exp.Variations {
			arms[i] = stats.CountArm{Variation: v.Variation, Users: d.users[v.Variation], Events: sums(v.Variation).events}
		}
		gp := stats.DefaultGammaPrior
		if prior != nil && prior.Shape > 0 && prior.Rate > 0 {
			gp = stats.GammaPrior{Shape: prior.Shape, Rate: prior.Rate}
		}
		r, err := stats.AnalyzeCount(arms, control, gp, g.Direction)
		if err != nil {
			return gr, err
		}
		for _, v := range r.Variations {
			gr.Variations = append(gr.Variations, VariationResult{Variation: v.Variation, Control: v.Control, Users: v.Users,
				Estimate: v.Rate, CI95: v.CI95, ChanceToBeatControl: v.ChanceToBeatControl, ProbabilityToBeBest: v.ProbabilityToBeBest,
				ExpectedLoss: v.ExpectedLoss, Uplift: v.Uplift, UpliftCI95: v.UpliftCI95, Figures: VariationFigures{Count: &v}})
		}
	case domain.GoalValue:
		arms := make([]stats.ValueArm, len(exp.Variations))
		for i, v := range exp.Variations {
			s := sums(v.Variation)
			arms[i] = stats.ValueArm{Variation: v.Variation, Users: d.users[v.Variation], Sum: s.sumY, SumSquares: s.sumY2}
		}
		opts := stats.ValueOptions{Direction: g.Direction, RelativePrior: normalPrior(prior)}
		r, err := stats.AnalyzeValue(arms, control, opts)
		if err != nil {
			return gr, err
		}
		for _, v := range r.Variations {
			gr.Variations = append(gr.Variations, VariationResult{Variation: v.Variation, Control: v.Control, Users: v.Users,
				Estimate: v.Mean, CI95: v.CI95, ChanceToBeatControl: v.ChanceToBeatControl, ProbabilityToBeBest: v.ProbabilityToBeBest,
				ExpectedLoss: v.ExpectedLoss, Uplift: v.Uplift, UpliftCI95: v.UpliftCI95, Figures: VariationFigures{Value: &v}})
		}
	default:
		return gr, fmt.Errorf("unknown goal kind %q", g.Kind)
	}

	frequentist := exp.Analysis.Engine == domain.EngineFrequentist
	cuped := exp.Analysis.CUPEDLookbackDays > 0
	if !frequentist && !cuped {
		return gr, nil
	}
	opts := stats.FrequentistOptions{Alpha: exp.Analysis.EffectiveAlpha(), Relative: true,
		Sequential: exp.Analysis.Sequential, SequentialTuning: exp.Analysis.EffectiveSequentialTuning()}
	c := metricStatistic(g.Kind, d.users[exp.Variations[control].Variation], sums(exp.Variations[control].Variation))
	lower := g.Direction == domain.GoalDecrease
	for i, v := range exp.Variations {
		vr := &gr.Variations[i]
		if frequentist {
			vr.ChanceToBeatControl, vr.ProbabilityToBeBest, vr.ExpectedLoss = 0, 0, 0
		}
		if i == control {
			continue
		}
		t := metricStatistic(g.Kind, d.users[v.Variation], sums(v.Variation))
		var res stats.FrequentistResult
		if cuped {
			var fig stats.CUPEDFigures
			res, fig = stats.CompareCUPED(c, t, opts)
			vr.CUPED = &fig
		} else {
			res = stats.CompareMeans(c.Post, t.Post, opts)
		}
		if frequentist {
			vr.Frequentist = &res
			vr.Uplift, vr.UpliftCI95 = res.Estimate, res.CI
			continue
		}
		// Bayesian engine with CUPED: the adjusted relative effect, a normal likelihood, with the
		// goal's normal prior on the relative effect if any (GrowthBook's shape).
		if !res.Valid || !vr.CUPED.Applied {
			continue
		}
		fixed := stats.FrequentistOptions{Relative: true}
		adj, _ := stats.CompareCUPED(c, t, fixed)
		post := stats.NormalEffect(adj.Estimate, adj.StandardError, normalPrior(prior), lower)
		vr.Uplift, vr.UpliftCI95, vr.ChanceToBeatControl = post.Mean, post.CI95, post.ChanceToBeatControl
	}
	return gr, nil
}

// normalPrior is the goal's normal prior on the relative effect, nil when none (flat).
func normalPrior(p *domain.GoalPrior) *stats.NormalPrior {
	if p == nil || !(p.SD > 0) {
		return nil
	}
	return &stats.NormalPrior{Mean: p.Mean, SD: p.SD}
}

// metricStatistic is a variation's goal metric per unit in the frequentist models' terms:
// a proportion for conversion goals, a sample mean for counts and values, with the CUPED
// covariate of the lookback beside it.
func metricStatistic(kind domain.GoalKind, users int64, s *goalSums) stats.CUPEDStatistic {
	prop := kind == domain.GoalConversion
	return stats.CUPEDStatistic{
		Post:        stats.MeanStatistic{N: users, Sum: s.sumY, SumSquares: s.sumY2, Proportion: prop},
		Pre:         stats.MeanStatistic{N: users, Sum: s.sumX, SumSquares: s.sumX2, Proportion: prop},
		SumProducts: s.sumXY,
	}
}

// guardrailViolations lists, for every guardrail goal and variation, a significant change in the
// bad direction: under the Bayesian engine a chance to beat control at most 1 − WinThreshold
// (the mirror of a win), under the frequentist engine a significant test (not corrected: a
// guardrail errs on the side of caution) with the estimate on the bad side.
func guardrailViolations(exp *domain.Experiment, a *Analysis) []GuardrailViolation {
	out := []GuardrailViolation{}
	for _, g := range a.Goals {
		if g.Role != "guardrail" {
			continue
		}
		for _, v := range g.Variations {
			if v.Control || v.Users < MinUsersPerVariation {
				continue
			}
			if f := v.Frequentist; f != nil {
				bad := (f.Estimate < 0) != (g.Direction == domain.GoalDecrease)
				if f.Valid && f.PValue < f.Alpha && bad && f.Estimate != 0 {
					out = append(out, GuardrailViolation{Goal: g.Goal, Variation: v.Variation,
						Reason: fmt.Sprintf("%s is significantly worse on guardrail %s: %+.2f%% (p = %.2g < %g)", v.Variation, g.Goal, 100*f.Estimate, f.PValue, f.Alpha)})
				}
				continue
			}
			if exp.Analysis.Engine != domain.EngineFrequentist && v.ChanceToBeatControl <= 1-WinThreshold {
				out = append(out, GuardrailViolation{Goal: g.Goal, Variation: v.Variation,
					Reason: fmt.Sprintf("%s is worse on guardrail %s: only a %.1f%% chance to beat the control (%+.2f%%)", v.Variation, g.Goal,
						100*v.ChanceToBeatControl, 100*v.Uplift)})
			}
		}
	}
	return out
}

// verdict states, in plain language, what the primary goal says, with the thresholds used.
func verdict(exp *domain.Experiment, a *Analysis, goals map[string]*domain.Goal) string {
	if a.SRM.Mismatch {
		if a.SRM.Unknown > 0 {
			return fmt.Sprintf("Sample ratio mismatch: %d users were exposed to variations that are not in the experiment (%s), so assignment is broken and the results cannot be trusted until the cause is found.",
				a.SRM.Unknown, strings.Join(sortedKeys(a.UnknownVariations), ", "))
		}
		return fmt.Sprintf("Sample ratio mismatch (p = %.2g < %g): the observed split does not match the configured allocation, so the results cannot be trusted until the cause is found.",
			a.SRM.PValue, stats.SRMThreshold)
	}
	var primary *GoalResult
	for i := range a.Goals {
		if a.Goals[i].Role == "primary" {
			primary = &a.Goals[i]
		}
	}
	if primary == nil {
		return "No primary goal to judge."
	}
	var control *VariationResult
	for i := range primary.Variations {
		if primary.Variations[i].Control {
			control = &primary.Variations[i]
		}
		if primary.Variations[i].Users < MinUsersPerVariation {
			return fmt.Sprintf("Collecting data: every variation needs at least %d users before a verdict (fewest so far: %s with %d).",
				MinUsersPerVariation, primary.Variations[i].Variation, primary.Variations[i].Users)
		}
	}
	name := goals[primary.Goal].Name
	if name == "" {
		name = primary.Goal
	}
	blocked := func(variation string) string {
		var reasons []string
		for _, g := range a.GuardrailViolations {
			if g.Variation == variation {
				reasons = append(reasons, g.Reason)
			}
		}
		if len(reasons) == 0 {
			return ""
		}
		return fmt.Sprintf(" Do not ship %s: %s.", variation, strings.Join(reasons, "; "))
	}
	if exp.Analysis.Engine == domain.EngineFrequentist {
		return frequentistVerdict(exp, primary, control, name, blocked)
	}
	best := &primary.Variations[0]
	for i := range primary.Variations {
		if primary.Variations[i].ProbabilityToBeBest > best.ProbabilityToBeBest {
			best = &primary.Variations[i]
		}
	}
	loss := best.ExpectedLoss
	rel := loss
	if control != nil && control.Estimate != 0 {
		rel = loss / math.Abs(control.Estimate)
	}
	if best.Control || control == nil {
		return fmt.Sprintf("No variation beats %s on %s yet: %s has the best chance (%.1f%%) to be best.",
			controlName(control), name, best.Variation, 100*best.ProbabilityToBeBest)
	}
	msg := fmt.Sprintf("%s has a %.1f%% chance to beat %s on %s; expected loss of choosing %s %s (%.2f%% of %s's %s).",
		best.Variation, 100*best.ChanceToBeatControl, control.Variation, name, best.Variation, formatLoss(primary.Kind, loss),
		100*rel, control.Variation, estimateNoun(primary.Kind))
	if best.ChanceToBeatControl >= WinThreshold && rel <= MaxRiskToShip {
		if why := blocked(best.Variation); why != "" {
			return msg + why
		}
		return msg + fmt.Sprintf(" Ship %s: above the %.0f%% threshold with acceptable risk.", best.Variation, 100*WinThreshold)
	}
	return msg + fmt.Sprintf(" Not conclusive yet (threshold %.0f%%, maximum risk %.0f%%).", 100*WinThreshold, 100*MaxRiskToShip)
}

// frequentistVerdict recommends the variation with the largest significant improvement on the
// primary goal (adjusted p-value below alpha), unless a guardrail blocks it.
func frequentistVerdict(exp *domain.Experiment, primary *GoalResult, control *VariationResult, name string, blocked func(string) string) string {
	if control == nil {
		return "No control to compare with."
	}
	lower := primary.Direction == domain.GoalDecrease
	var best *VariationResult
	for i := range primary.Variations {
		v := &primary.Variations[i]
		f := v.Frequentist
		if f == nil || !f.Valid || !f.Significant || (f.Estimate > 0) == lower || f.Estimate == 0 {
			continue
		}
		if best == nil || math.Abs(f.Estimate) > math.Abs(best.Frequentist.Estimate) {
			best = v
		}
	}
	kind := "confidence interval"
	if exp.Analysis.Sequential {
		kind = "always-valid confidence interval"
	}
	correction := ""
	if c := exp.Analysis.Correction; c != "" && c != domain.CorrectionNone {
		correction = ", adjusted by " + strings.ReplaceAll(c, "_", "-")
	}
	if best == nil {
		return fmt.Sprintf("No variation differs significantly from %s on %s yet (alpha %g%s).", control.Variation, name, exp.Analysis.EffectiveAlpha(), correction)
	}
	f := best.Frequentist
	msg := fmt.Sprintf("%s changes %s by %+.2f%% against %s (%.0f%% %s [%+.2f%%, %+.2f%%], p = %.2g%s).",
		best.Variation, name, 100*f.Estimate, control.Variation, 100*(1-f.Alpha), kind, 100*f.CI[0], 100*f.CI[1], f.PValueAdjusted, correction)
	if why := blocked(best.Variation); why != "" {
		return msg + why
	}
	return msg + fmt.Sprintf(" Ship %s: significant at alpha %g.", best.Variation, f.Alpha)
}

func sortedKeys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// RatioResult is a ratio metric's analysis across the variations.
type RatioResult struct {
	Key         string           `json:"key"`
	Numerator   string           `json:"numerator"`
	Denominator string           `json:"denominator"`
	Variations  []RatioVariation `json:"variations"`
}

// RatioVariation is one variation's ratio: ΣNumerator/ΣDenominator over its units, and against
// the control the test of the relative difference with delta-method variances (both engines;
// the Bayesian engine adds the chance to beat control of that effect under a flat prior, in the
// numerator goal's direction).
type RatioVariation struct {
	Variation           string                   `json:"variation"`
	Control             bool                     `json:"control"`
	Users               int64                    `json:"users"`
	Estimate            float64                  `json:"estimate"`
	Frequentist         *stats.FrequentistResult `json:"frequentist,omitempty"`
	ChanceToBeatControl float64                  `json:"chance_to_beat_control"`
}

// analyzeRatios runs the experiment's ratio metrics.
func analyzeRatios(exp *domain.Experiment, goals map[string]*domain.Goal, control int, d *data) []RatioResult {
	out := []RatioResult{}
	opts := stats.FrequentistOptions{Alpha: exp.Analysis.EffectiveAlpha(), Relative: true,
		Sequential: exp.Analysis.Sequential, SequentialTuning: exp.Analysis.EffectiveSequentialTuning()}
	for _, r := range exp.Analysis.RatioMetrics {
		stat := func(v string) stats.RatioStatistic {
			s := d.ratios[r.Key][v]
			if s == nil {
				s = &goalSums{}
			}
			n := d.users[v]
			return stats.RatioStatistic{N: n, Numerator: stats.MeanStatistic{N: n, Sum: s.sumY, SumSquares: s.sumY2},
				Denominator: stats.MeanStatistic{N: n, Sum: s.sumX, SumSquares: s.sumX2}, SumProducts: s.sumXY}
		}
		lower := goals[r.Numerator] != nil && goals[r.Numerator].Direction == domain.GoalDecrease
		c := stat(exp.Variations[control].Variation)
		rr := RatioResult{Key: r.Key, Numerator: r.Numerator, Denominator: r.Denominator}
		for i, v := range exp.Variations {
			t := stat(v.Variation)
			rv := RatioVariation{Variation: v.Variation, Control: i == control, Users: t.N, Estimate: t.Mean(), ChanceToBeatControl: 0.5}
			if i != control {
				f := stats.CompareRatios(c, t, opts)
				rv.Frequentist = &f
				rv.ChanceToBeatControl = 0
				if exp.Analysis.Engine != domain.EngineFrequentist && f.Valid {
					fixed := stats.CompareRatios(c, t, stats.FrequentistOptions{Relative: true})
					rv.ChanceToBeatControl = stats.NormalEffect(fixed.Estimate, fixed.StandardError, nil, lower).ChanceToBeatControl
				}
			}
			rr.Variations = append(rr.Variations, rv)
		}
		out = append(out, rr)
	}
	return out
}
