package sdkapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// navigator.sendBeacon sends no headers: the event routes take a client key as ?key= and a
// text/plain body (no preflight), and refuse a server key in the URL.
func TestEventRoutesTakeBeacons(t *testing.T) {
	t.Parallel()
	v := ingesttest.Start(t)
	keys := v.CreateProject("shop", "checkout")
	beacon := []string{"Content-Type", "text/plain;charset=UTF-8"}

	r := v.Do("POST", "/sdk/v1/events?key="+keys.Client, "", `{"events": [
	  {"kind": "evaluation", "flag_key": "checkout", "variation_key": "true", "user_key": "beacon-1", "event_id": "`+ingesttest.EventID(1)+`"}]}`, beacon...)
	if r.Status != 202 || r.JSON(t)["accepted"] != 1.0 {
		t.Fatalf("events beacon: %d %s", r.Status, r.Body)
	}
	r = v.Do("POST", "/ofrep/v1/track?key="+keys.Client, "", `{"events": [
	  {"eventName": "purchase", "context": {"targetingKey": "beacon-1"}, "eventId": "`+ingesttest.EventID(2)+`", "trackingEventDetails": {"value": 3.5}}]}`, beacon...)
	if r.Status != 202 || r.JSON(t)["accepted"] != 1.0 {
		t.Fatalf("track beacon: %d %s", r.Status, r.Body)
	}

	for _, c := range []struct {
		name, path, contentType string
		status                  int
		code, message           string
	}{
		{"server key in the URL", "/sdk/v1/events?key=" + keys.Server, "text/plain", 401, "unauthorized", "not accepted in the URL"},
		{"server key in the URL, track", "/ofrep/v1/track?key=" + keys.Server, "text/plain", 401, "unauthorized", "not accepted in the URL"},
		{"unknown key in the URL", "/sdk/v1/events?key=client-nope", "text/plain", 401, "unauthorized", "unknown"},
		{"another content type", "/sdk/v1/events?key=" + keys.Client, "text/html", 400, "invalid", "text/plain"},
		{"text/plain that is not JSON", "/ofrep/v1/track?key=" + keys.Client, "text/plain", 400, "invalid", "JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := `{"events": [{"kind": "goal", "goal_key": "purchase", "user_key": "refused", "eventName": "purchase", "context": {"targetingKey": "refused"}}]}`
			if strings.Contains(c.name, "not JSON") {
				body = "eventName=purchase"
			}
			r := v.Do("POST", c.path, "", body, "Content-Type", c.contentType)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if got := r.JSON(t); got["code"] != c.code || !strings.Contains(got["message"].(string), c.message) {
				t.Fatalf("body %v, want code %s and a message naming %q", got, c.code, c.message)
			}
		})
	}

	ingesttest.WaitFor(t, 20*time.Second, "the beacons' events to be stored", func() bool {
		return v.Count(`SELECT count(*) FROM evaluation_events WHERE user_key = 'beacon-1'`) == 1 &&
			v.Count(`SELECT count(*) FROM goal_events WHERE user_key = 'beacon-1' AND value = 3.5`) == 1
	})
	if n := v.Count(`SELECT count(*) FROM goal_events WHERE user_key = 'refused'`) + v.Count(`SELECT count(*) FROM evaluation_events WHERE user_key = 'refused'`); n != 0 {
		t.Fatalf("%d refused events stored", n)
	}
}
