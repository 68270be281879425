package sdkapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// POST /ofrep/v1/track: OpenFeature's track(eventName, context, details) stored as goal events
// with the rules, limits and answers of /sdk/v1/events, fields named in the tracking shape.
func TestTrack(t *testing.T) {
	t.Parallel()
	v := ingesttest.Start(t, "--events-max-batch", "4", "--events-max-body-bytes", "4096")
	keys := v.CreateProject("shop", "checkout")

	// One call, with the client key: its value, event id and timestamp are kept.
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	r := v.Do("POST", "/ofrep/v1/track", keys.Client, `{"eventName": "purchase", "eventId": "`+ingesttest.EventID(7)+`",
	  "timestamp": "`+at.Format(time.RFC3339Nano)+`", "context": {"targetingKey": "u1", "plan": "gold"},
	  "trackingEventDetails": {"value": 12.5, "currency": "EUR"}}`)
	if r.Status != 202 {
		t.Fatalf("single call: %d %s", r.Status, r.Body)
	}
	if a := r.JSON(t); a["accepted"] != 1.0 || a["rejected"] != 0.0 || a["batch_id"] == "" || len(a["errors"].([]any)) != 0 {
		t.Fatalf("single call answer %v", a)
	}
	// A batch with the server key: invalid calls are reported at their index, in the tracking
	// shape's field names; the valid ones are kept.
	r = v.Do("POST", "/ofrep/v1/track", keys.Server, `{"events": [
	  {"eventName": "signup", "context": {"targetingKey": "u2"}},
	  {"eventName": "purchase", "context": {"plan": "gold"}},
	  {"eventName": "bad name", "context": {"targetingKey": "u3"}},
	  {"eventName": "purchase", "context": {"targetingKey": "u4"}, "trackingEventDetails": {"value": "lots"}}]}`)
	if r.Status != 202 {
		t.Fatalf("batch: %d %s", r.Status, r.Body)
	}
	a := r.JSON(t)
	errs := a["errors"].([]any)
	if a["accepted"] != 1.0 || a["rejected"] != 3.0 || len(errs) != 3 {
		t.Fatalf("batch answer %v", a)
	}
	for i, want := range []struct {
		index float64
		field string
	}{{1, "context.targetingKey"}, {2, "eventName"}, {3, "trackingEventDetails.value"}} {
		e := errs[i].(map[string]any)
		if e["index"] != want.index || e["field"] != want.field || !strings.Contains(e["message"].(string), want.field) {
			t.Fatalf("item error %d: %v, want index %v field %s", i, e, want.index, want.field)
		}
	}

	for _, c := range []struct {
		name, key, body string
		status          int
		code, field     string
	}{
		{"no key", "", `{"eventName": "purchase", "context": {"targetingKey": "u"}}`, 401, "unauthorized", ""},
		{"malformed JSON", keys.Server, `{"eventName": `, 400, "invalid", ""},
		{"not an object", keys.Server, `["purchase"]`, 400, "invalid", ""},
		{"events not an array", keys.Server, `{"events": {}}`, 400, "invalid", "events"},
		{"no events", keys.Server, `{"events": []}`, 400, "invalid", "events"},
		{"only invalid calls", keys.Server, `{"eventName": "purchase", "context": {"targetingKey": 7}}`, 400, "invalid", ""},
		{"context not an object", keys.Server, `{"eventName": "purchase", "context": "u1"}`, 400, "invalid", ""},
		{"too many calls", keys.Server, `{"events": [{}, {}, {}, {}, {}]}`, 413, "too_large", "events"},
		{"body too large", keys.Server, `{"eventName": "purchase", "context": {"targetingKey": "` + strings.Repeat("u", 5000) + `"}}`, 413, "too_large", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := v.Do("POST", "/ofrep/v1/track", c.key, c.body)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			got := r.JSON(t)
			field, _ := got["field"].(string)
			if got["code"] != c.code || got["message"] == "" || field != c.field {
				t.Fatalf("body %v, want code %s field %q", got, c.code, c.field)
			}
		})
	}
	r = v.Do("POST", "/ofrep/v1/track", keys.Server, `{"eventName": "purchase", "context": {"targetingKey": 7}}`)
	if e := r.JSON(t)["errors"].([]any); len(e) != 1 || e[0].(map[string]any)["field"] != "context.targetingKey" {
		t.Fatalf("invalid targetingKey: %s", r.Body)
	}

	// Stored as goal events of the key's environment.
	ingesttest.WaitFor(t, 20*time.Second, "the tracked goals to be stored", func() bool {
		return v.Count(`SELECT count(*) FROM goal_events WHERE project = 'shop' AND environment = 'production'`) == 2
	})
	if n := v.Count(`SELECT count(*) FROM goal_events WHERE goal = 'purchase' AND user_key = 'u1' AND value = 12.5
		AND event_id = $1::uuid AND occurred_at = $2`, ingesttest.EventID(7), at); n != 1 {
		t.Fatal("the single call was not stored with its value, event id and timestamp")
	}
	if n := v.Count(`SELECT count(*) FROM goal_events WHERE goal = 'signup' AND user_key = 'u2' AND value IS NULL`); n != 1 {
		t.Fatal("the batch's valid call was not stored")
	}
	// A retried call (same eventId) is stored once.
	r = v.Do("POST", "/ofrep/v1/track", keys.Client, `{"eventName": "purchase", "eventId": "`+ingesttest.EventID(7)+`",
	  "timestamp": "`+at.Format(time.RFC3339Nano)+`", "context": {"targetingKey": "u1"}, "trackingEventDetails": {"value": 12.5}}`)
	if r.Status != 202 {
		t.Fatalf("retry: %d %s", r.Status, r.Body)
	}
	r = v.Do("POST", "/ofrep/v1/track", keys.Server, `{"eventName": "marker", "context": {"targetingKey": "u9"}}`)
	if r.Status != 202 {
		t.Fatalf("marker: %d %s", r.Status, r.Body)
	}
	ingesttest.WaitFor(t, 20*time.Second, "the marker to be stored", func() bool {
		return v.Count(`SELECT count(*) FROM goal_events WHERE goal = 'marker'`) == 1
	})
	if n := v.Count(`SELECT count(*) FROM goal_events WHERE event_id = $1::uuid`, ingesttest.EventID(7)); n != 1 {
		t.Fatalf("the retried call is stored %d times", n)
	}
}
