// Package telemetry is the telemetry flow's service side: the rules of POST /sdk/v1/events
// (Parse), the Ingestor that publishes accepted batches to the telemetry stream (api role), the
// Consumer that stores them (projector role), and the Maintainer that keeps rollups and policies
// (projector role). The tables and queries are in projections/telemetry.
//
// Flow: SDK batch -> validated, stamped once at the edge (event_id UUIDv7 if absent, occurred_at
// if absent) -> ONE stream message per batch on "<prefix>:telemetry", published synchronously
// before the 202 -> consumer group "<prefix>-telemetry" -> idempotent writes, one transaction
// per group of messages (Consumer).
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	gojson "github.com/goccy/go-json"
	"github.com/google/uuid"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/projections/telemetry"
)

// Kinds of events.
const (
	KindEvaluation = "evaluation"
	KindGoal       = "goal"
)

// Per-item error codes of the ingest answer.
const (
	CodeRequired   = "required"     // a required field is missing or empty
	CodeInvalid    = "invalid"      // a field has the wrong type or shape
	CodeTooLong    = "too_long"     // a field is over its length limit
	CodeOutOfRange = "out_of_range" // occurred_at too old or in the future, value too large
	CodeDuplicate  = "duplicate"    // the event_id appeared earlier in the same batch
)

// Limits of one ingest request.
type Limits struct {
	// MaxBatch is the most events one request may carry; more is 413 and nothing is kept.
	MaxBatch int
	// MaxBodyBytes bounds the request body; larger is 413.
	MaxBodyBytes int64
	// MaxAge is how far in the past occurred_at may be (older events are refused per item):
	// the rollups' refresh windows cover it.
	MaxAge time.Duration
	// MaxSkew is how far in the future occurred_at may be (SDK clocks drift).
	MaxSkew time.Duration
}

// DefaultLimits are the defaults of the configuration.
var DefaultLimits = Limits{MaxBatch: 1000, MaxBodyBytes: 1 << 20, MaxAge: 48 * time.Hour, MaxSkew: 5 * time.Minute}

// Attribute limits of one event.
const (
	MaxAttributes         = 32
	MaxAttributeKeyLength = 100
	MaxReasonLength       = 64
)

// ItemError is why one event of a batch was refused.
type ItemError struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// wireEvent is one event as SDKs post it. Unknown fields are ignored, so older servers accept
// events from newer SDKs.
type wireEvent struct {
	Kind          *string         `json:"kind"`
	EventID       *string         `json:"event_id"`
	OccurredAt    *string         `json:"occurred_at"`
	FlagKey       *string         `json:"flag_key"`
	VariationKey  *string         `json:"variation_key"`
	Reason        *string         `json:"reason"`
	ExperimentKey *string         `json:"experiment_key"`
	Attributes    json.RawMessage `json:"attributes"`
	GoalKey       *string         `json:"goal_key"`
	Value         json.RawMessage `json:"value"`
	UserKey       *string         `json:"user_key"`
}

type wireBatch struct {
	Events []json.RawMessage `json:"events"`
}

// Parse reads a POST /sdk/v1/events body for the environment the SDK key belongs to. It returns
// the batch of valid events (stamped: an event without event_id gets a UUIDv7, one without
// occurred_at gets now) and an error per refused event. The error is a *domain.Error when the
// request as a whole is refused: malformed JSON or no events array (invalid), more than
// MaxBatch events (too_large). A batch whose every event was refused has Len() 0.
func Parse(body []byte, project, environment string, now time.Time, l Limits) (*telemetry.Batch, []ItemError, error) {
	// Fast path: a well-formed batch (nearly all) is decoded in one pass into the wire events.
	// Anything else (an event that is no object, a field of the wrong type, malformed JSON)
	// takes the slow path, which decodes event by event with encoding/json to report each error
	// at its index.
	if events, ok := decodeBatch(body); ok {
		return parseEvents(len(events), project, environment, now, l, func(i int) (*wireEvent, *ItemError) {
			if events[i] == nil {
				return nil, itemErr(CodeInvalid, "", "an event must be a JSON object")
			}
			return events[i], nil
		})
	}
	return parseSlow(body, project, environment, now, l)
}

// decodeBatch decodes a body of the usual shape, {"events": [{...}, ...]}, with goccy/go-json,
// which allocates less than encoding/json and runs several times faster on such batches
// (BenchmarkDecode100; docs/architecture.md has the figures). It gives up (ok false) wherever
// its answer could differ from encoding/json's, whose answer the slow path and its errors
// follow: JSON that encoding/json refuses; bytes that are not UTF-8 and \u escapes (which
// encoding/json may replace with U+FFFD); the two runes outside ASCII that encoding/json folds
// onto ASCII letters in keys (the Kelvin sign, the long s); "events" given twice (encoding/json
// keeps the last array, goccy/go-json merges the two); and any decoding error (a field of the
// wrong type, an event that is no object), which the slow path reports at its index.
func decodeBatch(body []byte) (events []*wireEvent, ok bool) {
	if !utf8.Valid(body) || bytes.Contains(body, []byte(`\u`)) ||
		bytes.Contains(body, []byte("\u212a")) || bytes.Contains(body, []byte("\u017f")) ||
		keyCount(body, "events") > 1 || !json.Valid(body) {
		return nil, false
	}
	var wb struct {
		Events []*wireEvent `json:"events"`
	}
	if err := gojson.Unmarshal(body, &wb); err != nil || wb.Events == nil {
		return nil, false
	}
	return wb.Events, true
}

// keyCount counts the strings of body equal to key in any ASCII case, wherever they are: an
// upper bound of how often key is an object key, for a body without \u escapes.
func keyCount(body []byte, key string) int {
	n := 0
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '"')
		if j < 0 {
			break
		}
		i += j + 1
		if len(body)-i > len(key) && body[i+len(key)] == '"' && strings.EqualFold(string(body[i:i+len(key)]), key) {
			n++
		}
	}
	return n
}

// parseSlow decodes the events one by one.
func parseSlow(body []byte, project, environment string, now time.Time, l Limits) (*telemetry.Batch, []ItemError, error) {
	var wb wireBatch
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, domain.Errorf(domain.EInvalid, `the body must be a JSON object {"events": [...]}`)
	}
	if err := json.Unmarshal(body, &wb); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, nil, domain.Invalid("events", `the body must be a JSON object {"events": [...]}`)
		}
		return nil, nil, domain.Errorf(domain.EInvalid, "malformed JSON: %s", err.Error())
	}
	if wb.Events == nil {
		return nil, nil, domain.Invalid("events", `"events" (an array of events) is required`)
	}
	return parseEvents(len(wb.Events), project, environment, now, l, func(i int) (*wireEvent, *ItemError) {
		return decodeEvent(wb.Events[i])
	})
}

// parseEvents validates and stamps n events given one by one by event.
func parseEvents(n int, project, environment string, now time.Time, l Limits,
	event func(i int) (*wireEvent, *ItemError)) (*telemetry.Batch, []ItemError, error) {
	if n == 0 {
		return nil, nil, domain.Invalid("events", "the batch holds no events")
	}
	if n > l.MaxBatch {
		return nil, nil, &domain.Error{Code: domain.ETooLarge, Field: "events",
			Message: fmt.Sprintf("the batch holds %d events; the limit is %d per request", n, l.MaxBatch),
			Details: map[string]any{"max_events": l.MaxBatch}}
	}
	batch := telemetry.NewBatch(project, environment, now)
	now = batch.ReceivedAt
	var errs []ItemError
	seen := make(map[uuid.UUID]int, n)
	for i := 0; i < n; i++ {
		w, ierr := event(i)
		var ev *parsedEvent
		if ierr == nil {
			ev, ierr = validateEvent(w, now, l)
		}
		if ierr != nil {
			ierr.Index = i
			errs = append(errs, *ierr)
			continue
		}
		id := ev.id
		if first, dup := seen[id]; dup {
			errs = append(errs, ItemError{Index: i, Code: CodeDuplicate, Field: "event_id",
				Message: fmt.Sprintf("event_id repeats the event at index %d", first)})
			continue
		}
		seen[id] = i
		if ev.goal != nil {
			batch.AddGoal(*ev.goal)
		} else {
			batch.AddEvaluation(*ev.evaluation)
		}
	}
	return batch, errs, nil
}

type parsedEvent struct {
	id         uuid.UUID
	evaluation *telemetry.EvaluationEvent
	goal       *telemetry.GoalEvent
}

func itemErr(code, field, format string, args ...any) *ItemError {
	return &ItemError{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// decodeEvent decodes one event of the slow path.
func decodeEvent(raw json.RawMessage) (*wireEvent, *ItemError) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, itemErr(CodeInvalid, "", "an event must be a JSON object")
	}
	var w wireEvent
	if err := json.Unmarshal(trimmed, &w); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, itemErr(CodeInvalid, typ.Field, "%s must be a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		}
		return nil, itemErr(CodeInvalid, "", "malformed event: %s", err.Error())
	}
	return &w, nil
}

// validateEvent checks a decoded event and stamps what the SDK left out.
func validateEvent(w *wireEvent, now time.Time, l Limits) (*parsedEvent, *ItemError) {
	if w.Kind == nil || *w.Kind == "" {
		return nil, itemErr(CodeRequired, "kind", `kind is required: "evaluation" or "goal"`)
	}
	var p parsedEvent
	var err *ItemError
	if p.id, err = parseEventID(w.EventID); err != nil {
		return nil, err
	}
	occurred, err := parseOccurredAt(w.OccurredAt, now, l)
	if err != nil {
		return nil, err
	}
	user, err := parseUserKey(w.UserKey)
	if err != nil {
		return nil, err
	}
	switch *w.Kind {
	case KindEvaluation:
		if w.GoalKey != nil || w.Value != nil {
			field := "goal_key"
			if w.GoalKey == nil {
				field = "value"
			}
			return nil, itemErr(CodeInvalid, field, "%s belongs to goal events, not evaluations", field)
		}
		e := &telemetry.EvaluationEvent{EventID: p.id, OccurredAt: occurred, User: user}
		if e.Flag, err = parseKey(w.FlagKey, "flag_key", true); err != nil {
			return nil, err
		}
		if e.Variation, err = parseKey(w.VariationKey, "variation_key", false); err != nil {
			return nil, err
		}
		if e.Experiment, err = parseKey(w.ExperimentKey, "experiment_key", false); err != nil {
			return nil, err
		}
		if e.Reason, err = parseReason(w.Reason); err != nil {
			return nil, err
		}
		if e.Attributes, err = parseAttributes(w.Attributes); err != nil {
			return nil, err
		}
		p.evaluation = e
	case KindGoal:
		for _, f := range []struct {
			name    string
			present bool
		}{{"flag_key", w.FlagKey != nil}, {"variation_key", w.VariationKey != nil}, {"reason", w.Reason != nil},
			{"experiment_key", w.ExperimentKey != nil}, {"attributes", w.Attributes != nil}} {
			if f.present {
				return nil, itemErr(CodeInvalid, f.name, "%s belongs to evaluation events, not goals", f.name)
			}
		}
		g := &telemetry.GoalEvent{EventID: p.id, OccurredAt: occurred, User: user}
		if g.Goal, err = parseKey(w.GoalKey, "goal_key", true); err != nil {
			return nil, err
		}
		if g.Value, err = parseValue(w.Value); err != nil {
			return nil, err
		}
		p.goal = g
	default:
		return nil, itemErr(CodeInvalid, "kind", `kind must be "evaluation" or "goal", not %q`, *w.Kind)
	}
	return &p, nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string", "ptr":
		return "string"
	case "float64", "int", "int32", "int64":
		return "number"
	case "slice":
		return "array"
	}
	return "value of another type"
}

func parseEventID(s *string) (uuid.UUID, *ItemError) {
	if s == nil {
		return telemetry.NewEventID(), nil
	}
	if len(*s) != 36 {
		return uuid.Nil, itemErr(CodeInvalid, "event_id", "event_id must be a UUID in its 36-character form, e.g. 0190d7a4-8c1e-7b3a-9f00-2f1c3e4d5a6b")
	}
	id, err := uuid.Parse(*s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, itemErr(CodeInvalid, "event_id", "event_id must be a UUID in its 36-character form, e.g. 0190d7a4-8c1e-7b3a-9f00-2f1c3e4d5a6b")
	}
	return id, nil
}

func parseOccurredAt(s *string, now time.Time, l Limits) (time.Time, *ItemError) {
	if s == nil {
		return now, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, itemErr(CodeInvalid, "occurred_at", "occurred_at must be an RFC 3339 time with a zone, e.g. 2026-01-02T15:04:05.123Z")
	}
	switch {
	case t.Before(now.Add(-l.MaxAge)):
		return time.Time{}, itemErr(CodeOutOfRange, "occurred_at", "occurred_at is more than %s in the past; such late events are not accepted", l.MaxAge)
	case t.After(now.Add(l.MaxSkew)):
		return time.Time{}, itemErr(CodeOutOfRange, "occurred_at", "occurred_at is more than %s in the future; check the SDK's clock", l.MaxSkew)
	}
	return t, nil
}

func parseUserKey(s *string) (string, *ItemError) {
	switch {
	case s == nil || *s == "":
		return "", itemErr(CodeRequired, "user_key", "user_key is required")
	case !utf8.ValidString(*s) || strings.ContainsRune(*s, 0):
		return "", itemErr(CodeInvalid, "user_key", "user_key must be valid UTF-8 without NUL characters")
	case utf8.RuneCountInString(*s) > telemetry.MaxUserKeyLength:
		return "", itemErr(CodeTooLong, "user_key", "user_key is longer than %d characters", telemetry.MaxUserKeyLength)
	}
	return *s, nil
}

// parseKey checks a flag, variation, experiment or goal key: the shape of every key Vexil has.
func parseKey(s *string, field string, required bool) (string, *ItemError) {
	if s == nil || *s == "" {
		if required {
			return "", itemErr(CodeRequired, field, "%s is required", field)
		}
		return "", nil
	}
	if !validKey(*s) {
		if len(*s) > 100 {
			return "", itemErr(CodeTooLong, field, "%s is longer than 100 characters", field)
		}
		return "", itemErr(CodeInvalid, field, "%s must be a key: letters, digits, '.', '_' or '-', starting with a letter or digit", field)
	}
	return *s, nil
}

// validKey is domain.ValidKey (^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$) without the regular
// expression, which costs more than the rest of an event's checks.
func validKey(s string) bool {
	if len(s) == 0 || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func parseReason(s *string) (string, *ItemError) {
	if s == nil {
		return "", nil
	}
	if len(*s) > MaxReasonLength {
		return "", itemErr(CodeTooLong, "reason", "reason is longer than %d characters", MaxReasonLength)
	}
	for _, r := range *s {
		if r < 0x20 || r > 0x7e {
			return "", itemErr(CodeInvalid, "reason", "reason must be printable ASCII, e.g. TARGETING_MATCH")
		}
	}
	return *s, nil
}

// parseAttributes accepts a flat JSON object of strings, numbers, booleans and nulls (the
// attributes the SDK chose to send with the evaluation) and returns it compacted.
func parseAttributes(raw json.RawMessage) (json.RawMessage, *ItemError) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	if trimmed[0] != '{' {
		return nil, itemErr(CodeInvalid, "attributes", "attributes must be a JSON object")
	}
	var m map[string]any
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, itemErr(CodeInvalid, "attributes", "attributes must be a JSON object")
	}
	if len(m) > MaxAttributes {
		return nil, itemErr(CodeTooLong, "attributes", "attributes hold %d keys; the limit is %d", len(m), MaxAttributes)
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > MaxAttributeKeyLength {
			return nil, itemErr(CodeInvalid, "attributes", "attribute names must have 1 to %d characters", MaxAttributeKeyLength)
		}
		switch v.(type) {
		case string, float64, bool, nil:
		default:
			return nil, itemErr(CodeInvalid, "attributes."+k, "attribute %q must be a string, number, boolean or null", k)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		return nil, itemErr(CodeInvalid, "attributes", "attributes must be a JSON object")
	}
	if buf.Len() > telemetry.MaxAttributesBytes {
		return nil, itemErr(CodeTooLong, "attributes", "attributes are larger than %d bytes of JSON", telemetry.MaxAttributesBytes)
	}
	// PostgreSQL's jsonb refuses \u0000 in strings, which encoding/json accepts.
	if strings.Contains(buf.String(), `\u0000`) {
		return nil, itemErr(CodeInvalid, "attributes", "attributes must not contain NUL characters")
	}
	return json.RawMessage(buf.Bytes()), nil
}

func parseValue(raw json.RawMessage) (*float64, *ItemError) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	var v float64
	if err := json.Unmarshal(trimmed, &v); err != nil {
		return nil, itemErr(CodeInvalid, "value", "value must be a JSON number")
	}
	if math.Abs(v) > telemetry.MaxValueMagnitude {
		return nil, itemErr(CodeOutOfRange, "value", "value must be between -1e15 and 1e15")
	}
	return &v, nil
}
