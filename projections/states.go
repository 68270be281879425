package projections

import (
	"encoding/json"
	"fmt"

	"github.com/vexil-flags/vexil/domain"
)

// Aggregate is the folded state of any stream, rebuilt event by event.
type Aggregate interface {
	ApplyRecorded(domain.RecordedEvent) error
}

// NewAggregate returns the empty state of the aggregate kind of streamID.
func NewAggregate(streamID string) (Aggregate, error) {
	switch kind := domain.StreamKind(streamID); kind {
	case "project":
		return &domain.Project{}, nil
	case "flag":
		return &domain.Flag{}, nil
	case "segment":
		return &domain.Segment{}, nil
	case "token":
		return &domain.APIToken{}, nil
	case "goal":
		return &domain.Goal{}, nil
	case "experiment":
		return &domain.Experiment{}, nil
	case "schedule":
		return &domain.ScheduledChange{}, nil
	case "rollout":
		return &domain.Rollout{}, nil
	case "autoops":
		return &domain.AutoOpsRule{}, nil
	case "trigger":
		return &domain.Trigger{}, nil
	case "pipeline":
		return &domain.Pipeline{}, nil
	case "release":
		return &domain.Release{}, nil
	case "changerequest":
		return &domain.ChangeRequest{}, nil
	default:
		return nil, fmt.Errorf("projections: no aggregate for stream kind %q (%s)", kind, streamID)
	}
}

// Fold returns the state of streamID after events.
func Fold(streamID string, events []domain.RecordedEvent) (Aggregate, error) {
	a, err := NewAggregate(streamID)
	if err != nil {
		return nil, err
	}
	for _, r := range events {
		if err := a.ApplyRecorded(r); err != nil {
			return nil, fmt.Errorf("fold %s v%d: %w", streamID, r.Version, err)
		}
	}
	return a, nil
}

// Step is one event with JSON snapshots of its aggregate before and after it (nil before the
// first event).
type Step struct {
	Event  domain.RecordedEvent
	Before json.RawMessage
	After  json.RawMessage
	State  Aggregate // the state after the event; shared, do not keep across steps
}

// Walk folds history, then applies each new event in turn and calls fn with the snapshots around
// it. Snapshots are JSON so they can be stored and diffed as they are.
func Walk(streamID string, history, newEvents []domain.RecordedEvent, fn func(Step) error) error {
	a, err := Fold(streamID, history)
	if err != nil {
		return err
	}
	var before json.RawMessage
	if len(history) > 0 {
		if before, err = json.Marshal(a); err != nil {
			return fmt.Errorf("snapshot %s: %w", streamID, err)
		}
	}
	for _, r := range newEvents {
		if err := a.ApplyRecorded(r); err != nil {
			return fmt.Errorf("fold %s v%d: %w", streamID, r.Version, err)
		}
		after, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", streamID, err)
		}
		if err := fn(Step{Event: r, Before: before, After: after, State: a}); err != nil {
			return err
		}
		before = after
	}
	return nil
}

// TableOwner is implemented by projections that own read-model tables, so replay can rebuild
// them into a fresh schema and compare or swap them with the live ones.
type TableOwner interface {
	// Tables lists the projection's tables (unqualified names).
	Tables() []string
	// VolatileColumns lists, per table, columns that legitimately differ between a live read model
	// and a replay of the same events (e.g. counters that depend on delivery order); replay
	// --verify ignores them.
	VolatileColumns() map[string][]string
}
