package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// Payload is the JSON body of a delivery in the json format.
type Payload struct {
	// ID is the delivery's id (also Vexil-Delivery-Id): de-duplicate by it.
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Project     string    `json:"project"`
	Environment string    `json:"environment,omitempty"`
	Flag        string    `json:"flag,omitempty"`
	Actor       string    `json:"actor,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	OccurredAt  time.Time `json:"occurred_at"`
	// Event is the event of the log this delivery tells of (absent for a test delivery).
	Event *EventRef `json:"event,omitempty"`
	// Text says it in one line for people (the slack format sends only this).
	Text string `json:"text"`
}

// EventRef is an event of the log, as stored.
type EventRef struct {
	Type     string          `json:"type"`
	StreamID string          `json:"stream_id"`
	Version  int64           `json:"version"`
	Position int64           `json:"position"`
	Data     json.RawMessage `json:"data"`
}

// OutboxName is the outbox projection's checkpoint name.
const OutboxName = "webhook_outbox"

// Outbox is the projection that fills the webhook outbox from the event log. The projector runs
// it like a read model: each event is applied once per checkpoint, in the transaction that
// advances it, and the unique (subscription, event position) makes a repeat insert nothing, so
// every subscribed event is queued exactly once per subscription.
//
// It is no read model: replay does not rebuild it (deliveries are effects on the outside world,
// already made), so it runs beside platform.ReadModels(), not among them. A subscription gets the
// events recorded after it was created, never the history before it (which a projector catching
// up a new checkpoint would otherwise send).
type Outbox struct{}

// Name implements projections.Projection.
func (Outbox) Name() string { return OutboxName }

// Apply implements projections.Projection.
func (Outbox) Apply(ctx context.Context, tx pgx.Tx, _, newEvents []domain.RecordedEvent) error {
	for _, e := range newEvents {
		kind := KindOf(e.Type)
		if kind == "" {
			continue
		}
		p := payloadOf(e, kind)
		if p.Project == "" {
			continue
		}
		rows, err := tx.Query(ctx, `SELECT id FROM webhook_subscriptions
			WHERE project = $1 AND enabled AND $2 = ANY (kinds) AND created_at <= $3`, p.Project, kind, e.OccurredAt)
		if err != nil {
			return fmt.Errorf("webhooks: subscriptions for %s: %w", e.StreamID, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("webhooks: subscriptions for %s: %w", e.StreamID, err)
		}
		for _, sub := range ids {
			p.ID = newDeliveryID()
			if _, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, subscription_id, project, kind, event_position, payload)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription_id, event_position) DO NOTHING`,
				p.ID, sub, p.Project, kind, e.Position, p); err != nil {
				return fmt.Errorf("webhooks: queue %s v%d for %s: %w", e.StreamID, e.Version, sub, err)
			}
		}
	}
	return nil
}

// payloadOf describes an event: project, flag and environment from the stream id
// (<kind>/<project>/<id>) and from the event's own fields of those names.
func payloadOf(e domain.RecordedEvent, kind string) Payload {
	p := Payload{Kind: kind, Actor: e.Metadata.Actor, Reason: e.Metadata.Reason, OccurredAt: e.OccurredAt.UTC(),
		Event: &EventRef{Type: e.Type, StreamID: e.StreamID, Version: e.Version, Position: e.Position, Data: e.Data}}
	parts := strings.SplitN(e.StreamID, "/", 3)
	if len(parts) >= 2 {
		p.Project = parts[1]
	}
	if parts[0] == "flag" && len(parts) == 3 {
		p.Flag = parts[2]
	}
	var fields struct {
		Project     string `json:"project"`
		Environment string `json:"environment"`
		Flag        string `json:"flag"`
	}
	_ = json.Unmarshal(e.Data, &fields) // every event's data is an object; missing fields stay ""
	if fields.Project != "" {
		p.Project = fields.Project
	}
	if fields.Environment != "" {
		p.Environment = fields.Environment
	}
	if fields.Flag != "" {
		p.Flag = fields.Flag
	}
	p.Text = textOf(p, e)
	return p
}

func textOf(p Payload, e domain.RecordedEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", p.Project, e.Type)
	if p.Flag != "" {
		fmt.Fprintf(&b, " flag %s", p.Flag)
	} else if parts := strings.SplitN(e.StreamID, "/", 3); len(parts) == 3 {
		fmt.Fprintf(&b, " %s %s", parts[0], parts[2])
	}
	if p.Environment != "" {
		fmt.Fprintf(&b, " in %s", p.Environment)
	}
	if e.Type == "FlagToggled" {
		var t domain.FlagToggled
		if json.Unmarshal(e.Data, &t) == nil {
			b.WriteString(map[bool]string{true: ": on", false: ": off"}[t.On])
		}
	}
	if p.Actor != "" {
		fmt.Fprintf(&b, " by %s", p.Actor)
	}
	if p.Reason != "" {
		fmt.Fprintf(&b, " (%s)", p.Reason)
	}
	return b.String()
}
