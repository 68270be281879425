package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

// advanceRelease moves one running release on as far as it can at now (Release.Advance, until
// nothing more is to be done): a gate's wait starts or ends, a stage waits for approval, a stage
// starts (its change first: the flag toggled on with the stage's command id, or its rollout
// created under the stage's fixed rollout id, then ReleaseStageStarted), a stage's rollout ends
// and the stage with it. A crash between the change and the record repeats the change, which the
// command id or the rollout id makes a no-op. It returns how many events it recorded.
func (s *Scheduler) advanceRelease(ctx context.Context, ref delivery.Ref, now time.Time) (int, error) {
	recorded := 0
	for attempt := 0; attempt < 4*maxAttempts; attempt++ { // a few moves per pass: a gate, a start, an end
		r, _, err := s.app.Queries.Release(ctx, ref.Project, ref.ID)
		if err != nil {
			return recorded, err
		}
		var rollout *domain.Rollout
		if id := r.CurrentRollout(); id != "" {
			if rollout, _, err = s.app.Queries.Rollout(ctx, r.Project, id); err != nil {
				return recorded, err
			}
		}
		start, events, err := r.Advance(now, rollout)
		if err != nil || len(events) == 0 {
			return recorded, err
		}
		meta := app.Meta{Actor: "system:release/" + r.ID, CommandID: fmt.Sprintf("release:%s:v%d", r.ID, r.Version),
			Reason: reasonText(fmt.Sprintf("release %s of flag %q through pipeline %q: %s", r.ID, r.Flag, r.Pipeline, describeRelease(events[0])))}
		if start != nil {
			if err := s.startStage(ctx, r, start, meta, now); err != nil {
				return recorded, err
			}
		}
		err = s.app.Commands.RecordRelease(ctx, meta, app.RecordRelease{Release: r, Events: events})
		switch {
		case app.IsDuplicateCommand(err), app.IsVersionConflict(err):
			continue
		case err != nil:
			return recorded, err
		}
		recorded += len(events)
		for _, e := range events {
			if _, ok := e.(*domain.PipelineAwaitingApproval); ok {
				s.notes.notify("PipelineAwaitingApproval")
			}
		}
		s.log.Info("release advanced", "project", r.Project, "release", r.ID, "flag", r.Flag, "stage", r.Stage,
			"event", events[0].EventType())
	}
	return recorded, nil
}

// startStage makes a stage's change, attributed to the release.
func (s *Scheduler) startStage(ctx context.Context, r *domain.Release, st *domain.StageStart, meta app.Meta, now time.Time) error {
	meta.CommandID = r.StageCommandID(st.Stage)
	switch st.Action {
	case domain.StageToggleOn:
		meta.Retries = maxAttempts - 1
		_, _, err := s.app.Commands.ToggleFlag(ctx, meta, app.ToggleFlag{Project: r.Project, Flag: r.Flag, Environment: st.Environment, On: true})
		if app.IsDuplicateCommand(err) {
			return nil
		}
		return err
	case domain.StageRollout:
		p := st.Rollout
		meta.CommandID = ""
		_, _, err := s.app.Commands.CreateRollout(ctx, meta, app.CreateRollout{Project: r.Project, ID: st.RolloutID, Flag: r.Flag,
			Env: st.Environment, Template: &app.RolloutTemplate{Every: p.Every, Percents: p.Percents},
			Guards: p.Guards, OnGuardFailure: p.OnGuardFailure, Now: now})
		var de *domain.Error
		if errors.As(err, &de) && de.Code == domain.EConflict && de.Field == "id" {
			return nil // created by an earlier attempt
		}
		return err
	}
	return fmt.Errorf("delivery: release %s: unknown stage action %q", r.ID, st.Action)
}

func describeRelease(e domain.Event) string {
	switch e := e.(type) {
	case *domain.ReleaseStageWaiting:
		return fmt.Sprintf("stage %d (%s) waits until %s", e.Stage+1, e.Environment, e.Until.Format(time.RFC3339))
	case *domain.PipelineAwaitingApproval:
		return fmt.Sprintf("stage %d (%s) awaits approval", e.Stage+1, e.Environment)
	case *domain.ReleaseStageStarted:
		return fmt.Sprintf("stage %d (%s) started", e.Stage+1, e.Environment)
	case *domain.ReleaseStageCompleted:
		return fmt.Sprintf("stage %d (%s) completed: %s", e.Stage+1, e.Environment, e.Outcome)
	case *domain.ReleaseStageFailed:
		return fmt.Sprintf("stage %d (%s) failed: %s", e.Stage+1, e.Environment, e.Reason)
	case *domain.ReleasePaused:
		return fmt.Sprintf("paused at stage %d (%s): %s", e.Stage+1, e.Environment, e.Reason)
	}
	return e.EventType()
}
