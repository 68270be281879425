package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

// resolveSchedule applies (or fails, with its reason) one due scheduled change and returns its
// outcome ("applied" or "failed"; "" when there was nothing to do).
//
// The flag's events are appended first with the change's ApplyCommandID; then ScheduleApplied or
// ScheduleFailed with command id "<id>:outcome" (a recurring change: ScheduleOccurred, with
// ids per occurrence, see ScheduledChange.ApplyCommandID). A pass that finds the apply command already among
// the flag's events (a crash between the appends, or another scheduler) records ScheduleApplied
// with the flag version that change reached, without deciding again: the flag may have changed
// since, and the change did happen.
func (s *Scheduler) resolveSchedule(ctx context.Context, ref delivery.Ref, now time.Time) (string, error) {
	stream := domain.ScheduleStream(ref.Project, ref.ID)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		events, err := s.store.Load(ctx, stream)
		if err != nil {
			return "", err
		}
		sc, err := domain.FoldScheduledChange(events)
		if err != nil {
			return "", err
		}
		if sc == nil || !sc.Due(now) {
			if attempt > 0 && sc != nil && sc.Status == domain.ScheduleStatusCancelled {
				s.reportLostCancel(ctx, sc)
			}
			return "", nil // resolved or edited meanwhile, or the read model is ahead of this clock
		}
		flagStream := domain.FlagStream(sc.Project, sc.Flag)
		flagEvents, err := s.store.Load(ctx, flagStream)
		if err != nil {
			return "", err
		}
		meta := app.Meta{Actor: "system:schedule/" + sc.ID, Reason: reasonText(describeSchedule(sc)),
			CommandID: sc.ApplyCommandID()}
		var outcome []domain.Event
		if _, v, done := commandAppend(flagEvents, sc.ApplyCommandID()); done {
			outcome = sc.AppliedOutcome(v, now)
		} else {
			out, err := s.app.Commands.ApplyScheduledChange(ctx, meta, app.ApplyScheduledChange{Schedule: sc, Now: now})
			switch {
			case app.IsDuplicateCommand(err), app.IsVersionConflict(err):
				continue // made meanwhile, or the flag moved: look again
			case err != nil:
				return "", err
			}
			outcome = out.Events
			if err := s.crashPoint("schedule", sc.ID); err != nil {
				return "", err
			}
		}
		meta.CommandID = sc.OutcomeCommandID()
		failed, _ := outcome[0].(*domain.ScheduleFailed)
		if failed != nil {
			meta.Reason = reasonText(fmt.Sprintf("%s failed: %s", describeSchedule(sc), failed.Reason))
		}
		err = s.app.Commands.RecordScheduleOutcome(ctx, meta, app.RecordScheduleOutcome{Schedule: sc, Outcome: outcome})
		switch {
		case app.IsDuplicateCommand(err):
			return "", nil // another scheduler recorded it
		case app.IsVersionConflict(err):
			// Edited or cancelled between the two appends: look again. A change already written stays
			// (the flag's audit shows it, attributed to this schedule); a cancel that lost that race is
			// reported below on the next attempt.
			continue
		case err != nil:
			return "", err
		}
		if failed != nil {
			s.log.Warn("scheduled change failed", "project", sc.Project, "schedule", sc.ID, "flag", sc.Flag,
				"environment", sc.Environment, "reason", failed.Reason)
			return string(domain.ScheduleStatusFailed), nil
		}
		s.log.Info("scheduled change applied", "project", sc.Project, "schedule", sc.ID, "flag", sc.Flag, "environment", sc.Environment)
		return string(domain.ScheduleStatusApplied), nil
	}
	return "", fmt.Errorf("delivery: scheduled change %s/%s: still contended after %d attempts", ref.Project, ref.ID, maxAttempts)
}

// reportLostCancel logs a cancel that came between the change's two appends: the flag was changed
// (its audit entry names this schedule) but the schedule says cancelled.
func (s *Scheduler) reportLostCancel(ctx context.Context, sc *domain.ScheduledChange) {
	flagEvents, err := s.store.Load(ctx, domain.FlagStream(sc.Project, sc.Flag))
	if err != nil {
		return
	}
	if _, v, done := commandAppend(flagEvents, sc.ApplyCommandID()); done {
		s.log.Error("scheduled change was cancelled while it was being applied: the flag change stands",
			"project", sc.Project, "schedule", sc.ID, "flag", sc.Flag, "flag_version", v)
	}
}

// describeSchedule says what a scheduled change does, for the audit log's reason.
func describeSchedule(sc *domain.ScheduledChange) string {
	what := ""
	switch sc.Kind {
	case domain.ChangeToggle:
		what = "turn off"
		if sc.On {
			what = "turn on"
		}
	case domain.ChangeTargeting:
		what = "replace the targeting of"
	case domain.ChangeDefault:
		what = "change the default serve of"
	default:
		what = "change"
	}
	return fmt.Sprintf("scheduled change %s (due %s): %s flag %q in %q", sc.ID, sc.At.UTC().Format(time.RFC3339), what,
		sc.Flag, sc.Environment)
}
