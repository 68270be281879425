package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	pdelivery "github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/console"
)

// evaluateRule measures one armed auto-ops rule and, when it fires, performs its action and then
// records the firing with its evidence (AutoOpsRuleTriggered). It reports whether it fired.
//
// The action's command id is "<rule>:fire:<rule version>" (a rollback's is prefixed by the
// rollout, see rollbackCommandID): a rule fires at most once per armed version, however many
// schedulers evaluate it and whether or not a crash came between the action and the record.
func (s *Scheduler) evaluateRule(ctx context.Context, ref pdelivery.Ref, now time.Time) (bool, error) {
	stream := domain.AutoOpsStream(ref.Project, ref.ID)
	events, err := s.store.Load(ctx, stream)
	if err != nil {
		return false, err
	}
	rule, err := domain.FoldAutoOpsRule(events)
	if err != nil || rule == nil || !rule.Armed() {
		return false, err
	}
	goalEvents, err := s.store.Load(ctx, domain.GoalStream(rule.Project, rule.Metric.Goal))
	if err != nil {
		return false, err
	}
	goal, err := domain.FoldGoal(goalEvents)
	if err != nil {
		return false, err
	}
	if goal == nil {
		s.log.Warn("auto-ops rule measures a goal that does not exist", "project", rule.Project, "rule", rule.ID, "goal", rule.Metric.Goal)
		return false, nil
	}
	variations := []string{rule.Metric.Variation}
	if rule.Metric.Control != "" {
		variations = append(variations, rule.Metric.Control)
	}
	arms, err := s.metrics.Arms(ctx, MetricsQuery{Project: rule.Project, Environment: rule.Environment, Flag: rule.Flag,
		Goal: goal.Key, GoalKind: goal.Kind, ValueCap: goal.ValueCap, Variations: variations, Since: pdelivery.ArmedAt(events)})
	if err != nil {
		return false, err
	}
	fire, evidence := rule.Decide(Measure(rule, goal.Kind, arms), now)
	if !fire {
		s.log.Debug("auto-ops rule quiet", "project", rule.Project, "rule", rule.ID, "decision", evidence.Decision)
		return false, nil
	}
	fireCmd := fmt.Sprintf("%s:fire:%d", rule.ID, rule.Version)
	meta := domain.Metadata{Actor: "system:autoops/" + rule.ID, CommandID: fireCmd,
		Reason: reasonText(fmt.Sprintf("auto-ops rule %q (%s) %s", rule.Name, rule.ID, evidence.Decision))}
	if err := s.act(ctx, rule, meta, now); err != nil {
		return false, err
	}
	if err := s.crashPoint("autoops", rule.ID); err != nil {
		return false, err
	}
	_, _, err = s.app.Execute(ctx, stream, rule.Version, meta, func(projections.Aggregate) ([]domain.Event, error) {
		return rule.Fire(evidence)
	})
	switch {
	case console.IsDuplicateCommand(err):
		return false, nil // another scheduler recorded this firing
	case console.IsVersionConflict(err):
		// The rule was changed between the action and the record: the action stands (its audit
		// entry carries the decision), and the rule measures afresh from its new version.
		s.log.Warn("auto-ops rule changed while it fired; its action stands, the firing is not recorded on the rule",
			"project", rule.Project, "rule", rule.ID, "decision", evidence.Decision)
		return true, nil
	case err != nil:
		return false, err
	}
	s.log.Warn("auto-ops rule fired", "project", rule.Project, "rule", rule.ID, "flag", rule.Flag,
		"environment", rule.Environment, "action", rule.Action, "decision", evidence.Decision)
	return true, nil
}

// act performs a fired rule's action with ordinary commands attributed to the rule.
func (s *Scheduler) act(ctx context.Context, rule *domain.AutoOpsRule, meta domain.Metadata, now time.Time) error {
	switch rule.Action {
	case domain.AutoOpsTurnOff:
		cat, err := s.catalog(ctx, rule.Project)
		if err != nil {
			return err
		}
		for attempt := 0; attempt < maxAttempts; attempt++ {
			_, _, err = s.app.Execute(ctx, domain.FlagStream(rule.Project, rule.Flag), console.AnyVersion, meta,
				func(cur projections.Aggregate) ([]domain.Event, error) {
					f, _ := cur.(*domain.Flag)
					if f == nil {
						return nil, domain.Errorf(domain.ENotFound, "flag %q not found", rule.Flag)
					}
					return f.Toggle(rule.Environment, false, cat)
				})
			if !console.IsVersionConflict(err) {
				break
			}
		}
		if console.IsDuplicateCommand(err) {
			return nil
		}
		if code := domain.ErrorCode(err); code == domain.ENotFound || (code == domain.EConflict && !console.IsVersionConflict(err)) {
			// Nothing to turn off (the flag is gone or archived): record the firing all the same.
			s.log.Warn("auto-ops rule fired but its flag cannot be turned off", "rule", rule.ID, "err", err)
			return nil
		}
		return err
	case domain.AutoOpsPauseRollout, domain.AutoOpsRollbackRollout:
		for attempt := 0; attempt < maxAttempts; attempt++ {
			r, err := s.activeRollout(ctx, rule.Project, rule.Flag, rule.Environment)
			if err != nil {
				return err
			}
			if r == nil {
				s.log.Info("auto-ops rule fired with no active rollout to act on", "rule", rule.ID, "action", rule.Action)
				return nil
			}
			if rule.Action == domain.AutoOpsPauseRollout {
				err = s.pauseRollout(ctx, r, meta, now)
			} else {
				err = s.rollBack(ctx, r, meta, now)
			}
			if !console.IsVersionConflict(err) {
				return err
			}
		}
		return fmt.Errorf("delivery: auto-ops rule %s: rollout still contended after %d attempts", rule.ID, maxAttempts)
	}
	return fmt.Errorf("delivery: auto-ops rule %s: unknown action %q", rule.ID, rule.Action)
}

func (s *Scheduler) pauseRollout(ctx context.Context, r *domain.Rollout, meta domain.Metadata, now time.Time) error {
	meta.CommandID = r.ID + ":pause:" + meta.CommandID
	_, _, err := s.app.Execute(ctx, domain.RolloutStream(r.Project, r.ID), r.Version, meta, func(projections.Aggregate) ([]domain.Event, error) {
		if r.Status == domain.RolloutStatusPaused {
			return nil, nil
		}
		return r.Pause(meta.Reason, now)
	})
	if console.IsDuplicateCommand(err) {
		return nil
	}
	return err
}

// rollBack sends the rollout back to 0%: the flag first, then the rollout (RolledBack, Paused),
// both with the command id "<rollout>:rollback:<rule>:fire:<version>".
func (s *Scheduler) rollBack(ctx context.Context, r *domain.Rollout, meta domain.Metadata, now time.Time) error {
	cat, err := s.catalog(ctx, r.Project)
	if err != nil {
		return err
	}
	meta.CommandID = rollbackCommandID(r.ID, meta.CommandID)
	var rolloutEvents []domain.Event
	var decideErr error
	_, _, err = s.app.Execute(ctx, domain.FlagStream(r.Project, r.Flag), console.AnyVersion, meta, func(cur projections.Aggregate) ([]domain.Event, error) {
		f, _ := cur.(*domain.Flag)
		fe, re, err := r.RollBack(meta.Reason, f, cat, now)
		rolloutEvents, decideErr = re, err
		return fe, err
	})
	switch {
	case decideErr != nil:
		if code := domain.ErrorCode(decideErr); code == domain.EInternal || code == domain.EUnavailable {
			return decideErr
		}
		// The flag cannot take the rollback (archived, environment gone): at least stop the rollout.
		s.log.Warn("auto-ops could not roll the flag back; pausing the rollout", "rollout", r.ID, "err", decideErr)
		return s.pauseRollout(ctx, r, meta, now)
	case console.IsVersionConflict(err):
		return err
	case err != nil && !console.IsDuplicateCommand(err):
		return err
	}
	if err := s.crashPoint("rollback", r.ID); err != nil {
		return err
	}
	if len(rolloutEvents) == 0 {
		return nil
	}
	_, _, err = s.app.Execute(ctx, domain.RolloutStream(r.Project, r.ID), r.Version, meta, func(projections.Aggregate) ([]domain.Event, error) {
		return rolloutEvents, nil
	})
	if console.IsDuplicateCommand(err) {
		return nil
	}
	return err
}

// activeRollout returns the rollout of flag in env that is scheduled, running or paused, from the
// event store; nil when there is none.
func (s *Scheduler) activeRollout(ctx context.Context, project, flag, env string) (*domain.Rollout, error) {
	streams, err := s.store.LoadPrefix(ctx, "rollout/"+project+"/")
	if err != nil {
		return nil, err
	}
	for streamID, events := range streams {
		r, err := domain.FoldRollout(events)
		if err != nil {
			return nil, fmt.Errorf("delivery: fold %s: %w", streamID, err)
		}
		if r != nil && r.Active() && r.Flag == flag && r.Environment == env {
			return r, nil
		}
	}
	return nil, nil
}
