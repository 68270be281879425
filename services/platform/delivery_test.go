package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/app"
	"github.com/vexil-flags/vexil/services/roles/console"
	"github.com/vexil-flags/vexil/services/roles/scheduler"
)

// Progressive delivery through the management API, with the scheduler driven by the test's clock:
// the platform runs without the experiment role, and the test runs passes of its own scheduler.
const noExperimentRole = "api,console,projector,relay"

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func rfc3339(t time.Time) string     { return t.UTC().Format(time.RFC3339Nano) }
func (v *vexil) flagOn(t *testing.T, project, flag, env string) bool {
	t.Helper()
	return v.must(200, "GET", "/api/v1/projects/"+project+"/flags/"+flag+"/environments/"+env, nil)["targeting"].(map[string]any)["on"].(bool)
}

type fixedMetrics map[string]scheduler.ArmCounts

func (m fixedMetrics) Arms(context.Context, scheduler.MetricsQuery) (map[string]scheduler.ArmCounts, error) {
	return m, nil
}

// testScheduler is a scheduler on the platform's database with the test's clock.
func testScheduler(t *testing.T, v *vexil, clock *testClock, metrics scheduler.MetricsSource) *scheduler.Scheduler {
	t.Helper()
	a, err := app.New(app.Config{Store: v.p.Store, Pool: v.p.Pool, Log: v.p.Log})
	if err != nil {
		t.Fatal(err)
	}
	s, err := scheduler.New(scheduler.Config{App: a, Store: v.p.Store, Pool: v.p.Pool, Clock: clock.Now,
		AutoOpsInterval: -1, Metrics: metrics, Logger: v.p.Log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tick(t *testing.T, s *scheduler.Scheduler) scheduler.Report {
	t.Helper()
	rep, err := s.Tick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func setupShop(t *testing.T, v *vexil) {
	t.Helper()
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "boolean"})
}

// auditBy returns the flag's audit entries made by actor, newest first.
func auditBy(t *testing.T, v *vexil, flag, actor string) []map[string]any {
	t.Helper()
	var out []map[string]any
	waitUntil(t, 5*time.Second, "audit entries by "+actor, func() bool {
		out = nil
		for _, e := range items(t, v.must(200, "GET", "/api/v1/projects/shop/flags/"+flag+"/audit?actor="+actor, nil)) {
			if e["actor"] == actor {
				out = append(out, e)
			}
		}
		return len(out) > 0
	})
	return out
}

func TestScheduledChangesThroughTheAPI(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	now := time.Now().UTC()
	clock := &testClock{now: now}
	s := testScheduler(t, v, clock, nil)
	base := "/api/v1/projects/shop/schedules"

	// Bad input is refused with the offending field.
	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "toggle", "on": true}, "at"},
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "toggle", "at": rfc3339(now.Add(time.Hour))}, "on"},
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "toggle", "on": true, "at": rfc3339(now.Add(-time.Hour))}, "at"},
		{map[string]any{"flag": "nope", "environment": "production", "kind": "toggle", "on": true, "at": rfc3339(now.Add(time.Hour))}, "flag"},
		{map[string]any{"flag": "checkout", "environment": "moon", "kind": "toggle", "on": true, "at": rfc3339(now.Add(time.Hour))}, "environment"},
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "default", "at": rfc3339(now.Add(time.Hour)),
			"default": map[string]any{"variation": "maybe"}}, "default.variation"},
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "rename", "at": rfc3339(now.Add(time.Hour))}, "kind"},
		// Issue 20: a time without offset or zone is a bad time, not malformed JSON; zones are IANA names.
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "toggle", "on": true, "at": "2026-12-24T09:00:00"}, "at"},
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "toggle", "on": true, "at": "2099-12-24T09:00",
			"time_zone": "Europe/Pariss"}, "time_zone"},
		{map[string]any{"flag": "checkout", "environment": "production", "kind": "default", "default": map[string]any{"variation": "true"},
			"recurrence": map[string]any{"weekdays": []string{"mon"}, "time": "18:00"}}, "recurrence"},
	} {
		r := v.do("POST", base, c.body)
		if r.Status != 400 || r.JSON(t)["field"] != c.field {
			t.Fatalf("%v: %d %s, want 400 at %s", c.body, r.Status, r.Body, c.field)
		}
	}

	on := v.must(201, "POST", base, map[string]any{"id": "launch", "flag": "checkout", "environment": "production",
		"kind": "toggle", "on": true, "at": rfc3339(now.Add(time.Hour))}, "X-Vexil-Reason", "launch day")
	if on["status"] != "pending" || on["id"] != "launch" {
		t.Fatalf("created: %v", on)
	}
	if r := v.do("POST", base, map[string]any{"id": "launch", "flag": "checkout", "environment": "production",
		"kind": "toggle", "on": true, "at": rfc3339(now.Add(time.Hour))}); r.Status != 409 || r.JSON(t)["field"] != "id" {
		t.Fatalf("same id again: %d %s", r.Status, r.Body)
	}
	// Edit (If-Match honoured), list, cancel.
	if r := v.do("PUT", base+"/launch", map[string]any{"kind": "toggle", "on": true, "at": rfc3339(now.Add(2 * time.Hour))},
		"If-Match", `"7"`); r.Status != 409 {
		t.Fatalf("stale If-Match: %d", r.Status)
	}
	edited := v.must(200, "PUT", base+"/launch", map[string]any{"kind": "toggle", "on": true, "at": rfc3339(now.Add(2 * time.Hour))},
		"If-Match", `"1"`)
	if edited["version"].(float64) != 2 {
		t.Fatalf("edited: %v", edited)
	}
	generated := v.must(201, "POST", base, map[string]any{"flag": "checkout", "environment": "development",
		"kind": "toggle", "on": true, "at": rfc3339(now.Add(time.Hour))})
	genID := generated["id"].(string)
	if len(genID) != 36 {
		t.Fatalf("generated id %q", genID)
	}
	v.must(200, "POST", base+"/"+genID+"/cancel", nil)
	if r := v.do("POST", base+"/"+genID+"/cancel", nil); r.Status != 409 {
		t.Fatalf("cancel twice: %d", r.Status)
	}
	list := items(t, v.must(200, "GET", base+"?flag=checkout", nil))
	if len(list) != 2 || list[0]["id"] != genID || list[0]["status"] != "cancelled" || list[1]["id"] != "launch" {
		t.Fatalf("list by due time: %v", list)
	}
	if pending := items(t, v.must(200, "GET", base+"?status=pending&environment=production", nil)); len(pending) != 1 {
		t.Fatalf("pending: %v", pending)
	}

	// A targeting change scheduled now conflicts with a rule added by hand before it is due.
	tv := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)
	tv["targets"] = []any{map[string]any{"variation": "true", "values": []string{"qa-1"}}}
	v.must(201, "POST", base, map[string]any{"id": "qa", "flag": "checkout", "environment": "production",
		"kind": "targeting", "targeting": tv, "at": rfc3339(now.Add(90 * time.Minute))})
	hand := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)
	hand["rules"] = []any{map[string]any{"clauses": []any{map[string]any{"attribute": "plan", "op": "equals", "values": []string{"pro"}}},
		"serve": map[string]any{"variation": "true"}}}
	v.must(200, "PUT", "/api/v1/projects/shop/flags/checkout/environments/production", hand)

	clock.Set(now.Add(2 * time.Hour))
	if rep := tick(t, s); rep.SchedulesApplied != 1 || rep.SchedulesFailed != 1 {
		t.Fatalf("due pass: %+v", rep)
	}
	if !v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("the scheduled toggle did not apply")
	}
	failed := v.must(200, "GET", base+"/qa", nil)
	if failed["status"] != "failed" || !strings.Contains(failed["failure_reason"].(string), "changed since the change was scheduled (rules)") {
		t.Fatalf("conflicting change: %v", failed)
	}
	waitUntil(t, 5*time.Second, "the list to show the outcomes", func() bool {
		list := items(t, v.must(200, "GET", base+"?environment=production", nil))
		return len(list) == 2 && list[0]["status"] == "failed" && list[0]["failure_reason"] != "" && list[1]["status"] == "applied"
	})
	// The audit log says who did it and why.
	e := auditBy(t, v, "checkout", "system:schedule/launch")[0]
	if e["event_type"] != "FlagToggled" || !strings.Contains(e["reason"].(string), "scheduled change launch") {
		t.Fatalf("audit entry: %v", e)
	}
	// A resolved change can no longer be edited.
	if r := v.do("PUT", base+"/launch", map[string]any{"kind": "toggle", "on": false, "at": rfc3339(now.Add(3 * time.Hour))}); r.Status != 409 {
		t.Fatalf("edit after applied: %d %s", r.Status, r.Body)
	}
	// Issue 20: the schedule's outcome is in the environment's audit (it carried no environment).
	waitUntil(t, 5*time.Second, "ScheduleApplied in production's audit", func() bool {
		for _, e := range items(t, v.must(200, "GET", "/api/v1/projects/shop/audit?environment=production", nil)) {
			if e["event_type"] == "ScheduleApplied" && e["entity_key"] == "launch" {
				return true
			}
		}
		return false
	})

	// A local time in a named zone is stored in UTC with its zone; a recurring toggle lists its
	// next five runs in that zone.
	local := v.must(201, "POST", base, map[string]any{"flag": "checkout", "environment": "production", "kind": "toggle",
		"on": false, "at": "2099-12-24T09:00", "time_zone": "Europe/Paris"})
	if local["at"] != "2099-12-24T08:00:00Z" || local["time_zone"] != "Europe/Paris" ||
		fmt.Sprint(local["next_runs"]) != "[2099-12-24T09:00:00+01:00]" {
		t.Fatalf("local time in Europe/Paris: %v", local)
	}
	evenings := v.must(201, "POST", base, map[string]any{"id": "evenings", "flag": "checkout", "environment": "development",
		"kind": "toggle", "on": false, "time_zone": "Europe/Paris",
		"recurrence": map[string]any{"weekdays": []string{"mon", "tue", "wed", "thu", "fri"}, "time": "18:00"}})
	got := v.must(200, "GET", base+"/evenings", nil)
	runs, _ := got["next_runs"].([]any)
	if len(runs) != 5 || runs[0] != evenings["next_runs"].([]any)[0] {
		t.Fatalf("next runs: %v", got)
	}
	for _, r := range runs {
		at, err := time.Parse(time.RFC3339, r.(string))
		paris, _ := time.LoadLocation("Europe/Paris")
		if local := at.In(paris); err != nil || local.Hour() != 18 || local.Minute() != 0 || local.Weekday() == time.Saturday ||
			local.Weekday() == time.Sunday {
			t.Fatalf("run %v is not a weekday at 18:00 in Paris (%v)", r, err)
		}
	}
}

func TestProgressiveRolloutThroughTheAPI(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	now := time.Now().UTC()
	clock := &testClock{now: now}
	s := testScheduler(t, v, clock, nil)
	base := "/api/v1/projects/shop/rollouts"
	// The flag starts on, serving false.
	tv := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)
	tv["on"], tv["default"] = true, map[string]any{"variation": "false"}
	v.must(200, "PUT", "/api/v1/projects/shop/flags/checkout/environments/production", tv)

	for _, c := range []struct {
		body  any
		field string
	}{
		{map[string]any{"flag": "checkout", "environment": "production", "template": map[string]any{"every": "soon"}}, "template.every"},
		{map[string]any{"flag": "checkout", "environment": "production"}, "steps"},
		{map[string]any{"flag": "checkout", "environment": "production", "steps": []any{
			map[string]any{"at": rfc3339(now.Add(time.Hour)), "percent": 50}, map[string]any{"at": rfc3339(now.Add(2 * time.Hour)), "percent": 20}}}, "steps[1].percent"},
		{map[string]any{"flag": "checkout", "environment": "production", "variation": "maybe", "template": map[string]any{"every": "1h"}}, "variation"},
	} {
		r := v.do("POST", base, c.body)
		if r.Status != 400 || r.JSON(t)["field"] != c.field {
			t.Fatalf("%v: %d %s, want 400 at %s", c.body, r.Status, r.Body, c.field)
		}
	}
	start := now.Add(time.Hour)
	created := v.must(201, "POST", base, map[string]any{"id": "ro", "flag": "checkout", "environment": "production",
		"template": map[string]any{"start": rfc3339(start), "every": "1d", "percents": []float64{1, 5, 25, 50, 100}}})
	plan := created["plan"].([]any)
	if created["status"] != "scheduled" || len(plan) != 5 || plan[0].(map[string]any)["status"] != "next" ||
		created["variation"] != "true" || created["other"] != "false" {
		t.Fatalf("created: %v", created)
	}
	if r := v.do("POST", base, map[string]any{"flag": "checkout", "environment": "production", "template": map[string]any{"every": "1h"}}); r.Status != 409 {
		t.Fatalf("a second active rollout of the same flag: %d %s", r.Status, r.Body)
	}
	weight := func() float64 {
		d := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)["default"].(map[string]any)
		if sp, ok := d["split"].(map[string]any); ok {
			return sp["variations"].([]any)[0].(map[string]any)["weight"].(float64)
		}
		if d["variation"] == "true" {
			return 100000
		}
		return 0
	}
	// Days 0 and 1: 1% then 5%.
	for day, want := range []float64{1000, 5000} {
		clock.Set(start.Add(time.Duration(day) * 24 * time.Hour))
		if rep := tick(t, s); rep.StepsApplied != 1 {
			t.Fatalf("day %d: %+v", day, rep)
		}
		if w := weight(); w != want {
			t.Fatalf("day %d: weight %v, want %v", day, w, want)
		}
	}
	got := v.must(200, "GET", base+"/ro", nil)
	statuses := []string{}
	for _, p := range got["plan"].([]any) {
		statuses = append(statuses, p.(map[string]any)["status"].(string))
	}
	if strings.Join(statuses, ",") != "applied,applied,next,pending,pending" || got["status"] != "running" || got["percent"] != 5.0 {
		t.Fatalf("plan: %v %v %v", statuses, got["status"], got["percent"])
	}
	// Pause: due steps wait; resume: the plan goes on.
	v.must(200, "POST", base+"/ro/pause", map[string]any{"reason": "checking the dashboards"})
	clock.Set(start.Add(2 * 24 * time.Hour))
	if rep := tick(t, s); rep.StepsApplied != 0 {
		t.Fatalf("paused rollout advanced: %+v", rep)
	}
	v.must(200, "POST", base+"/ro/resume", nil)
	clock.Set(start.Add(2*24*time.Hour + time.Minute))
	if rep := tick(t, s); rep.StepsApplied != 1 || weight() != 25000 {
		t.Fatalf("resumed: %+v weight %v", rep, weight())
	}
	// Abort restores the starting default.
	aborted := v.must(200, "POST", base+"/ro/abort", map[string]any{"reason": "bad feedback"})
	if aborted["status"] != "aborted" || weight() != 0 {
		t.Fatalf("aborted: %v weight %v", aborted["status"], weight())
	}
	d := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)["default"].(map[string]any)
	if d["variation"] != "false" || d["split"] != nil {
		t.Fatalf("default after abort: %v", d)
	}
	if r := v.do("POST", base+"/ro/abort", nil); r.Status != 409 {
		t.Fatalf("abort twice: %d", r.Status)
	}
	entries := auditBy(t, v, "checkout", "system:rollout/ro")
	if len(entries) != 3 || !strings.Contains(entries[0]["reason"].(string), "step 3 of 5") {
		t.Fatalf("rollout audit: %d entries, newest %v", len(entries), entries[0])
	}
	waitUntil(t, 5*time.Second, "the list", func() bool {
		list := items(t, v.must(200, "GET", base+"?flag=checkout&status=aborted", nil))
		return len(list) == 1 && list[0]["id"] == "ro"
	})
	// Replay rebuilds the delivery read model identically.
	waitUntil(t, 10*time.Second, "the read models", func() bool {
		var behind int
		_ = v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT stream_id, max(version) v FROM events GROUP BY stream_id) e
			LEFT JOIN projection_checkpoints c ON c.projection = 'delivery' AND c.stream_id = e.stream_id
			WHERE coalesce(c.version, 0) < e.v AND e.stream_id LIKE 'rollout/%'`).Scan(&behind)
		return behind == 0
	})
	if out, err := runCLI(t, "replay", "--verify", "--database-url", v.p.Config.DatabaseURL); err != nil {
		t.Fatalf("replay --verify: %v\n%s", err, out)
	}
}

func TestWebhookTriggers(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout/environments/production/toggle", map[string]any{"on": true})
	if r := v.do("POST", "/api/v1/projects/shop/triggers", map[string]any{"name": "kill", "flag": "checkout",
		"environment": "production", "action": "explode"}); r.Status != 400 || r.JSON(t)["field"] != "action" {
		t.Fatalf("bad action: %d %s", r.Status, r.Body)
	}
	created := v.must(201, "POST", "/api/v1/projects/shop/triggers", map[string]any{"name": "PagerDuty kill switch",
		"flag": "checkout", "environment": "production", "action": "off"})
	id := created["trigger"].(map[string]any)["id"].(string)
	secret := created["secret"].(string)
	url := created["url"].(string)
	if !strings.HasPrefix(secret, "vxt_") || url != v.base+"/hooks/v1/triggers/"+id || created["path"] != "/hooks/v1/triggers/"+id {
		t.Fatalf("created: %v", created)
	}
	// Never shown again.
	for _, body := range []string{string(v.do("GET", "/api/v1/projects/shop/triggers/"+id, nil).Body),
		string(v.do("GET", "/api/v1/projects/shop/triggers?flag=checkout", nil).Body)} {
		if strings.Contains(body, secret) || strings.Contains(body, "secret") || !strings.Contains(body, id) {
			t.Fatalf("trigger shown with its secret: %s", body)
		}
	}
	call := func(path string, headers ...string) response {
		hook := v.as("") // no bearer token
		return hook.do("POST", path, `{"alert":"error rate"}`, headers...)
	}
	refused := func(r response) {
		t.Helper()
		if r.Status != 401 || r.JSON(t)["code"] != "unauthorized" || r.JSON(t)["message"] != "unknown trigger or wrong secret" {
			t.Fatalf("want the one refusal: %d %s", r.Status, r.Body)
		}
	}
	hook := "/hooks/v1/triggers/" + id
	refused(call(hook, console.TriggerSecretHeader, "vxt_wrong"))
	refused(call(hook))
	refused(call("/hooks/v1/triggers/0123456789abcdef0123456789abcdef", console.TriggerSecretHeader, secret))
	if !v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("a refused call changed the flag")
	}
	r := call(hook, console.TriggerSecretHeader, secret)
	if r.Status != 200 || r.JSON(t)["changed"] != true || r.JSON(t)["on"] != false {
		t.Fatalf("call: %d %s", r.Status, r.Body)
	}
	if v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("the trigger did not turn the flag off")
	}
	// Again: recorded, nothing to change. And ?secret= for tools that only call URLs.
	if r := call(hook + "?secret=" + secret); r.Status != 200 || r.JSON(t)["changed"] != false {
		t.Fatalf("second call: %d %s", r.Status, r.Body)
	}
	e := auditBy(t, v, "checkout", "trigger:"+id)[0]
	if e["event_type"] != "FlagToggled" || !strings.Contains(e["reason"].(string), "PagerDuty kill switch") {
		t.Fatalf("audit: %v", e)
	}
	got := v.must(200, "GET", "/api/v1/projects/shop/triggers/"+id, nil)
	if got["fired"].(float64) != 2 || got["last_fired_at"] == nil {
		t.Fatalf("trigger after two calls: %v", got)
	}
	// Rotation: the old secret stops working at once, the new one works.
	rotated := v.must(200, "POST", "/api/v1/projects/shop/triggers/"+id+"/rotate", nil)
	newSecret := rotated["secret"].(string)
	if newSecret == secret || rotated["url"] != url {
		t.Fatalf("rotated: %v", rotated)
	}
	refused(call(hook, console.TriggerSecretHeader, secret))
	if r := call(hook, console.TriggerSecretHeader, newSecret); r.Status != 200 {
		t.Fatalf("new secret: %d %s", r.Status, r.Body)
	}
	// Disabled: the right secret gets a conflict; deleted: the one refusal.
	v.must(200, "POST", "/api/v1/projects/shop/triggers/"+id+"/disable", nil)
	if r := call(hook, console.TriggerSecretHeader, newSecret); r.Status != 409 {
		t.Fatalf("disabled trigger: %d %s", r.Status, r.Body)
	}
	v.must(200, "POST", "/api/v1/projects/shop/triggers/"+id+"/enable", nil)
	v.must(200, "DELETE", "/api/v1/projects/shop/triggers/"+id, nil)
	refused(call(hook, console.TriggerSecretHeader, newSecret))
	if r := v.do("GET", "/api/v1/projects/shop/triggers/"+id, nil); r.Status != 404 {
		t.Fatalf("deleted trigger: %d", r.Status)
	}
	// Managing triggers needs a token.
	if r := v.as("").do("POST", "/api/v1/projects/shop/triggers", map[string]any{}); r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
}

func TestAutoOpsThroughTheAPI(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout/environments/production/toggle", map[string]any{"on": true})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "checkout-error", "name": "Checkout error",
		"kind": "conversion", "direction": "decrease"})
	base := "/api/v1/projects/shop/autoops-rules"
	rule := map[string]any{"flag": "checkout", "environment": "production", "name": "errors up",
		"metric":     map[string]any{"goal": "checkout-error", "variation": "true", "control": "false"},
		"comparison": "gt", "threshold": 0.005, "min_sample": 1000, "min_probability": 0.95, "action": "turn_off"}
	bad := map[string]any{}
	for k, x := range rule {
		bad[k] = x
	}
	bad["min_probability"] = 1.5
	if r := v.do("POST", base, bad); r.Status != 400 || r.JSON(t)["field"] != "min_probability" {
		t.Fatalf("bad rule: %d %s", r.Status, r.Body)
	}
	created := v.must(201, "POST", base, rule)
	id := created["id"].(string)
	if created["enabled"] != true || created["triggered"] != false {
		t.Fatalf("created: %v", created)
	}
	if list := items(t, v.must(200, "GET", base+"?flag=checkout", nil)); len(list) != 1 {
		t.Fatalf("list: %v", list)
	}
	metrics := fixedMetrics{"true": {Exposed: 800, Converted: 80}, "false": {Exposed: 800, Converted: 8}}
	clock := &testClock{now: time.Now()}
	s := testScheduler(t, v, clock, metrics)
	if rep := tick(t, s); rep.RulesEvaluated != 1 || rep.RulesFired != 0 {
		t.Fatalf("too small a sample fired: %+v", rep)
	}
	metrics["true"], metrics["false"] = scheduler.ArmCounts{Exposed: 5000, Converted: 250}, scheduler.ArmCounts{Exposed: 5000, Converted: 60}
	if rep := tick(t, s); rep.RulesFired != 1 {
		t.Fatalf("bad metrics: %+v", rep)
	}
	if v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("auto-ops did not turn the flag off")
	}
	got := v.must(200, "GET", base+"/"+id, nil)
	ev := got["evidence"].(map[string]any)
	if got["triggered"] != true || ev["fired"] != true || ev["treatment"].(map[string]any)["exposed"].(float64) != 5000 ||
		!strings.HasPrefix(ev["decision"].(string), "fired:") {
		t.Fatalf("rule after firing: %v", got)
	}
	var firings []map[string]any
	waitUntil(t, 5*time.Second, "the firing", func() bool {
		firings = items(t, v.must(200, "GET", base+"/"+id+"/firings", nil))
		return len(firings) == 1
	})
	if firings[0]["action"] != "turn_off" || firings[0]["actor"] != "system:autoops/"+id ||
		firings[0]["evidence"].(map[string]any)["probability"].(float64) <= 0.95 {
		t.Fatalf("firing: %v", firings[0])
	}
	e := auditBy(t, v, "checkout", "system:autoops/"+id)[0]
	if e["event_type"] != "FlagToggled" || !strings.Contains(e["reason"].(string), "errors up") {
		t.Fatalf("audit: %v", e)
	}
	// Triggered: quiet until re-armed; enable re-arms it.
	if rep := tick(t, s); rep.RulesFired != 0 {
		t.Fatalf("fired twice: %+v", rep)
	}
	v.must(200, "POST", base+"/"+id+"/disable", nil)
	enabled := v.must(200, "POST", base+"/"+id+"/enable", nil)
	if enabled["triggered"] != false || enabled["enabled"] != true {
		t.Fatalf("re-armed: %v", enabled)
	}
	upd := map[string]any{}
	for k, x := range rule {
		if k != "flag" && k != "environment" {
			upd[k] = x
		}
	}
	upd["threshold"] = 0.5
	if got := v.must(200, "PUT", base+"/"+id, upd); got["threshold"] != 0.5 {
		t.Fatalf("updated: %v", got)
	}
	v.must(200, "DELETE", base+"/"+id, nil)
	if r := v.do("GET", base+"/"+id, nil); r.Status != 404 {
		t.Fatalf("deleted rule: %d", r.Status)
	}
}

// With the experiment role running, due work is applied by the platform itself.
func TestExperimentRoleAppliesDueChanges(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--scheduler-interval", "50ms")
	setupShop(t, v)
	if v.p.Scheduler == nil {
		t.Fatal("the experiment role runs no scheduler")
	}
	waitUntil(t, 5*time.Second, "leadership", v.p.Scheduler.Leading)
	v.must(201, "POST", "/api/v1/projects/shop/schedules", map[string]any{"flag": "checkout", "environment": "production",
		"kind": "toggle", "on": true, "at": rfc3339(time.Now().Add(500 * time.Millisecond))})
	waitUntil(t, 10*time.Second, "the scheduled toggle", func() bool { return v.flagOn(t, "shop", "checkout", "production") })
	// The outcome is recorded just after the flag changed.
	waitUntil(t, 5*time.Second, "the scheduler's metrics", func() bool {
		r := v.do("GET", "/metrics", nil)
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), `vexil_delivery_actions_total{kind="schedule",outcome="applied"} 1`) &&
			strings.Contains(string(r.Body), "vexil_delivery_scheduler_leader 1")
	})
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	waitUntil(t, 5*time.Second, "the applied list", func() bool {
		_ = json.Unmarshal(v.do("GET", "/api/v1/projects/shop/schedules?status=applied", nil).Body, &list)
		return len(list.Items) == 1
	})
}

// A trigger called in a loop is limited: past VEXIL_TRIGGER_RATE_LIMIT a call answers 429 with
// Retry-After and records nothing; calls with a wrong secret never use up the allowance.
func TestWebhookTriggerRateLimit(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole, "--trigger-rate-limit", "2")
	setupShop(t, v)
	created := v.must(201, "POST", "/api/v1/projects/shop/triggers", map[string]any{"name": "loop",
		"flag": "checkout", "environment": "production", "action": "off"})
	id := created["trigger"].(map[string]any)["id"].(string)
	secret := created["secret"].(string)
	hook := v.as("")
	call := func(secret string) response {
		return hook.do("POST", "/hooks/v1/triggers/"+id, `{}`, console.TriggerSecretHeader, secret)
	}
	for i := 0; i < 5; i++ {
		if r := call("vxt_wrong"); r.Status != 401 {
			t.Fatalf("wrong secret: %d %s", r.Status, r.Body)
		}
	}
	for i := 0; i < 2; i++ {
		if r := call(secret); r.Status != 200 {
			t.Fatalf("call %d within the limit: %d %s", i+1, r.Status, r.Body)
		}
	}
	r := call(secret)
	if r.Status != 429 || r.JSON(t)["code"] != "rate_limited" {
		t.Fatalf("call past the limit: %d %s", r.Status, r.Body)
	}
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 30 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if got := v.must(200, "GET", "/api/v1/projects/shop/triggers/"+id, nil); got["fired"].(float64) != 2 {
		t.Fatalf("the refused call was recorded: %v", got)
	}
}

// A flag's default serve has one owner at a time: a rollout is refused while an experiment runs
// on the flag in that environment, and an experiment does not start while a rollout is active
// there; once the rollout is aborted the experiment starts.
func TestRolloutsAndExperimentsDoNotShareAFlag(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner", "type": "boolean"})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion"})
	experiment := func(key, flag string) {
		v.must(201, "POST", "/api/v1/projects/shop/experiments", map[string]any{"key": key, "name": key, "flag": flag,
			"environment": "production", "allocation": 50000, "primary_goal": "purchase",
			"variations": []any{map[string]any{"variation": "false", "control": true}, map[string]any{"variation": "true"}}})
	}
	rollout := func(flag string) response {
		return v.do("POST", "/api/v1/projects/shop/rollouts", map[string]any{"flag": flag, "environment": "production",
			"template": map[string]any{"every": "1h"}})
	}

	experiment("checkout-test", "checkout")
	v.must(200, "POST", "/api/v1/projects/shop/experiments/checkout-test/start", nil)
	if r := rollout("checkout"); r.Status != 409 || r.JSON(t)["field"] != "flag" || !strings.Contains(r.JSON(t)["message"].(string), "checkout-test") {
		t.Fatalf("rollout during an experiment: %d %s", r.Status, r.Body)
	}

	created := rollout("banner")
	if created.Status != 201 {
		t.Fatalf("rollout of a flag without experiment: %d %s", created.Status, created.Body)
	}
	id := created.JSON(t)["id"].(string)
	experiment("banner-test", "banner")
	r := v.do("POST", "/api/v1/projects/shop/experiments/banner-test/start", nil)
	if r.Status != 409 || r.JSON(t)["field"] != "flag" || !strings.Contains(r.JSON(t)["message"].(string), id) {
		t.Fatalf("experiment start during a rollout: %d %s", r.Status, r.Body)
	}
	v.must(200, "POST", "/api/v1/projects/shop/rollouts/"+id+"/abort", nil)
	v.must(200, "POST", "/api/v1/projects/shop/experiments/banner-test/start", nil)
}

// A rollout created on a flag that already serves 10% of users the rolled-out variation goes on
// from there: the standard plan's 1% and 5% steps are skipped at creation (the answer says so) and
// the first step applied is 25%, so nobody loses the variation.
func TestRolloutStartsFromTheCurrentShare(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	now := time.Now().UTC()
	clock := &testClock{now: now}
	s := testScheduler(t, v, clock, nil)
	tv := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)
	tv["on"], tv["default"] = true, map[string]any{"split": map[string]any{"variations": []any{
		map[string]any{"variation": "true", "weight": 10000}, map[string]any{"variation": "false", "weight": 90000}}}}
	v.must(200, "PUT", "/api/v1/projects/shop/flags/checkout/environments/production", tv)

	start := now.Add(time.Hour)
	created := v.must(201, "POST", "/api/v1/projects/shop/rollouts", map[string]any{"id": "ro", "flag": "checkout",
		"environment": "production", "template": map[string]any{"start": rfc3339(start), "every": "1h"}})
	var statuses []string
	for _, p := range created["plan"].([]any) {
		statuses = append(statuses, p.(map[string]any)["status"].(string))
	}
	if got := strings.Join(statuses, ","); got != "skipped,skipped,next,pending,pending" {
		t.Fatalf("plan %s: %v", got, created["plan"])
	}
	if notes, _ := created["notes"].([]any); len(notes) != 1 || !strings.Contains(notes[0].(string), "10% of users") {
		t.Fatalf("notes: %v", created["notes"])
	}
	if reason := created["plan"].([]any)[0].(map[string]any)["reason"]; reason != "already served when the rollout was created" {
		t.Fatalf("reason of step 0: %v", reason)
	}
	// The 25% step is the first one due: at the third step's time the default goes from 10% to 25%.
	clock.Set(start.Add(2 * time.Hour))
	if rep := tick(t, s); rep.StepsApplied != 1 {
		t.Fatalf("due pass: %+v", rep)
	}
	d := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)["default"].(map[string]any)
	if w := d["split"].(map[string]any)["variations"].([]any)[0].(map[string]any)["weight"]; w != 25000.0 {
		t.Fatalf("default after the first step: %v", d)
	}
	// A plan entirely at or below what is served is refused.
	v.must(200, "POST", "/api/v1/projects/shop/rollouts/ro/abort", nil)
	if r := v.do("POST", "/api/v1/projects/shop/rollouts", map[string]any{"flag": "checkout", "environment": "production",
		"template": map[string]any{"every": "1h", "percents": []float64{5, 10}}}); r.Status != 400 || r.JSON(t)["field"] != "steps" {
		t.Fatalf("a plan at or below the current share: %d %s", r.Status, r.Body)
	}
}
