package platform_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/domain/stats"
)

// sendEvents posts SDK events in batches of at most 500.
func sendEvents(t *testing.T, v *vexil, serverKey string, events []map[string]any) {
	t.Helper()
	for len(events) > 0 {
		n := min(len(events), 500)
		r := v.as("").do("POST", "/sdk/v1/events", map[string]any{"events": events[:n]}, "Authorization", "Bearer "+serverKey)
		if r.Status != 202 {
			t.Fatalf("ingest: %d %s", r.Status, r.Body)
		}
		events = events[n:]
	}
}

func evaluation(flag, variation, experiment, user string, at time.Time) map[string]any {
	return map[string]any{"kind": "evaluation", "flag_key": flag, "variation_key": variation, "reason": "SPLIT",
		"experiment_key": experiment, "user_key": user, "occurred_at": at.Format(time.RFC3339Nano)}
}

func goalEvent(goal, user string, value float64, at time.Time) map[string]any {
	e := map[string]any{"kind": "goal", "goal_key": goal, "user_key": user, "occurred_at": at.Format(time.RFC3339Nano)}
	if value != 0 {
		e["value"] = value
	}
	return e
}

// waitStored waits until the raw event tables hold the numbers of events sent.
func waitStored(t *testing.T, v *vexil, evaluations, goals int) {
	t.Helper()
	ctx := context.Background()
	waitUntil(t, 90*time.Second, fmt.Sprintf("%d evaluations and %d goal events to be stored", evaluations, goals), func() bool {
		var e, g int
		_ = v.p.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM evaluation_events WHERE user_key IS NOT NULL),
			(SELECT count(*) FROM goal_events)`).Scan(&e, &g)
		return e == evaluations && g == goals
	})
}

func conversions(t *testing.T, goal map[string]map[string]any) (users, converted float64) {
	t.Helper()
	for _, v := range goal {
		users += v["users"].(float64)
		converted += v["figures"].(map[string]any)["conversion"].(map[string]any)["conversions"].(float64)
	}
	return users, converted
}

// Issue 21, defects 1, 2 and 4, end to end: real OFREP assignment and ingested events. An
// exposure stamped 20 h before the experiment started and an evaluation of another flag carrying
// the experiment's key are not counted (nor the goals of those users); a user of a variation that
// is not in the experiment is counted and raises the sample-ratio flag; the stored report says
// snake_case everywhere, with the goals' direction and role.
func TestExperimentAnalysisWindowOtherFlagAndUnknownVariation(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--server-exposures", "false")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "app", "name": "App"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion"})
	serverKey := v.must(200, "GET", "/api/v1/projects/app/environments/production", nil)["server_key"].(string)
	for _, f := range []string{"promo", "other"} {
		v.must(201, "POST", "/api/v1/projects/app/flags", map[string]any{"key": f, "name": f, "type": "string",
			"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}, map[string]any{"key": "c", "value": "C"}}})
		v.must(200, "PUT", "/api/v1/projects/app/flags/"+f+"/environments/production",
			map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "a"}})
	}
	v.must(201, "POST", "/api/v1/projects/app/experiments", map[string]any{"key": "promo-exp", "name": "Promo",
		"flag": "promo", "environment": "production",
		"variations":   []any{map[string]any{"variation": "a", "control": true}, map[string]any{"variation": "b"}},
		"primary_goal": "purchase"})
	v.must(200, "POST", "/api/v1/projects/app/experiments/promo-exp/start", nil)
	started, err := time.Parse(time.RFC3339Nano, v.must(200, "GET", "/api/v1/projects/app/experiments/promo-exp", nil)["started_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	e := &sdkEnv{v: v, serverKey: serverKey}
	waitUntil(t, 10*time.Second, "the experiment to be served", func() bool {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/promo", serverKey, `{"context":{"targetingKey":"probe"}}`)
		return r.Status == 200 && strings.Contains(string(r.Body), "promo-exp")
	})

	const users = 400
	now := time.Now().UTC()
	var events []map[string]any
	purchases, goals := 0, 0
	for i := range users {
		user := fmt.Sprintf("user-%d", i)
		res := e.call("POST", "/ofrep/v1/evaluate/flags/promo", serverKey, `{"context":{"targetingKey":"`+user+`"}}`).JSON(t)
		at := now.Add(time.Duration(i) * time.Microsecond)
		events = append(events, evaluation("promo", res["variant"].(string), "promo-exp", user, at))
		if i%4 == 0 {
			events = append(events, goalEvent("purchase", user, 0, at.Add(time.Millisecond)))
			purchases++
		}
	}
	// Stamped 20 h before the start: neither the exposure nor the purchase after the start count.
	events = append(events, evaluation("promo", "b", "promo-exp", "early", started.Add(-20*time.Hour)),
		goalEvent("purchase", "early", 0, now))
	// Another flag's evaluation carrying the experiment's key.
	events = append(events, evaluation("other", "b", "promo-exp", "foreign", now), goalEvent("purchase", "foreign", 0, now.Add(time.Millisecond)))
	goals = purchases + 2
	sendEvents(t, v, serverKey, events)
	waitStored(t, v, users+2, goals)

	v.must(200, "POST", "/api/v1/projects/app/experiments/promo-exp/analyze", nil)
	report := v.must(200, "GET", "/api/v1/projects/app/experiments/promo-exp/results", nil)
	if report["users"].(float64) != users {
		t.Fatalf("users %v, want %d: the early exposure or the other flag's evaluation was counted", report["users"], users)
	}
	n, converted := conversions(t, goalResult(t, report, "purchase"))
	if n != users || converted != float64(purchases) {
		t.Fatalf("purchase: %v users, %v conversions, want %d and %d", n, converted, users, purchases)
	}
	srm := report["srm"].(map[string]any)
	if _, snake := srm["p_value"]; !snake || srm["mismatch"] != false || srm["unknown"].(float64) != 0 {
		t.Fatalf("srm %v", srm)
	}
	for _, g := range report["goals"].([]any) {
		if gm := g.(map[string]any); gm["direction"] != "increase" || gm["role"] != "primary" {
			t.Fatalf("stored goal without direction or role: %v", gm)
		}
	}

	// One user served a variation that is not in the experiment: counted, and a mismatch.
	sendEvents(t, v, serverKey, []map[string]any{evaluation("promo", "c", "promo-exp", "stranger", now)})
	waitStored(t, v, users+3, goals)
	v.must(200, "POST", "/api/v1/projects/app/experiments/promo-exp/analyze", nil)
	report = v.must(200, "GET", "/api/v1/projects/app/experiments/promo-exp/results", nil)
	srm = report["srm"].(map[string]any)
	unknown := report["unknown_variations"].(map[string]any)
	if report["users"].(float64) != users+1 || srm["unknown"].(float64) != 1 || srm["mismatch"] != true || unknown["c"].(float64) != 1 {
		t.Fatalf("unknown variation: users %v, srm %v, unknown %v", report["users"], srm, unknown)
	}
	if verdict := report["verdict"].(string); !strings.Contains(verdict, "Sample ratio mismatch") || !strings.Contains(verdict, "(c)") {
		t.Fatalf("verdict %q", verdict)
	}

	// Planning at the flag's measured traffic: the users who evaluated promo in the last 7 days
	// (the 400, early and stranger), a day each.
	plan := v.must(200, "POST", "/api/v1/projects/app/experiment-plan", map[string]any{"flag": "promo", "environment": "production",
		"goal": "purchase", "baseline": 0.2, "mde": 0.25})
	if plan["users_per_variation"].(float64) != 1031 || plan["measured_daily_users"] != true ||
		plan["daily_users"].(float64) != float64(users+2)/7 || plan["days"].(float64) != math.Ceil(2062/(float64(users+2)/7)) {
		t.Fatalf("plan %v", plan)
	}
	bad := v.do("POST", "/api/v1/projects/app/experiment-plan", map[string]any{"flag": "promo", "environment": "production", "goal": "purchase", "baseline": 0.2})
	if bad.Status != 400 || !strings.Contains(string(bad.Body), `"field":"mde"`) {
		t.Fatalf("plan without an MDE: %d %s", bad.Status, bad.Body)
	}
}

// Issue 21, CUPED end to end: two experiments on the same users, split and events (each on its
// own flag), one with CUPED. Each user's revenue after exposure is their own level plus noise
// (and +1 in b), and the same level plus noise in the 10 hours before: CUPED's interval on the
// relative uplift is narrower, and the variance reduction is reported.
func TestExperimentCUPEDNarrowsTheInterval(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--server-exposures", "false")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "app", "name": "App"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "revenue", "name": "Revenue", "kind": "value"})
	serverKey := v.must(200, "GET", "/api/v1/projects/app/environments/production", nil)["server_key"].(string)
	for _, name := range []string{"plain", "cuped"} {
		v.must(201, "POST", "/api/v1/projects/app/flags", map[string]any{"key": name, "name": name, "type": "string",
			"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}}})
		exp := map[string]any{"key": name + "-exp", "name": name, "flag": name, "environment": "production",
			"variations":   []any{map[string]any{"variation": "a", "control": true}, map[string]any{"variation": "b"}},
			"primary_goal": "revenue"}
		if name == "cuped" {
			exp["analysis"] = map[string]any{"cuped_lookback_days": 2}
		}
		v.must(201, "POST", "/api/v1/projects/app/experiments", exp)
		v.must(200, "POST", "/api/v1/projects/app/experiments/"+name+"-exp/start", nil)
	}
	const users = 600
	rng := rand.New(rand.NewPCG(21, 21))
	now := time.Now().UTC()
	var events []map[string]any
	for i := range users {
		user := fmt.Sprintf("user-%d", i)
		variation := []string{"a", "b"}[i%2]
		at := now.Add(time.Duration(i) * time.Microsecond)
		level := 10 + 40*rng.Float64()
		post := level + 2*rng.Float64()
		if variation == "b" {
			post++
		}
		events = append(events, evaluation("plain", variation, "plain-exp", user, at), evaluation("cuped", variation, "cuped-exp", user, at),
			goalEvent("revenue", user, level+2*rng.Float64(), at.Add(-10*time.Hour)), goalEvent("revenue", user, post, at.Add(time.Millisecond)))
	}
	sendEvents(t, v, serverKey, events)
	waitStored(t, v, 2*users, 2*users)

	width := map[string]float64{}
	for _, name := range []string{"plain", "cuped"} {
		v.must(200, "POST", "/api/v1/projects/app/experiments/"+name+"-exp/analyze", nil)
		report := v.must(200, "GET", "/api/v1/projects/app/experiments/"+name+"-exp/results", nil)
		b := goalResult(t, report, "revenue")["b"]
		ci := b["uplift_ci95"].([]any)
		width[name] = ci[1].(float64) - ci[0].(float64)
		cuped, has := b["cuped"].(map[string]any)
		switch {
		case name == "plain" && has:
			t.Fatalf("CUPED figures without CUPED: %v", b)
		case name == "cuped" && (!has || cuped["applied"] != true || cuped["variance_reduction"].(float64) < 0.5):
			t.Fatalf("CUPED figures %v", b)
		}
		if !(width[name] > 0) || math.IsNaN(width[name]) {
			t.Fatalf("%s: interval %v", name, ci)
		}
	}
	if !(width["cuped"] < 0.7*width["plain"]) {
		t.Fatalf("CUPED interval width %v, without %v: want it much narrower on a correlated pre-period", width["cuped"], width["plain"])
	}
}

// Issue 21, quantile metrics and analysis settings changed on a running experiment, end to end
// (OFREP assignment, /sdk/v1/events values): a value goal with analysis.goals[].quantile 0.5
// reports each variation's median per user with the distribution-free interval of
// stats.QuantileRanks, computed here independently from the values sent (users without a
// purchase count as 0, a refund makes a negative total); PUT …/analysis then switches the running
// experiment to the frequentist engine and p90, audited, and the next analysis uses it. Bad
// settings are 4xx with the field.
func TestExperimentQuantileGoalAndAnalysisSettingsChange(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--server-exposures", "false")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "app", "name": "App"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "revenue", "name": "Revenue", "kind": "value"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "signup", "name": "Signup", "kind": "conversion"})
	serverKey := v.must(200, "GET", "/api/v1/projects/app/environments/production", nil)["server_key"].(string)
	v.must(201, "POST", "/api/v1/projects/app/flags", map[string]any{"key": "price", "name": "price", "type": "string",
		"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}}})
	v.must(200, "PUT", "/api/v1/projects/app/flags/price/environments/production",
		map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "a"}})
	exp := map[string]any{"key": "price-exp", "name": "Price", "flag": "price", "environment": "production",
		"variations":   []any{map[string]any{"variation": "a", "control": true}, map[string]any{"variation": "b"}},
		"primary_goal": "revenue", "secondary_goals": []any{"signup"},
		"analysis": map[string]any{"goals": []any{map[string]any{"goal": "revenue", "quantile": 0.5}}}}
	// A quantile of a conversion goal is refused at creation, with the field.
	bad := map[string]any{}
	for k, x := range exp {
		bad[k] = x
	}
	bad["analysis"] = map[string]any{"goals": []any{map[string]any{"goal": "signup", "quantile": 0.5}}}
	if r := v.do("POST", "/api/v1/projects/app/experiments", bad); r.Status != 400 || !strings.Contains(string(r.Body), `"field":"analysis.goals[0].quantile"`) {
		t.Fatalf("quantile of a conversion goal: %d %s", r.Status, r.Body)
	}
	v.must(201, "POST", "/api/v1/projects/app/experiments", exp)
	// A draft changes its analysis through its definition, not this command.
	if r := v.do("PUT", "/api/v1/projects/app/experiments/price-exp/analysis", map[string]any{"engine": "frequentist"}); r.Status != 409 {
		t.Fatalf("analysis settings of a draft: %d %s", r.Status, r.Body)
	}
	v.must(200, "POST", "/api/v1/projects/app/experiments/price-exp/start", nil)
	e := &sdkEnv{v: v, serverKey: serverKey}
	waitUntil(t, 10*time.Second, "the experiment to be served", func() bool {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/price", serverKey, `{"context":{"targetingKey":"probe"}}`)
		return r.Status == 200 && strings.Contains(string(r.Body), "price-exp")
	})

	const users = 400
	now := time.Now().UTC()
	var events []map[string]any
	totals := map[string][]float64{} // per variation, every unit's total revenue
	goals := 0
	for i := range users {
		user := fmt.Sprintf("user-%d", i)
		variation := e.call("POST", "/ofrep/v1/evaluate/flags/price", serverKey, `{"context":{"targetingKey":"`+user+`"}}`).JSON(t)["variant"].(string)
		at := now.Add(time.Duration(i) * time.Microsecond)
		events = append(events, evaluation("price", variation, "price-exp", user, at))
		total := 0.0
		switch {
		case i%4 == 0: // no purchase: 0
		case i%25 == 1: // a purchase refunded for more than it cost
			events = append(events, goalEvent("revenue", user, 10, at.Add(time.Millisecond)), goalEvent("revenue", user, -13, at.Add(2*time.Millisecond)))
			total, goals = -3, goals+2
		default:
			total = float64(1 + (i*37)%100)
			if variation == "b" {
				total += 5
			}
			events = append(events, goalEvent("revenue", user, total, at.Add(time.Millisecond)))
			goals++
		}
		totals[variation] = append(totals[variation], total)
	}
	sendEvents(t, v, serverKey, events)
	waitStored(t, v, users, goals)

	check := func(report map[string]any, q, alpha float64) {
		t.Helper()
		res := goalResult(t, report, "revenue")
		for _, variation := range []string{"a", "b"} {
			xs := append([]float64(nil), totals[variation]...)
			slices.Sort(xs)
			n := int64(len(xs))
			lo, hi := stats.QuantileRanks(n, q, alpha)
			want := xs[int(math.Ceil(float64(n)*q))-1]
			got, ok := res[variation]["quantile"].(map[string]any)
			if !ok {
				t.Fatalf("%s: no quantile figures in %v", variation, res[variation])
			}
			ci := got["ci"].([]any)
			if got["quantile"] != q || got["users"].(float64) != float64(n) || got["estimate"] != want ||
				ci[0] != xs[lo-1] || ci[1] != xs[hi-1] || got["alpha"] != alpha {
				t.Fatalf("%s p%g: %v, want n %d, estimate %v, interval [%v, %v] (ranks %d, %d)", variation, 100*q, got, n, want, xs[lo-1], xs[hi-1], lo, hi)
			}
			if variation == "b" {
				f := got["frequentist"].(map[string]any)
				if f["valid"] != true || !(f["ci"].([]any)[0].(float64) < f["estimate"].(float64)) {
					t.Fatalf("b against a on p%g: %v", 100*q, f)
				}
			}
		}
	}
	v.must(200, "POST", "/api/v1/projects/app/experiments/price-exp/analyze", nil)
	report := v.must(200, "GET", "/api/v1/projects/app/experiments/price-exp/results", nil)
	check(report, 0.5, 0.05)
	if b := goalResult(t, report, "revenue")["b"]; b["frequentist"] != nil {
		t.Fatalf("frequentist test under the Bayesian engine: %v", b)
	}

	// Bad settings on the running experiment: 400 with the field, nothing recorded.
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"engine": "magic"}, "analysis.engine"},
		{map[string]any{"alpha": 0.7}, "analysis.alpha"},
		{map[string]any{"goals": []any{map[string]any{"goal": "revenue", "quantile": 1.5}}}, "analysis.goals[0].quantile"},
		{map[string]any{"goals": []any{map[string]any{"goal": "signup", "quantile": 0.9}}}, "analysis.goals[0].quantile"},
		{map[string]any{"goals": []any{map[string]any{"goal": "nope"}}}, "analysis.goals[0].goal"},
		{map[string]any{"cuped_lookback_days": -1}, "analysis.cuped_lookback_days"},
	} {
		r := v.do("PUT", "/api/v1/projects/app/experiments/price-exp/analysis", c.body)
		if r.Status != 400 || !strings.Contains(string(r.Body), `"field":"`+c.field+`"`) {
			t.Fatalf("%v: %d %s, want 400 on %s", c.body, r.Status, r.Body, c.field)
		}
	}
	changed := v.must(200, "PUT", "/api/v1/projects/app/experiments/price-exp/analysis", map[string]any{"engine": "frequentist", "alpha": 0.1,
		"goals": []any{map[string]any{"goal": "revenue", "quantile": 0.9, "conversion_window_hours": 24}}})
	if a := changed["analysis"].(map[string]any); a["engine"] != "frequentist" || changed["status"] != "running" {
		t.Fatalf("changed experiment %v", changed)
	}
	audit := items(t, v.must(200, "GET", "/api/v1/projects/app/experiments/price-exp/audit", nil))
	if len(audit) == 0 || audit[0]["event_type"] != "ExperimentAnalysisChanged" {
		t.Fatalf("audit %v", audit)
	}
	data := audit[0]["data"].(map[string]any)
	if data["analysis"].(map[string]any)["alpha"] != 0.1 || data["previous"].(map[string]any)["goals"] == nil {
		t.Fatalf("audited change %v", data)
	}
	v.must(200, "POST", "/api/v1/projects/app/experiments/price-exp/analyze", nil)
	report = v.must(200, "GET", "/api/v1/projects/app/experiments/price-exp/results", nil)
	check(report, 0.9, 0.1)
	settings := report["settings"].(map[string]any)
	b := goalResult(t, report, "revenue")["b"]
	if settings["engine"] != "frequentist" || b["frequentist"] == nil || b["chance_to_beat_control"].(float64) != 0 {
		t.Fatalf("re-analysis did not use the new settings: settings %v, b %v", settings, b)
	}
	// A concluded experiment keeps the settings its decision was made with.
	v.must(200, "POST", "/api/v1/projects/app/experiments/price-exp/conclude", map[string]any{"variation": "b", "reason": "p90 up"})
	if r := v.do("PUT", "/api/v1/projects/app/experiments/price-exp/analysis", map[string]any{}); r.Status != 409 {
		t.Fatalf("analysis settings of a concluded experiment: %d %s", r.Status, r.Body)
	}
}
