// Package experiments is the `experiment` role's analysis: it computes each running experiment's
// per-variation sufficient statistics from the raw telemetry inside the experiment's window (first
// exposure decides the variation; users exposed to several variations are excluded and counted),
// through a per-unit read model it keeps up to date incrementally (units.go), runs the Bayesian or frequentist models of domain/stats per goal (with
// CUPED and multiple-comparison corrections when configured), checks the sample ratio and the
// guardrails, writes a plain-language verdict, and
// stores every run as points in time (experiment_analyses, experiment_results) so reports show
// how a result evolved.
package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	"github.com/vexil-flags/vexil/projections/experiments"
	"github.com/vexil-flags/vexil/services/app"
)

// Thresholds of the verdict.
const (
	// WinThreshold is the chance to beat control a variation needs to be called a winner.
	WinThreshold = 0.95
	// MaxRiskToShip is the largest expected loss (relative to the control's estimate) acceptable
	// when shipping a winner.
	MaxRiskToShip = 0.01
	// MinUsersPerVariation before any verdict other than "collecting data".
	MinUsersPerVariation = 100
)

// Analyzer runs experiment analyses.
type Analyzer struct {
	pool    *pgxpool.Pool
	queries *app.Queries // the experiments and goals analysed, current from the event store
	log     *slog.Logger
	now     func() time.Time

	pruneMu  sync.Mutex
	prunedAt time.Time // when RunOnce last pruned the touched-users log
}

// NewAnalyzer returns an analyzer reading and writing through pool, loading experiments and goals
// through the application layer's queries.
func NewAnalyzer(pool *pgxpool.Pool, queries *app.Queries, log *slog.Logger) *Analyzer {
	return &Analyzer{pool: pool, queries: queries, log: log, now: time.Now}
}

// GoalResult is one goal's analysis across the variations.
type GoalResult struct {
	Goal      string               `json:"goal"`
	Kind      domain.GoalKind      `json:"kind"`
	Direction domain.GoalDirection `json:"direction"`
	Role      string               `json:"role"` // primary, secondary or guardrail
	// ConversionWindowHours is the goal's conversion window (0: to the end of the experiment).
	ConversionWindowHours float64           `json:"conversion_window_hours"`
	Variations            []VariationResult `json:"variations"`
}

// VariationResult is the figures of one variation for one goal, in the shape every model shares.
// Uplift and UpliftCI95 are relative to the control, on the engine's scale: the Bayesian
// posterior (the CUPED-adjusted one when CUPED is on) or the frequentist estimate and confidence
// interval (at 1 − alpha, a confidence sequence when sequential). Under the frequentist engine
// the Bayesian probabilities are 0 and Frequentist holds the test.
type VariationResult struct {
	Variation           string     `json:"variation"`
	Control             bool       `json:"control"`
	Users               int64      `json:"users"`
	Estimate            float64    `json:"estimate"` // conversion rate, events per user, or mean value per user
	CI95                [2]float64 `json:"ci95"`
	ChanceToBeatControl float64    `json:"chance_to_beat_control"`
	ProbabilityToBeBest float64    `json:"probability_to_be_best"`
	ExpectedLoss        float64    `json:"expected_loss"`
	Uplift              float64    `json:"uplift"`
	UpliftCI95          [2]float64 `json:"uplift_ci95"`
	// Frequentist is the frequentist test against the control (frequentist engine; nil for the
	// control and under the Bayesian engine).
	Frequentist *stats.FrequentistResult `json:"frequentist,omitempty"`
	// CUPED says what the regression adjustment did (nil when CUPED is off or for the control).
	CUPED *stats.CUPEDFigures `json:"cuped,omitempty"`
	// Figures is the Bayesian model's whole output for the goal's kind.
	Figures VariationFigures `json:"figures"`
	// Quantile is the value goal's quantile (analysis.goals[].quantile) in this variation; nil
	// when the goal has none.
	Quantile *QuantileFigures `json:"quantile,omitempty"`
}

// VariationFigures is the whole output of the Bayesian model of a goal's kind: exactly one is set.
type VariationFigures struct {
	Conversion *stats.ConversionVariation `json:"conversion,omitempty"`
	Count      *stats.CountVariation      `json:"count,omitempty"`
	Value      *stats.ValueVariation      `json:"value,omitempty"`
}

// Analysis is one run of an experiment's analysis.
type Analysis struct {
	Project       string          `json:"project"`
	Experiment    string          `json:"experiment"`
	ComputedAt    time.Time       `json:"computed_at"`
	Users         int64           `json:"users"`
	ExcludedUsers int64           `json:"excluded_users"`
	SRM           stats.SRMResult `json:"srm"`
	Goals         []GoalResult    `json:"goals"`
	Verdict       string          `json:"verdict"`
	AnalysisDetails
	Thresholds map[string]float64 `json:"thresholds"`
	Duration   time.Duration      `json:"duration_ns"`
}

// AnalysisDetails is what an analysis records beside its figures (stored as experiment_analyses.details).
type AnalysisDetails struct {
	// Window is the analysis window of exposures and goals.
	Window AnalysisWindow `json:"window"`
	// Settings are the analysis settings used.
	Settings domain.ExperimentAnalysis `json:"settings"`
	// UnknownVariations counts the users exposed to variations outside the experiment; any of
	// them is a sample-ratio mismatch.
	UnknownVariations map[string]int64 `json:"unknown_variations"`
	// Ratios are the experiment's ratio metrics (analysis.ratio_metrics).
	Ratios []RatioResult `json:"ratios"`
	// GuardrailViolations lists the variations a guardrail goal finds significantly worse than
	// the control; such a variation is never recommended for shipping.
	GuardrailViolations []GuardrailViolation `json:"guardrail_violations"`
}

// GuardrailViolation is a guardrail goal that a variation makes significantly worse.
type GuardrailViolation struct {
	Goal      string `json:"goal"`
	Variation string `json:"variation"`
	Reason    string `json:"reason"`
}

// Analyze computes, stores and returns the current analysis of an experiment.
func (a *Analyzer) Analyze(ctx context.Context, project, key string) (*Analysis, error) {
	start := time.Now()
	exp, _, err := a.queries.Experiment(ctx, project, key)
	if err != nil {
		return nil, err
	}
	if exp.Status == domain.ExperimentStatusDraft {
		return nil, domain.Errorf(domain.EConflict, "experiment %q has not started: there is nothing to analyse", key)
	}
	goals := map[string]*domain.Goal{}
	for _, g := range exp.Goals() {
		goal, _, err := a.queries.Goal(ctx, project, g)
		if err != nil {
			return nil, err
		}
		goals[g] = goal
	}
	data, err := a.sufficientStatistics(ctx, exp, goals)
	if err != nil {
		return nil, err
	}
	a.log.Debug("experiment units refreshed", "project", project, "experiment", key, "full", data.build.Full, "users", data.build.Users)
	quantiles, err := a.quantiles(ctx, exp, goals, data.window, data.users)
	if err != nil {
		return nil, err
	}
	res := &Analysis{Project: project, Experiment: key, ComputedAt: a.now().UTC(), Users: data.total, ExcludedUsers: data.excluded,
		AnalysisDetails: AnalysisDetails{Window: data.window, Settings: exp.Analysis, UnknownVariations: map[string]int64{}, GuardrailViolations: []GuardrailViolation{}},
		Thresholds: map[string]float64{"win_chance_to_beat_control": WinThreshold, "max_relative_expected_loss": MaxRiskToShip,
			"srm_p_value": stats.SRMThreshold, "min_users_per_variation": MinUsersPerVariation, "alpha": exp.Analysis.EffectiveAlpha()}}
	control := 0
	weights := make([]float64, len(exp.Variations))
	observed := make([]int64, len(exp.Variations))
	known := map[string]bool{}
	for i, v := range exp.Variations {
		if v.Control {
			control = i
		}
		weights[i] = float64(v.Weight)
		observed[i] = data.users[v.Variation]
		known[v.Variation] = true
	}
	var unknown int64
	for v, n := range data.users {
		if !known[v] && n > 0 {
			res.UnknownVariations[v] = n
			unknown += n
		}
	}
	if res.SRM, err = stats.SampleRatioMismatchWithUnknown(observed, weights, data.excluded, unknown); err != nil {
		return nil, err
	}
	var family []*stats.FrequentistResult
	for _, g := range exp.Goals() {
		gr, err := analyzeGoal(exp, goals[g], control, data)
		if err != nil {
			return nil, fmt.Errorf("experiments: analyse %s on %s: %w", key, g, err)
		}
		addQuantiles(exp, &gr, control, quantiles[g])
		switch {
		case g == exp.PrimaryGoal:
			gr.Role = "primary"
		case slices.Contains(exp.GuardrailGoals, g):
			gr.Role = "guardrail"
		default:
			gr.Role = "secondary"
		}
		res.Goals = append(res.Goals, gr)
	}
	res.Ratios = analyzeRatios(exp, goals, control, data)
	// Corrections across variations × goals (and ratio metrics), guardrails excluded as
	// GrowthBook does: a guardrail is a safety check whose power must not shrink as goals are
	// added. Ratio tests join the family under the frequentist engine only, where they are read.
	if exp.Analysis.Engine == domain.EngineFrequentist {
		for i := range res.Ratios {
			for j := range res.Ratios[i].Variations {
				if f := res.Ratios[i].Variations[j].Frequentist; f != nil {
					family = append(family, f)
				}
			}
		}
	}
	for i := range res.Goals {
		if res.Goals[i].Role == "guardrail" {
			continue
		}
		for j := range res.Goals[i].Variations {
			if f := res.Goals[i].Variations[j].Frequentist; f != nil {
				family = append(family, f)
			}
		}
	}
	stats.Correct(family, exp.Analysis.Correction)
	res.GuardrailViolations = guardrailViolations(exp, res)
	res.Verdict = verdict(exp, res, goals)
	res.Duration = time.Since(start)
	if err := a.store_(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

func controlName(c *VariationResult) string {
	if c == nil {
		return "the control"
	}
	return c.Variation
}

func estimateNoun(k domain.GoalKind) string {
	switch k {
	case domain.GoalConversion:
		return "conversion rate"
	case domain.GoalCount:
		return "events per user"
	}
	return "mean value per user"
}

func formatLoss(k domain.GoalKind, loss float64) string {
	if k == domain.GoalConversion {
		return fmt.Sprintf("%.2f percentage points", 100*loss)
	}
	return fmt.Sprintf("%.4g", loss)
}

// store_ writes one analysis with its per-goal, per-variation rows in one transaction. The
// figures column holds the whole VariationResult, so a stored report shows what the analysis
// showed.
func (a *Analyzer) store_(ctx context.Context, res *Analysis) error {
	srm, err := json.Marshal(res.SRM)
	if err != nil {
		return fmt.Errorf("experiments: marshal SRM: %w", err)
	}
	details, err := json.Marshal(res.AnalysisDetails)
	if err != nil {
		return fmt.Errorf("experiments: marshal analysis details: %w", err)
	}
	return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO experiment_analyses (computed_at, project, experiment, users, excluded_users, srm, verdict, duration_ms, details)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, res.ComputedAt, res.Project, res.Experiment, res.Users, res.ExcludedUsers, srm,
			res.Verdict, float64(res.Duration.Microseconds())/1000, details); err != nil {
			return fmt.Errorf("experiments: store analysis: %w", err)
		}
		batch := &pgx.Batch{}
		for _, g := range res.Goals {
			for _, v := range g.Variations {
				fig, err := json.Marshal(storedResult{VariationResult: v, ConversionWindowHours: g.ConversionWindowHours})
				if err != nil {
					return fmt.Errorf("experiments: marshal figures: %w", err)
				}
				batch.Queue(`INSERT INTO experiment_results (computed_at, project, experiment, goal, goal_kind, variation, control, users,
					estimate, ci_low, ci_high, chance_to_beat_control, probability_to_be_best, expected_loss, uplift, figures, direction, role)
					VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)`,
					res.ComputedAt, res.Project, res.Experiment, g.Goal, string(g.Kind), v.Variation, v.Control, v.Users,
					v.Estimate, v.CI95[0], v.CI95[1], v.ChanceToBeatControl, v.ProbabilityToBeBest, v.ExpectedLoss, v.Uplift, fig,
					string(g.Direction), g.Role)
			}
		}
		return tx.SendBatch(ctx, batch).Close()
	})
}

// storedResult is the figures column of experiment_results.
type storedResult struct {
	VariationResult
	ConversionWindowHours float64 `json:"conversion_window_hours"`
}

// Run analyses every running experiment every interval until ctx ends.
func (a *Analyzer) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.RunOnce(ctx)
		}
	}
}

// RunOnce analyses every running experiment once, and prunes the touched-users log at most
// once an hour.
func (a *Analyzer) RunOnce(ctx context.Context) {
	a.pruneMu.Lock()
	if time.Since(a.prunedAt) > time.Hour {
		if err := a.pruneTouchedUsers(ctx); err != nil {
			a.log.Warn("experiment analysis: cannot prune the touched-users log", "err", err)
		} else {
			a.prunedAt = time.Now()
		}
	}
	a.pruneMu.Unlock()
	running, err := experiments.Running(ctx, a.pool)
	if err != nil {
		a.log.Warn("experiment analysis: cannot list running experiments", "err", err)
		return
	}
	for _, e := range running {
		if _, err := a.Analyze(ctx, e.Project, e.Key); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("experiment analysis failed", "project", e.Project, "experiment", e.Key, "err", err)
		}
	}
}
