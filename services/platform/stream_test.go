package platform_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// streamData decodes an SSE event's data.
func streamData(t *testing.T, ev sseEvent) (typ string, flags []string, null bool) {
	t.Helper()
	var d struct {
		Type  string          `json:"type"`
		Flags json.RawMessage `json:"flags"`
	}
	if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
		t.Fatalf("event data %q: %v", ev.data, err)
	}
	if string(d.Flags) == "null" || d.Flags == nil {
		return d.Type, nil, true
	}
	if err := json.Unmarshal(d.Flags, &flags); err != nil {
		t.Fatalf("event flags %s: %v", d.Flags, err)
	}
	return d.Type, flags, false
}

// streamEnds waits for a stream to end and says how long it took from start; the deadline is
// generous (the figure is logged, the 1 s target is not asserted on a shared machine).
func streamEnds(t *testing.T, events <-chan sseEvent, start time.Time) time.Duration {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return time.Since(start)
			}
			if typ, _, _ := streamData(t, ev); typ == "" {
				t.Fatalf("unexpected event %+v", ev)
			}
		case <-deadline:
			t.Fatal("the stream is still open 10s after its key was rotated")
		}
	}
}

// Rotating a key ends every stream opened with it (and only those); the old key cannot open
// another. A server key in the URL is refused.
func TestStreamsEndWhenTheirKeyIsRotated(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	if r := e.call("GET", "/sdk/v1/stream?key="+e.serverKey, "", ""); r.Status != 401 ||
		!strings.Contains(string(r.Body), "Authorization") {
		t.Fatalf("server key in ?key=: %d %s", r.Status, r.Body)
	}
	byQuery := openStream(t, e.v.base+"/sdk/v1/stream?key="+e.clientKey, "")
	byHeader := openStream(t, e.v.base+"/sdk/v1/stream", "", "X-API-Key", e.clientKey)
	server := openStream(t, e.v.base+"/sdk/v1/stream", "", "Authorization", "Bearer "+e.serverKey)

	start := time.Now()
	e.v.must(200, "POST", "/api/v1/projects/app/environments/production/keys/client/rotate", nil)
	d1, d2 := streamEnds(t, byQuery, start), streamEnds(t, byHeader, start)
	t.Logf("client key rotated: its streams ended %v and %v after the rotate request was sent (target: 1s)", d1, d2)
	if r := e.call("GET", "/sdk/v1/stream?key="+e.clientKey, "", ""); r.Status != 401 {
		t.Fatalf("the rotated key opens a stream: %d", r.Status)
	}
	// The server key's stream is still open and told of changes.
	e.v.must(200, "POST", "/api/v1/projects/app/flags/layout/environments/production/toggle", map[string]any{"on": false})
	if typ, flags, _ := streamData(t, nextEvent(t, server, 10*time.Second)); typ != "rulesetChanged" || !slices.Contains(flags, "layout") {
		t.Fatalf("server stream after the client key's rotation: %s %v", typ, flags)
	}
	start = time.Now()
	e.v.must(200, "POST", "/api/v1/projects/app/environments/production/keys/server/rotate", nil)
	t.Logf("server key rotated: its stream ended %v after the rotate request was sent", streamEnds(t, server, start))
}

// A change to a flag that is not client_side neither notifies client streams nor moves the
// client ETag; a later client-visible change is the first thing client streams hear.
func TestServerOnlyChangesAreInvisibleToClientKeys(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	body := `{"context":{"targetingKey":"u1"}}`
	first := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, body)
	clientTag := first.Header.Get("ETag")
	serverTag := e.call("POST", "/ofrep/v1/evaluate/flags", e.serverKey, body).Header.Get("ETag")
	client := openStream(t, e.v.base+"/sdk/v1/stream?key="+e.clientKey, "")
	server := openStream(t, e.v.base+"/sdk/v1/stream", "", "Authorization", "Bearer "+e.serverKey)

	// max-items is server-only.
	e.v.must(200, "POST", "/api/v1/projects/app/flags/max-items/environments/production/toggle", map[string]any{"on": false})
	ev := nextEvent(t, server, 10*time.Second)
	if _, flags, _ := streamData(t, ev); !slices.Equal(flags, []string{"max-items"}) {
		t.Fatalf("server event %+v", ev)
	}
	// The api role has the change (the server stream was told): the server ETag moved, the
	// client one did not.
	if r := e.call("POST", "/ofrep/v1/evaluate/flags", e.serverKey, body, "If-None-Match", serverTag); r.Status != 200 {
		t.Fatalf("server bulk after a server-only change: %d", r.Status)
	}
	if r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, body, "If-None-Match", clientTag); r.Status != 304 {
		t.Fatalf("client bulk after a server-only change: %d, want 304", r.Status)
	}
	// A client-visible change: the client stream's first event is this one, not max-items's.
	e.v.must(200, "POST", "/api/v1/projects/app/flags/layout/environments/production/toggle", map[string]any{"on": false})
	s := nextEvent(t, server, 10*time.Second)
	c := nextEvent(t, client, 10*time.Second)
	if typ, flags, _ := streamData(t, c); typ != "refetchEvaluation" || !slices.Equal(flags, []string{"layout"}) || c.id != s.id {
		t.Fatalf("client event %+v (server event %+v)", c, s)
	}
	if r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, body, "If-None-Match", clientTag); r.Status != 200 {
		t.Fatalf("client bulk after a client-visible change: %d, want 200", r.Status)
	}
}

// A stream resumed with Last-Event-ID is told, in its first event, every flag changed since.
func TestResumeListsEveryFlagChangedSince(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	server := openStream(t, e.v.base+"/sdk/v1/stream", "", "Authorization", "Bearer "+e.serverKey)
	toggle := func(flag string) {
		e.v.must(200, "POST", "/api/v1/projects/app/flags/"+flag+"/environments/production/toggle", map[string]any{"on": false})
	}
	toggle("layout")
	last := nextEvent(t, server, 10*time.Second)
	for _, f := range []string{"dark-mode", "greeting", "max-items"} {
		toggle(f)
	}
	// Wait until the api role has the last change: events may merge, so read until max-items.
	for {
		if _, flags, _ := streamData(t, nextEvent(t, server, 10*time.Second)); slices.Contains(flags, "max-items") {
			break
		}
	}
	ev := nextEvent(t, openStream(t, e.v.base+"/sdk/v1/stream", last.id, "Authorization", "Bearer "+e.serverKey), 10*time.Second)
	if _, flags, _ := streamData(t, ev); !slices.Equal(flags, []string{"dark-mode", "greeting", "max-items"}) {
		t.Fatalf("server resume from %s: %+v", last.id, ev)
	}
	ev = nextEvent(t, openStream(t, e.v.base+"/sdk/v1/stream?key="+e.clientKey, last.id), 10*time.Second)
	if typ, flags, _ := streamData(t, ev); typ != "refetchEvaluation" || !slices.Equal(flags, []string{"dark-mode", "greeting"}) {
		t.Fatalf("client resume from %s: %+v", last.id, ev)
	}
	// From before anything this process holds: flags null, refetch everything.
	ev = nextEvent(t, openStream(t, e.v.base+"/sdk/v1/stream?key="+e.clientKey, "1"), 10*time.Second)
	if _, _, null := streamData(t, ev); !null {
		t.Fatalf("resume from 1: %+v", ev)
	}
}
