package platform_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/platform/config"
)

// The cases of the hardening report that answered 500: a NUL in any stored string (nested JSON
// variation values included) of every kind of command, a path parameter that is not UTF-8 text,
// a cursor a client made up. Each is a 400 naming the field, and nothing is appended.
func TestTextThatCannotBeStoredIsA400WithItsField(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	const p = "/api/v1/projects/shop"
	v.must(201, "POST", p+"/goals", map[string]any{"key": "buy", "name": "Buy", "kind": "conversion"})
	trigger := v.must(201, "POST", p+"/triggers", map[string]any{"name": "kill", "flag": "checkout",
		"environment": "production", "action": "off"})
	hook := trigger["path"].(string)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	nul := "a\x00b"
	cases := []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"project", "POST", "/api/v1/projects", map[string]any{"key": "p2", "name": nul}, "name"},
		{"project update", "PATCH", p, map[string]any{"name": "Shop", "description": nul}, "description"},
		{"environment", "POST", p + "/environments", map[string]any{"key": "qa", "name": nul}, "name"},
		{"flag", "POST", p + "/flags", map[string]any{"key": "f2", "name": nul, "type": "boolean"}, "name"},
		{"flag variation value", "POST", p + "/flags", map[string]any{"key": "f3", "name": "F", "type": "json",
			"variations": []any{map[string]any{"key": "a", "value": map[string]any{"x": []any{"ok", nul}}},
				map[string]any{"key": "b", "value": map[string]any{}}}}, "variations[0].value.x[1]"},
		{"flag variation key in a value", "POST", p + "/flags", map[string]any{"key": "f4", "name": "F", "type": "json",
			"variations": []any{map[string]any{"key": "a", "value": map[string]any{nul: 1}},
				map[string]any{"key": "b", "value": 2}}}, "variations[0].value"},
		{"targeting rule", "PUT", p + "/flags/checkout/environments/production", map[string]any{"off_variation": "false",
			"default": map[string]any{"variation": "true"}, "rules": []any{map[string]any{"description": nul,
				"clauses": []any{map[string]any{"attribute": "email", "op": "in", "values": []any{"x"}}},
				"serve":   map[string]any{"variation": "true"}}}}, "rules[0].description"},
		{"segment", "POST", p + "/segments", map[string]any{"key": "s", "name": "S", "description": nul}, "description"},
		{"goal", "POST", p + "/goals", map[string]any{"key": "g2", "name": nul, "kind": "conversion"}, "name"},
		{"experiment", "POST", p + "/experiments", map[string]any{"key": "e", "name": "E", "hypothesis": nul,
			"flag": "checkout", "environment": "production", "allocation": 50000, "primary_goal": "buy",
			"variations": []any{map[string]any{"variation": "false", "control": true}, map[string]any{"variation": "true"}}}, "hypothesis"},
		{"schedule", "POST", p + "/schedules", map[string]any{"flag": "checkout", "environment": "production\x00",
			"kind": "toggle", "on": true, "at": later}, "environment"},
		{"trigger", "POST", p + "/triggers", map[string]any{"name": nul, "flag": "checkout",
			"environment": "production", "action": "on"}, "name"},
		{"auto-ops rule", "POST", p + "/autoops-rules", map[string]any{"flag": "checkout", "environment": "production",
			"name": nul, "metric": map[string]any{"goal": "buy", "variation": "true", "control": "false"},
			"comparison": "gt", "threshold": 0.01, "min_sample": 100, "min_probability": 0.9, "action": "turn_off"}, "name"},
		{"token", "POST", "/api/v1/tokens", map[string]any{"name": nul, "scope": "read"}, "name"},
		{"invalid UTF-8", "POST", p + "/flags", "{\"key\":\"f5\",\"name\":\"\xc3\x28\",\"type\":\"boolean\"}", ""},

		{"path %00", "GET", "/api/v1/projects/%00/flags", nil, "project"},
		{"path %ff", "GET", p + "/flags/%ff", nil, "flag"},
		{"path %c3%28", "GET", p + "/segments/%c3%28", nil, "segment"},
		{"path %00 on a write", "POST", p + "/flags/%00/archive", nil, "flag"},
		{"path %ff in an id", "GET", p + "/schedules/%ff", nil, "id"},
		{"path %00 on the webhook", "POST", strings.TrimSuffix(hook, hook[strings.LastIndexByte(hook, '/')+1:]) + "%00", nil, "id"},
		{"query NUL", "GET", p + "/flags?q=%00", nil, "q"},
		{"query %ff", "GET", p + "/audit?actor=%ff", nil, "actor"},
		{"reason header", "POST", p + "/flags/checkout/environments/production/toggle", map[string]any{"on": true}, "X-Vexil-Reason"},
	}
	for _, list := range []string{"/api/v1/projects", p + "/flags", p + "/segments", p + "/audit", p + "/schedules",
		p + "/triggers", p + "/autoops-rules", p + "/rollouts"} {
		for name, cursor := range map[string]string{"garbage": "garbage", "AAAA": "AAAA", "5,000 characters": strings.Repeat("A", 5000),
			"an old plain cursor": "ZmxhZy0x", "NUL": "%00"} {
			cases = append(cases, struct {
				name, method, path string
				body               any
				field              string
			}{"cursor " + name + " on " + list, "GET", list + "?cursor=" + cursor, nil, "cursor"})
		}
	}
	countEvents := func() int {
		var n int
		if err := v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := countEvents()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.field == "X-Vexil-Reason" {
				headers = []string{"X-Vexil-Reason", "because \xff"}
			}
			r := v.do(c.method, c.path, c.body, headers...)
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			body := r.JSON(t)
			if body["code"] != "invalid" || body["message"] == "" || (c.field != "" && body["field"] != c.field) {
				t.Fatalf("body %s, want field %q", r.Body, c.field)
			}
		})
	}
	if after := countEvents(); after != before {
		t.Fatalf("refused requests appended %d events", after-before)
	}
}

// A cursor pages the list it came from, and only that list.
func TestCursorsPageOnlyTheirOwnList(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	for _, k := range []string{"a", "b", "c"} {
		v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": k, "name": k, "type": "boolean"})
		v.must(201, "POST", "/api/v1/projects/shop/segments", map[string]any{"key": k, "name": k})
	}
	page := v.must(200, "GET", "/api/v1/projects/shop/flags?limit=2", nil)
	next, _ := page["next_cursor"].(string)
	if next == "" || strings.Contains(next, "b") && len(next) < 8 {
		t.Fatalf("next cursor %q", next)
	}
	rest := v.must(200, "GET", "/api/v1/projects/shop/flags?limit=2&cursor="+next, nil)
	if ks := keys(t, rest); strings.Join(ks, ",") != "c,checkout" {
		t.Fatalf("second page: %v", ks)
	}
	r := v.do("GET", "/api/v1/projects/shop/segments?limit=2&cursor="+next, nil)
	if r.Status != http.StatusBadRequest || r.JSON(t)["field"] != "cursor" {
		t.Fatalf("a flags cursor on the segments list: %d %s", r.Status, r.Body)
	}
	// The key is the installation's: a second process (a replica, a restart) accepts the cursor.
	second := startVexilOn(t, v)
	if ks := keys(t, second.must(200, "GET", "/api/v1/projects/shop/flags?limit=2&cursor="+next, nil)); strings.Join(ks, ",") != "c,checkout" {
		t.Fatalf("second page from another process: %v", ks)
	}
}

// 400s speak JSON, not Go: the field and the JSON type it needs, in the management API and the
// SDK API alike.
func TestDecodeErrorsNameJSONFieldsAndTypes(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	keys := v.tv.CreateProject("shop", "checkout")
	r := v.do("POST", "/api/v1/projects/shop/experiments", map[string]any{"key": "e", "name": "E", "flag": "checkout",
		"environment": "production", "variations": "false"})
	body := r.JSON(t)
	if r.Status != 400 || body["field"] != "variations" || body["message"] != "variations must be a JSON array, got a string" {
		t.Fatalf("experiment variations: %d %s", r.Status, r.Body)
	}
	for _, body := range []string{`"x"`, `{"context":7}`, `{"context":{"targetingKey":"u"},"x":[}`} {
		r := v.tv.Do("POST", "/ofrep/v1/evaluate/flags/checkout", keys.Server, body)
		if r.Status != 400 {
			t.Fatalf("OFREP %s: %d %s", body, r.Status, r.Body)
		}
		for _, goWord := range []string{"Go value", "sdkapi.", "json.RawMessage", "map[string]"} {
			if strings.Contains(string(r.Body), goWord) {
				t.Fatalf("OFREP %s: %s speaks Go", body, r.Body)
			}
		}
	}
	if r := v.tv.Do("POST", "/ofrep/v1/evaluate/flags/checkout", keys.Server, `"x"`); !strings.Contains(string(r.Body), "expected a JSON object, got a string") {
		t.Fatalf("OFREP string body: %s", r.Body)
	}
}

// startVexilOn starts a second process of the platform (the console role) on v's database and
// Redis prefix: another replica, or the same one restarted.
func startVexilOn(t *testing.T, v *vexil) *vexil {
	t.Helper()
	cfg, err := config.Parse("test", []string{"--database-url", v.tv.Database, "--redis-url", v.tv.Redis,
		"--stream-prefix", v.tv.Prefix, "--http-addr", "127.0.0.1:0", "--admin-token", adminToken,
		"--roles", "console"}, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := platform.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tv := *v.tv
	tv.P, tv.Base = p, "http://"+p.Addr
	return &vexil{t: t, tv: &tv, p: p, base: tv.Base, token: adminToken}
}
