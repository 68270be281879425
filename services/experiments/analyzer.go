// Package experiments is the `experiment` role's analysis: it computes each running experiment's
// per-variation sufficient statistics from the per-user experiment tables (first exposure decides
// the variation; users exposed to several variations are excluded and counted), runs the Bayesian
// models of domain/stats per goal, checks the sample ratio, writes a plain-language verdict, and
// stores every run as points in time (experiment_analyses, experiment_results) so reports show
// how a result evolved.
package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
	exprm "github.com/vexil-flags/vexil/projections/experiments"
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
}

// NewAnalyzer returns an analyzer reading and writing through pool, loading experiments and goals
// through the application layer's queries.
func NewAnalyzer(pool *pgxpool.Pool, queries *app.Queries, log *slog.Logger) *Analyzer {
	return &Analyzer{pool: pool, queries: queries, log: log, now: time.Now}
}

// GoalResult is one goal's analysis across the variations.
type GoalResult struct {
	Goal       string               `json:"goal"`
	Kind       domain.GoalKind      `json:"kind"`
	Direction  domain.GoalDirection `json:"direction"`
	Role       string               `json:"role"` // primary, secondary or guardrail
	Variations []VariationResult    `json:"variations"`
}

// VariationResult is the figures of one variation for one goal, in the shape every model shares.
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
	// Figures is the model's whole output (posterior parameters, Welch's test for value goals).
	Figures any `json:"figures"`
}

// Analysis is one run of an experiment's analysis.
type Analysis struct {
	Project       string             `json:"project"`
	Experiment    string             `json:"experiment"`
	ComputedAt    time.Time          `json:"computed_at"`
	Users         int64              `json:"users"`
	ExcludedUsers int64              `json:"excluded_users"`
	SRM           stats.SRMResult    `json:"srm"`
	Goals         []GoalResult       `json:"goals"`
	Verdict       string             `json:"verdict"`
	Thresholds    map[string]float64 `json:"thresholds"`
	Duration      time.Duration      `json:"duration_ns"`
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
	res := &Analysis{Project: project, Experiment: key, ComputedAt: a.now().UTC(), Users: data.total, ExcludedUsers: data.excluded,
		Thresholds: map[string]float64{"win_chance_to_beat_control": WinThreshold, "max_relative_expected_loss": MaxRiskToShip,
			"srm_p_value": stats.SRMThreshold, "min_users_per_variation": MinUsersPerVariation}}
	control := 0
	weights := make([]float64, len(exp.Variations))
	observed := make([]int64, len(exp.Variations))
	for i, v := range exp.Variations {
		if v.Control {
			control = i
		}
		weights[i] = float64(v.Weight)
		observed[i] = data.users[v.Variation]
	}
	if res.SRM, err = stats.SampleRatioMismatch(observed, weights, data.excluded); err != nil {
		return nil, err
	}
	for _, g := range exp.Goals() {
		gr, err := analyzeGoal(exp, goals[g], control, data)
		if err != nil {
			return nil, fmt.Errorf("experiments: analyse %s on %s: %w", key, g, err)
		}
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
	res.Verdict = verdict(exp, res, goals)
	res.Duration = time.Since(start)
	if err := a.store_(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

// data is the sufficient statistics of an experiment.
type data struct {
	users    map[string]int64 // per variation, excluding users seen in several
	excluded int64
	total    int64
	goals    map[string]map[string]*goalSums // goal -> variation -> sums
}

type goalSums struct {
	converters, events int64
	sum, sumSquares    float64
}

// sufficientStatistics reads, in two grouped queries, the users per variation and, per goal and
// variation, the users who converted, the goal events and the (capped) per-user value sums.
func (a *Analyzer) sufficientStatistics(ctx context.Context, exp *domain.Experiment, goals map[string]*domain.Goal) (*data, error) {
	d := &data{users: map[string]int64{}, goals: map[string]map[string]*goalSums{}}
	rows, err := a.pool.Query(ctx, `SELECT variation, count(*) FILTER (WHERE NOT multiple_variations),
		  count(*) FILTER (WHERE multiple_variations)
		FROM experiment_exposures
		WHERE project = $1 AND environment = $2 AND subject_kind = 'experiment' AND subject = $3
		GROUP BY variation`, exp.Project, exp.Environment, exp.Key)
	if err != nil {
		return nil, fmt.Errorf("experiments: exposures of %s: %w", exp.Key, err)
	}
	for rows.Next() {
		var v string
		var n, x int64
		if err := rows.Scan(&v, &n, &x); err != nil {
			rows.Close()
			return nil, fmt.Errorf("experiments: scan exposures: %w", err)
		}
		d.users[v] += n
		d.excluded += x
		d.total += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("experiments: exposures of %s: %w", exp.Key, err)
	}
	names := make([]string, 0, len(goals))
	caps := make([]float64, 0, len(goals))
	for k, g := range goals {
		names = append(names, k)
		c := math.Inf(1)
		if g.ValueCap > 0 {
			c = g.ValueCap
		}
		caps = append(caps, c)
		d.goals[k] = map[string]*goalSums{}
	}
	rows, err = a.pool.Query(ctx, `SELECT e.variation, g.goal, count(*), sum(g.conversions),
		  sum(least(g.value_sum, c.cap)), sum(least(g.value_sum, c.cap) ^ 2)
		FROM experiment_exposures e
		JOIN experiment_user_goals g ON g.project = e.project AND g.environment = e.environment
		  AND g.subject_kind = e.subject_kind AND g.subject = e.subject AND g.user_key = e.user_key
		JOIN unnest($4::text[], $5::float8[]) AS c(goal, cap) ON c.goal = g.goal
		WHERE e.project = $1 AND e.environment = $2 AND e.subject_kind = 'experiment' AND e.subject = $3
		  AND NOT e.multiple_variations
		GROUP BY e.variation, g.goal`, exp.Project, exp.Environment, exp.Key, names, caps)
	if err != nil {
		return nil, fmt.Errorf("experiments: goals of %s: %w", exp.Key, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v, g string
		s := &goalSums{}
		if err := rows.Scan(&v, &g, &s.converters, &s.events, &s.sum, &s.sumSquares); err != nil {
			return nil, fmt.Errorf("experiments: scan goals: %w", err)
		}
		d.goals[g][v] = s
	}
	return d, rows.Err()
}

func analyzeGoal(exp *domain.Experiment, g *domain.Goal, control int, d *data) (GoalResult, error) {
	gr := GoalResult{Goal: g.Key, Kind: g.Kind, Direction: g.Direction}
	sums := func(v string) *goalSums {
		if s := d.goals[g.Key][v]; s != nil {
			return s
		}
		return &goalSums{}
	}
	switch g.Kind {
	case domain.GoalConversion:
		arms := make([]stats.ConversionArm, len(exp.Variations))
		for i, v := range exp.Variations {
			arms[i] = stats.ConversionArm{Variation: v.Variation, Users: d.users[v.Variation], Conversions: min(sums(v.Variation).converters, d.users[v.Variation])}
		}
		r, err := stats.AnalyzeConversion(arms, control, stats.DefaultBetaPrior, g.Direction)
		if err != nil {
			return gr, err
		}
		for _, v := range r.Variations {
			gr.Variations = append(gr.Variations, VariationResult{Variation: v.Variation, Control: v.Control, Users: v.Users,
				Estimate: v.Rate, CI95: v.CI95, ChanceToBeatControl: v.ChanceToBeatControl, ProbabilityToBeBest: v.ProbabilityToBeBest,
				ExpectedLoss: v.ExpectedLoss, Uplift: v.Uplift, UpliftCI95: v.UpliftCI95, Figures: v})
		}
	case domain.GoalCount:
		arms := make([]stats.CountArm, len(exp.Variations))
		for i, v := range exp.Variations {
			arms[i] = stats.CountArm{Variation: v.Variation, Users: d.users[v.Variation], Events: sums(v.Variation).events}
		}
		r, err := stats.AnalyzeCount(arms, control, stats.DefaultGammaPrior, g.Direction)
		if err != nil {
			return gr, err
		}
		for _, v := range r.Variations {
			gr.Variations = append(gr.Variations, VariationResult{Variation: v.Variation, Control: v.Control, Users: v.Users,
				Estimate: v.Rate, CI95: v.CI95, ChanceToBeatControl: v.ChanceToBeatControl, ProbabilityToBeBest: v.ProbabilityToBeBest,
				ExpectedLoss: v.ExpectedLoss, Uplift: v.Uplift, UpliftCI95: v.UpliftCI95, Figures: v})
		}
	case domain.GoalValue:
		arms := make([]stats.ValueArm, len(exp.Variations))
		for i, v := range exp.Variations {
			s := sums(v.Variation)
			arms[i] = stats.ValueArm{Variation: v.Variation, Users: d.users[v.Variation], Sum: s.sum, SumSquares: s.sumSquares}
		}
		r, err := stats.AnalyzeValue(arms, control, stats.ValueOptions{Direction: g.Direction})
		if err != nil {
			return gr, err
		}
		for _, v := range r.Variations {
			gr.Variations = append(gr.Variations, VariationResult{Variation: v.Variation, Control: v.Control, Users: v.Users,
				Estimate: v.Mean, CI95: v.CI95, ChanceToBeatControl: v.ChanceToBeatControl, ProbabilityToBeBest: v.ProbabilityToBeBest,
				ExpectedLoss: v.ExpectedLoss, Uplift: v.Uplift, UpliftCI95: v.UpliftCI95, Figures: v})
		}
	default:
		return gr, fmt.Errorf("unknown goal kind %q", g.Kind)
	}
	return gr, nil
}

// verdict states, in plain language, what the primary goal says, with the thresholds used.
func verdict(exp *domain.Experiment, a *Analysis, goals map[string]*domain.Goal) string {
	if a.SRM.Mismatch {
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
	name := goals[primary.Goal].Name
	if name == "" {
		name = primary.Goal
	}
	if best.Control || control == nil {
		return fmt.Sprintf("No variation beats %s on %s yet: %s has the best chance (%.1f%%) to be best.",
			controlName(control), name, best.Variation, 100*best.ProbabilityToBeBest)
	}
	msg := fmt.Sprintf("%s has a %.1f%% chance to beat %s on %s; expected loss of choosing %s %s (%.2f%% of %s's %s).",
		best.Variation, 100*best.ChanceToBeatControl, control.Variation, name, best.Variation, formatLoss(primary.Kind, loss),
		100*rel, control.Variation, estimateNoun(primary.Kind))
	if best.ChanceToBeatControl >= WinThreshold && rel <= MaxRiskToShip {
		return msg + fmt.Sprintf(" Ship %s: above the %.0f%% threshold with acceptable risk.", best.Variation, 100*WinThreshold)
	}
	return msg + fmt.Sprintf(" Not conclusive yet (threshold %.0f%%, maximum risk %.0f%%).", 100*WinThreshold, 100*MaxRiskToShip)
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

// store_ writes one analysis with its per-goal, per-variation rows in one transaction.
func (a *Analyzer) store_(ctx context.Context, res *Analysis) error {
	srm, err := json.Marshal(res.SRM)
	if err != nil {
		return fmt.Errorf("experiments: marshal SRM: %w", err)
	}
	return pgx.BeginFunc(ctx, a.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO experiment_analyses (computed_at, project, experiment, users, excluded_users, srm, verdict, duration_ms)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`, res.ComputedAt, res.Project, res.Experiment, res.Users, res.ExcludedUsers, srm,
			res.Verdict, float64(res.Duration.Microseconds())/1000); err != nil {
			return fmt.Errorf("experiments: store analysis: %w", err)
		}
		batch := &pgx.Batch{}
		for _, g := range res.Goals {
			for _, v := range g.Variations {
				fig, err := json.Marshal(v.Figures)
				if err != nil {
					return fmt.Errorf("experiments: marshal figures: %w", err)
				}
				batch.Queue(`INSERT INTO experiment_results (computed_at, project, experiment, goal, goal_kind, variation, control, users,
					estimate, ci_low, ci_high, chance_to_beat_control, probability_to_be_best, expected_loss, uplift, figures)
					VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)`,
					res.ComputedAt, res.Project, res.Experiment, g.Goal, string(g.Kind), v.Variation, v.Control, v.Users,
					v.Estimate, v.CI95[0], v.CI95[1], v.ChanceToBeatControl, v.ProbabilityToBeBest, v.ExpectedLoss, v.Uplift, fig)
			}
		}
		return tx.SendBatch(ctx, batch).Close()
	})
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

// RunOnce analyses every running experiment once.
func (a *Analyzer) RunOnce(ctx context.Context) {
	running, err := exprm.Running(ctx, a.pool)
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
