package projections

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/vexil-flags/vexil/domain"
)

// Projection builds one read model from the event store.
//
// The projector runner (services/roles/projector) guarantees: Apply is called with one stream's events
// in version order, exactly the ones after the projection's checkpoint for that stream, inside
// tx, and the checkpoint is advanced in the same tx; so, as long as Apply writes only through tx,
// every event is applied exactly once even when notifications are redelivered or several
// projector instances run. An error rolls the transaction back and the events are applied again
// later (the message is retried, then dead-lettered; replay or catch-up applies it again).
type Projection interface {
	// Name identifies the projection in projection_checkpoints; never rename a live projection
	// (it would be rebuilt from scratch under the new name).
	Name() string
	// Apply applies newEvents (contiguous, after the checkpoint) of one stream; history holds the
	// events of that stream already applied (versions 1..checkpoint), so projections that need
	// the state before a change (the audit log's before/after) can fold it.
	Apply(ctx context.Context, tx pgx.Tx, history, newEvents []domain.RecordedEvent) error
}
