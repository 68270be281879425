package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/stats"
)

// Report is the latest stored analysis of an experiment.
type Report struct {
	Project       string          `json:"project"`
	Experiment    string          `json:"experiment"`
	ComputedAt    time.Time       `json:"computed_at"`
	Users         int64           `json:"users"`
	ExcludedUsers int64           `json:"excluded_users"`
	SRM           stats.SRMResult `json:"srm"`
	Verdict       string          `json:"verdict"`
	AnalysisDetails
	Goals []GoalResult `json:"goals"`
}

// Latest returns the most recent analysis of an experiment; ENotFound when none ran yet. Goals
// come primary first, then secondary, then guardrails; the control first within each.
func (a *Analyzer) Latest(ctx context.Context, project, key string) (*Report, error) {
	r := &Report{Project: project, Experiment: key}
	var srm, details []byte
	err := a.pool.QueryRow(ctx, `SELECT computed_at, users, excluded_users, srm, verdict, details FROM experiment_analyses
		WHERE project = $1 AND experiment = $2 ORDER BY computed_at DESC LIMIT 1`, project, key).
		Scan(&r.ComputedAt, &r.Users, &r.ExcludedUsers, &srm, &r.Verdict, &details)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.Errorf(domain.ENotFound, "experiment %q has no analysis yet; start it and analyse it", key)
	}
	if err != nil {
		return nil, fmt.Errorf("experiments: latest analysis of %s: %w", key, err)
	}
	// Analyses stored before issue 21 have PascalCase SRM keys and no details: they decode to
	// what matches, the rest stays zero.
	if err := json.Unmarshal(srm, &r.SRM); err != nil {
		return nil, fmt.Errorf("experiments: decode SRM of %s: %w", key, err)
	}
	if err := json.Unmarshal(details, &r.AnalysisDetails); err != nil {
		return nil, fmt.Errorf("experiments: decode analysis details of %s: %w", key, err)
	}
	rows, err := a.pool.Query(ctx, `SELECT goal, goal_kind, direction, role, variation, control, users, estimate, ci_low, ci_high,
		  chance_to_beat_control, probability_to_be_best, expected_loss, uplift, figures
		FROM experiment_results WHERE project = $1 AND experiment = $2 AND computed_at = $3
		ORDER BY role <> 'primary', role = 'guardrail', goal, NOT control, variation`,
		project, key, r.ComputedAt)
	if err != nil {
		return nil, fmt.Errorf("experiments: results of %s: %w", key, err)
	}
	defer rows.Close()
	byGoal := map[string]int{}
	for rows.Next() {
		var goal, kind, dir, role string
		var stored storedResult
		var fig []byte
		if err := rows.Scan(&goal, &kind, &dir, &role, &stored.Variation, &stored.Control, &stored.Users, &stored.Estimate,
			&stored.CI95[0], &stored.CI95[1], &stored.ChanceToBeatControl, &stored.ProbabilityToBeBest, &stored.ExpectedLoss,
			&stored.Uplift, &fig); err != nil {
			return nil, fmt.Errorf("experiments: scan result: %w", err)
		}
		// The columns are authoritative; the figures add the intervals, tests and models.
		cols := stored.VariationResult
		if err := json.Unmarshal(fig, &stored); err != nil {
			return nil, fmt.Errorf("experiments: decode figures of %s/%s: %w", key, goal, err)
		}
		v := stored.VariationResult
		v.Variation, v.Control, v.Users, v.Estimate, v.CI95 = cols.Variation, cols.Control, cols.Users, cols.Estimate, cols.CI95
		v.ChanceToBeatControl, v.ProbabilityToBeBest, v.ExpectedLoss, v.Uplift = cols.ChanceToBeatControl, cols.ProbabilityToBeBest, cols.ExpectedLoss, cols.Uplift
		i, ok := byGoal[goal]
		if !ok {
			i = len(r.Goals)
			byGoal[goal] = i
			r.Goals = append(r.Goals, GoalResult{Goal: goal, Kind: domain.GoalKind(kind), Direction: domain.GoalDirection(dir), Role: role,
				ConversionWindowHours: stored.ConversionWindowHours})
		}
		r.Goals[i].Variations = append(r.Goals[i].Variations, v)
	}
	return r, rows.Err()
}

// Point is one variation's figures at one analysis time.
type Point struct {
	ComputedAt          time.Time `json:"computed_at"`
	Variation           string    `json:"variation"`
	Users               int64     `json:"users"`
	Estimate            float64   `json:"estimate"`
	CILow               float64   `json:"ci_low"`
	CIHigh              float64   `json:"ci_high"`
	ChanceToBeatControl float64   `json:"chance_to_beat_control"`
	ProbabilityToBeBest float64   `json:"probability_to_be_best"`
	ExpectedLoss        float64   `json:"expected_loss"`
}

// History returns how a goal's result evolved over the analyses in [from, to).
func (a *Analyzer) History(ctx context.Context, project, key, goal string, from, to time.Time) ([]Point, error) {
	rows, err := a.pool.Query(ctx, `SELECT computed_at, variation, users, estimate, ci_low, ci_high, chance_to_beat_control,
		  probability_to_be_best, expected_loss
		FROM experiment_results WHERE project = $1 AND experiment = $2 AND goal = $3 AND computed_at >= $4 AND computed_at < $5
		ORDER BY computed_at, variation`, project, key, goal, from, to)
	if err != nil {
		return nil, fmt.Errorf("experiments: history of %s/%s: %w", key, goal, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Point, error) {
		var p Point
		err := r.Scan(&p.ComputedAt, &p.Variation, &p.Users, &p.Estimate, &p.CILow, &p.CIHigh, &p.ChanceToBeatControl,
			&p.ProbabilityToBeBest, &p.ExpectedLoss)
		return p, err
	})
}
