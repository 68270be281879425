package platform_test

import (
	"fmt"
	"testing"
)

const mergePatchJSON = "application/merge-patch+json"

// wantField fails unless r is a 400 naming field.
func wantField(t *testing.T, r response, field string) {
	t.Helper()
	if r.Status != 400 {
		t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
	}
	got, _ := r.JSON(t)["field"].(string) // absent when the body as a whole is refused
	if got != field {
		t.Fatalf("field %v, want %q: %s", got, field, r.Body)
	}
}

// Every PATCH of the management API is a JSON Merge Patch (RFC 7396): members not sent keep
// their value, null clears optional ones and is refused (400 with the field) for required ones.
func TestPatchIsAJSONMergePatch(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop", "description": "The shop"})

	t.Run("flag", func(t *testing.T) {
		v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner",
			"description": "Top banner", "tags": []string{"web", "promo"}, "type": "boolean", "client_side": false})
		// One member alone, as merge-patch+json and as plain JSON.
		f := v.must(200, "PATCH", "/api/v1/projects/shop/flags/banner", `{"client_side": true}`, "Content-Type", mergePatchJSON)
		if f["client_side"] != true || f["name"] != "Banner" || f["description"] != "Top banner" || fmt.Sprint(f["tags"]) != "[promo web]" {
			t.Fatalf("after client_side patch: %v", f)
		}
		f = v.must(200, "PATCH", "/api/v1/projects/shop/flags/banner", map[string]any{"name": "Hero banner"})
		if f["name"] != "Hero banner" || f["description"] != "Top banner" || fmt.Sprint(f["tags"]) != "[promo web]" || f["client_side"] != true {
			t.Fatalf("sending a name kept the rest: %v", f)
		}
		// Nested objects merge: one default changes, the other stays.
		f = v.must(200, "PATCH", "/api/v1/projects/shop/flags/banner", `{"defaults": {"on_variation": "false"}}`, "Content-Type", mergePatchJSON)
		d := f["defaults"].(map[string]any)
		if d["on_variation"] != "false" || d["off_variation"] != "false" {
			t.Fatalf("defaults after nested patch: %v", d)
		}
		f = v.must(200, "PATCH", "/api/v1/projects/shop/flags/banner", `{"defaults": {"on_variation": "true"}, "tags": ["web"]}`)
		if d := f["defaults"].(map[string]any); d["on_variation"] != "true" || fmt.Sprint(f["tags"]) != "[web]" {
			t.Fatalf("defaults and tags: %v", f)
		}
		// null clears optional members.
		f = v.must(200, "PATCH", "/api/v1/projects/shop/flags/banner", `{"description": null, "tags": null}`, "Content-Type", mergePatchJSON)
		if f["description"] != nil || len(f["tags"].([]any)) != 0 || f["name"] != "Hero banner" {
			t.Fatalf("after clearing: %v", f)
		}
		// null on a required member, unknown members, wrong types, non-object patches: 400.
		for _, tc := range []struct{ body, field string }{
			{`{"name": null}`, "name"}, {`{"client_side": null}`, "client_side"}, {`{"defaults": null}`, "defaults"},
			{`{"defaults": {"off_variation": null}}`, "defaults.off_variation"},
			{`{"nmme": "typo"}`, "nmme"}, {`{"client_side": "yes"}`, "client_side"},
			{`{"name": ""}`, "name"}, {`{"defaults": {"on_variation": "maybe"}}`, "defaults.on_variation"},
			{`["name"]`, ""}, {`{"name": `, ""},
		} {
			t.Run(tc.body, func(t *testing.T) {
				wantField(t, v.do("PATCH", "/api/v1/projects/shop/flags/banner", tc.body, "Content-Type", mergePatchJSON), tc.field)
			})
		}
		if r := v.do("PATCH", "/api/v1/projects/shop/flags/banner", `{"name":"x"}`, "Content-Type", "text/plain"); r.Status != 400 {
			t.Fatalf("text/plain patch: %d %s", r.Status, r.Body)
		}
		// None of the refused patches changed anything, and If-Match still guards the version.
		r := v.do("GET", "/api/v1/projects/shop/flags/banner", nil)
		if got := r.JSON(t); got["name"] != "Hero banner" || got["client_side"] != true {
			t.Fatalf("after refused patches: %v", got)
		}
		v.must(409, "PATCH", "/api/v1/projects/shop/flags/banner", `{"name": "Stale"}`, "If-Match", `"1"`)
		v.must(200, "PATCH", "/api/v1/projects/shop/flags/banner", `{"name": "Fresh"}`, "If-Match", r.Header.Get("ETag"))
	})

	t.Run("project", func(t *testing.T) {
		p := v.must(200, "PATCH", "/api/v1/projects/shop", `{"name": "Shop 2"}`, "Content-Type", mergePatchJSON)
		if p["name"] != "Shop 2" || p["description"] != "The shop" {
			t.Fatalf("project after name patch: %v", p)
		}
		p = v.must(200, "PATCH", "/api/v1/projects/shop", `{"description": "Our shop"}`)
		if p["name"] != "Shop 2" || p["description"] != "Our shop" {
			t.Fatalf("project after description patch: %v", p)
		}
		p = v.must(200, "PATCH", "/api/v1/projects/shop", `{"description": null}`, "Content-Type", mergePatchJSON)
		if p["name"] != "Shop 2" || p["description"] != nil {
			t.Fatalf("project after clearing: %v", p)
		}
		wantField(t, v.do("PATCH", "/api/v1/projects/shop", `{"name": null}`), "name")
		wantField(t, v.do("PATCH", "/api/v1/projects/shop", `{"key": "other"}`), "key")
	})

	t.Run("environment", func(t *testing.T) {
		path := "/api/v1/projects/shop/environments/production"
		e := v.must(200, "PATCH", path, `{"color": "#ff0000"}`, "Content-Type", mergePatchJSON)
		if e["name"] != "Production" || e["color"] != "#ff0000" {
			t.Fatalf("environment after color patch: %v", e)
		}
		e = v.must(200, "PATCH", path, `{"name": "Prod"}`)
		if e["name"] != "Prod" || e["color"] != "#ff0000" {
			t.Fatalf("environment after name patch kept the color: %v", e)
		}
		e = v.must(200, "PATCH", path, `{"color": null}`, "Content-Type", mergePatchJSON)
		if e["name"] != "Prod" || e["color"] != nil {
			t.Fatalf("environment after clearing the color: %v", e)
		}
		wantField(t, v.do("PATCH", path, `{"name": null}`), "name")
		wantField(t, v.do("PATCH", path, `{"color": 3}`), "color")
		v.must(404, "PATCH", "/api/v1/projects/shop/environments/nowhere", `{"name": "X"}`)
	})

	t.Run("goal", func(t *testing.T) {
		v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "revenue", "name": "Revenue",
			"description": "Order value", "kind": "value", "direction": "increase", "value_cap": 500})
		path := "/api/v1/projects/shop/goals/revenue"
		g := v.must(200, "PATCH", path, `{"direction": "decrease"}`, "Content-Type", mergePatchJSON)
		if g["name"] != "Revenue" || g["description"] != "Order value" || g["direction"] != "decrease" || g["value_cap"] != 500.0 {
			t.Fatalf("goal after direction patch: %v", g)
		}
		g = v.must(200, "PATCH", path, `{"value_cap": null, "description": null}`)
		if g["value_cap"] != nil || g["description"] != nil || g["direction"] != "decrease" || g["name"] != "Revenue" {
			t.Fatalf("goal after clearing the cap: %v", g)
		}
		wantField(t, v.do("PATCH", path, `{"direction": null}`), "direction")
		wantField(t, v.do("PATCH", path, `{"name": null}`), "name")
		wantField(t, v.do("PATCH", path, `{"value_cap": "lots"}`), "value_cap")
		wantField(t, v.do("PATCH", path, `{"kind": "count"}`), "kind")
	})
}
