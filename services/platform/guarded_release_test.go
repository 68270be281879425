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
