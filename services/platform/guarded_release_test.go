package platform_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/roles/scheduler"
)

// flagMetrics answers the guards' measurements per flag, changed by the test between passes.
type flagMetrics struct {
	mu   sync.Mutex
	arms map[string]map[string]scheduler.ArmCounts // flag -> variation -> counts
}

func (m *flagMetrics) set(flag string, arms map[string]scheduler.ArmCounts) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.arms[flag] = arms
}

func (m *flagMetrics) Arms(_ context.Context, q scheduler.MetricsQuery) (map[string]scheduler.ArmCounts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.arms[q.Flag], nil
}

// TestGuardedRollouts: a rollout's second step waits while its guard lacks sample (and says so),
// a treatment that converts clearly worse than the control rolls the rollout back at that step
// with the evidence in its history, and a healthy rollout completes.
func TestGuardedRollouts(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	setupShop(t, v)
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "search", "name": "Search", "type": "boolean"})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "purchase", "name": "Purchase",
		"kind": "conversion", "direction": "increase"})
	for _, f := range []string{"checkout", "search"} {
		tv := v.must(200, "GET", "/api/v1/projects/shop/flags/"+f+"/environments/production", nil)["targeting"].(map[string]any)
		tv["on"], tv["default"] = true, map[string]any{"variation": "false"}
		v.must(200, "PUT", "/api/v1/projects/shop/flags/"+f+"/environments/production", tv)
	}
	metrics := &flagMetrics{arms: map[string]map[string]scheduler.ArmCounts{}}
	start := time.Now().UTC().Add(time.Minute)
	clock := &testClock{now: start}
	s := testScheduler(t, v, clock, metrics)
	base := "/api/v1/projects/shop/rollouts"
	guard := map[string]any{"name": "conversion", "goal": "purchase", "comparison": "lt", "threshold": -0.01,
		"min_sample": 1000, "min_probability": 0.95}
	rollout := func(id, flag string) map[string]any {
		return map[string]any{"id": id, "flag": flag, "environment": "production", "guards": []any{guard},
			"template": map[string]any{"start": rfc3339(start), "every": "1h", "percents": []float64{10, 50, 100}}}
	}
	bad := rollout("bad", "checkout")
	bad["guards"] = []any{map[string]any{"goal": "purchase", "comparison": "lt", "threshold": -0.01, "min_sample": 0, "min_probability": 0.95}}
	if r := v.do("POST", base, bad); r.Status != 400 || r.JSON(t)["field"] != "guards[0].min_sample" {
		t.Fatalf("bad guard: %d %s", r.Status, r.Body)
	}
	bad["guards"] = []any{map[string]any{"goal": "nope", "comparison": "lt", "threshold": -0.01, "min_sample": 10, "min_probability": 0.95}}
	if r := v.do("POST", base, bad); r.Status != 400 || r.JSON(t)["field"] != "guards[0].goal" {
		t.Fatalf("unknown goal: %d %s", r.Status, r.Body)
	}
	created := v.must(201, "POST", base, rollout("guarded", "checkout"))
	if created["on_guard_failure"] != "rollback" || len(created["guards"].([]any)) != 1 {
		t.Fatalf("created: %v", created)
	}
	v.must(201, "POST", base, rollout("healthy", "search"))

	// Step 1 is not guarded: nobody is exposed to the variation before it.
	if rep := tick(t, s); rep.StepsApplied != 2 {
		t.Fatalf("first steps: %+v", rep)
	}
	// Step 2 is due, but the guard has too small a sample: it waits and says why.
	metrics.set("checkout", map[string]scheduler.ArmCounts{"true": {Exposed: 120, Converted: 2}, "false": {Exposed: 900, Converted: 90}})
	metrics.set("search", map[string]scheduler.ArmCounts{"true": {Exposed: 150, Converted: 15}, "false": {Exposed: 1400, Converted: 140}})
	clock.Set(start.Add(time.Hour))
	if rep := tick(t, s); rep.StepsWaiting != 2 || rep.StepsApplied != 0 {
		t.Fatalf("guards without sample: %+v", rep)
	}
	if rep := tick(t, s); rep.StepsWaiting != 2 {
		t.Fatalf("second pass: %+v", rep)
	}
	got := v.must(200, "GET", base+"/guarded", nil)
	step := got["plan"].([]any)[1].(map[string]any)
	if got["percent"] != 10.0 || step["status"] != "waiting" || !strings.Contains(step["reason"].(string), "waits for sample") ||
		!strings.Contains(got["waiting"].(map[string]any)["reason"].(string), "120 exposed to the variation") {
		t.Fatalf("waiting rollout: %v", got)
	}
	// The treatment converts at 4% against the control's 10%: the guard fires and rolls back.
	metrics.set("checkout", map[string]scheduler.ArmCounts{"true": {Exposed: 1500, Converted: 60}, "false": {Exposed: 9000, Converted: 900}})
	metrics.set("search", map[string]scheduler.ArmCounts{"true": {Exposed: 1500, Converted: 152}, "false": {Exposed: 9000, Converted: 900}})
	clock.Set(start.Add(time.Hour + time.Minute))
	if rep := tick(t, s); rep.GuardsFired != 1 || rep.StepsApplied != 1 {
		t.Fatalf("bad and healthy: %+v", rep)
	}
	got = v.must(200, "GET", base+"/guarded", nil)
	fired, _ := got["last_guard_fired"].(map[string]any)
	if got["status"] != "paused" || got["rolled_back"] != true || got["percent"] != 0.0 || fired == nil ||
		fired["guard"] != "conversion" || fired["step"] != 1.0 || fired["action"] != "rollback" {
		t.Fatalf("rolled back rollout: %v", got)
	}
	ev := fired["evidence"].([]any)[0].(map[string]any)
	if ev["status"] != "failing" || ev["probability"].(float64) <= 0.95 || ev["treatment"].(map[string]any)["exposed"] != 1500.0 {
		t.Fatalf("evidence: %v", ev)
	}
	d := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)["default"].(map[string]any)
	if d["variation"] != "false" {
		t.Fatalf("default after the rollback: %v", d)
	}
	// The history: the guard's firing (with its evidence, in the environment's audit), then the
	// rollback and the pause, all by the rollout's system actor.
	var types []string
	waitUntil(t, 5*time.Second, "the rollout's audit", func() bool {
		types = nil
		for _, e := range items(t, v.must(200, "GET", "/api/v1/projects/shop/audit?kind=rollout&environment=production&actor=system:rollout/guarded", nil)) {
			types = append(types, e["event_type"].(string))
		}
		return strings.Contains(strings.Join(types, ","), "GuardFired")
	})
	if !strings.Contains(strings.Join(types, ","), "RolloutStepWaiting") {
		t.Fatalf("audit of the guarded rollout in production: %v", types)
	}
	// The healthy rollout goes on to completion.
	clock.Set(start.Add(2 * time.Hour))
	if rep := tick(t, s); rep.StepsApplied != 1 {
		t.Fatalf("healthy last step: %+v", rep)
	}
	if got := v.must(200, "GET", base+"/healthy", nil); got["status"] != "completed" || got["percent"] != 100.0 {
		t.Fatalf("healthy rollout: %v", got)
	}
}

// TestReleasePipeline: a flag goes through development (on at once), staging (on after a wait)
// and production (a guarded rollout after a manual approval), driven by a scheduler on the test's
// clock; every stage change is in the audit with its environment, and time travel shows the
// release as it was while it awaited approval.
func TestReleasePipeline(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--roles", noExperimentRole)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop", "environments": []any{
		map[string]any{"key": "development", "name": "Development"}, map[string]any{"key": "staging", "name": "Staging"},
		map[string]any{"key": "production", "name": "Production"}}})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "boolean"})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion", "direction": "increase"})
	tv := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)
	tv["on"], tv["default"] = true, map[string]any{"variation": "false"}
	v.must(200, "PUT", "/api/v1/projects/shop/flags/checkout/environments/production", tv)

	stages := []any{
		map[string]any{"environment": "development", "action": "toggle_on"},
		map[string]any{"environment": "staging", "action": "toggle_on", "wait": "1h"},
		map[string]any{"environment": "production", "action": "rollout", "approval": true, "rollout": map[string]any{
			"every": "1h", "percents": []float64{50, 100}, "guards": []any{map[string]any{"name": "conversion", "goal": "purchase",
				"comparison": "lt", "threshold": -0.01, "min_sample": 1000, "min_probability": 0.95, "sequential": true}}}},
	}
	if r := v.do("POST", "/api/v1/projects/shop/pipelines", map[string]any{"key": "std", "name": "Standard",
		"stages": []any{map[string]any{"environment": "qa", "action": "toggle_on"}}}); r.Status != 400 || r.JSON(t)["field"] != "stages[0].environment" {
		t.Fatalf("bad pipeline: %d %s", r.Status, r.Body)
	}
	v.must(201, "POST", "/api/v1/projects/shop/pipelines", map[string]any{"key": "std", "name": "Standard", "stages": stages})
	if r := v.do("POST", "/api/v1/projects/shop/releases", map[string]any{"pipeline": "nope", "flag": "checkout"}); r.Status != 400 || r.JSON(t)["field"] != "pipeline" {
		t.Fatalf("unknown pipeline: %d %s", r.Status, r.Body)
	}
	v.must(201, "POST", "/api/v1/projects/shop/releases", map[string]any{"id": "r1", "pipeline": "std", "flag": "checkout"})
	v.must(201, "POST", "/api/v1/projects/shop/releases", map[string]any{"id": "r2", "pipeline": "std", "flag": "checkout"})
	if got := v.must(200, "POST", "/api/v1/projects/shop/releases/r2/abort", map[string]any{"reason": "one is enough"}); got["status"] != "aborted" {
		t.Fatalf("aborted release: %v", got)
	}
	release := func() map[string]any { return v.must(200, "GET", "/api/v1/projects/shop/releases/r1", nil) }
	stageStatus := func(r map[string]any, k int) string {
		return r["stage_states"].([]any)[k].(map[string]any)["status"].(string)
	}
	waitUntil(t, 5*time.Second, "the release in the read model", func() bool {
		return len(items(t, v.must(200, "GET", "/api/v1/projects/shop/releases?status=running", nil))) == 1
	})
	metrics := fixedMetrics{"true": {Exposed: 2000, Converted: 212}, "false": {Exposed: 2000, Converted: 200}}
	now := time.Now().UTC().Add(time.Minute)
	clock := &testClock{now: now}
	s := testScheduler(t, v, clock, metrics)

	// Development at once; staging waits an hour.
	if rep := tick(t, s); rep.ReleaseChanges != 3 {
		t.Fatalf("first pass: %+v", rep)
	}
	if r := release(); stageStatus(r, 0) != "completed" || stageStatus(r, 1) != "waiting" || !v.flagOn(t, "shop", "checkout", "development") ||
		v.flagOn(t, "shop", "checkout", "staging") {
		t.Fatalf("after development: %v", r)
	}
	// Paused, the release does not move; resumed, it does.
	v.must(200, "POST", "/api/v1/projects/shop/releases/r1/pause", map[string]any{"reason": "release freeze"})
	clock.Set(now.Add(time.Hour))
	if rep := tick(t, s); rep.ReleaseChanges != 0 {
		t.Fatalf("paused release moved: %+v", rep)
	}
	v.must(200, "POST", "/api/v1/projects/shop/releases/r1/resume", nil)
	if rep := tick(t, s); rep.ReleaseChanges != 3 {
		t.Fatalf("staging: %+v", rep)
	}
	r := release()
	if stageStatus(r, 1) != "completed" || stageStatus(r, 2) != "awaiting_approval" || !v.flagOn(t, "shop", "checkout", "staging") {
		t.Fatalf("after staging: %v", r)
	}
	if rep := tick(t, s); rep.ReleaseChanges != 0 {
		t.Fatalf("production went ahead without approval: %+v", rep)
	}
	awaiting := time.Now().UTC()
	if r := v.do("POST", "/api/v1/projects/shop/releases/r1/approve", map[string]any{"stage": 1}); r.Status != 400 || r.JSON(t)["field"] != "stage" {
		t.Fatalf("approving another stage: %d %s", r.Status, r.Body)
	}
	v.must(200, "POST", "/api/v1/projects/shop/releases/r1/approve", map[string]any{"stage": 2})
	// Approved: the production rollout starts, steps to 50%, then (guard healthy) to 100%.
	if rep := tick(t, s); rep.ReleaseChanges != 1 {
		t.Fatalf("production start: %+v", rep)
	}
	waitUntil(t, 5*time.Second, "the production rollout in the read model", func() bool {
		return len(items(t, v.must(200, "GET", "/api/v1/projects/shop/rollouts?environment=production&status=scheduled", nil))) == 1
	})
	if rep := tick(t, s); rep.StepsApplied != 1 {
		t.Fatalf("production first step: %+v", rep)
	}
	clock.Set(now.Add(2*time.Hour + time.Minute))
	if rep := tick(t, s); rep.StepsApplied != 1 || rep.ReleaseChanges != 2 {
		t.Fatalf("production last step: %+v", rep)
	}
	r = release()
	if r["status"] != "completed" || stageStatus(r, 2) != "completed" || r["stage_states"].([]any)[2].(map[string]any)["rollout"] != "r1.stage-2" {
		t.Fatalf("completed release: %v", r)
	}
	ro := v.must(200, "GET", "/api/v1/projects/shop/rollouts/r1.stage-2", nil)
	if ro["status"] != "completed" || len(ro["plan"].([]any)) != 2 {
		t.Fatalf("production rollout: %v", ro)
	}
	// Time travel: the release as it was while it awaited approval.
	then := v.must(200, "GET", "/api/v1/projects/shop/releases/r1?at="+rfc3339(awaiting), nil)
	if then["status"] != "running" || stageStatus(then, 2) != "awaiting_approval" {
		t.Fatalf("release at %s: %v", rfc3339(awaiting), then)
	}
	// The audit: every stage change of r1, each with its environment.
	want := map[string]string{"PipelineAwaitingApproval": "production", "ReleaseStageApproved": "production",
		"ReleaseStageWaiting": "staging", "ReleasePaused": "staging", "ReleaseResumed": "staging"}
	var entries []map[string]any
	waitUntil(t, 5*time.Second, "the release's audit", func() bool {
		entries = nil
		for _, e := range items(t, v.must(200, "GET", "/api/v1/projects/shop/audit?kind=release&limit=100", nil)) {
			if e["entity_key"] == "r1" {
				entries = append(entries, e)
			}
		}
		return len(entries) == 13 // started; 2 per toggle stage; wait, pause, resume; approval asked, given; rollout started, completed; finished
	})
	started, completed := map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		typ, env := e["event_type"].(string), e["environment"]
		if typ != "ReleaseStarted" && (env == nil || env == "") {
			t.Errorf("audit entry %s without an environment: %v", typ, e)
		}
		if w, ok := want[typ]; ok && env != w {
			t.Errorf("%s in %v, want %s", typ, env, w)
		}
		switch typ {
		case "ReleaseStageStarted":
			started[env.(string)] = true
		case "ReleaseStageCompleted":
			completed[env.(string)] = true
		}
	}
	if len(started) != 3 || len(completed) != 3 {
		t.Fatalf("stages started in %v, completed in %v", started, completed)
	}
	prod := items(t, v.must(200, "GET", "/api/v1/projects/shop/audit?kind=release&environment=production", nil))
	if len(prod) < 5 {
		t.Fatalf("production's release audit: %v", prod)
	}
	// Replay rebuilds the releases' and pipelines' read model identically.
	waitUntil(t, 10*time.Second, "the read models", func() bool {
		var behind int
		_ = v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT stream_id, max(version) v FROM events GROUP BY stream_id) e
			LEFT JOIN projection_checkpoints c ON c.projection = 'delivery' AND c.stream_id = e.stream_id
			WHERE coalesce(c.version, 0) < e.v AND (e.stream_id LIKE 'release/%' OR e.stream_id LIKE 'pipeline/%' OR e.stream_id LIKE 'rollout/%')`).Scan(&behind)
		return behind == 0
	})
	if out, err := runCLI(t, "replay", "--verify", "--database-url", v.p.Config.DatabaseURL); err != nil {
		t.Fatalf("replay --verify: %v\n%s", err, out)
	}
}
