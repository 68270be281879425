package platform_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/app/identity"
)

// Issue 17, part A, in headless chromium: a goal and an experiment created through the console,
// exposures and goal events ingested through the SDK API, "Analyse now" pressed, and the report
// page read back against GET …/results to the precision it shows; the flag's insights against
// GET …/stats; a skewed experiment's report shows the sample-ratio banner with the observed and
// expected split. axe-core finds no serious or critical violation on the insights and report
// pages, and the browser's console stays clean.
func TestWebConsoleAnalyticsInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	axe := axeCoreScript(t)
	v := startVexil(t, "--server-exposures", "false", "--telemetry-refresh-interval", "1s")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	addPerson(t, v, "ada@example.com", "Ada Lovelace", "shop", identity.RoleEditor, false)
	serverKey := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["server_key"].(string)
	for _, flag := range []string{"checkout", "promo"} {
		v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": flag, "name": flag, "type": "string",
			"variations": []any{map[string]any{"key": "a", "value": "A"}, map[string]any{"key": "b", "value": "B"}}})
		v.must(200, "PUT", "/api/v1/projects/shop/flags/"+flag+"/environments/production",
			map[string]any{"on": true, "off_variation": "a", "default": map[string]any{"variation": "a"}})
	}

	b := startBrowser(t, chromium)
	ada := &tab{t: t, ctx: b.ctx, base: v.base, b: b}
	ada.signIn("ada@example.com")
	ada.waitText("h1", "Flags")

	// A conversion goal, created on the goals page.
	ada.open("/projects/shop/goals")
	ada.set("#goal-key", "purchase")
	ada.set("#goal-name", "Purchase")
	ada.set("#goal-kind", "conversion")
	ada.click(`button[type=submit].primary`)
	ada.waitText("main .flash", "Goal created.")

	// The create flow: flag and environment first, then the estimate, then the draft.
	ada.open("/projects/shop/experiments/new?flag=checkout&environment=production")
	ada.set("#exp-key", "checkout-exp")
	ada.set("#exp-name", "Does B sell more?")
	ada.set("#exp-hypothesis", "B converts better")
	ada.set("#exp-primary", "purchase")
	ada.set("#exp-mde", "10")
	ada.click(`button[value="estimate"]`)
	ada.waitText("#plan", "users per variation")
	if got := ada.value("#exp-key"); got != "checkout-exp" {
		t.Fatalf("the estimate lost the typed key: %q", got)
	}
	ada.click(`button[value="create"]`)
	ada.waitText("main .flash", "Experiment created")
	ada.click("#start")
	ada.waitText("main .flash", "Experiment started")

	// 200 users in each variation; A converts 10%, B 20%.
	now := time.Now().UTC()
	var events []map[string]any
	for i := 0; i < 400; i++ {
		variation, rate := "a", 10
		if i >= 200 {
			variation, rate = "b", 5
		}
		user := fmt.Sprintf("user-%d", i)
		at := now.Add(time.Duration(i) * time.Microsecond) // all before the analysis (later ones are outside its window)
		events = append(events, evaluation("checkout", variation, "checkout-exp", user, at))
		if i%rate == 0 {
			events = append(events, goalEvent("purchase", user, 0, at.Add(time.Millisecond)))
		}
	}
	sendEvents(t, v, serverKey, events)
	waitExposures(t, v, "checkout-exp", 400, 60)
	waitUntil(t, 60*time.Second, "the 60 purchases to be attributed", func() bool {
		var n int
		_ = v.p.Pool.QueryRow(context.Background(), `SELECT coalesce(sum(conversions), 0) FROM experiment_user_goals
			WHERE subject_kind = 'experiment' AND subject = 'checkout-exp' AND goal = 'purchase'`).Scan(&n)
		return n == 60
	})
	ada.click("#analyze")
	ada.waitText("main .flash", "Analysed now.")

	// The report's numbers are GET …/results' at the precision shown.
	report := v.must(200, "GET", "/api/v1/projects/shop/experiments/checkout-exp/results", nil)
	purchase := goalResult(t, report, "purchase")
	pct := func(x any, decimals int) string { return strconv.FormatFloat(x.(float64)*100, 'f', decimals, 64) + "%" }
	row := func(variation, col string) string {
		return strings.TrimSpace(ada.text(fmt.Sprintf(`section[data-goal="purchase"] tr[data-variation=%q] td[data-col=%q]`, variation, col)))
	}
	for _, variation := range []string{"a", "b"} {
		r := purchase[variation]
		ci := r["ci95"].([]any)
		want := map[string]string{"users": strconv.Itoa(int(r["users"].(float64))), "estimate": pct(r["estimate"], 2),
			"ci": pct(ci[0], 2) + " to " + pct(ci[1], 2), "best": pct(r["probability_to_be_best"], 1),
			"loss": strconv.FormatFloat(r["expected_loss"].(float64), 'f', 6, 64)}
		if variation == "b" {
			uci := r["uplift_ci95"].([]any)
			want["chance"] = pct(r["chance_to_beat_control"], 1)
			want["uplift"] = pct(r["uplift"], 2)
			want["uplift-ci"] = pct(uci[0], 2) + " to " + pct(uci[1], 2)
		}
		for col, w := range want {
			if got := row(variation, col); got != w {
				t.Errorf("report page, %s %s: %q, the API says %q", variation, col, got, w)
			}
		}
	}
	if got := ada.text("#verdict"); strings.TrimSpace(got) != report["verdict"] {
		t.Errorf("verdict on the page %q, the API's %q", got, report["verdict"])
	}
	if n := ada.count(`section[data-goal="purchase"] figure.chart svg[role="img"]`); n < 2 {
		t.Errorf("the report shows %d interval charts for purchase, want the estimates and the uplift", n)
	}
	if n := ada.count("#srm"); n != 0 {
		t.Errorf("a balanced experiment shows the sample-ratio banner")
	}
	ada.axe(axe, "experiment report")
	ada.screenshot("experiment-report")

	// The flag's insights: per-variation evaluations equal the stats API's (minute resolution,
	// the last hour, as the API's default for minutes).
	stats := map[string]any{}
	waitUntil(t, 60*time.Second, "the rollups to count the 400 evaluations", func() bool {
		stats = v.must(200, "GET", "/api/v1/projects/shop/environments/production/flags/checkout/stats?interval=minute", nil)
		return stats["evaluations"].(float64) == 400
	})
	ada.open("/projects/shop/flags/checkout/insights?env=production&interval=minute&range=1h")
	for _, vs := range stats["variations"].([]any) {
		m := vs.(map[string]any)
		got := strings.ReplaceAll(strings.TrimSpace(ada.text(fmt.Sprintf(`#per-variation tr[data-variation=%q] td[data-evaluations]`, m["variation"]))), ",", "")
		if want := strconv.Itoa(int(m["evaluations"].(float64))); got != want {
			t.Errorf("insights, variation %v: %s evaluations, the stats API says %s", m["variation"], got, want)
		}
	}
	ada.waitText("#last-evaluated", "UTC")
	if n := ada.count(`figure#evaluations-chart svg[role="img"]`); n != 1 {
		t.Errorf("no evaluations chart on the insights page")
	}
	ada.axe(axe, "flag insights")
	ada.screenshot("flag-insights")

	// A skewed experiment (3:1 where 1:1 was configured) shows the red banner with the split.
	v.must(201, "POST", "/api/v1/projects/shop/experiments", map[string]any{"key": "promo-exp", "name": "Promo", "flag": "promo",
		"environment": "production", "allocation": 100000, "primary_goal": "purchase",
		"variations": []any{map[string]any{"variation": "a", "control": true}, map[string]any{"variation": "b"}}})
	v.must(200, "POST", "/api/v1/projects/shop/experiments/promo-exp/start", nil)
	now = time.Now().UTC()
	events = events[:0]
	for i := 0; i < 400; i++ {
		variation := "a"
		if i%4 == 0 {
			variation = "b"
		}
		events = append(events, evaluation("promo", variation, "promo-exp", fmt.Sprintf("promo-user-%d", i), now.Add(time.Duration(i)*time.Microsecond)))
	}
	sendEvents(t, v, serverKey, events)
	waitExposures(t, v, "promo-exp", 400, 60)
	v.must(200, "POST", "/api/v1/projects/shop/experiments/promo-exp/analyze", nil)
	ada.open("/projects/shop/experiments/promo-exp")
	ada.waitText("#srm", "Sample-ratio mismatch")
	for variation, want := range map[string]string{"a": "300", "b": "100"} {
		if got := ada.text(fmt.Sprintf(`#srm tr[data-variation=%q] td`, variation)); strings.TrimSpace(got) != want {
			t.Errorf("SRM banner, observed users of %s: %q, want %s", variation, got, want)
		}
	}
	ada.waitText("#srm", "50.0%")
	ada.waitText("#srm", "75.0%")
	ada.axe(axe, "experiment report with a sample-ratio mismatch")

	// Conclude the first experiment with B and make B the flag's default in production.
	ada.open("/projects/shop/experiments/checkout-exp")
	ada.set("#conclude-variation", "b")
	ada.click("#apply")
	ada.set("#conclude-reason", "B sells more")
	ada.click("#conclude")
	ada.waitText("main .flash", "Concluded with b.")
	ada.waitText("#status", "concluded")
	tg := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)
	if d := tg["default"].(map[string]any); d["variation"] != "b" {
		t.Errorf("after concluding with apply: the default serve is %v, want b", d)
	}
	ada.checkConsole()
}

// waitExposures waits until the experiment's exposures are stored.
func waitExposures(t *testing.T, v *vexil, experiment string, want, seconds int) {
	t.Helper()
	waitUntil(t, time.Duration(seconds)*time.Second, fmt.Sprintf("%d exposures of %s", want, experiment), func() bool {
		var n int
		_ = v.p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM experiment_exposures WHERE subject_kind = 'experiment' AND subject = $1`,
			experiment).Scan(&n)
		return n == want
	})
}
