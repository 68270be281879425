package platform_test

import (
	"strings"
	"testing"
)

// Answers that carry secrets (a new token, rotated SDK keys, a new or rotated trigger secret, a
// project's keys) are never stored by caches; every answer, SDK and ops routes included, carries
// the security headers; /metrics wants its token when one is configured.
func TestSecretsAreNoStoreAndHeadersAreEverywhere(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--metrics-token", "metrics-secret-1")
	keys := v.tv.CreateProject("h", "f")
	secure := func(what string, r response) {
		t.Helper()
		h := r.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") == "" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Fatalf("%s: security headers missing: %v", what, h)
		}
	}
	noStore := func(what string, r response, status int) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%s: %d, want %d: %s", what, r.Status, status, r.Body)
		}
		if r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: Cache-Control %q, want no-store", what, r.Header.Get("Cache-Control"))
		}
		secure(what, r)
	}
	noStore("POST /tokens", v.do("POST", "/api/v1/tokens", map[string]any{"name": "ci", "scope": "read"}), 201)
	noStore("key rotation", v.do("POST", "/api/v1/projects/h/environments/production/keys/client/rotate", nil), 200)
	noStore("an environment with its server key", v.do("GET", "/api/v1/projects/h/environments/production", nil), 200)
	noStore("a new project with its keys", v.do("POST", "/api/v1/projects", map[string]any{"key": "h2", "name": "H2"}), 201)
	trig := v.do("POST", "/api/v1/projects/h/triggers", map[string]any{"name": "t", "flag": "f", "environment": "production", "action": "off"})
	noStore("a new trigger with its secret", trig, 201)
	id := trig.JSON(t)["trigger"].(map[string]any)["id"].(string)
	noStore("a rotated trigger secret", v.do("POST", "/api/v1/projects/h/triggers/"+id+"/rotate", nil), 200)
	noStore("an error", v.do("GET", "/api/v1/projects/nope", nil), 404)

	secure("OFREP", v.tv.Do("POST", "/ofrep/v1/evaluate/flags/f", keys.Server, map[string]any{"context": map[string]any{"targetingKey": "u"}}))
	secure("an unknown route", v.tv.Do("GET", "/nowhere", "", nil))
	secure("healthz", v.tv.Do("GET", "/healthz", "", nil))

	if r := v.tv.Do("GET", "/metrics", "", nil); r.Status != 401 || r.JSON(t)["code"] != "unauthorized" {
		t.Fatalf("/metrics without its token: %d %s", r.Status, r.Body)
	}
	if r := v.tv.Do("GET", "/metrics", adminToken, nil); r.Status != 401 {
		t.Fatalf("/metrics with another token: %d", r.Status)
	}
	if r := v.tv.Do("GET", "/metrics", "metrics-secret-1", nil); r.Status != 200 || !strings.Contains(string(r.Body), "vexil_http_requests_total") {
		t.Fatalf("/metrics with its token: %d %.200s", r.Status, r.Body)
	}
}
