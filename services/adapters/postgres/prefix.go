package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/vexil-flags/vexil/domain"
)

// LoadPrefix loads every stream whose id starts with prefix (e.g. all flags of a project,
// "flag/demo/") in one query, grouped by stream id, each in version order. Prefixes end with "/",
// so the range [prefix, prefix with "/" replaced by "0") holds exactly them in "C" collation,
// which the events_stream_c index (migration 0004) serves.
func (s *EventStore) LoadPrefix(ctx context.Context, prefix string) (map[string][]domain.RecordedEvent, error) {
	upper := prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
	events, err := queryEvents(ctx, s.pool, `SELECT position, stream_id, version, event_type, data, metadata, occurred_at
		FROM events WHERE stream_id COLLATE "C" >= $1 AND stream_id COLLATE "C" < $2
		ORDER BY stream_id COLLATE "C", version`, prefix, upper)
	if err != nil {
		return nil, err
	}
	out := map[string][]domain.RecordedEvent{}
	for _, e := range events {
		out[e.StreamID] = append(out[e.StreamID], e)
	}
	return out, nil
}

// LoadPrefixNewerThan is LoadPrefix restricted to the events each stream has beyond the version a
// catalog read model table (rm_flags or rm_segments: columns project, key, version) holds for it;
// streams the table does not know come whole. It lets callers start from the read model's rows
// (the catalog's compact info, app.Queries.Catalog) and stay exactly current at the cost of the
// projector's lag only.
func (s *EventStore) LoadPrefixNewerThan(ctx context.Context, prefix, table, project string) (map[string][]domain.RecordedEvent, error) {
	if table != "rm_flags" && table != "rm_segments" {
		return nil, fmt.Errorf("load newer than: unsupported table %q", table)
	}
	upper := prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
	events, err := queryEvents(ctx, s.pool, `SELECT e.position, e.stream_id, e.version, e.event_type, e.data, e.metadata, e.occurred_at
		FROM events e LEFT JOIN `+table+` r ON r.project = $3 AND $1 || r.key = e.stream_id
		WHERE e.stream_id COLLATE "C" >= $1 AND e.stream_id COLLATE "C" < $2 AND e.version > coalesce(r.version, 0)
		ORDER BY e.stream_id COLLATE "C", e.version`, prefix, upper, project)
	if err != nil {
		return nil, err
	}
	out := map[string][]domain.RecordedEvent{}
	for _, e := range events {
		out[e.StreamID] = append(out[e.StreamID], e)
	}
	return out, nil
}

// LoadPrefixUntil is LoadPrefix as of a moment: every stream under prefix folded only up to the
// events that occurred at or before until (time travel).
func (s *EventStore) LoadPrefixUntil(ctx context.Context, prefix string, until time.Time) (map[string][]domain.RecordedEvent, error) {
	upper := prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
	events, err := queryEvents(ctx, s.pool, `SELECT position, stream_id, version, event_type, data, metadata, occurred_at
		FROM events WHERE stream_id COLLATE "C" >= $1 AND stream_id COLLATE "C" < $2 AND occurred_at <= $3
		ORDER BY stream_id COLLATE "C", version`, prefix, upper, until)
	if err != nil {
		return nil, err
	}
	out := map[string][]domain.RecordedEvent{}
	for _, e := range events {
		out[e.StreamID] = append(out[e.StreamID], e)
	}
	return out, nil
}
