package platform_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
	"github.com/vexil-flags/vexil/services/testkit"
)

// adminToken is the bootstrap admin token of the platforms started here.
const adminToken = ingesttest.AdminToken

// vexil is a running platform under test with a client for its API.
type vexil struct {
	t     testing.TB
	tv    *ingesttest.Vexil
	p     *platform.Platform
	base  string
	token string
}

// startVexil runs every role of the real program on a fresh database and stream prefix.
func startVexil(t testing.TB, extra ...string) *vexil {
	t.Helper()
	tv := ingesttest.Start(t, extra...)
	return &vexil{t: t, tv: tv, p: tv.P, base: tv.Base, token: adminToken}
}

// response is an answer of the API.
type response = ingesttest.Response

// do sends a request with v's token; body may be a string (sent as is) or any value (sent as JSON).
func (v *vexil) do(method, path string, body any, headers ...string) response {
	v.t.Helper()
	return v.tv.Do(method, path, v.token, body, headers...)
}

// must sends a request and fails the test unless the status is want.
func (v *vexil) must(want int, method, path string, body any, headers ...string) map[string]any {
	v.t.Helper()
	r := v.do(method, path, body, headers...)
	if r.Status != want {
		v.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.JSON(v.t)
}

func (v *vexil) as(token string) *vexil {
	c := *v
	c.token = token
	return &c
}

func items(t testing.TB, m map[string]any) []map[string]any {
	t.Helper()
	raw, ok := m["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", m)
	}
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
	}
	return out
}

func keys(t testing.TB, m map[string]any) []string {
	var out []string
	for _, it := range items(t, m) {
		out = append(out, it["key"].(string))
	}
	return out
}

func TestFlagLifecycleThroughTheAPI(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	p := v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	envs := p["environments"].(map[string]any)
	if len(envs) != 2 || envs["production"] == nil {
		t.Fatalf("default environments: %v", envs)
	}
	v.must(201, "POST", "/api/v1/projects/shop/segments", map[string]any{"key": "staff", "name": "Staff",
		"clauses": []any{map[string]any{"attribute": "email", "op": "ends_with", "values": []any{"@shop.example"}}}})
	f := v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{
		"key": "checkout-v2", "name": "Checkout v2", "type": "boolean", "tags": []string{"checkout"}})
	if f["version"].(float64) != 1 || len(f["variations"].([]any)) != 2 {
		t.Fatalf("created flag: %v", f)
	}
	targeting := map[string]any{
		"on": true, "off_variation": "false",
		"targets": []any{map[string]any{"variation": "true", "values": []string{"user-1"}}},
		"rules": []any{map[string]any{"clauses": []any{map[string]any{"op": "in_segment", "values": []string{"staff"}}},
			"serve": map[string]any{"variation": "true"}}},
		"default": map[string]any{"split": map[string]any{"variations": []any{
			map[string]any{"variation": "true", "weight": 20000}, map[string]any{"variation": "false", "weight": 80000}}}},
	}
	got := v.must(200, "PUT", "/api/v1/projects/shop/flags/checkout-v2/environments/production", targeting,
		"If-Match", `"1"`, "X-Vexil-Reason", "start the rollout")
	if got["targeting"].(map[string]any)["rules"].([]any)[0].(map[string]any)["id"] == "" {
		t.Fatal("rules get ids")
	}
	// The kill switch.
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout-v2/environments/production/toggle", map[string]any{"on": false})
	r := v.do("GET", "/api/v1/projects/shop/flags/checkout-v2", nil)
	if r.Status != 200 || r.Header.Get("ETag") != `"3"` {
		t.Fatalf("flag after 3 events: %d etag %q", r.Status, r.Header.Get("ETag"))
	}
	prod := r.JSON(t)["environments"].(map[string]any)["production"].(map[string]any)
	if prod["on"] != false || len(prod["rules"].([]any)) != 1 {
		t.Fatalf("production targeting: %v", prod)
	}
	// Audit: who, why, before and after.
	audit := items(t, v.must(200, "GET", "/api/v1/projects/shop/flags/checkout-v2/audit", nil))
	if len(audit) != 3 || audit[0]["event_type"] != "FlagToggled" || audit[1]["reason"] != "start the rollout" ||
		audit[1]["actor"] == "" || audit[1]["environment"] != "production" || audit[2]["before"] != nil || audit[1]["before"] == nil {
		t.Fatalf("flag audit: %v", audit)
	}
	// Archive hides it from the default listing; restore brings it back.
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout-v2/archive", nil)
	if ks := keys(t, v.must(200, "GET", "/api/v1/projects/shop/flags", nil)); len(ks) != 0 {
		t.Fatalf("archived flag listed: %v", ks)
	}
	if ks := keys(t, v.must(200, "GET", "/api/v1/projects/shop/flags?archived=true", nil)); len(ks) != 1 {
		t.Fatalf("archived listing: %v", ks)
	}
	v.must(409, "PUT", "/api/v1/projects/shop/flags/checkout-v2/environments/production", targeting)
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout-v2/restore", nil)
	// A segment in use cannot be archived.
	v.must(409, "POST", "/api/v1/projects/shop/segments/staff/archive", nil)
}

func TestListFiltersAndCursorPagination(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "p", "name": "P"})
	for i := 0; i < 7; i++ {
		tags := []string{"even"}
		if i%2 == 1 {
			tags = []string{"odd"}
		}
		v.must(201, "POST", "/api/v1/projects/p/flags", map[string]any{"key": fmt.Sprintf("flag-%d", i),
			"name": fmt.Sprintf("Flag number %d", i), "type": "string", "tags": tags,
			"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}}})
	}
	var all []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		page := v.must(200, "GET", "/api/v1/projects/p/flags?limit=3&cursor="+cursor, nil)
		all = append(all, keys(t, page)...)
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if strings.Join(all, ",") != "flag-0,flag-1,flag-2,flag-3,flag-4,flag-5,flag-6" {
		t.Fatalf("pages: %v", all)
	}
	if ks := keys(t, v.must(200, "GET", "/api/v1/projects/p/flags?tag=odd", nil)); strings.Join(ks, ",") != "flag-1,flag-3,flag-5" {
		t.Fatalf("tag filter: %v", ks)
	}
	if ks := keys(t, v.must(200, "GET", "/api/v1/projects/p/flags?q=NUMBER%204", nil)); strings.Join(ks, ",") != "flag-4" {
		t.Fatalf("text search: %v", ks)
	}
	v.must(400, "GET", "/api/v1/projects/p/flags?cursor=%25%25", nil)
	v.must(400, "GET", "/api/v1/projects/p/flags?limit=100000", nil)
}

func TestTokensScopesAndKeyRotation(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "p", "name": "P"})
	reader := v.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "ci", "scope": "read"})
	v.must(400, "POST", "/api/v1/tokens", map[string]any{"name": "dev", "scope": "write", "project": "not-there"})
	v.must(400, "POST", "/api/v1/tokens", map[string]any{"name": "dev", "scope": "superuser"})
	r := v.as(reader["token"].(string))
	r.must(200, "GET", "/api/v1/projects/p/flags", nil)
	body := r.must(403, "POST", "/api/v1/projects/p/flags", map[string]any{"key": "x", "name": "X", "type": "boolean"})
	if body["code"] != "forbidden" {
		t.Fatalf("scope error: %v", body)
	}
	env := r.must(200, "GET", "/api/v1/projects/p/environments/production", nil)
	if !strings.HasPrefix(env["server_key"].(string), "****") {
		t.Fatalf("a read token sees the server key: %v", env)
	}
	// Revocation takes effect at once.
	v.must(200, "DELETE", "/api/v1/tokens/"+reader["id"].(string), nil)
	if b := r.must(401, "GET", "/api/v1/projects", nil); !strings.Contains(b["message"].(string), "revoked") {
		t.Fatalf("revoked token: %v", b)
	}
	// Project-restricted tokens.
	scoped := v.must(201, "POST", "/api/v1/tokens", map[string]any{"name": "p only", "scope": "write", "project": "p"})
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "q", "name": "Q"})
	s := v.as(scoped["token"].(string))
	s.must(200, "GET", "/api/v1/projects/p/flags", nil)
	s.must(403, "GET", "/api/v1/projects/q/flags", nil)
	if ks := keys(t, s.must(200, "GET", "/api/v1/projects", nil)); strings.Join(ks, ",") != "p" {
		t.Fatalf("restricted token lists %v", ks)
	}
	// Rotation replaces the key in the access read model immediately.
	before := v.must(200, "GET", "/api/v1/projects/p/environments/production", nil)
	after := v.must(200, "POST", "/api/v1/projects/p/environments/production/keys/server/rotate", nil)
	if after["server_key"] == before["server_key"] || after["client_key"] != before["client_key"] {
		t.Fatalf("rotation: before %v after %v", before, after)
	}
	var n int
	if err := v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rm_sdk_keys WHERE key = $1`, before["server_key"]).Scan(&n); err != nil || n != 0 {
		t.Fatalf("old key still valid: %d %v", n, err)
	}
	if err := v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rm_sdk_keys WHERE key = $1 AND kind = 'server'`, after["server_key"]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("new key not valid: %d %v", n, err)
	}
	v.as("").must(401, "GET", "/api/v1/projects", nil)
	v.as("vxl_nope").must(401, "GET", "/api/v1/projects", nil)
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	v.as("").must(200, "GET", "/healthz", nil)
	ready := v.as("").must(200, "GET", "/readyz", nil)
	checks := ready["checks"].(map[string]any)
	for _, c := range []string{"database", "redis", "migrations"} {
		if checks[c].(map[string]any)["ok"] != true {
			t.Fatalf("%s not ready: %v", c, ready)
		}
	}
	v.must(200, "GET", "/api/v1/projects", nil)
	m := v.as("").do("GET", "/metrics", nil)
	for _, name := range []string{"vexil_http_requests_total", "vexil_http_request_duration_seconds", "go_goroutines"} {
		if !strings.Contains(string(m.Body), name) {
			t.Fatalf("/metrics lacks %s", name)
		}
	}
}

func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, d, what, cond)
}
