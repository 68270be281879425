package platform_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/redisstream/redistest"
)

// sdkEnv is a project with secrets in its rules, for SDK tests.
type sdkEnv struct {
	v                    *vexil
	clientKey, serverKey string
}

// Markers that only rules and segments hold: a client-side key must never see them.
const (
	secretRuleValue = "rule-secret-7f3a@corp.example"
	secretMember    = "segment-member-secret-91c2"
)

func newSDKEnv(t *testing.T, extra ...string) *sdkEnv {
	v := startVexil(t, extra...)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "app", "name": "App"})
	v.must(201, "POST", "/api/v1/projects/app/segments", map[string]any{"key": "vip", "name": "VIP",
		"included": []string{secretMember}, "clauses": []any{map[string]any{"attribute": "plan", "op": "equals", "values": []any{"gold"}}}})
	mk := func(body map[string]any, targeting map[string]any) {
		v.must(201, "POST", "/api/v1/projects/app/flags", body)
		v.must(200, "PUT", "/api/v1/projects/app/flags/"+body["key"].(string)+"/environments/production", targeting)
	}
	mk(map[string]any{"key": "dark-mode", "name": "Dark mode", "type": "boolean"}, map[string]any{"on": true, "off_variation": "false",
		"rules": []any{map[string]any{"clauses": []any{map[string]any{"attribute": "email", "op": "equals", "values": []any{secretRuleValue}}}, "serve": map[string]any{"variation": "true"}},
			map[string]any{"clauses": []any{map[string]any{"op": "in_segment", "values": []any{"vip"}}}, "serve": map[string]any{"variation": "true"}}},
		"default": map[string]any{"variation": "false"}})
	mk(map[string]any{"key": "greeting", "name": "Greeting", "type": "string", "variations": []any{
		map[string]any{"key": "hi", "value": "Hi"}, map[string]any{"key": "hello", "value": "Hello"}}},
		map[string]any{"on": true, "off_variation": "hi", "default": map[string]any{"split": map[string]any{"variations": []any{
			map[string]any{"variation": "hi", "weight": 50000}, map[string]any{"variation": "hello", "weight": 50000}}}}})
	mk(map[string]any{"key": "max-items", "name": "Max items", "type": "number", "client_side": false, "variations": []any{
		map[string]any{"key": "few", "value": 3}, map[string]any{"key": "many", "value": 2.5}}},
		map[string]any{"on": true, "off_variation": "few", "default": map[string]any{"variation": "few"}})
	mk(map[string]any{"key": "layout", "name": "Layout", "type": "json", "variations": []any{
		map[string]any{"key": "a", "value": map[string]any{"cols": 2}}, map[string]any{"key": "b", "value": map[string]any{"cols": 3}}}},
		map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "b"}})
	env := v.must(200, "GET", "/api/v1/projects/app/environments/production", nil)
	e := &sdkEnv{v: v, clientKey: env["client_key"].(string), serverKey: env["server_key"].(string)}
	// The api role serves the final targeting (not only the flags' creation, which already
	// answers 200 with DISABLED) once the projector and the feed caught up.
	waitUntil(t, 10*time.Second, "the api role to load the ruleset", func() bool {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/layout", e.serverKey, `{"context":{"targetingKey":"u"}}`)
		if r.Status != 200 {
			return false
		}
		got := r.JSON(t)
		return got["reason"] == "DEFAULT" && got["variant"] == "b"
	})
	return e
}

func (e *sdkEnv) call(method, path, key, body string, headers ...string) response {
	v := e.v.as("")
	hs := append([]string{}, headers...)
	if key != "" {
		hs = append(hs, "Authorization", "Bearer "+key)
	}
	if body == "" {
		return v.do(method, path, nil, hs...)
	}
	return v.do(method, path, body, hs...)
}

func TestOFREPEvaluationShapes(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	ctx := func(s string) string { return `{"context":` + s + `}` }
	cases := []struct {
		name, path, key, body string
		headers               []string
		status                int
		want                  map[string]any
	}{
		{"boolean by rule", "/ofrep/v1/evaluate/flags/dark-mode", e.serverKey, ctx(`{"targetingKey":"u1","email":"` + secretRuleValue + `"}`), nil, 200,
			map[string]any{"key": "dark-mode", "value": true, "reason": "TARGETING_MATCH", "variant": "true"}},
		{"boolean by segment", "/ofrep/v1/evaluate/flags/dark-mode", e.serverKey, ctx(`{"targetingKey":"` + secretMember + `"}`), nil, 200,
			map[string]any{"value": true, "reason": "TARGETING_MATCH"}},
		{"boolean default", "/ofrep/v1/evaluate/flags/dark-mode", e.serverKey, ctx(`{"targetingKey":"u2"}`), nil, 200,
			map[string]any{"value": false, "reason": "DEFAULT", "variant": "false"}},
		{"string split", "/ofrep/v1/evaluate/flags/greeting", e.serverKey, ctx(`{"targetingKey":"u3"}`), nil, 200,
			map[string]any{"reason": "SPLIT"}},
		{"number", "/ofrep/v1/evaluate/flags/max-items", e.serverKey, ctx(`{"targetingKey":"u"}`), nil, 200, map[string]any{"value": 3.0}},
		{"json", "/ofrep/v1/evaluate/flags/layout", e.serverKey, ctx(`{"targetingKey":"u"}`), nil, 200, map[string]any{"value": map[string]any{"cols": 3.0}}},
		{"X-API-Key header", "/ofrep/v1/evaluate/flags/layout", "", ctx(`{}`), []string{"X-API-Key", e.clientKey}, 200, map[string]any{"value": map[string]any{"cols": 3.0}}},
		{"missing flag", "/ofrep/v1/evaluate/flags/nope", e.serverKey, ctx(`{}`), nil, 404, map[string]any{"key": "nope", "errorCode": "FLAG_NOT_FOUND"}},
		{"server-only flag with a client key", "/ofrep/v1/evaluate/flags/max-items", e.clientKey, ctx(`{}`), nil, 404, map[string]any{"errorCode": "FLAG_NOT_FOUND"}},
		{"malformed JSON", "/ofrep/v1/evaluate/flags/layout", e.serverKey, `{"context": {`, nil, 400, map[string]any{"key": "layout", "errorCode": "PARSE_ERROR"}},
		{"context not an object", "/ofrep/v1/evaluate/flags/layout", e.serverKey, ctx(`[1]`), nil, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"targetingKey not a string", "/ofrep/v1/evaluate/flags/layout", e.serverKey, ctx(`{"targetingKey":5}`), nil, 400, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"split without targeting key", "/ofrep/v1/evaluate/flags/greeting", e.serverKey, ctx(`{}`), nil, 400, map[string]any{"key": "greeting", "errorCode": "TARGETING_KEY_MISSING"}},
		{"huge context", "/ofrep/v1/evaluate/flags/layout", e.serverKey, ctx(`{"blob":"` + strings.Repeat("x", 70000) + `"}`), nil, 413, map[string]any{"errorCode": "INVALID_CONTEXT"}},
		{"no key", "/ofrep/v1/evaluate/flags/layout", "", ctx(`{}`), nil, 401, map[string]any{"code": "unauthorized"}},
		{"unknown key", "/ofrep/v1/evaluate/flags/layout", "server-bogus", ctx(`{}`), nil, 401, map[string]any{"code": "unauthorized"}},
		{"ruleset with a client key", "/sdk/v1/ruleset", e.clientKey, "", nil, 403, map[string]any{"code": "forbidden"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := "POST"
			if c.body == "" {
				method = "GET"
			}
			r := e.call(method, c.path, c.key, c.body, c.headers...)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
			got := r.JSON(t)
			for k, want := range c.want {
				if fmt.Sprint(got[k]) != fmt.Sprint(want) {
					t.Fatalf("%s = %v, want %v (body %s)", k, got[k], want, r.Body)
				}
			}
		})
	}
}

func TestOFREPBulkETagAndRuleset(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	body := `{"context":{"targetingKey":"u1"}}`
	r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, body)
	if r.Status != 200 {
		t.Fatalf("bulk: %d %s", r.Status, r.Body)
	}
	etag := r.Header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		t.Fatalf("ETag %q is not quoted", etag)
	}
	var bulk struct {
		Flags              []map[string]any `json:"flags"`
		RefreshConnections []map[string]any `json:"refreshConnections"`
		EventStreams       []map[string]any `json:"eventStreams"`
	}
	if err := json.Unmarshal(r.Body, &bulk); err != nil {
		t.Fatal(err)
	}
	if len(bulk.Flags) != 3 { // max-items is server-side only
		t.Fatalf("client key got %d flags: %s", len(bulk.Flags), r.Body)
	}
	if len(bulk.EventStreams) != 1 || bulk.EventStreams[0]["type"] != "sse" || !strings.Contains(bulk.EventStreams[0]["url"].(string), "/sdk/v1/stream") {
		t.Fatalf("event streams: %v", bulk.EventStreams)
	}
	if r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, body, "If-None-Match", etag); r.Status != 304 {
		t.Fatalf("matching If-None-Match: %d", r.Status)
	}
	if r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, `{"context":{"targetingKey":"u2"}}`, "If-None-Match", etag); r.Status != 200 {
		t.Fatalf("another context: %d", r.Status)
	}
	if r := e.call("POST", "/ofrep/v1/evaluate/flags", e.serverKey, body); r.Status != 200 || strings.Count(string(r.Body), `"key"`) != 4 {
		t.Fatalf("server key bulk: %d %s", r.Status, r.Body)
	}
	rs := e.call("GET", "/sdk/v1/ruleset", e.serverKey, "")
	if rs.Status != 200 || !strings.Contains(string(rs.Body), secretRuleValue) || rs.Header.Get("ETag") == "" {
		t.Fatalf("ruleset: %d %s", rs.Status, rs.Body)
	}
	if r := e.call("GET", "/sdk/v1/ruleset", e.serverKey, "", "If-None-Match", rs.Header.Get("ETag")); r.Status != 304 {
		t.Fatalf("ruleset If-None-Match: %d", r.Status)
	}
	// A change moves the ETag.
	e.v.must(200, "POST", "/api/v1/projects/app/flags/layout/environments/production/toggle", map[string]any{"on": false})
	waitUntil(t, 5*time.Second, "the new ruleset", func() bool {
		return e.call("GET", "/sdk/v1/ruleset", e.serverKey, "", "If-None-Match", rs.Header.Get("ETag")).Status == 200
	})
	if r := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, body, "If-None-Match", etag); r.Status != 200 {
		t.Fatalf("bulk after a change: %d", r.Status)
	}
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t, "--sdk-rate-limit", "5")
	limited := 0
	for i := 0; i < 20; i++ {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/layout", e.clientKey, `{"context":{}}`)
		if r.Status == 429 {
			limited++
			if ra := r.Header.Get("Retry-After"); ra != "1" {
				t.Fatalf("Retry-After %q, want whole seconds", ra)
			}
			if got := r.JSON(t); got["errorCode"] != "GENERAL" {
				t.Fatalf("429 body %v", got)
			}
		}
	}
	if limited == 0 {
		t.Fatal("no request was limited")
	}
}

// A client-side key never receives rules, clauses or segment members, from any endpoint.
func TestClientKeyNeverReceivesRules(t *testing.T) {
	t.Parallel()
	e := newSDKEnv(t)
	forbidden := []string{secretRuleValue, secretMember, "clauses", "in_segment", "\"rules\"", "included", "salt"}
	check := func(what string, body []byte) {
		t.Helper()
		for _, f := range forbidden {
			if strings.Contains(string(body), f) {
				t.Fatalf("%s leaks %q to a client-side key: %s", what, f, body)
			}
		}
	}
	ctx := `{"context":{"targetingKey":"` + secretMember + `x","email":"someone@else"}}`
	for _, path := range []string{"/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/dark-mode", "/ofrep/v1/evaluate/flags/max-items",
		"/ofrep/v1/evaluate/flags/nope", "/ofrep/v1/configuration"} {
		method := "POST"
		if strings.HasSuffix(path, "configuration") {
			method = "GET"
		}
		r := e.call(method, path, e.clientKey, ctx)
		check(path, r.Body)
	}
	r := e.call("GET", "/sdk/v1/ruleset", e.clientKey, "")
	if r.Status != 403 {
		t.Fatalf("ruleset with a client key: %d", r.Status)
	}
	check("/sdk/v1/ruleset", r.Body)
	// The stream: connect, cause a change, read the event.
	events := openStream(t, e.v.base+"/sdk/v1/stream?key="+e.clientKey, "")
	e.v.must(200, "PUT", "/api/v1/projects/app/segments/vip", map[string]any{"name": "VIP", "included": []string{secretMember, "another"},
		"clauses": []any{map[string]any{"attribute": "plan", "op": "equals", "values": []any{"gold"}}}})
	ev := nextEvent(t, events, 5*time.Second)
	check("/sdk/v1/stream", []byte(ev.data))
	if !strings.Contains(ev.data, "refetchEvaluation") {
		t.Fatalf("client stream event: %+v", ev)
	}
}

type sseEvent struct{ id, event, data string }

// openStream connects to an SSE endpoint and delivers its events on a channel.
func openStream(t *testing.T, url, lastEventID string, headers ...string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 16)
	go func() {
		defer res.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return out
}

func nextEvent(t *testing.T, events <-chan sseEvent, within time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("stream closed")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no SSE event within %v", within)
	}
	return sseEvent{}
}

// Toggling a flag through the management API reaches SSE subscribers and evaluation, also after
// Redis went away and came back. How fast is the load tool's business (deploy/load: p99 of a change
// reaching 10,000 streams); here a generous deadline only tells "arrived" from "never arrived", so
// a busy CI machine cannot fail it (it once took 1.18 s under -race against a 1 s limit).
func TestToggleIsPushedOverSSE(t *testing.T) {
	proxy := redistest.NewProxy(t)
	e := newSDKEnv(t, "--redis-url", proxy.URL())
	server := openStream(t, e.v.base+"/sdk/v1/stream", "", "Authorization", "Bearer "+e.serverKey)
	client := openStream(t, e.v.base+"/sdk/v1/stream?key="+e.clientKey, "")
	evaluate := func() any {
		return e.call("POST", "/ofrep/v1/evaluate/flags/layout", e.clientKey, `{"context":{}}`).JSON(t)["value"]
	}
	toggle := func(on bool) {
		start := time.Now()
		e.v.must(200, "POST", "/api/v1/projects/app/flags/layout/environments/production/toggle", map[string]any{"on": on})
		s := nextEvent(t, server, 10*time.Second)
		c := nextEvent(t, client, 10*time.Second)
		if !strings.Contains(s.data, `"rulesetChanged"`) || !strings.Contains(s.data, `"layout"`) || s.id == "" {
			t.Fatalf("server event %+v", s)
		}
		if !strings.Contains(c.data, `"refetchEvaluation"`) || c.id != s.id {
			t.Fatalf("client event %+v", c)
		}
		want := "map[cols:2]"
		if on {
			want = "map[cols:3]"
		}
		if got := fmt.Sprint(evaluate()); got != want {
			t.Fatalf("after toggle(%v): value %s, want %s", on, got, want)
		}
		t.Logf("toggle(%v): pushed to both streams and served in %v", on, time.Since(start).Round(time.Millisecond))
	}
	toggle(false)
	proxy.Cut()
	// Not a wait for something to happen: the outage must last a while for the clients to notice it.
	time.Sleep(300 * time.Millisecond)
	proxy.Restore()
	// The relay, projector and feed reconnect; the next change is pushed again in time.
	waitUntil(t, 15*time.Second, "Redis clients to reconnect", func() bool {
		return e.v.as("").do("GET", "/readyz", nil).Status == 200
	})
	toggle(true)

	// A client reconnecting with an old Last-Event-ID is told at once.
	late := openStream(t, e.v.base+"/sdk/v1/stream?key="+e.clientKey, "1")
	if ev := nextEvent(t, late, 10*time.Second); !strings.Contains(ev.data, "refetchEvaluation") {
		t.Fatalf("catch-up event %+v", ev)
	}
}
