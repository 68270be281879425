package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// Report is the latest stored analysis of an experiment.
type Report struct {
	Project       string          `json:"project"`
	Experiment    string          `json:"experiment"`
	ComputedAt    time.Time       `json:"computed_at"`
	Users         int64           `json:"users"`
	ExcludedUsers int64           `json:"excluded_users"`
	SRM           json.RawMessage `json:"srm"`
	Verdict       string          `json:"verdict"`
	Goals         []GoalResult    `json:"goals"`
}

// Latest returns the most recent analysis of an experiment; ENotFound when none ran yet.
func (a *Analyzer) Latest(ctx context.Context, project, key string) (*Report, error) {
	r := &Report{Project: project, Experiment: key}
	err := a.pool.QueryRow(ctx, `SELECT computed_at, users, excluded_users, srm, verdict FROM experiment_analyses
		WHERE project = $1 AND experiment = $2 ORDER BY computed_at DESC LIMIT 1`, project, key).
		Scan(&r.ComputedAt, &r.Users, &r.ExcludedUsers, &r.SRM, &r.Verdict)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.Errorf(domain.ENotFound, "experiment %q has no analysis yet; start it and analyse it", key)
	}
	if err != nil {
		return nil, fmt.Errorf("experiments: latest analysis of %s: %w", key, err)
	}
	rows, err := a.pool.Query(ctx, `SELECT goal, goal_kind, variation, control, users, estimate, ci_low, ci_high,
		  chance_to_beat_control, probability_to_be_best, expected_loss, uplift, figures
		FROM experiment_results WHERE project = $1 AND experiment = $2 AND computed_at = $3 ORDER BY goal, variation`,
		project, key, r.ComputedAt)
	if err != nil {
		return nil, fmt.Errorf("experiments: results of %s: %w", key, err)
	}
	defer rows.Close()
	byGoal := map[string]int{}
	for rows.Next() {
		var goal, kind string
		var v VariationResult
		var fig json.RawMessage
		if err := rows.Scan(&goal, &kind, &v.Variation, &v.Control, &v.Users, &v.Estimate, &v.CI95[0], &v.CI95[1],
			&v.ChanceToBeatControl, &v.ProbabilityToBeBest, &v.ExpectedLoss, &v.Uplift, &fig); err != nil {
			return nil, fmt.Errorf("experiments: scan result: %w", err)
		}
		v.Figures = fig
		var up struct {
			UpliftCI95 [2]float64
		}
		_ = json.Unmarshal(fig, &up)
		v.UpliftCI95 = up.UpliftCI95
		i, ok := byGoal[goal]
		if !ok {
			i = len(r.Goals)
			byGoal[goal] = i
			r.Goals = append(r.Goals, GoalResult{Goal: goal, Kind: domain.GoalKind(kind)})
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
