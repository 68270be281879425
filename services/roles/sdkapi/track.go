package sdkapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/domain"
	"github.com/vexil-flags/vexil/domain/evaluation"
	"github.com/vexil-flags/vexil/projections/telemetry"
	"github.com/vexil-flags/vexil/services/roles/ingest"
)

// TrackPath is the tracking endpoint, advertised in /ofrep/v1/configuration.
const TrackPath = "/ofrep/v1/track"

// trackEvent is one call of OpenFeature's track(eventName, context, details) as OFREP clients
// send it. OFREP has no tracking endpoint yet (open-feature/protocol issue 71 is open and names
// no schema), so the shape mirrors the SDK call and the evaluation requests: eventName, the
// evaluation context (its targetingKey is the user) and trackingEventDetails (its value is the
// goal's value; other details are accepted and not stored). eventId (a UUID, so a retried call
// is stored once) and timestamp (RFC 3339; default now) are optional.
type trackEvent struct {
	EventName json.RawMessage            `json:"eventName"`
	Context   map[string]json.RawMessage `json:"context"`
	Details   map[string]json.RawMessage `json:"trackingEventDetails"`
	EventID   json.RawMessage            `json:"eventId"`
	Timestamp json.RawMessage            `json:"timestamp"`
}

// trackFields translates the field names of the ingest rules (telemetry.Parse) to this shape's.
var trackFields = map[string]string{
	"goal_key":    "eventName",
	"user_key":    "context." + evaluation.OpenFeatureTargetingKey,
	"value":       "trackingEventDetails.value",
	"event_id":    "eventId",
	"occurred_at": "timestamp",
}

// POST /ofrep/v1/track: one tracking event, or {"events": [...]} of them. Each is stored as a
// goal event (goal key = eventName, value = trackingEventDetails.value, user = the context's
// targetingKey) through the path of POST /sdk/v1/events: same keys, limits, per-item errors and
// answers (202 with accepted/rejected/errors, 400 when no event is valid, 413, 429, 503).
func (s *Server) track(c echo.Context) error {
	k, body, err := s.readEvents(c)
	if err != nil {
		return err
	}
	events, err := splitTrackBody(body)
	if err != nil {
		s.opts.Events.Refused("invalid", 0)
		return err
	}
	// Each call becomes the /sdk/v1/events form of a goal; calls refused here keep their index.
	var itemErrs []ingest.ItemError
	var wire []json.RawMessage
	var index []int // index[i] is the call wire[i] came from
	for i, raw := range events {
		w, ierr := trackToGoal(raw)
		if ierr != nil {
			ierr.Index = i
			itemErrs = append(itemErrs, *ierr)
			continue
		}
		wire = append(wire, w)
		index = append(index, i)
	}
	limits := s.opts.Events.Limits()
	if len(events) > limits.MaxBatch {
		s.opts.Events.Refused("too_large", 0)
		return &domain.Error{Code: domain.ETooLarge, Field: "events",
			Message: fmt.Sprintf("the batch holds %d events; the limit is %d per request", len(events), limits.MaxBatch),
			Details: map[string]any{"max_events": limits.MaxBatch}}
	}
	if len(wire) == 0 {
		return s.publishEvents(c, telemetry.NewBatch(k.Project, k.Environment, time.Now()), itemErrs)
	}
	batchBody, err := json.Marshal(map[string]any{"events": wire})
	if err != nil {
		return err
	}
	batch, parseErrs, err := ingest.Parse(batchBody, k.Project, k.Environment, time.Now(), limits)
	if err != nil {
		s.opts.Events.Refused(outcomeOf(err), 0)
		return trackError(err)
	}
	for _, e := range parseErrs {
		e.Index = index[e.Index]
		if f, ok := trackFields[e.Field]; ok {
			e.Message = strings.Replace(e.Message, e.Field, f, 1)
			e.Field = f
		}
		itemErrs = append(itemErrs, e)
	}
	slices.SortStableFunc(itemErrs, func(a, b ingest.ItemError) int { return cmp.Compare(a.Index, b.Index) })
	return s.publishEvents(c, batch, itemErrs)
}

// splitTrackBody returns the calls of a body: the elements of {"events": [...]}, or the body
// itself when it is one call.
func splitTrackBody(body []byte) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, domain.Errorf(domain.EInvalid, `the body must be a JSON object: one tracking event {"eventName": ..., "context": {...}} or {"events": [...]}`)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return nil, domain.Errorf(domain.EInvalid, "malformed JSON: %s", err.Error())
	}
	raw, batch := probe["events"]
	if !batch {
		return []json.RawMessage{trimmed}, nil
	}
	var events []json.RawMessage
	if err := json.Unmarshal(raw, &events); err != nil || events == nil {
		return nil, domain.Invalid("events", `"events" must be an array of tracking events`)
	}
	if len(events) == 0 {
		return nil, domain.Invalid("events", "the batch holds no events")
	}
	return events, nil
}

// trackToGoal turns one tracking event into a goal event of /sdk/v1/events. Only what that form
// cannot express is checked here; the ingest rules check the rest.
func trackToGoal(raw json.RawMessage) (json.RawMessage, *ingest.ItemError) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &ingest.ItemError{Code: ingest.CodeInvalid, Message: "a tracking event must be a JSON object"}
	}
	var ev trackEvent
	if err := json.Unmarshal(trimmed, &ev); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, &ingest.ItemError{Code: ingest.CodeInvalid, Field: typ.Field, Message: typ.Field + " must be a JSON object"}
		}
		return nil, &ingest.ItemError{Code: ingest.CodeInvalid, Message: "malformed tracking event: " + err.Error()}
	}
	goal := map[string]json.RawMessage{"kind": json.RawMessage(`"goal"`)}
	set := func(field string, v json.RawMessage) {
		if len(v) > 0 && !bytes.Equal(v, []byte("null")) {
			goal[field] = v
		}
	}
	set("goal_key", ev.EventName)
	set("user_key", ev.Context[evaluation.OpenFeatureTargetingKey])
	set("value", ev.Details["value"])
	set("event_id", ev.EventID)
	set("occurred_at", ev.Timestamp)
	out, err := json.Marshal(goal)
	if err != nil {
		return nil, &ingest.ItemError{Code: ingest.CodeInvalid, Message: "malformed tracking event"}
	}
	return out, nil
}

// trackError names this shape's fields in a whole-request refusal.
func trackError(err error) error {
	var de *domain.Error
	if errors.As(err, &de) && de.Field != "" {
		if f, ok := trackFields[de.Field]; ok {
			c := *de
			c.Field = f
			return &c
		}
	}
	return err
}
