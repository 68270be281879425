package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

// evaluateRule measures one armed auto-ops rule and, when it fires, performs its action and then
// records the firing with its evidence (AutoOpsRuleTriggered). It reports whether it fired.
//
// The action's command id is "<rule>:fire:<rule version>" (a rollback's is prefixed by the
// rollout, see rollbackCommandID): a rule fires at most once per armed version, however many
// schedulers evaluate it and whether or not a crash came between the action and the record.
func (s *Scheduler) evaluateRule(ctx context.Context, ref delivery.Ref, now time.Time) (bool, error) {
	stream := domain.AutoOpsStream(ref.Project, ref.ID)
	events, err := s.store.Load(ctx, stream)
	if err != nil {
		return false, err
	}
	rule, err := domain.FoldAutoOpsRule(events)
	if err != nil || rule == nil || !rule.Armed() {
		return false, err
	}
	goal, _, err := s.app.Queries.Goal(ctx, rule.Project, rule.Metric.Goal)
	if err != nil && domain.ErrorCode(err) != domain.ENotFound {
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
		Goal: goal.Key, GoalKind: goal.Kind, ValueCap: goal.ValueCap, Variations: variations, Since: delivery.ArmedAt(events)})
	if err != nil {
		return false, err
	}
	fire, evidence := rule.Decide(Measure(rule, goal.Kind, arms), now)
	if !fire {
		s.log.Debug("auto-ops rule quiet", "project", rule.Project, "rule", rule.ID, "decision", evidence.Decision)
		return false, nil
	}
	fireCmd := fmt.Sprintf("%s:fire:%d", rule.ID, rule.Version)
	meta := app.Meta{Actor: "system:autoops/" + rule.ID, CommandID: fireCmd,
		Reason: reasonText(fmt.Sprintf("auto-ops rule %q (%s) %s", rule.Name, rule.ID, evidence.Decision))}
	if err := s.act(ctx, rule, meta, now); err != nil {
		return false, err
	}
	if err := s.crashPoint("autoops", rule.ID); err != nil {
		return false, err
	}
	err = s.app.Commands.RecordAutoOpsFiring(ctx, meta, app.RecordAutoOpsFiring{Rule: rule, Evidence: evidence})
	switch {
	case app.IsDuplicateCommand(err):
		return false, nil // another scheduler recorded this firing
	case app.IsVersionConflict(err):
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

// act performs a fired rule's action with ordinary commands attributed to the rule: turning the
// flag off is the same ToggleFlag a person runs through the API.
func (s *Scheduler) act(ctx context.Context, rule *domain.AutoOpsRule, meta app.Meta, now time.Time) error {
	switch rule.Action {
	case domain.AutoOpsTurnOff:
		meta.Retries = maxAttempts - 1
		_, _, err := s.app.Commands.ToggleFlag(ctx, meta, app.ToggleFlag{Project: rule.Project, Flag: rule.Flag,
			Environment: rule.Environment, On: false})
		if app.IsDuplicateCommand(err) {
			return nil
		}
		if code := domain.ErrorCode(err); code == domain.ENotFound || (code == domain.EConflict && !app.IsVersionConflict(err)) {
			// Nothing to turn off (the flag is gone or archived): record the firing all the same.
			s.log.Warn("auto-ops rule fired but its flag cannot be turned off", "rule", rule.ID, "err", err)
			return nil
		}
		return err
	case domain.AutoOpsPauseRollout, domain.AutoOpsRollbackRollout:
		for attempt := 0; attempt < maxAttempts; attempt++ {
			r, err := s.app.Queries.ActiveRollout(ctx, rule.Project, rule.Flag, rule.Environment)
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
			if !app.IsVersionConflict(err) {
				return err
			}
		}
		return fmt.Errorf("delivery: auto-ops rule %s: rollout still contended after %d attempts", rule.ID, maxAttempts)
	}
	return fmt.Errorf("delivery: auto-ops rule %s: unknown action %q", rule.ID, rule.Action)
}

func (s *Scheduler) pauseRollout(ctx context.Context, r *domain.Rollout, meta app.Meta, now time.Time) error {
	if r.Status == domain.RolloutStatusPaused {
		return nil
	}
	meta.CommandID = r.ID + ":pause:" + meta.CommandID
	meta.Expected = app.Version(r.Version)
	_, _, err := s.app.Commands.PauseRollout(ctx, meta, app.PauseRollout{Project: r.Project, ID: r.ID, Reason: meta.Reason, Now: now})
	if app.IsDuplicateCommand(err) {
		return nil
	}
	return err
}

// rollBack sends the rollout back to 0%: the flag first, then the rollout (RolledBack, Paused),
// both with the command id "<rollout>:rollback:<rule>:fire:<version>".
func (s *Scheduler) rollBack(ctx context.Context, r *domain.Rollout, meta app.Meta, now time.Time) error {
	meta.CommandID = rollbackCommandID(r.ID, meta.CommandID)
	out, err := s.app.Commands.RollBackRollout(ctx, meta, app.RollBackRollout{Rollout: r, Now: now})
	switch {
	case out.Refused != nil:
		if code := domain.ErrorCode(out.Refused); code == domain.EInternal || code == domain.EUnavailable {
			return out.Refused
		}
		// The flag cannot take the rollback (archived, environment gone): at least stop the rollout.
		s.log.Warn("auto-ops could not roll the flag back; pausing the rollout", "rollout", r.ID, "err", out.Refused)
		return s.pauseRollout(ctx, r, meta, now)
	case app.IsVersionConflict(err):
		return err
	case err != nil && !app.IsDuplicateCommand(err):
		return err
	}
	if err := s.crashPoint("rollback", r.ID); err != nil {
		return err
	}
	if len(out.Events) == 0 {
		return nil
	}
	err = s.app.Commands.RecordRollout(ctx, meta, app.RecordRollout{Rollout: r, Events: out.Events})
	if app.IsDuplicateCommand(err) {
		return nil
	}
	return err
}
