package domain

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Event is the payload of a domain event. Events are always handled as pointers to their structs
// (*FlagCreated, ...), both when commands return them and when DecodeEvent rebuilds them.
// Every concrete event is a struct registered in the
// registry below under a stable type name; the type name and the JSON encoding of the struct are
// what the event store keeps forever, so both must stay backwards compatible.
type Event interface {
	EventType() string
}

// Metadata travels with every event: who did it, why, and through which request or command.
type Metadata struct {
	Actor     string `json:"actor"`                // "user:<token id>", "system:<role>", "sdk:<env>"
	Reason    string `json:"reason,omitempty"`     // the free-text comment given with the change
	RequestID string `json:"request_id,omitempty"` // correlates with logs
	// CommandID makes a command idempotent across retries and across scheduler instances: the
	// event store refuses a second command with the same id on the same stream.
	CommandID string `json:"command_id,omitempty"`
}

// RecordedEvent is an event as the event store returns it.
type RecordedEvent struct {
	StreamID   string          `json:"stream_id"`
	Version    int64           `json:"version"`  // 1-based, contiguous within a stream
	Position   int64           `json:"position"` // global order of commit, unique across streams
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Metadata   Metadata        `json:"metadata"`
	OccurredAt time.Time       `json:"occurred_at"`
}

// Decode returns the typed payload of a recorded event.
func (r RecordedEvent) Decode() (Event, error) {
	return DecodeEvent(r.Type, r.Data)
}

var registry = map[string]func() Event{}

// register records a concrete event type. Called from init functions next to the event types.
func register(fns ...func() Event) {
	for _, fn := range fns {
		t := fn().EventType()
		if _, dup := registry[t]; dup {
			panic("domain: event type registered twice: " + t)
		}
		registry[t] = fn
	}
}

// EventTypes lists every registered event type, sorted.
func EventTypes() []string {
	return slices.Sorted(maps.Keys(registry))
}

// DecodeEvent turns a stored (type, JSON) pair back into its typed event.
func DecodeEvent(typ string, data []byte) (Event, error) {
	fn, ok := registry[typ]
	if !ok {
		return nil, fmt.Errorf("decode event: unknown event type %q", typ)
	}
	e := fn()
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", typ, err)
	}
	return e, nil
}

// Stream ids. Keys are part of the id, so creating a second flag with a taken key is an
// optimistic-concurrency conflict on "expected version 0": uniqueness needs no extra index.
func ProjectStream(project string) string          { return "project/" + project }
func FlagStream(project, flag string) string       { return "flag/" + project + "/" + flag }
func SegmentStream(project, segment string) string { return "segment/" + project + "/" + segment }
func TokenStream(id string) string                 { return "token/" + id }

// StreamKind returns the aggregate kind of a stream id ("project", "flag", ...).
func StreamKind(streamID string) string {
	for i := 0; i < len(streamID); i++ {
		if streamID[i] == '/' {
			return streamID[:i]
		}
	}
	return streamID
}
