// Package delivery is the read model of progressive delivery: scheduled changes, progressive
// rollouts, auto-ops rules with their firings, and webhook triggers (without their secrets). The
// console lists from it; the experiment role's scheduler finds due work in it and then acts on the
// aggregates loaded from the event store, never on these rows alone.
package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
)

// Name of this projection.
const Name = "delivery"

// Projection maintains rm_delivery_schedules, rm_delivery_rollouts, rm_delivery_autoops_rules,
// rm_delivery_autoops_firings and rm_delivery_triggers.
type Projection struct{}

func (Projection) Name() string { return Name }

// Tables implements projections.TableOwner.
func (Projection) Tables() []string {
	return []string{"rm_delivery_schedules", "rm_delivery_rollouts", "rm_delivery_autoops_rules",
		"rm_delivery_autoops_firings", "rm_delivery_triggers", "rm_delivery_pipelines", "rm_delivery_releases"}
}

// VolatileColumns implements projections.TableOwner: every column is a function of the events.
func (Projection) VolatileColumns() map[string][]string { return nil }

// Apply upserts the folded state after the new events (idempotent: it writes whole states, and
// firings are keyed by the event's version).
func (Projection) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	if len(newEvents) == 0 {
		return nil
	}
	streamID := newEvents[0].StreamID
	switch domain.StreamKind(streamID) {
	case "schedule", "rollout", "autoops", "trigger", "pipeline", "release":
	default:
		return nil
	}
	all := append(append([]domain.RecordedEvent(nil), history...), newEvents...)
	agg, err := projections.Fold(streamID, all)
	if err != nil {
		return err
	}
	switch s := agg.(type) {
	case *domain.ScheduledChange:
		return upsertSchedule(ctx, tx, s)
	case *domain.Rollout:
		return upsertRollout(ctx, tx, s)
	case *domain.AutoOpsRule:
		if err := upsertRule(ctx, tx, s, ArmedAt(all)); err != nil {
			return err
		}
		return insertFirings(ctx, tx, s, newEvents)
	case *domain.Trigger:
		return upsertTrigger(ctx, tx, s)
	case *domain.Pipeline:
		return upsertPipeline(ctx, tx, s)
	case *domain.Release:
		return upsertRelease(ctx, tx, s)
	}
	return nil
}

// ArmedAt returns when an auto-ops rule stream last armed its rule: the time of its last
// AutoOpsRuleCreated, AutoOpsRuleUpdated or AutoOpsRuleEnabled event. The rule measures the users
// first exposed since then, so re-arming a rule starts a fresh sample rather than firing again on
// the data it already acted on.
func ArmedAt(events []domain.RecordedEvent) time.Time {
	var at time.Time
	for _, r := range events {
		switch r.Type {
		case (&domain.AutoOpsRuleCreated{}).EventType(), (&domain.AutoOpsRuleUpdated{}).EventType(),
			(&domain.AutoOpsRuleEnabled{}).EventType():
			at = r.OccurredAt
		}
	}
	return at
}

// NextStepAt is when the rollout's next step is due, or nil when none is (paused, finished, or no
// step left).
func NextStepAt(r *domain.Rollout) *time.Time {
	if r.Status != domain.RolloutStatusScheduled && r.Status != domain.RolloutStatusRunning {
		return nil
	}
	if r.Next < 0 || r.Next >= len(r.Steps) {
		return nil
	}
	at := r.Steps[r.Next].At
	return &at
}

func upsertSchedule(ctx context.Context, tx pgx.Tx, s *domain.ScheduledChange) error {
	state, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("delivery: marshal schedule %s: %w", s.ID, err)
	}
	var resolved *time.Time
	if !s.ResolvedAt.IsZero() {
		resolved = &s.ResolvedAt
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_delivery_schedules (project, id, flag, environment, kind, at, status,
		failure_reason, resolved_at, state, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
		ON CONFLICT (project, id) DO UPDATE SET kind=$5, at=$6, status=$7, failure_reason=$8, resolved_at=$9,
		  state=$10, version=$11, updated_at=$13`,
		s.Project, s.ID, s.Flag, s.Environment, string(s.Kind), s.At, string(s.Status), s.FailureReason, resolved,
		state, s.Version, s.CreatedAt, s.UpdatedAt); err != nil {
		return fmt.Errorf("delivery: upsert schedule %s/%s: %w", s.Project, s.ID, err)
	}
	return nil
}

func upsertRollout(ctx context.Context, tx pgx.Tx, r *domain.Rollout) error {
	state, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("delivery: marshal rollout %s: %w", r.ID, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_delivery_rollouts (project, id, flag, environment, status, percent,
		next_at, state, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
		ON CONFLICT (project, id) DO UPDATE SET status=$5, percent=$6, next_at=$7, state=$8, version=$9, updated_at=$11`,
		r.Project, r.ID, r.Flag, r.Environment, string(r.Status), r.Percent, NextStepAt(r), state, r.Version,
		r.CreatedAt, r.UpdatedAt); err != nil {
		return fmt.Errorf("delivery: upsert rollout %s/%s: %w", r.Project, r.ID, err)
	}
	return nil
}

func upsertRule(ctx context.Context, tx pgx.Tx, r *domain.AutoOpsRule, armedAt time.Time) error {
	state, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("delivery: marshal auto-ops rule %s: %w", r.ID, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_delivery_autoops_rules (project, id, flag, environment, enabled, triggered,
		deleted, armed_at, state, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
		ON CONFLICT (project, id) DO UPDATE SET enabled=$5, triggered=$6, deleted=$7, armed_at=$8, state=$9,
		  version=$10, updated_at=$12`,
		r.Project, r.ID, r.Flag, r.Environment, r.Enabled, r.Triggered, r.Deleted, armedAt, state, r.Version,
		r.CreatedAt, r.UpdatedAt); err != nil {
		return fmt.Errorf("delivery: upsert auto-ops rule %s/%s: %w", r.Project, r.ID, err)
	}
	return nil
}

func insertFirings(ctx context.Context, tx pgx.Tx, r *domain.AutoOpsRule, events []domain.RecordedEvent) error {
	for _, rec := range events {
		if rec.Type != (&domain.AutoOpsRuleTriggered{}).EventType() {
			continue
		}
		e, err := rec.Decode()
		if err != nil {
			return err
		}
		t := e.(*domain.AutoOpsRuleTriggered)
		evidence, err := json.Marshal(t.Evidence)
		if err != nil {
			return fmt.Errorf("delivery: marshal evidence of %s v%d: %w", rec.StreamID, rec.Version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rm_delivery_autoops_firings (project, rule, version, action, fired_at, actor, evidence)
			VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (project, rule, version) DO NOTHING`,
			r.Project, r.ID, rec.Version, string(t.Action), rec.OccurredAt, rec.Metadata.Actor, evidence); err != nil {
			return fmt.Errorf("delivery: insert firing %s v%d: %w", rec.StreamID, rec.Version, err)
		}
	}
	return nil
}

func upsertTrigger(ctx context.Context, tx pgx.Tx, t *domain.Trigger) error {
	var last *time.Time
	if !t.LastFiredAt.IsZero() {
		last = &t.LastFiredAt
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_delivery_triggers (id, project, name, flag, environment, action, enabled,
		deleted, fired, last_fired_at, version, created_at, updated_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
		ON CONFLICT (id) DO UPDATE SET name=$3, enabled=$7, deleted=$8, fired=$9, last_fired_at=$10, version=$11,
		  updated_at=$13`,
		t.ID, t.Project, t.Name, t.Flag, t.Environment, string(t.Action), t.Enabled, t.Deleted, t.Fired, last,
		t.Version, t.CreatedAt, t.UpdatedAt); err != nil {
		return fmt.Errorf("delivery: upsert trigger %s/%s: %w", t.Project, t.ID, err)
	}
	return nil
}
