package platform_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vexil-flags/vexil/services/app/identity"
)

// The analytics pages over plain HTTP: bad input is a 4xx page with the message next to the
// field, never a 500; a viewer reads but cannot analyse; a goal edit that names no change of
// kind keeps the kind; an experiment with an unknown goal is refused at the goal field.
func TestWebConsoleAnalyticsBadInput(t *testing.T) {
	t.Parallel()
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "boolean"})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "revenue", "name": "Revenue", "kind": "value"})
	ed := signIn(t, v, addPerson(t, v, "ed@example.com", "Ed", "shop", identity.RoleEditor, false))
	vic := signIn(t, v, addPerson(t, v, "vic@example.com", "Vic", "shop", identity.RoleViewer, false))

	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/projects/shop/flags/checkout/insights?interval=week", "resolution must be one of", 400},
		{"/projects/shop/flags/checkout/insights?interval=minute&range=7d", "spans at most 24 hours", 400},
		{"/projects/shop/flags/checkout/insights?range=forever", "unknown time range", 400},
		{"/projects/shop/flags/nope/insights", "not found", 404},
		{"/projects/shop/stale-flags?days=0", "days must be a whole number", 400},
		{"/projects/shop/goals/revenue?interval=minute", "resolution must be one of", 400},
		{"/projects/shop/experiments/nope", "not found", 404},
		{"/projects/shop/flags/checkout/insights?interval=day&range=365d", "No evaluations in this range.", 200},
		{"/projects/shop/stale-flags", "No stale flags", 200},
	} {
		status, body := ed.get(tc.path)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d, want %d with %q", tc.path, status, tc.status, tc.want)
		}
	}

	// Forms.
	status, body, _ := ed.post("/projects/shop/goals", url.Values{"key": {"bad key!"}, "name": {"X"}, "kind": {"conversion"}}, true)
	if status != http.StatusBadRequest || !strings.Contains(body, "key must match") {
		t.Errorf("goal with a bad key: %d %.300s", status, body)
	}
	status, body, _ = ed.post("/projects/shop/goals/revenue", url.Values{"name": {"Revenue"}, "value_cap": {"lots"}, "version": {"1"}}, true)
	if status != http.StatusBadRequest || !strings.Contains(body, "value cap must be a number") {
		t.Errorf("goal with a bad cap: %d %.300s", status, body)
	}
	status, _, hdr := ed.post("/projects/shop/goals/revenue", url.Values{"name": {"Revenue"}, "value_cap": {"500"}, "direction": {"increase"}, "version": {"1"}}, true)
	if status != http.StatusSeeOther || !strings.Contains(hdr.Get("Location"), "Goal+saved") {
		t.Errorf("goal edit: %d %v", status, hdr)
	}
	if g := v.must(200, "GET", "/api/v1/projects/shop/goals/revenue", nil); g["value_cap"] != 500.0 || g["kind"] != "value" {
		t.Errorf("after the edit: %v", g)
	}
	form := url.Values{"key": {"exp"}, "name": {"Exp"}, "flag": {"checkout"}, "environment": {"production"}, "variation": {"true", "false"},
		"v.true.include": {"true"}, "v.false.include": {"true"}, "control": {"false"}, "allocation": {"100"}, "primary_goal": {"nope"}}
	status, body, _ = ed.post("/projects/shop/experiments", form, true)
	if status != http.StatusBadRequest || !strings.Contains(body, "primary_goal") {
		t.Errorf("experiment with an unknown goal: %d %.400s", status, body)
	}
	form.Set("allocation", "abc")
	status, body, _ = ed.post("/projects/shop/experiments", form, true)
	if status != http.StatusBadRequest || !strings.Contains(body, "must be a percentage") {
		t.Errorf("experiment with a bad allocation: %d %.400s", status, body)
	}
	form.Set("allocation", "100")
	form.Set("action", "estimate")
	form.Set("mde", "0")
	status, body, _ = ed.post("/projects/shop/experiments", form, true)
	if status != http.StatusBadRequest || !strings.Contains(body, "minimum detectable effect") {
		t.Errorf("estimate with no MDE: %d %.400s", status, body)
	}

	// A viewer reads the pages but may not analyse or archive.
	if status, _ := vic.get("/projects/shop/experiments"); status != http.StatusOK {
		t.Errorf("viewer's experiments list: %d", status)
	}
	if status, _, _ := vic.post("/projects/shop/flags/checkout/archive", url.Values{}, true); status != http.StatusForbidden {
		t.Errorf("viewer's archive: %d, want 403", status)
	}
	// An editor archives from the stale flags page and lands back on it.
	status, _, hdr = ed.post("/projects/shop/flags/checkout/archive", url.Values{"back": {"/projects/shop/stale-flags?env=production"}, "reason": {"unused"}}, true)
	if status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/projects/shop/stale-flags?env=production&done=") {
		t.Errorf("archive: %d %v", status, hdr)
	}
	if f := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout", nil); f["archived"] != true {
		t.Errorf("the flag is not archived: %v", f)
	}
}
