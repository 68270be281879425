package platform_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// runExperiment creates a flag, goals and a running experiment, assigns users through OFREP,
// sends their exposures and goal events (true conversion rates per variation) through
// POST /sdk/v1/events, and returns the analysis. keep decides whether a user's exposure is sent
// (to skew the observed split).
func runExperiment(t *testing.T, v *vexil, serverKey, flag string, users int, rates map[string]float64, keep func(variation string, rng *rand.Rand) bool) map[string]any {
	t.Helper()
	v.must(201, "POST", "/api/v1/projects/app/flags", map[string]any{"key": flag, "name": flag, "type": "string",
		"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}}})
	v.must(200, "PUT", "/api/v1/projects/app/flags/"+flag+"/environments/production",
		map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "a"}})
	exp := flag + "-exp"
	v.must(201, "POST", "/api/v1/projects/app/experiments", map[string]any{"key": exp, "name": "Does B sell more?",
		"hypothesis": "B converts better", "flag": flag, "environment": "production", "allocation": 100000,
		"variations":   []any{map[string]any{"variation": "a", "control": true}, map[string]any{"variation": "b"}},
		"primary_goal": "purchase", "secondary_goals": []string{"revenue"}})
	v.must(200, "POST", "/api/v1/projects/app/experiments/"+exp+"/start", nil)
	e := &sdkEnv{v: v, serverKey: serverKey}
	waitUntil(t, 10*time.Second, "the experiment to be served", func() bool {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/"+flag, serverKey, `{"context":{"targetingKey":"probe"}}`)
		return r.Status == 200 && strings.Contains(string(r.Body), exp)
	})
	rng := rand.New(rand.NewPCG(7, uint64(len(flag))))
	var batch []map[string]any
	sent, purchases := 0, 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		r := v.as("").do("POST", "/sdk/v1/events", map[string]any{"events": batch}, "Authorization", "Bearer "+serverKey)
		if r.Status != 202 {
			t.Fatalf("ingest: %d %s", r.Status, r.Body)
		}
		batch = batch[:0]
	}
	now := time.Now().UTC()
	for i := 0; i < users; i++ {
		user := fmt.Sprintf("%s-user-%d", flag, i)
		res := e.call("POST", "/ofrep/v1/evaluate/flags/"+flag, serverKey, `{"context":{"targetingKey":"`+user+`"}}`).JSON(t)
		variation := res["variant"].(string)
		md := res["metadata"].(map[string]any)
		if md["experiment"] != exp {
			t.Fatalf("%s not in the experiment: %v", user, res)
		}
		if !keep(variation, rng) {
			continue
		}
		// After the experiment's start (exposures before it are outside the analysis window), and
		// goals a millisecond later, well before the analysis.
		at := now.Add(time.Duration(i) * time.Microsecond)
		batch = append(batch, map[string]any{"kind": "evaluation", "flag_key": flag, "variation_key": variation,
			"reason": res["reason"], "experiment_key": exp, "user_key": user, "occurred_at": at.Format(time.RFC3339Nano)})
		sent++
		if rng.Float64() < rates[variation] {
			purchases++
			batch = append(batch, map[string]any{"kind": "goal", "goal_key": "purchase", "user_key": user,
				"occurred_at": at.Add(time.Millisecond).Format(time.RFC3339Nano)},
				map[string]any{"kind": "goal", "goal_key": "revenue", "user_key": user, "value": 20 + 10*rng.Float64(),
					"occurred_at": at.Add(time.Millisecond).Format(time.RFC3339Nano)})
		}
		if len(batch) >= 300 {
			flush()
		}
	}
	flush()
	ctx := context.Background()
	waitUntil(t, 90*time.Second, "exposures to be stored", func() bool {
		var n int
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM experiment_exposures WHERE subject_kind = 'experiment' AND subject = $1`, exp).Scan(&n)
		return n == sent
	})
	waitUntil(t, 90*time.Second, "goals to be attributed", func() bool {
		var n int
		_ = v.p.Pool.QueryRow(ctx, `SELECT coalesce(sum(conversions), 0) FROM experiment_user_goals
			WHERE subject_kind = 'experiment' AND subject = $1 AND goal = 'purchase'`, exp).Scan(&n)
		return n == purchases
	})
	v.must(200, "POST", "/api/v1/projects/app/experiments/"+exp+"/analyze", nil)
	return v.must(200, "GET", "/api/v1/projects/app/experiments/"+exp+"/results", nil)
}

func goalResult(t *testing.T, report map[string]any, goal string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, g := range report["goals"].([]any) {
		gm := g.(map[string]any)
		if gm["goal"] != goal {
			continue
		}
		for _, x := range gm["variations"].([]any) {
			vm := x.(map[string]any)
			out[vm["variation"].(string)] = vm
		}
	}
	if len(out) == 0 {
		t.Fatalf("no result for goal %s in %v", goal, report)
	}
	return out
}

func TestExperimentReportFavoursTheTrueWinnerAndFlagsSkewedSplits(t *testing.T) {
	t.Parallel()
	// Exposures here are the SDK's own, some withheld to skew the split: the api role's own
	// exposure logging would record every OFREP answer (exposures_test.go tests that).
	v := startVexil(t, "--server-exposures", "false")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "app", "name": "App"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "revenue", "name": "Revenue", "kind": "value", "value_cap": 1000})
	serverKey := v.must(200, "GET", "/api/v1/projects/app/environments/production", nil)["server_key"].(string)

	// B truly converts 15% against A's 8%.
	report := runExperiment(t, v, serverKey, "checkout", 3000, map[string]float64{"a": 0.08, "b": 0.15},
		func(string, *rand.Rand) bool { return true })
	purchase := goalResult(t, report, "purchase")
	if c := purchase["b"]["chance_to_beat_control"].(float64); c < 0.99 {
		t.Fatalf("B's chance to beat A is %.4f: %v", c, purchase)
	}
	if purchase["b"]["probability_to_be_best"].(float64) < 0.99 || !purchase["a"]["control"].(bool) {
		t.Fatalf("purchase: %v", purchase)
	}
	verdict := report["verdict"].(string)
	if !strings.HasPrefix(verdict, "b has a ") || !strings.Contains(verdict, "Ship b") {
		t.Fatalf("verdict %q", verdict)
	}
	if srm := report["srm"].(map[string]any); srm["mismatch"] != false {
		t.Fatalf("a fair split flagged as SRM: %v", srm)
	}
	revenue := goalResult(t, report, "revenue")
	if revenue["b"]["estimate"].(float64) <= revenue["a"]["estimate"].(float64) {
		t.Fatalf("revenue per user: %v", revenue)
	}
	// The history shows the analysis as a point in time.
	history := v.must(200, "GET", "/api/v1/projects/app/experiments/checkout-exp/results/history?goal=purchase", nil)
	if n := len(items(t, history)); n != 2 {
		t.Fatalf("history has %d points, want one per variation", n)
	}

	// A split where 30% of B's exposures go missing is a sample-ratio mismatch.
	skewed := runExperiment(t, v, serverKey, "banner", 3000, map[string]float64{"a": 0.1, "b": 0.1},
		func(variation string, rng *rand.Rand) bool { return variation != "b" || rng.Float64() > 0.3 })
	srm := skewed["srm"].(map[string]any)
	if srm["mismatch"] != true || !strings.Contains(skewed["verdict"].(string), "Sample ratio mismatch") {
		t.Fatalf("skewed split not flagged: %v / %s", srm, skewed["verdict"])
	}
}
