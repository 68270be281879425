package console_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/ingest/ingesttest"
)

// The stats API answers from the telemetry rollups (refreshed by the projector role on plain
// PostgreSQL) and validates its parameters with JSON 4xx answers.
func TestStatsAPI(t *testing.T) {
	t.Parallel()
	v := ingesttest.Start(t, "--telemetry-refresh-interval", "1s")
	keys := v.CreateProject("shop", "checkout", "banner")

	now := time.Now().UTC()
	events := ingesttest.Events("checkout", 40, 4, 0) // 20 "true", 20 "false", users user-0..3
	list := events["events"].([]any)
	for i := 0; i < 3; i++ {
		list = append(list, map[string]any{"kind": "goal", "goal_key": "purchase", "user_key": fmt.Sprintf("user-%d", i),
			"value": float64(10 * (i + 1)), "occurred_at": now.Add(time.Minute).Format(time.RFC3339Nano)}) // after the exposures
	}
	events["events"] = list
	if r := v.Do("POST", "/sdk/v1/events", keys.Server, events); r.Status != 202 {
		t.Fatalf("post events: %d %s", r.Status, r.Body)
	}
	base := "/api/v1/projects/shop/environments/production"
	var stats map[string]any
	ingesttest.WaitFor(t, 30*time.Second, "the rollups to show the events", func() bool {
		stats = v.Must(200, "GET", base+"/flags/checkout/stats?interval=minute", nil)
		// The plain-PostgreSQL refresh goes minute, hour, then day (last_evaluated_at's source).
		return stats["evaluations"] == 40.0 && stats["last_evaluated_at"] != nil
	})
	variations := stats["variations"].([]any)
	if len(variations) != 2 || stats["interval"] != "minute" || stats["last_evaluated_at"] == nil {
		t.Fatalf("minute stats %v", stats)
	}
	first := variations[0].(map[string]any)
	points := first["points"].([]any)
	if first["variation"] != "false" || first["evaluations"] != 20.0 || len(points) < 1 || points[0].(map[string]any)["users"] == nil {
		t.Fatalf("variation false %v", first)
	}
	for _, interval := range []string{"hour", "day"} {
		s := v.Must(200, "GET", base+"/flags/checkout/stats?interval="+interval, nil)
		if s["evaluations"] != 40.0 || s["interval"] != interval {
			t.Fatalf("%s stats %v", interval, s)
		}
	}
	from := now.Add(-2 * time.Hour).Format(time.RFC3339)
	to := now.Add(time.Hour).Format(time.RFC3339)
	s := v.Must(200, "GET", base+"/flags/checkout/stats?interval=hour&from="+url.QueryEscape(from)+"&to="+url.QueryEscape(to), nil)
	if s["evaluations"] != 40.0 || s["from"] != now.Add(-2*time.Hour).Truncate(time.Hour).Format(time.RFC3339) {
		t.Fatalf("ranged stats %v", s)
	}

	activity := v.Must(200, "GET", base+"/flag-activity", nil)["items"].([]any)
	seen := map[string]any{}
	for _, a := range activity {
		m := a.(map[string]any)
		seen[m["flag"].(string)] = m["last_evaluated_at"]
	}
	if len(seen) != 2 || seen["checkout"] == nil || seen["banner"] != nil {
		t.Fatalf("flag activity %v", activity)
	}
	stale := v.Must(200, "GET", base+"/stale-flags?days=7", nil)
	if stale["days"] != 7.0 || len(stale["items"].([]any)) != 0 { // both flags were created just now
		t.Fatalf("stale flags %v", stale)
	}

	var goal map[string]any
	ingesttest.WaitFor(t, 30*time.Second, "the goal rollups", func() bool {
		goal = v.Must(200, "GET", base+"/goals/purchase/stats?flag=checkout", nil)
		return goal["total"].(map[string]any)["conversions"] == 3.0 && goal["variations"] != nil
	})
	total := goal["total"].(map[string]any)
	if total["value_sum"] != 60.0 || total["value_sum_squares"] != 1400.0 || goal["subject"] != "checkout" {
		t.Fatalf("goal stats %v", goal)
	}
	var attributed float64
	for _, vs := range goal["variations"].([]any) {
		attributed += vs.(map[string]any)["conversions"].(float64)
	}
	if attributed != 3 { // each user was exposed to checkout before converting
		t.Fatalf("%v conversions attributed to checkout's variations, want 3: %v", attributed, goal)
	}

	for _, c := range []struct {
		path, field string
		status      int
	}{
		{"/flags/checkout/stats?interval=week", "interval", 400},
		{"/flags/checkout/stats?from=yesterday", "from", 400},
		{"/flags/checkout/stats?to=2026-01-01", "to", 400},
		{"/flags/checkout/stats?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from", 400},
		{"/flags/checkout/stats?interval=minute&from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z", "from", 400},
		{"/flags/checkout/stats?interval=hour&from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from", 400},
		{"/flags/nope/stats", "", 404},
		{"/stale-flags?days=0", "days", 400},
		{"/stale-flags?days=x", "days", 400},
		{"/goals/purchase/stats?interval=minute", "interval", 400},
		{"/goals/purchase/stats?flag=checkout&experiment=e", "experiment", 400},
		{"/goals/purchase/stats?flag=nope", "", 404},
		{"/goals/bad%20key/stats", "goal", 400},
	} {
		r := v.Do("GET", base+c.path, ingesttest.AdminToken, nil)
		if r.Status != c.status {
			t.Errorf("%s: %d, want %d: %s", c.path, r.Status, c.status, r.Body)
			continue
		}
		if got := r.JSON(t); got["code"] == "" || got["message"] == "" || (c.field != "" && got["field"] != c.field) {
			t.Errorf("%s: body %v, want field %q", c.path, got, c.field)
		}
	}
	if r := v.Do("GET", "/api/v1/projects/shop/environments/staging/flag-activity", ingesttest.AdminToken, nil); r.Status != 404 {
		t.Fatalf("unknown environment: %d", r.Status)
	}
	if r := v.Do("GET", base+"/flag-activity", "", nil); r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
}
