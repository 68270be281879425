package platform_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/adapters/postgres/pgtest"
	"github.com/vexil-flags/vexil/services/roles/console"
	"github.com/vexil-flags/vexil/services/testkit"
)

// With PostgreSQL down (a cluster of this test's own, stopped at once as a crash would), every
// management write and read, every token check and the trigger hook answer 503 with Retry-After
// and a JSON error naming the database, never 500; OFREP keeps serving from memory; /readyz says
// the database is down without naming its address or user. When PostgreSQL is back, everything
// recovers without restarting Vexil.
func TestDatabaseOutageAnswers503AndRecovers(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	dsn := cluster.URL("vexil_outage")
	// A short reconciliation makes the api role's snapshot refresh fail during the outage too:
	// its error (a driver's text) must not reach /readyz either.
	v := startVexil(t, "--database-url", dsn, "--consistency-wait", "300ms", "--reconcile-interval", "200ms")
	keys := v.tv.CreateProject("p", "checkout")
	created := v.must(201, "POST", "/api/v1/projects/p/triggers", map[string]any{"name": "kill", "flag": "checkout",
		"environment": "production", "action": "off"})
	hook := created["path"].(string)
	secret := created["secret"].(string)
	ofrep := func() int {
		return v.tv.Do("POST", "/ofrep/v1/evaluate/flags/checkout", keys.Server,
			map[string]any{"context": map[string]any{"targetingKey": "user-1"}}).Status
	}
	if s := ofrep(); s != 200 {
		t.Fatalf("OFREP before the outage: %d", s)
	}

	cluster.Crash()
	requests := []struct {
		what, method, path, token string
		body                      any
		headers                   []string
	}{
		{"a write", "POST", "/api/v1/projects/p/flags", adminToken, map[string]any{"key": "new", "name": "New", "type": "boolean"}, nil},
		{"a toggle", "POST", "/api/v1/projects/p/flags/checkout/environments/production/toggle", adminToken, map[string]any{"on": true}, nil},
		{"a read", "GET", "/api/v1/projects/p/flags", adminToken, nil, nil},
		{"a token list", "GET", "/api/v1/tokens", adminToken, nil, nil},
		{"an unknown token", "GET", "/api/v1/projects", "vxl_not-a-token-at-all", nil, nil},
		{"the trigger hook", "POST", hook, "", `{}`, []string{console.TriggerSecretHeader, secret}},
	}
	for _, r := range requests {
		res := v.tv.Do(r.method, r.path, r.token, r.body, r.headers...)
		if res.Status != 503 {
			t.Fatalf("%s during the outage: %d, want 503: %s", r.what, res.Status, res.Body)
		}
		if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("%s during the outage: Retry-After %q", r.what, res.Header.Get("Retry-After"))
		}
		body := res.JSON(t)
		details, _ := body["details"].(map[string]any)
		if body["code"] != "unavailable" || details["dependency"] != "database" || !strings.Contains(body["message"].(string), "database") {
			t.Fatalf("%s during the outage: %s", r.what, res.Body)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s during the outage: Content-Type %q", r.what, ct)
		}
	}
	if s := ofrep(); s != 200 {
		t.Fatalf("OFREP during the outage: %d, want 200 from memory", s)
	}
	var rz struct {
		Status string `json:"status"`
		Checks map[string]struct {
			OK    bool   `json:"ok"`
			State string `json:"state"`
		} `json:"checks"`
	}
	var ready response
	waitUntil(t, 30*time.Second, "/readyz to show the snapshots degraded", func() bool {
		ready = v.tv.Do("GET", "/readyz", "", nil)
		if err := json.Unmarshal(ready.Body, &rz); err != nil {
			t.Fatalf("readyz: %v: %s", err, ready.Body)
		}
		return rz.Checks["snapshots"].State == "degraded"
	})
	if rz.Status != "degraded" || rz.Checks["database"].OK || rz.Checks["database"].State != "down" || !rz.Checks["redis"].OK {
		t.Fatalf("readyz during the outage (%d): %s", ready.Status, ready.Body)
	}
	port := strings.TrimPrefix(strings.Split(strings.TrimPrefix(dsn, "postgres://postgres@"), "/")[0], "127.0.0.1:")
	for _, secretish := range []string{"127.0.0.1", port, "vexil_outage", "postgres@", "user=", "dial", "connect"} {
		if strings.Contains(string(ready.Body), secretish) {
			t.Fatalf("readyz reveals %q during the outage: %s", secretish, ready.Body)
		}
	}

	cluster.Start()
	back := time.Now()
	waitUntil(t, 60*time.Second, "management writes to succeed again", func() bool {
		return v.do("POST", "/api/v1/projects/p/flags", map[string]any{"key": "after", "name": "After", "type": "boolean"}).Status == 201
	})
	testkit.Figure(t, "recovery: management writes succeed %v after PostgreSQL accepts connections again", time.Since(back).Round(time.Millisecond))
	v.must(200, "GET", "/api/v1/projects/p/flags/after", nil)
	if r := v.tv.Do("GET", "/api/v1/projects", "vxl_not-a-token-at-all", nil); r.Status != 401 {
		t.Fatalf("an unknown token after recovery: %d %s", r.Status, r.Body)
	}
	if r := v.as("").do("POST", hook, `{}`, console.TriggerSecretHeader, secret); r.Status != 200 {
		t.Fatalf("the trigger hook after recovery: %d %s", r.Status, r.Body)
	}
	waitUntil(t, 30*time.Second, "/readyz to say ready", func() bool {
		return v.tv.Do("GET", "/readyz", "", nil).Status == 200
	})
	if s := ofrep(); s != 200 {
		t.Fatalf("OFREP after the outage: %d", s)
	}
}
