package platform_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// An experiment measured with nothing but OpenFeature calls: variations come from OFREP (single
// with the server key, bulk with the client key), the api role logs the exposures itself, and
// conversions come from POST /ofrep/v1/track. No /sdk/v1/events post is made.
func TestExperimentFromOFREPExposuresAndTrackCalls(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--server-exposures-flush-interval", "100ms", "--telemetry-refresh-interval", "1s",
		"--reconcile-interval", "200ms")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "app", "name": "App"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "revenue", "name": "Revenue", "kind": "value"})
	env := v.must(200, "GET", "/api/v1/projects/app/environments/production", nil)
	e := &sdkEnv{v: v, clientKey: env["client_key"].(string), serverKey: env["server_key"].(string)}
	v.must(201, "POST", "/api/v1/projects/app/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "string",
		"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}}})
	v.must(200, "PUT", "/api/v1/projects/app/flags/checkout/environments/production",
		map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "a"}})
	const exp = "checkout-exp"
	v.must(201, "POST", "/api/v1/projects/app/experiments", map[string]any{"key": exp, "name": "Does B sell more?",
		"flag": "checkout", "environment": "production", "allocation": 100000,
		"variations":   []any{map[string]any{"variation": "a", "control": true}, map[string]any{"variation": "b"}},
		"primary_goal": "purchase", "secondary_goals": []string{"revenue"}})
	v.must(200, "POST", "/api/v1/projects/app/experiments/"+exp+"/start", nil)
	waitUntil(t, 10*time.Second, "the experiment to be served", func() bool {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/checkout", e.serverKey, `{"context":{"targetingKey":"user-0"}}`)
		return r.Status == 200 && strings.Contains(string(r.Body), exp)
	})

	// The configuration advertises the tracking endpoint.
	conf := e.call("GET", "/ofrep/v1/configuration", e.clientKey, "").JSON(t)
	tracking, _ := conf["capabilities"].(map[string]any)["tracking"].(map[string]any)
	if tracking["enabled"] != true || tracking["url"] != "/ofrep/v1/track" {
		t.Fatalf("configuration: %v", conf)
	}

	const users = 100
	variation := map[string]string{}
	for i := 0; i < users; i++ {
		user := fmt.Sprintf("user-%d", i)
		if i < 60 {
			// Twice: a user evaluated again is still one exposure.
			for range 2 {
				res := e.call("POST", "/ofrep/v1/evaluate/flags/checkout", e.serverKey, `{"context":{"targetingKey":"`+user+`"}}`).JSON(t)
				if res["metadata"].(map[string]any)["experiment"] != exp {
					t.Fatalf("%s not in the experiment: %v", user, res)
				}
				variation[user] = res["variant"].(string)
			}
			continue
		}
		res := e.call("POST", "/ofrep/v1/evaluate/flags", e.clientKey, `{"context":{"targetingKey":"`+user+`","plan":"gold"}}`).JSON(t)
		for _, f := range res["flags"].([]any) {
			if fm := f.(map[string]any); fm["key"] == "checkout" {
				if fm["metadata"].(map[string]any)["experiment"] != exp {
					t.Fatalf("%s not in the experiment: %v", user, fm)
				}
				variation[user] = fm["variant"].(string)
			}
		}
	}
	// A context without a targeting key is no user: nothing is logged for it.
	e.call("POST", "/ofrep/v1/evaluate/flags/checkout", e.serverKey, `{"context":{"plan":"gold"}}`)

	// Conversions: every third user buys (a purchase and its revenue), through track: users
	// below 30 in one batch with the server key, the others one call each with the client key.
	purchases := map[string]int{}
	var batch []map[string]any
	for i := 0; i < users; i++ {
		if i%3 != 0 {
			continue
		}
		user := fmt.Sprintf("user-%d", i)
		purchases[variation[user]]++
		purchase := map[string]any{"eventName": "purchase", "context": map[string]any{"targetingKey": user, "plan": "gold"}}
		revenue := map[string]any{"eventName": "revenue", "context": map[string]any{"targetingKey": user},
			"trackingEventDetails": map[string]any{"value": 12.5, "currency": "EUR"}}
		if i < 30 {
			batch = append(batch, purchase, revenue)
			continue
		}
		for _, ev := range []map[string]any{purchase, revenue} {
			if r := v.as("").do("POST", "/ofrep/v1/track", ev, "Authorization", "Bearer "+e.clientKey); r.Status != 202 || r.JSON(t)["accepted"] != 1.0 {
				t.Fatalf("track %v: %d %s", ev, r.Status, r.Body)
			}
		}
	}
	batch = append(batch, map[string]any{"eventName": "purchase", "context": map[string]any{"plan": "gold"}}) // no user
	r := v.as("").do("POST", "/ofrep/v1/track", map[string]any{"events": batch}, "Authorization", "Bearer "+e.serverKey)
	if r.Status != 202 {
		t.Fatalf("track batch: %d %s", r.Status, r.Body)
	}
	answer := r.JSON(t)
	errs := answer["errors"].([]any)
	if answer["accepted"] != float64(len(batch)-1) || len(errs) != 1 ||
		errs[0].(map[string]any)["field"] != "context.targetingKey" || errs[0].(map[string]any)["index"] != float64(len(batch)-1) {
		t.Fatalf("track batch answer: %v", answer)
	}
	converted := purchases["a"] + purchases["b"]

	ctx := context.Background()
	waitUntil(t, 90*time.Second, "the OFREP exposures to be stored", func() bool {
		var n int
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM experiment_exposures WHERE subject_kind = 'experiment' AND subject = $1`, exp).Scan(&n)
		return n == users
	})
	waitUntil(t, 90*time.Second, "the tracked goals to be attributed", func() bool {
		var n int
		_ = v.p.Pool.QueryRow(ctx, `SELECT coalesce(sum(conversions), 0) FROM experiment_user_goals
			WHERE subject_kind = 'experiment' AND subject = $1 AND goal = 'purchase'`, exp).Scan(&n)
		return n == converted
	})
	// Nothing came from /sdk/v1/events: the api role logged one exposure per user.
	var fromOFREP, evaluations int
	if err := v.p.Pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(evaluations), 0) FROM evaluation_events
		WHERE experiment = $1 AND user_key IS NOT NULL`, exp).Scan(&fromOFREP, &evaluations); err != nil {
		t.Fatal(err)
	}
	if fromOFREP != users || evaluations != users {
		t.Fatalf("%d exposure rows counting %d evaluations, want %d", fromOFREP, evaluations, users)
	}

	// The experiment's results count them.
	v.must(200, "POST", "/api/v1/projects/app/experiments/"+exp+"/analyze", nil)
	report := v.must(200, "GET", "/api/v1/projects/app/experiments/"+exp+"/results", nil)
	if report["users"] != float64(users) || report["excluded_users"] != 0.0 {
		t.Fatalf("report users: %v", report)
	}
	exposedTo := map[string]int{}
	for _, x := range variation {
		exposedTo[x]++
	}
	for name, want := range map[string]map[string]int{"purchase": purchases, "revenue": purchases} {
		for x, res := range goalResult(t, report, name) {
			n := res["users"].(float64)
			if int(n) != exposedTo[x] {
				t.Fatalf("%s: %v users in %s, want %d", name, n, x, exposedTo[x])
			}
			estimate := float64(want[x]) / n // conversion rate
			if name == "revenue" {
				estimate *= 12.5 // mean value per user
			}
			if math.Abs(res["estimate"].(float64)-estimate) > 1e-9 {
				t.Fatalf("%s estimate in %s: %v, want %v", name, x, res["estimate"], estimate)
			}
		}
	}

	// And the goal's stats show the tracked conversions, per variation of the experiment.
	base := "/api/v1/projects/app/environments/production/goals/"
	var stats map[string]any
	waitUntil(t, 60*time.Second, "the goal rollups to show the tracked conversions", func() bool {
		stats = v.must(200, "GET", base+"purchase/stats?experiment="+exp, nil)
		var attributed float64
		vs, _ := stats["variations"].([]any)
		for _, x := range vs {
			attributed += x.(map[string]any)["conversions"].(float64)
		}
		return stats["total"].(map[string]any)["conversions"] == float64(converted) && attributed == float64(converted)
	})
	for _, x := range stats["variations"].([]any) {
		xm := x.(map[string]any)
		if xm["conversions"] != float64(purchases[xm["variation"].(string)]) {
			t.Fatalf("purchase stats per variation: %v, want %v", stats["variations"], purchases)
		}
	}
	waitUntil(t, 60*time.Second, "the revenue rollup", func() bool {
		total := v.must(200, "GET", base+"revenue/stats", nil)["total"].(map[string]any)
		return total["value_sum"] == 12.5*float64(converted)
	})
}

// metricValue reads one unlabelled sample of /metrics ("" when absent).
func metricValue(v *vexil, name string) string {
	for _, line := range strings.Split(string(v.as("").do("GET", "/metrics", nil).Body), "\n") {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			return value
		}
	}
	return ""
}

// An environment's server_exposures setting turns the api role's exposure logging off and on.
func TestServerExposuresSettingPerEnvironment(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--server-exposures-flush-interval", "100ms", "--reconcile-interval", "200ms")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "app", "name": "App"})
	v.must(201, "POST", "/api/v1/projects/app/goals", map[string]any{"key": "purchase", "name": "Purchase", "kind": "conversion"})
	env := v.must(200, "GET", "/api/v1/projects/app/environments/production", nil)
	if env["server_exposures"] != true {
		t.Fatalf("server_exposures is on by default: %v", env)
	}
	e := &sdkEnv{v: v, serverKey: env["server_key"].(string)}
	v.must(201, "POST", "/api/v1/projects/app/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "boolean"})
	v.must(200, "PUT", "/api/v1/projects/app/flags/checkout/environments/production",
		map[string]any{"on": true, "off_variation": "false", "default": map[string]any{"variation": "false"}})
	const exp = "checkout-exp"
	v.must(201, "POST", "/api/v1/projects/app/experiments", map[string]any{"key": exp, "name": "Checkout", "flag": "checkout",
		"environment": "production", "allocation": 100000, "primary_goal": "purchase",
		"variations": []any{map[string]any{"variation": "false", "control": true}, map[string]any{"variation": "true"}}})
	v.must(200, "POST", "/api/v1/projects/app/experiments/"+exp+"/start", nil)
	evaluate := func(user string) {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/checkout", e.serverKey, `{"context":{"targetingKey":"`+user+`"}}`)
		if r.Status != 200 || !strings.Contains(string(r.Body), exp) {
			t.Fatalf("%s: %d %s", user, r.Status, r.Body)
		}
	}
	waitUntil(t, 10*time.Second, "the experiment to be served", func() bool {
		r := e.call("POST", "/ofrep/v1/evaluate/flags/checkout", e.serverKey, `{"context":{"targetingKey":"on-0"}}`)
		return r.Status == 200 && strings.Contains(string(r.Body), exp)
	})

	// Off: a merge patch of the one setting; the api role reads it within its reconcile interval.
	path := "/api/v1/projects/app/environments/production"
	if got := v.must(200, "PATCH", path, `{"server_exposures": false}`, "Content-Type", mergePatchJSON); got["server_exposures"] != false || got["name"] != "Production" {
		t.Fatalf("after turning exposures off: %v", got)
	}
	waitUntil(t, 30*time.Second, "the api role to read the setting", func() bool {
		return metricValue(v, "vexil_sdk_exposures_disabled_environments") == "1"
	})
	for i := range 20 {
		evaluate(fmt.Sprintf("off-%d", i))
	}
	// On again: the users evaluated from now on are logged; those evaluated while it was off are not.
	v.must(200, "PATCH", path, `{"server_exposures": true}`, "Content-Type", mergePatchJSON)
	waitUntil(t, 30*time.Second, "the api role to read the setting", func() bool {
		return metricValue(v, "vexil_sdk_exposures_disabled_environments") == "0"
	})
	for i := range 20 {
		evaluate(fmt.Sprintf("on-%d", i))
	}
	ctx := context.Background()
	count := func(prefix string) int {
		var n int
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM experiment_exposures WHERE subject = $1 AND user_key LIKE $2`, exp, prefix+"%").Scan(&n)
		return n
	}
	waitUntil(t, 60*time.Second, "the exposures logged while on", func() bool { return count("on-") == 20 })
	if n := count("off-"); n != 0 {
		t.Fatalf("%d exposures logged while server_exposures was off", n)
	}
	wantField(t, v.do("PATCH", path, `{"server_exposures": null}`), "server_exposures")
}
