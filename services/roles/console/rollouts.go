package console

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

type rolloutTemplate struct {
	// Start is the time of the first step; now when omitted (the first step applies at once).
	Start *time.Time `json:"start,omitempty"`
	// Every is the time between steps: a Go duration ("30m", "1h") or whole days ("1d").
	Every string `json:"every"`
	// Percents default to 1, 5, 25, 50, 100.
	Percents []float64 `json:"percents,omitempty"`
}

type rolloutRequest struct {
	ID          string `json:"id,omitempty"` // generated (UUIDv7) when empty
	Flag        string `json:"flag"`
	Environment string `json:"environment"`
	// Variation is rolled out, Other serves the rest; for boolean flags they default to true and
	// false.
	Variation string `json:"variation,omitempty"`
	Other     string `json:"other,omitempty"`
	BucketBy  string `json:"bucket_by,omitempty"`
	// Exactly one of Steps (written by hand) or Template.
	Steps    []domain.RolloutStep `json:"steps,omitempty"`
	Template *rolloutTemplate     `json:"template,omitempty"`
	// Guards gate every step after the first one applied: the step advances only when its time
	// has come and every guard is healthy with enough sample (see docs/guarded-releases.md).
	Guards []domain.RolloutGuard `json:"guards,omitempty"`
	// OnGuardFailure: rollback (default: back to 0% and paused) or pause.
	OnGuardFailure domain.GuardAction `json:"on_guard_failure,omitempty"`
}

// rolloutStepView is one step of a rollout with where it stands.
type rolloutStepView struct {
	Index   int       `json:"index"`
	At      time.Time `json:"at"`
	Percent float64   `json:"percent"`
	// Status: applied, skipped (its successor was already due when the rollout caught up, or the
	// flag already served its share when the rollout was created: see Reason), next (the step the
	// rollout waits for), waiting (due, but its guards are not healthy with enough sample yet:
	// Reason says why), pending, or cancelled (the rollout was aborted).
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// rolloutView is a rollout with the status of each step.
type rolloutView struct {
	domain.Rollout
	Plan []rolloutStepView `json:"plan"`
	// Notes tell what the caller may not expect, e.g. steps skipped because the flag already
	// served more than they would.
	Notes []string `json:"notes,omitempty"`
}

func viewRollout(r *domain.Rollout) rolloutView {
	v := rolloutView{Rollout: *r, Plan: make([]rolloutStepView, len(r.Steps))}
	skipped := map[int]bool{}
	for _, i := range r.Skipped {
		skipped[i] = true
	}
	alreadyServed := map[int]bool{}
	for _, i := range r.AlreadyServed {
		alreadyServed[i] = true
	}
	if n := len(r.AlreadyServed); n > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("the default already served %v%% of users %q when the rollout was created: %d step(s) at or below that are skipped, so nobody loses the variation",
			float64(domain.ServedWeight(r.Start, r.Variation))*100/domain.BucketCount, r.Variation, n))
	}
	for i, s := range r.Steps {
		st, reason := "pending", ""
		switch {
		case i < r.Next && alreadyServed[i]:
			st, reason = "skipped", "already served when the rollout was created"
		case i < r.Next && skipped[i]:
			st, reason = "skipped", "its successor was already due when the rollout caught up"
		case i < r.Next:
			st = "applied"
		case r.Status == domain.RolloutStatusAborted:
			st = "cancelled"
		case i == r.Next && r.Waiting != nil && r.Waiting.Step == i && r.Status != domain.RolloutStatusPaused:
			st, reason = "waiting", r.Waiting.Reason
		case i == r.Next:
			st = "next"
		}
		v.Plan[i] = rolloutStepView{Index: i, At: s.At, Percent: s.Percent, Status: st, Reason: reason}
	}
	return v
}

func (s *Server) listRollouts(c echo.Context) error {
	return listDelivery(s, c, true, func(ctx context.Context, q delivery.ListQuery) ([]rolloutView, string, error) {
		items, next, err := s.app.Queries.ListRollouts(ctx, q)
		views := make([]rolloutView, len(items))
		for i, r := range items {
			views[i] = viewRollout(r)
		}
		return views, next, err
	})
}

func (s *Server) createRollout(c echo.Context) error {
	var req rolloutRequest
	if err := s.decode(c, &req); err != nil {
		return err
	}
	cmd := app.CreateRollout{Project: c.Param("project"), ID: req.ID, Flag: req.Flag, Env: req.Environment,
		Variation: req.Variation, Other: req.Other, BucketBy: req.BucketBy, Steps: req.Steps,
		Guards: req.Guards, OnGuardFailure: req.OnGuardFailure}
	if t := req.Template; t != nil {
		cmd.Template = &app.RolloutTemplate{Start: t.Start, Every: t.Every, Percents: t.Percents}
	}
	r, v, err := s.app.Commands.CreateRollout(c.Request().Context(), meta(c), cmd)
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusCreated, v, viewRollout(r))
}

func (s *Server) getRollout(c echo.Context) error {
	r, v, err := s.app.Queries.Rollout(c.Request().Context(), c.Param("project"), c.Param("id"))
	if err != nil {
		return err
	}
	return withVersion(c, http.StatusOK, v, viewRollout(r))
}

func (s *Server) pauseRollout(c echo.Context) error {
	var req reasonRequest
	if err := s.decodeOptional(c, &req); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Rollout, int64, error) {
		return s.app.Commands.PauseRollout(ctx, m, app.PauseRollout{Project: ref.Project, ID: ref.ID, Reason: req.Reason})
	}, viewRollout)
}

func (s *Server) resumeRollout(c echo.Context) error {
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Rollout, int64, error) {
		return s.app.Commands.ResumeRollout(ctx, m, app.ResumeRollout(ref))
	}, viewRollout)
}

// abortRollout ends the rollout and writes its starting default serve back (app.AbortRollout).
func (s *Server) abortRollout(c echo.Context) error {
	var req reasonRequest
	if err := s.decodeOptional(c, &req); err != nil {
		return err
	}
	return deliveryCommand(c, func(ctx context.Context, m app.Meta, ref deliveryRef) (*domain.Rollout, int64, error) {
		return s.app.Commands.AbortRollout(ctx, m, app.AbortRollout{Project: ref.Project, ID: ref.ID, Reason: req.Reason})
	}, viewRollout)
}
