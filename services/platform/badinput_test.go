package platform_test

import (
	"context"
	"strings"
	"testing"
)

// Every bad request answers 4xx with {code, message, field} and writes nothing.
func TestBadInputIsAClearErrorAndWritesNothing(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--max-body-bytes", "4096")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "p", "name": "P"})
	v.must(201, "POST", "/api/v1/projects/p/flags", map[string]any{"key": "base", "name": "Base", "type": "boolean"})
	v.must(201, "POST", "/api/v1/projects/p/flags", map[string]any{"key": "child", "name": "Child", "type": "boolean"})
	v.must(200, "PUT", "/api/v1/projects/p/flags/child/environments/production", map[string]any{
		"off_variation": "false", "default": map[string]any{"variation": "true"},
		"prerequisites": []any{map[string]any{"flag": "base", "variation": "true"}}})
	stringFlag := map[string]any{"key": "s", "name": "S", "type": "string",
		"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": 3}}}
	rule := func(clause map[string]any) map[string]any {
		return map[string]any{"off_variation": "false", "default": map[string]any{"variation": "true"},
			"rules": []any{map[string]any{"clauses": []any{clause}, "serve": map[string]any{"variation": "true"}}}}
	}
	const targeting = "/api/v1/projects/p/flags/base/environments/production"
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"malformed JSON", "POST", "/api/v1/projects/p/flags", `{"key": "x",`, 400, "invalid", ""},
		{"not an object", "POST", "/api/v1/projects/p/flags", `[1,2]`, 400, "invalid", ""},
		{"trailing data", "POST", "/api/v1/projects/p/flags", `{"key":"x","name":"X","type":"boolean"} {}`, 400, "invalid", ""},
		{"unknown field", "POST", "/api/v1/projects/p/flags", map[string]any{"key": "x", "name": "X", "type": "boolean", "colour": 1}, 400, "invalid", "colour"},
		{"wrong JSON type", "POST", "/api/v1/projects/p/flags", map[string]any{"key": 7, "name": "X", "type": "boolean"}, 400, "invalid", "key"},
		{"invalid key", "POST", "/api/v1/projects/p/flags", map[string]any{"key": "no spaces", "name": "X", "type": "boolean"}, 400, "invalid", "key"},
		{"duplicate key", "POST", "/api/v1/projects/p/flags", map[string]any{"key": "base", "name": "X", "type": "boolean"}, 409, "conflict", "key"},
		{"unknown type", "POST", "/api/v1/projects/p/flags", map[string]any{"key": "x", "name": "X", "type": "colour"}, 400, "invalid", "type"},
		{"value of the wrong type", "POST", "/api/v1/projects/p/flags", stringFlag, 400, "invalid", "variations[1].value"},
		{"unknown variation", "PUT", targeting, map[string]any{"off_variation": "maybe", "default": map[string]any{"variation": "true"}}, 400, "invalid", "off_variation"},
		{"unknown segment", "PUT", targeting, rule(map[string]any{"op": "in_segment", "values": []any{"ghosts"}}), 400, "invalid", "rules[0].clauses[0].values[0]"},
		{"invalid regex", "PUT", targeting, rule(map[string]any{"attribute": "email", "op": "matches", "values": []any{"(unclosed"}}), 400, "invalid", "rules[0].clauses[0].values[0]"},
		{"invalid semver", "PUT", targeting, rule(map[string]any{"attribute": "v", "op": "semver_gt", "values": []any{"one.two"}}), 400, "invalid", "rules[0].clauses[0].values[0]"},
		{"invalid date", "PUT", targeting, rule(map[string]any{"attribute": "d", "op": "before", "values": []any{"yesterday"}}), 400, "invalid", "rules[0].clauses[0].values[0]"},
		{"unknown operator", "PUT", targeting, rule(map[string]any{"attribute": "d", "op": "resembles", "values": []any{"x"}}), 400, "invalid", "rules[0].clauses[0].op"},
		{"split not adding up", "PUT", targeting, map[string]any{"off_variation": "false", "default": map[string]any{"split": map[string]any{
			"variations": []any{map[string]any{"variation": "true", "weight": 10}}}}}, 400, "invalid", "default.split.variations"},
		{"prerequisite cycle", "PUT", targeting, map[string]any{"off_variation": "false", "default": map[string]any{"variation": "true"},
			"prerequisites": []any{map[string]any{"flag": "child", "variation": "true"}}}, 400, "invalid", "prerequisites[0].flag"},
		{"unknown prerequisite", "PUT", targeting, map[string]any{"off_variation": "false", "default": map[string]any{"variation": "true"},
			"prerequisites": []any{map[string]any{"flag": "nope", "variation": "true"}}}, 400, "invalid", "prerequisites[0].flag"},
		{"unknown environment", "PUT", "/api/v1/projects/p/flags/base/environments/moon", map[string]any{"off_variation": "false", "default": map[string]any{"variation": "true"}}, 404, "not_found", ""},
		{"stale If-Match", "POST", "/api/v1/projects/p/flags/base/environments/production/toggle", map[string]any{"on": true}, 409, "conflict", ""},
		{"toggle without on", "POST", "/api/v1/projects/p/flags/base/environments/production/toggle", map[string]any{}, 400, "invalid", "on"},
		{"body over the limit", "POST", "/api/v1/projects/p/flags", `{"key":"x","name":"` + strings.Repeat("n", 5000) + `"}`, 413, "too_large", ""},
		{"unknown project", "GET", "/api/v1/projects/nope/flags/x", nil, 404, "not_found", ""},
		{"unknown route", "GET", "/api/v1/nothing-here", nil, 404, "not_found", ""},
		{"wrong content type", "POST", "/api/v1/projects/p/flags", "key=x", 400, "invalid", ""},
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
			headers := []string{}
			if c.name == "stale If-Match" {
				headers = []string{"If-Match", `"7"`}
			}
			if c.name == "wrong content type" {
				headers = []string{"Content-Type", "application/x-www-form-urlencoded"}
			}
			r := v.do(c.method, c.path, c.body, headers...)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("content type %q", ct)
			}
			body := r.JSON(t)
			if body["code"] != c.code || body["message"] == "" || (c.field != "" && body["field"] != c.field) {
				t.Fatalf("body %s, want code %q field %q", r.Body, c.code, c.field)
			}
		})
	}
	if after := countEvents(); after != before {
		t.Fatalf("bad requests appended %d events", after-before)
	}
}
