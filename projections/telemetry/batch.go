// Package telemetry is the analytics read model: the raw evaluation and goal events in
// (hyper)tables, the experiment unit tables derived from them, and the queries the console stats
// API serves from the rollups (continuous aggregates on TimescaleDB, materialized views on plain
// PostgreSQL; see migrations 0010 and 0011).
//
// Events arrive as Batches, one per telemetry stream message: an accepted POST /sdk/v1/events
// request or a flush of the api role's evaluation counters. Write stores a batch idempotently, so
// a message delivered twice (a projector killed before its ack) stores nothing twice.
package telemetry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vexil-flags/vexil/domain"
)

// BatchVersion is the version of the Batch encoding; a consumer dead-letters versions it does not know.
const BatchVersion = 1

// MaxBatchEvents bounds the events of one batch whatever the ingest limit is configured to, so a
// message always fits one statement's arrays comfortably.
const MaxBatchEvents = 10000

// Limits on event fields, checked at the edge (HTTP ingest) and again by the projector.
const (
	MaxKeyLength       = 256  // flag, variation, goal, experiment and reason
	MaxUserKeyLength   = 1000 // as domain.MaxTargetKeyLength
	MaxAttributesBytes = 4096 // the JSON of one event's selected attributes
	MaxValueMagnitude  = 1e15 // |goal value|, so sums and sums of squares stay finite and exact enough
)

// Batch is one message of the telemetry stream: events of one environment, stamped at the edge,
// in columns (the projector passes each column to PostgreSQL as one array for unnest).
//
// Within a column set every slice has the same length. Strings that are "" stand for NULL where
// the column is nullable (user key of a counter row, experiment, attributes).
type Batch struct {
	Version     int               `json:"v"`
	ID          uuid.UUID         `json:"id"` // also the stream message's UUID
	Project     string            `json:"project"`
	Environment string            `json:"environment"`
	ReceivedAt  time.Time         `json:"received_at"`
	Evaluations EvaluationColumns `json:"evaluations"`
	Goals       GoalColumns       `json:"goals"`
}

// EvaluationColumns are evaluation events (flag served a variation to a user), or evaluation
// counts (Count > 1, no user) from the api role's server-side counters.
type EvaluationColumns struct {
	EventID    IDs      `json:"event_id"`
	OccurredAt Times    `json:"occurred_at"`
	Flag       []string `json:"flag"`
	Variation  []string `json:"variation"` // "" when no variation was served
	Reason     []string `json:"reason"`
	User       []string `json:"user"`       // "" for counts
	Experiment []string `json:"experiment"` // "" when none
	Attributes []string `json:"attributes"` // a JSON object, or "" when none
	Count      []int32  `json:"count"`      // evaluations the row stands for (>= 1)
}

// GoalEvents are goal events (a user reached a goal, with an optional numeric value).
type GoalColumns struct {
	EventID    IDs       `json:"event_id"`
	OccurredAt Times     `json:"occurred_at"`
	Goal       []string  `json:"goal"`
	User       []string  `json:"user"`
	Value      []float64 `json:"value"`
	HasValue   []bool    `json:"has_value"` // false: the goal carried no value (NULL)
}

// IDs is a column of event ids, encoded in JSON as one base64 string of their 16-byte forms
// (compact and quick to decode).
type IDs []uuid.UUID

// MarshalJSON encodes the ids as one base64 string.
func (ids IDs) MarshalJSON() ([]byte, error) {
	raw := make([]byte, 16*len(ids))
	for i := range ids {
		copy(raw[16*i:], ids[i][:])
	}
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(raw))+2)
	out = append(out, '"')
	out = base64.StdEncoding.AppendEncode(out, raw)
	return append(out, '"'), nil
}

// UnmarshalJSON decodes MarshalJSON's form.
func (ids *IDs) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*ids = nil
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return errors.New("telemetry: event ids must be a base64 string")
	}
	raw, err := base64.StdEncoding.AppendDecode(nil, b[1:len(b)-1])
	if err != nil || len(raw)%16 != 0 {
		return errors.New("telemetry: event ids must be a base64 string of 16-byte ids")
	}
	out := make(IDs, len(raw)/16)
	for i := range out {
		copy(out[i][:], raw[16*i:])
	}
	*ids = out
	return nil
}

// PG returns the ids as pgx encodes them without a detour through their text form.
func (ids IDs) PG() []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = pgtype.UUID{Bytes: id, Valid: true}
	}
	return out
}

// Times is a column of times, encoded in JSON as integer microseconds since the Unix epoch
// (PostgreSQL's precision), in UTC.
type Times []time.Time

// MarshalJSON encodes the times as an array of microseconds.
func (ts Times) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 18*len(ts)+2)
	out = append(out, '[')
	for i, t := range ts {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendInt(out, t.UnixMicro(), 10)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON decodes MarshalJSON's form.
func (ts *Times) UnmarshalJSON(b []byte) error {
	var us []int64
	if err := json.Unmarshal(b, &us); err != nil {
		return errors.New("telemetry: times must be an array of integer microseconds")
	}
	if us == nil {
		*ts = nil
		return nil
	}
	out := make(Times, len(us))
	for i, u := range us {
		out[i] = time.UnixMicro(u).UTC()
	}
	*ts = out
	return nil
}

// EvaluationEvent is one evaluation as AddEvaluation takes it.
type EvaluationEvent struct {
	EventID    uuid.UUID
	OccurredAt time.Time
	Flag       string
	Variation  string
	Reason     string
	User       string
	Experiment string
	Attributes json.RawMessage // nil or a JSON object
	Count      int32           // 0 means 1
}

// GoalEvent is one goal as AddGoal takes it.
type GoalEvent struct {
	EventID    uuid.UUID
	OccurredAt time.Time
	Goal       string
	User       string
	Value      *float64
}

// NewBatch starts an empty batch of one environment, with a fresh UUIDv7 id.
func NewBatch(project, environment string, receivedAt time.Time) *Batch {
	return &Batch{Version: BatchVersion, ID: newUUID(), Project: project, Environment: environment,
		ReceivedAt: receivedAt.UTC().Truncate(time.Microsecond)}
}

// NewEventID returns a fresh UUIDv7, the id the edge gives an event that came without one.
func NewEventID() uuid.UUID { return newUUID() }

func newUUID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil { // only when the system's random source fails
		panic("telemetry: uuid.NewV7: " + err.Error())
	}
	return id
}

// AddEvaluation appends an evaluation (times are stored in UTC, to the microsecond, as PostgreSQL does).
func (b *Batch) AddEvaluation(e EvaluationEvent) {
	c := &b.Evaluations
	if e.Count <= 0 {
		e.Count = 1
	}
	c.EventID = append(c.EventID, e.EventID)
	c.OccurredAt = append(c.OccurredAt, e.OccurredAt.UTC().Truncate(time.Microsecond))
	c.Flag = append(c.Flag, e.Flag)
	c.Variation = append(c.Variation, e.Variation)
	c.Reason = append(c.Reason, e.Reason)
	c.User = append(c.User, e.User)
	c.Experiment = append(c.Experiment, e.Experiment)
	c.Attributes = append(c.Attributes, string(e.Attributes))
	c.Count = append(c.Count, e.Count)
}

// AddGoal appends a goal event.
func (b *Batch) AddGoal(g GoalEvent) {
	c := &b.Goals
	c.EventID = append(c.EventID, g.EventID)
	c.OccurredAt = append(c.OccurredAt, g.OccurredAt.UTC().Truncate(time.Microsecond))
	c.Goal = append(c.Goal, g.Goal)
	c.User = append(c.User, g.User)
	if g.Value != nil {
		c.Value = append(c.Value, *g.Value)
		c.HasValue = append(c.HasValue, true)
	} else {
		c.Value = append(c.Value, 0)
		c.HasValue = append(c.HasValue, false)
	}
}

// Len is the number of events in the batch.
func (b *Batch) Len() int { return len(b.Evaluations.EventID) + len(b.Goals.EventID) }

// Validate checks what the edge guarantees, so that a forged or corrupted message is refused
// before it reaches the database.
func (b *Batch) Validate() error {
	if b.Version != BatchVersion {
		return fmt.Errorf("telemetry: batch version %d is not %d", b.Version, BatchVersion)
	}
	if b.ID == uuid.Nil {
		return errors.New("telemetry: batch without id")
	}
	if !domain.ValidKey(b.Project) || !domain.ValidKey(b.Environment) {
		return fmt.Errorf("telemetry: batch of invalid environment %q/%q", b.Project, b.Environment)
	}
	if b.ReceivedAt.IsZero() {
		return errors.New("telemetry: batch without received_at")
	}
	e, g := &b.Evaluations, &b.Goals
	n := len(e.EventID)
	for _, l := range []int{len(e.OccurredAt), len(e.Flag), len(e.Variation), len(e.Reason), len(e.User),
		len(e.Experiment), len(e.Attributes), len(e.Count)} {
		if l != n {
			return errors.New("telemetry: evaluation columns of different lengths")
		}
	}
	m := len(g.EventID)
	for _, l := range []int{len(g.OccurredAt), len(g.Goal), len(g.User), len(g.Value), len(g.HasValue)} {
		if l != m {
			return errors.New("telemetry: goal columns of different lengths")
		}
	}
	if n+m == 0 {
		return errors.New("telemetry: empty batch")
	}
	if n+m > MaxBatchEvents {
		return fmt.Errorf("telemetry: batch of %d events is over %d", n+m, MaxBatchEvents)
	}
	for i := 0; i < n; i++ {
		switch {
		case e.EventID[i] == uuid.Nil || e.OccurredAt[i].IsZero():
			return fmt.Errorf("telemetry: evaluation %d without event_id or occurred_at", i)
		case e.Flag[i] == "" || len(e.Flag[i]) > MaxKeyLength || len(e.Variation[i]) > MaxKeyLength ||
			len(e.Reason[i]) > MaxKeyLength || len(e.Experiment[i]) > MaxKeyLength || len(e.User[i]) > 4*MaxUserKeyLength:
			return fmt.Errorf("telemetry: evaluation %d has an empty or oversized key", i)
		case strings.ContainsRune(e.User[i], 0) || strings.ContainsRune(e.Flag[i], 0) || strings.ContainsRune(e.Variation[i], 0) ||
			strings.ContainsRune(e.Reason[i], 0) || strings.ContainsRune(e.Experiment[i], 0):
			return fmt.Errorf("telemetry: evaluation %d has a NUL character", i)
		case e.Count[i] < 1:
			return fmt.Errorf("telemetry: evaluation %d counts %d evaluations", i, e.Count[i])
		case e.Attributes[i] != "" && (len(e.Attributes[i]) > MaxAttributesBytes || !json.Valid([]byte(e.Attributes[i]))):
			return fmt.Errorf("telemetry: evaluation %d has invalid attributes", i)
		}
	}
	for i := 0; i < m; i++ {
		switch {
		case g.EventID[i] == uuid.Nil || g.OccurredAt[i].IsZero():
			return fmt.Errorf("telemetry: goal %d without event_id or occurred_at", i)
		case g.Goal[i] == "" || len(g.Goal[i]) > MaxKeyLength || g.User[i] == "" || len(g.User[i]) > 4*MaxUserKeyLength:
			return fmt.Errorf("telemetry: goal %d has an empty or oversized key", i)
		case strings.ContainsRune(g.User[i], 0) || strings.ContainsRune(g.Goal[i], 0):
			return fmt.Errorf("telemetry: goal %d has a NUL character", i)
		case g.Value[i] != g.Value[i] || g.Value[i] > MaxValueMagnitude || g.Value[i] < -MaxValueMagnitude:
			return fmt.Errorf("telemetry: goal %d has an invalid value", i)
		}
	}
	return nil
}
