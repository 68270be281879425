package sdkapi

import (
	"encoding/json"
	"testing"
)

// FuzzTrackBody: whatever a client sends, the tracking body is either refused as a whole with a
// domain error, or split into calls each of which becomes one well-formed /sdk/v1/events goal
// (kind goal, nothing but the goal fields) or an item error; nothing panics.
func FuzzTrackBody(f *testing.F) {
	for _, s := range []string{
		`{"eventName":"purchase","context":{"targetingKey":"u1"},"trackingEventDetails":{"value":12.5}}`,
		`{"events":[{"eventName":"a","context":{"targetingKey":"u"}},{"context":"x"},7,null]}`,
		`{"events":{}}`, `[]`, `{"eventName":null,"eventId":"0190d7a4-8c1e-7b3a-9f00-2f1c3e4d5a6b","timestamp":1}`,
	} {
		f.Add(s)
	}
	allowed := map[string]bool{"kind": true, "goal_key": true, "user_key": true, "value": true, "event_id": true, "occurred_at": true}
	f.Fuzz(func(t *testing.T, body string) {
		events, err := splitTrackBody([]byte(body))
		if err != nil {
			return
		}
		if len(events) == 0 {
			t.Fatalf("%q split into no calls without an error", body)
		}
		for _, raw := range events {
			w, ierr := trackToGoal(raw)
			if ierr != nil {
				continue
			}
			var goal map[string]json.RawMessage
			if err := json.Unmarshal(w, &goal); err != nil {
				t.Fatalf("%q became invalid JSON %s", raw, w)
			}
			if string(goal["kind"]) != `"goal"` {
				t.Fatalf("%q became %s", raw, w)
			}
			for k := range goal {
				if !allowed[k] {
					t.Fatalf("%q became %s with %s", raw, w, k)
				}
			}
		}
	})
}
