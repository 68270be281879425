package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/delivery"
	"github.com/vexil-flags/vexil/services/app"
)

// Command ids a rollout writes to its flag, all "<rollout id>:..." (keys cannot hold ':', so the
// prefix names exactly one rollout): "step:<i>" (Rollout.StepCommandID), "abort" (app.AbortRollout), and
// "rollback:<rule>:fire:<version>" (auto-ops). The rollout's own events carry the same id.
func rollbackCommandID(rollout, fireCommand string) string {
	return rollout + ":rollback:" + fireCommand
}

// advanceRollout applies the rollout's due step and returns "applied", "halted" (the step could not
// apply and the rollout was paused with the reason) or "" (nothing was due).
//
// Order: the flag's events with StepCommandID(i), then the rollout's (skipped steps, applied,
// completed) with the same id. A step whose flag append is found without its rollout events is
// recorded first (see recoverRollout), so a restart never applies a step twice and never skips one
// that was applied; when the scheduler was down across several steps, Due returns the latest and
// ApplyStep records the earlier ones as skipped.
func (s *Scheduler) advanceRollout(ctx context.Context, ref delivery.Ref, now time.Time) (string, error) {
	stream := domain.RolloutStream(ref.Project, ref.ID)
	nothing := "" // what to report when nothing (more) is due: "applied" once a step was recorded
	for attempt := 0; attempt < maxAttempts; attempt++ {
		events, err := s.store.Load(ctx, stream)
		if err != nil {
			return "", err
		}
		r, err := domain.FoldRollout(events)
		if err != nil {
			return "", err
		}
		if r == nil || !r.Active() {
			return nothing, nil
		}
		flagStream := domain.FlagStream(r.Project, r.Flag)
		flagEvents, err := s.store.Load(ctx, flagStream)
		if err != nil {
			return "", err
		}
		if cmd, ok := unrecordedCommand(r, events, flagEvents); ok {
			recorded, err := s.recordRolloutCommand(ctx, r, cmd, flagEvents, now)
			if err != nil && !app.IsVersionConflict(err) {
				return "", err
			}
			if recorded && strings.HasPrefix(cmd, r.ID+":step:") {
				nothing = "applied"
			}
			continue
		}
		if r.PendingGuard != nil {
			return s.actOnGuard(ctx, r, now)
		}
		i, due := r.Due(now)
		if !due {
			return nothing, nil
		}
		var evidence []domain.GuardEvidence
		if r.Guarded() {
			// A step already waiting is measured again at the auto-ops cadence, not every pass:
			// each measurement is a query over the exposure tables per guard.
			key := r.Project + "/" + r.ID
			if last, ok := s.guardMeasured[key]; ok && s.autoOpsGap > 0 && r.Waiting != nil && r.Waiting.Step == i &&
				now.Sub(last) < s.autoOpsGap {
				return nothing, nil
			}
			s.guardMeasured[key] = now
			ev, outcome, err := s.guardStep(ctx, r, events, i, now)
			switch {
			case err != nil:
				return "", err
			case outcome == "retry":
				continue
			case outcome != "":
				if nothing != "" {
					return nothing, nil
				}
				return outcome, nil
			}
			evidence = ev
		}
		step := r.Steps[i]
		meta := app.Meta{Actor: "system:rollout/" + r.ID, CommandID: r.StepCommandID(i),
			Reason: reasonText(fmt.Sprintf("rollout %s: step %d of %d, %s%% of %q (due %s)", r.ID, i+1, len(r.Steps),
				strconv.FormatFloat(step.Percent, 'f', -1, 64), r.Variation, step.At.UTC().Format(time.RFC3339)))}
		out, err := s.app.Commands.ApplyRolloutStep(ctx, meta, app.ApplyRolloutStep{Rollout: r, Step: i})
		switch {
		case out.Refused != nil:
			code := domain.ErrorCode(out.Refused)
			if code == domain.EInternal || code == domain.EUnavailable {
				return "", out.Refused
			}
			// Before blaming the flag: did a step of ours land meanwhile (another scheduler)?
			if fresh, err := s.store.Load(ctx, flagStream); err == nil {
				if _, ok := unrecordedCommand(r, events, fresh); ok {
					continue
				}
			}
			return s.haltRollout(ctx, r, i, out.Refused, now)
		case app.IsDuplicateCommand(err), app.IsVersionConflict(err):
			continue
		case err != nil:
			return "", err
		}
		if err := s.crashPoint("rollout", r.ID); err != nil {
			return "", err
		}
		err = s.app.Commands.RecordRollout(ctx, meta, app.RecordRollout{Rollout: r, Events: domain.WithGuardEvidence(out.Events, evidence)})
		switch {
		case app.IsDuplicateCommand(err):
			return nothing, nil // another scheduler recorded it
		case app.IsVersionConflict(err):
			continue // paused or aborted meanwhile: the next attempt records the step if still active
		case err != nil:
			return "", err
		}
		delete(s.guardMeasured, ref.Project+"/"+ref.ID)
		s.log.Info("rollout step applied", "project", r.Project, "rollout", r.ID, "flag", r.Flag,
			"environment", r.Environment, "step", i, "percent", step.Percent, "skipped_before", i-r.Next)
		return "applied", nil
	}
	return "", fmt.Errorf("delivery: rollout %s/%s: still contended after %d attempts", ref.Project, ref.ID, maxAttempts)
}

// haltRollout pauses a rollout whose step cannot apply (someone changed the default serve by hand,
// a variation was removed, the flag was archived), with the reason, so it fails visibly and waits
// for a person: resume overwrites, abort restores.
func (s *Scheduler) haltRollout(ctx context.Context, r *domain.Rollout, step int, cause error, now time.Time) (string, error) {
	reason := reasonText(fmt.Sprintf("step %d could not apply: %s", step+1, domain.ErrorMessage(cause)))
	meta := app.Meta{Actor: "system:rollout/" + r.ID, Reason: reason,
		CommandID: fmt.Sprintf("%s:halt:%d", r.ID, r.Version), Expected: app.Version(r.Version)}
	_, _, err := s.app.Commands.PauseRollout(ctx, meta, app.PauseRollout{Project: r.Project, ID: r.ID, Reason: reason, Now: now})
	if err != nil && !app.IsDuplicateCommand(err) {
		return "", err
	}
	s.notes.notify("RolloutPaused")
	s.log.Warn("rollout paused: its step could not apply", "project", r.Project, "rollout", r.ID, "flag", r.Flag,
		"environment", r.Environment, "step", step, "reason", reason)
	return "halted", nil
}

// unrecordedCommand returns the command id of a change this rollout wrote to its flag but did not
// record on its own stream, if there is one it can still record: a step at or after Next while the
// rollout is scheduled or running, an abort or a rollback while it is active.
func unrecordedCommand(r *domain.Rollout, rolloutEvents, flagEvents []domain.RecordedEvent) (string, bool) {
	recorded := commandIDs(rolloutEvents)
	prefix := r.ID + ":"
	stepping := r.Status == domain.RolloutStatusScheduled || r.Status == domain.RolloutStatusRunning
	for _, e := range flagEvents {
		cmd := e.Metadata.CommandID
		if !strings.HasPrefix(cmd, prefix) || recorded[cmd] {
			continue
		}
		rest := cmd[len(prefix):]
		switch {
		case strings.HasPrefix(rest, "step:"):
			k, err := strconv.Atoi(rest[len("step:"):])
			if err == nil && stepping && k >= r.Next && k < len(r.Steps) {
				return cmd, true
			}
		case rest == "abort", strings.HasPrefix(rest, "rollback:"):
			if r.Active() {
				return cmd, true
			}
		}
	}
	return "", false
}

// recordRolloutCommand records on the rollout what a flag append with command id cmd did: the
// rollout's events are decided again by the same command against the flag as it was just before
// that append, so they are the ones that went with it. It reports whether it recorded them (not
// when another scheduler did first).
func (s *Scheduler) recordRolloutCommand(ctx context.Context, r *domain.Rollout, cmd string, flagEvents []domain.RecordedEvent, now time.Time) (bool, error) {
	before, version, _ := commandAppend(flagEvents, cmd)
	flagBefore, err := domain.FoldFlag(before)
	if err != nil {
		return false, err
	}
	var original domain.Metadata
	for _, e := range flagEvents {
		if e.Metadata.CommandID == cmd {
			original = e.Metadata
			break
		}
	}
	rest := strings.TrimPrefix(cmd, r.ID+":")
	meta := app.Meta{Actor: "system:rollout/" + r.ID, CommandID: cmd,
		Reason: reasonText(fmt.Sprintf("records %s, written to flag %q at version %d by %s: %s", rest, r.Flag, version,
			original.Actor, original.Reason))}
	recorded, err := s.app.Commands.RecordRolloutCommand(ctx, meta, app.RecordRolloutCommand{Rollout: r, Command: cmd,
		FlagBefore: flagBefore, Original: original, Now: now})
	if app.IsDuplicateCommand(err) || (err == nil && !recorded) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delivery: written to flag version %d: %w", version, err)
	}
	s.log.Warn("recorded a rollout change found on its flag without its outcome (a crash or a race between the two appends)",
		"project", r.Project, "rollout", r.ID, "command", cmd, "flag_version", version)
	return true, nil
}

// recoverRollout records, for one active rollout, every change written to its flag but not to it.
func (s *Scheduler) recoverRollout(ctx context.Context, ref delivery.Ref, now time.Time) error {
	stream := domain.RolloutStream(ref.Project, ref.ID)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		events, err := s.store.Load(ctx, stream)
		if err != nil {
			return err
		}
		r, err := domain.FoldRollout(events)
		if err != nil || r == nil || !r.Active() {
			return err
		}
		flagEvents, err := s.store.Load(ctx, domain.FlagStream(r.Project, r.Flag))
		if err != nil {
			return err
		}
		cmd, ok := unrecordedCommand(r, events, flagEvents)
		if !ok {
			return nil
		}
		if _, err := s.recordRolloutCommand(ctx, r, cmd, flagEvents, now); err != nil && !app.IsVersionConflict(err) {
			return err
		}
	}
	return nil
}
