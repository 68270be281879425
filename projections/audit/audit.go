// Package audit is the audit log read model: one row per event with who, when, why, which entity
// and environment, and the parts of the entity that the event changed, before and after (see
// Diff); the whole state at any moment is a fold of the events (time travel).
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections"
	"github.com/vexil-flags/vexil/projections/catalog"
)

// Name of this projection.
const Name = "audit"

// Projection maintains rm_audit_log.
type Projection struct{}

func (Projection) Name() string { return Name }

// Tables implements projections.TableOwner.
func (Projection) Tables() []string { return []string{"rm_audit_log"} }

// VolatileColumns implements projections.TableOwner.
func (Projection) VolatileColumns() map[string][]string { return nil }

// Apply records each new event; rows are keyed by global position, so a repeat is a no-op.
func (Projection) Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error {
	if len(newEvents) == 0 {
		return nil
	}
	streamID := newEvents[0].StreamID
	kind := domain.StreamKind(streamID)
	project, key := entity(streamID)
	// One statement per stream however many events it applies: replay and catch-up write
	// thousands of rows per stream, and a round trip per row would dominate.
	n := len(newEvents)
	var (
		positions, versions                  = make([]int64, 0, n), make([]int64, 0, n)
		environments, types, actors, reasons = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		requests, datas                      = make([]string, 0, n), make([]string, 0, n)
		befores, afters                      = make([]*string, 0, n), make([]*string, 0, n)
		times                                = make([]time.Time, 0, n)
	)
	err := projections.Walk(streamID, history, newEvents, func(s projections.Step) error {
		before, after := s.Before, s.After
		switch kind {
		case "project":
			// Server-side SDK keys are secrets: the audit log shows only their last characters.
			before, after = redactProject(before), redactProject(after)
		case "trigger":
			// A webhook secret's hash stays out of the audit log, like API token hashes.
			before, after = redactField(before, "secret_hash"), redactField(after, "secret_hash")
		}
		before, after = Diff(before, after)
		positions = append(positions, s.Event.Position)
		versions = append(versions, s.Event.Version)
		environments = append(environments, environmentOf(s.Event, s.State))
		types = append(types, s.Event.Type)
		actors = append(actors, s.Event.Metadata.Actor)
		reasons = append(reasons, s.Event.Metadata.Reason)
		requests = append(requests, s.Event.Metadata.RequestID)
		times = append(times, s.Event.OccurredAt)
		datas = append(datas, string(redactEventData(s.Event)))
		befores = append(befores, nullText(before))
		afters = append(afters, nullText(after))
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rm_audit_log (position, stream_id, version, project, entity_kind,
		entity_key, environment, event_type, actor, reason, request_id, occurred_at, data, before, after)
		SELECT u.position, $1, u.version, $2, $3, $4, u.environment, u.event_type, u.actor, u.reason, u.request_id,
		       u.occurred_at, u.data::jsonb, u.before::jsonb, u.after::jsonb
		FROM unnest($5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
		            $12::timestamptz[], $13::text[], $14::text[], $15::text[])
		  AS u(position, version, environment, event_type, actor, reason, request_id, occurred_at, data, before, after)
		ON CONFLICT (position) DO NOTHING`,
		streamID, project, kind, key, positions, versions, environments, types, actors, reasons, requests,
		times, datas, befores, afters); err != nil {
		return fmt.Errorf("audit: insert %s v%d..v%d: %w", streamID, newEvents[0].Version, newEvents[n-1].Version, err)
	}
	return nil
}

// entity splits a stream id into project and entity key.
func entity(streamID string) (project, key string) {
	parts := strings.Split(streamID, "/")
	switch len(parts) {
	case 2:
		if parts[0] == "project" {
			return parts[1], parts[1]
		}
		return "", parts[1]
	case 3:
		return parts[1], parts[2]
	}
	return "", streamID
}

// environmentOf names the environment an event is about, if it is about one: the event's own
// field, or else the environment of the delivery aggregate it belongs to (state, after the event).
// Every event of a schedule, rollout, auto-ops rule or trigger is about that aggregate's one
// environment; their outcome events (ScheduleApplied, RolloutPaused, TriggerFired...) carry it
// since issue 20, and the ones recorded before are filed under it here, so a replay files old
// and new logs alike (migration 0160 did the same to the rows projected before).
func environmentOf(r domain.RecordedEvent, state projections.Aggregate) string {
	if env := eventEnvironment(r); env != "" {
		return env
	}
	switch a := state.(type) {
	case *domain.ScheduledChange:
		return a.Environment
	case *domain.Rollout:
		return a.Environment
	case *domain.AutoOpsRule:
		return a.Environment
	case *domain.Trigger:
		return a.Environment
	}
	return ""
}

// eventEnvironment is the environment an event names itself.
func eventEnvironment(r domain.RecordedEvent) string {
	var probe struct {
		Environment string `json:"environment"`
	}
	_ = json.Unmarshal(r.Data, &probe)
	if probe.Environment == "" && r.Type == (&domain.EnvironmentCreated{}).EventType() {
		var e struct {
			Key string `json:"key"`
		}
		_ = json.Unmarshal(r.Data, &e)
		return e.Key
	}
	return probe.Environment
}

func redactProject(snapshot json.RawMessage) json.RawMessage {
	if snapshot == nil {
		return nil
	}
	var p domain.Project
	if err := json.Unmarshal(snapshot, &p); err != nil {
		return snapshot
	}
	b, err := json.Marshal(catalog.RedactProject(&p))
	if err != nil {
		return snapshot
	}
	return b
}

func redactEventData(r domain.RecordedEvent) json.RawMessage {
	e, err := r.Decode()
	if err != nil {
		return r.Data
	}
	switch e := e.(type) {
	case *domain.EnvironmentCreated:
		e.ServerKey = catalog.Redact(e.ServerKey)
	case *domain.SDKKeyRotated:
		if e.Kind == domain.ServerSideKey {
			e.Key, e.PreviousKey = catalog.Redact(e.Key), catalog.Redact(e.PreviousKey)
		}
	case *domain.TokenIssued:
		e.Hash = ""
	case *domain.TriggerCreated:
		e.SecretHash = ""
	case *domain.TriggerSecretRotated:
		return redactField(r.Data, "secret_hash")
	default:
		return r.Data
	}
	b, err := json.Marshal(e)
	if err != nil {
		return r.Data
	}
	return b
}

func nullText(b json.RawMessage) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// redactField blanks one top-level field of a JSON object, if present.
func redactField(snapshot json.RawMessage, field string) json.RawMessage {
	if snapshot == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(snapshot, &m); err != nil {
		return snapshot
	}
	if _, ok := m[field]; !ok {
		return snapshot
	}
	m[field] = ""
	b, err := json.Marshal(m)
	if err != nil {
		return snapshot
	}
	return b
}
