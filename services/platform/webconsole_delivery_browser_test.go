package platform_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/console"
)

// The progressive-delivery pages in headless chromium (issue 17, part B), as a release manager
// would click them: a change scheduled in Paris time is stored in UTC, edited and cancelled, and
// one due on an archived flag fails with its reason shown; a rollout
// made from a template shows its steps and is paused and aborted; a webhook trigger's URL and
// secret are shown once, and calling the URL turns the flag off, attributed to the trigger in the
// flag's audit log; an auto-ops rule made in the page fires (the real scheduler, fixed metrics)
// and its page shows the firing's evidence with its charts. axe-core finds no serious or critical
// violation on these pages, and the browser console stays free of errors.
func TestDeliveryPagesInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	axe := axeCoreScript(t)
	v := startVexil(t, "--roles", noExperimentRole) // no scheduler: the test ticks one itself
	setupShop(t, v)
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout/environments/production/toggle", map[string]any{"on": true})
	v.must(201, "POST", "/api/v1/projects/shop/goals", map[string]any{"key": "checkout-error", "name": "Checkout error",
		"kind": "conversion", "direction": "decrease"})
	addPerson(t, v, "rita@example.com", "Rita Release", "shop", identity.RoleEditor, false)
	addPerson(t, v, "vic@example.com", "Vic Viewer", "shop", identity.RoleViewer, false)

	b := startBrowser(t, chromium)
	rita := &tab{t: t, ctx: b.ctx, base: v.base, b: b}
	rita.signIn("rita@example.com")

	// A scheduled change typed in Paris time (UTC+2 in June) is stored at 10:00 UTC.
	rita.open("/projects/shop/schedules")
	rita.set("#s-flag", "checkout")
	rita.set("#s-env", "production")
	rita.set("#s-kind", "off")
	rita.set("#s-at", "2030-06-01T12:00")
	rita.set("#s-tz", "Europe/Paris")
	rita.set("#s-reason", "maintenance window")
	rita.click(`#schedule-form button[type=submit]`)
	rita.waitText("main .flash", "Scheduled: turn checkout off in production, due 2030-06-01 10:00 UTC.")
	rita.waitText("table.schedules", "2030-06-01 10:00:00 UTC")
	rita.axe(axe, "scheduled changes")
	sched := items(t, v.must(200, "GET", "/api/v1/projects/shop/schedules", nil))
	if len(sched) != 1 || sched[0]["at"] != "2030-06-01T10:00:00Z" || sched[0]["status"] != "pending" {
		t.Fatalf("the scheduled change through the API: %v", sched)
	}
	// A time zone that does not exist is refused at its field, and nothing is scheduled.
	rita.set("#s-flag", "checkout")
	rita.set("#s-at", "2030-06-01T12:00")
	rita.set("#s-tz", "Mars/Olympus")
	rita.click(`#schedule-form button[type=submit]`)
	rita.waitText("#form-error", "is not a time zone")
	rita.click(`a[href$="/schedules/` + sched[0]["id"].(string) + `"]`)
	rita.waitText("#schedule-status", "pending")
	// Edit: two hours later, Paris time.
	rita.set("#s-at", "2030-06-01T14:00")
	rita.set("#s-tz", "Europe/Paris")
	rita.click(`#edit-form button[type=submit]`)
	rita.waitText("main .flash", "Saved: turn checkout off in production, due 2030-06-01 12:00 UTC.")
	rita.axe(axe, "scheduled change")
	rita.set("#c-reason", "maintenance moved")
	rita.click(`#cancel-form button[type=submit]`)
	rita.waitText("main .flash", "Cancelled the change of checkout in production.")
	if st := v.must(200, "GET", "/api/v1/projects/shop/schedules/"+sched[0]["id"].(string), nil)["status"]; st != "cancelled" {
		t.Fatalf("the cancelled change's status: %v", st)
	}

	// A rollout from the standard template: five steps, an hour apart, and its timeline.
	rita.open("/projects/shop/rollouts")
	rita.set("#r-flag", "checkout")
	rita.set("#r-env", "production")
	rita.set("#r-variation", "false") // the default serves true to everybody
	rita.set("#r-other", "true")
	rita.set("#r-template", "standard")
	rita.set("#r-every", "1h")
	rita.set("#r-start", time.Now().Add(48*time.Hour).UTC().Format("2006-01-02T15:04"))
	rita.set("#r-tz", "UTC")
	rita.click(`#rollout-form button[type=submit]`)
	rita.waitText("main .flash", "Rollout of checkout in production created with 5 steps.")
	if n := rita.count("ol.timeline li.step"); n != 5 {
		t.Fatalf("the rollout's timeline has %d steps, want 5", n)
	}
	steps := rita.text("ol.timeline")
	for _, pct := range []string{"1%", "5%", "25%", "50%", "100%"} {
		if !strings.Contains(steps, pct) {
			t.Errorf("the timeline lacks the %s step: %s", pct, steps)
		}
	}
	rita.waitText(`ol.timeline li[data-step="1"]`, "next")
	rita.axe(axe, "rollout timeline")
	rita.screenshot("rollout-timeline")
	rita.set("#ops-reason", "waiting for the support team")
	rita.click("#pause")
	rita.waitText("#rollout-status", "paused")
	rita.click("#resume")
	rita.waitText("#rollout-status", "scheduled")
	rita.click("#abort")
	rita.waitText("#rollout-status", "aborted")

	// A webhook trigger: URL and secret shown once, with copy buttons; the call turns the flag off.
	rita.open("/projects/shop/triggers")
	rita.set("#tr-name", "Pager kill switch")
	rita.set("#tr-flag", "checkout")
	rita.set("#tr-env", "production")
	rita.set("#tr-action", "off")
	rita.click(`#trigger-form button[type=submit]`)
	rita.waitText("#secret", "Copy the URL and the secret of Pager kill switch now")
	hookURL, secret := rita.value("#t-url"), rita.value("#t-secret")
	id, ok := strings.CutPrefix(hookURL, v.base+"/hooks/v1/triggers/")
	if !ok || !strings.HasPrefix(secret, "vxt_") {
		t.Fatalf("the trigger's URL %q and secret %q", hookURL, secret)
	}
	rita.click(`button[data-copy="#t-url"]`)
	rita.waitText(".copied", "the ") // "Copied the URL." or, where the clipboard is refused, "Select the text and copy it."
	rita.axe(axe, "webhook triggers")
	rita.screenshot("trigger-secret")
	rita.open("/projects/shop/triggers")
	if n := rita.count("#secret"); n != 0 || strings.Contains(rita.text("main"), secret) {
		t.Fatal("the trigger's secret is shown again")
	}
	if r := v.as("").do("POST", "/hooks/v1/triggers/"+id, `{}`, console.TriggerSecretHeader, secret); r.Status != 200 {
		t.Fatalf("calling the trigger: %d %s", r.Status, r.Body)
	}
	if v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("the trigger did not turn the flag off")
	}
	rita.open("/projects/shop/flags/checkout")
	rita.waitText("#last-change", "Last change by webhook trigger "+id)
	rita.waitText("#last-change", `webhook trigger "Pager kill switch" turned the flag off`)
	rita.open("/projects/shop/audit?flag=checkout")
	rita.waitText("ol.audit li.entry", "webhook trigger "+id)
	rita.waitText("ol.audit li.entry", `webhook trigger "Pager kill switch" turned the flag off`)
	// Rotating shows a new secret; the old one stops working.
	rita.open("/projects/shop/triggers")
	rita.click(`button[aria-label="Rotate the secret of Pager kill switch"]`)
	rita.waitText("#secret", "Copy the URL and the secret")
	if rotated := rita.value("#t-secret"); rotated == secret || !strings.HasPrefix(rotated, "vxt_") {
		t.Fatalf("the rotated secret: %q", rotated)
	}
	if r := v.as("").do("POST", "/hooks/v1/triggers/"+id, `{}`, console.TriggerSecretHeader, secret); r.Status != 401 {
		t.Fatalf("the old secret after rotation: %d %s", r.Status, r.Body)
	}
	rita.open("/projects/shop/triggers")
	rita.click(`button[aria-label="Disable Pager kill switch"]`)
	rita.waitText("main .flash", `Trigger "Pager kill switch" disabled.`)

	// An auto-ops rule made in the page fires; its page shows the evidence with its charts.
	v.must(200, "POST", "/api/v1/projects/shop/flags/checkout/environments/production/toggle", map[string]any{"on": true})
	rita.open("/projects/shop/autoops")
	rita.set("#a-name", "errors up")
	rita.set("#a-flag", "checkout")
	rita.set("#a-env", "production")
	rita.set("#a-goal", "checkout-error")
	rita.set("#a-variation", "true")
	rita.set("#a-control", "false")
	rita.set("#a-threshold", "0.005")
	rita.set("#a-min-sample", "1000")
	rita.set("#a-min-prob", "0.95")
	rita.set("#a-action", "turn_off")
	rita.click(`#autoops-form button[type=submit]`)
	rita.waitText("main .flash", "Auto-ops rule created.")
	rita.waitText("#rule-state", "armed")
	metrics := fixedMetrics{"true": {Exposed: 5000, Converted: 250}, "false": {Exposed: 5000, Converted: 60}}
	s := testScheduler(t, v, &testClock{now: time.Now()}, metrics)
	if rep := tick(t, s); rep.RulesFired != 1 {
		t.Fatalf("the rule did not fire: %+v", rep)
	}
	var firings []map[string]any
	waitUntil(t, 10*time.Second, "the firing in the read model", func() bool {
		firings = items(t, v.must(200, "GET", "/api/v1/projects/shop/autoops-rules", nil))
		return len(firings) == 1 && firings[0]["triggered"] == true
	})
	ruleID := firings[0]["id"].(string)
	evidence := firings[0]["evidence"].(map[string]any)
	waitUntil(t, 10*time.Second, "the rule's firings", func() bool {
		return len(items(t, v.must(200, "GET", "/api/v1/projects/shop/autoops-rules/"+ruleID+"/firings", nil))) == 1
	})
	rita.open("/projects/shop/autoops/" + ruleID)
	rita.waitText("#rule-state", "fired")
	rita.waitText("table.firings", evidence["decision"].(string))
	if n := rita.count(`figure.chart svg[role="img"] title`); n != 1 {
		t.Fatalf("the evidence series chart: %d", n)
	}
	if n := rita.count(`table.firings svg[role="img"]`); n != 1 {
		t.Fatalf("the firing's arms chart: %d", n)
	}
	rita.axe(axe, "auto-ops rule with a firing")
	rita.screenshot("autoops-firing")
	rita.click("#enable")
	rita.waitText("#rule-state", "armed")

	// A change that cannot apply when due fails, and the list says why.
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner", "type": "boolean"})
	rita.open("/projects/shop/schedules")
	rita.set("#s-flag", "banner")
	rita.set("#s-env", "production")
	rita.set("#s-kind", "on")
	rita.set("#s-at", "2030-06-02T09:00")
	rita.set("#s-tz", "+02:00")
	rita.click(`#schedule-form button[type=submit]`)
	rita.waitText("main .flash", "Scheduled: turn banner on in production, due 2030-06-02 07:00 UTC.")
	v.must(200, "POST", "/api/v1/projects/shop/flags/banner/archive", map[string]any{})
	s = testScheduler(t, v, &testClock{now: time.Date(2030, 6, 3, 0, 0, 0, 0, time.UTC)}, metrics)
	if rep := tick(t, s); rep.SchedulesFailed != 1 {
		t.Fatalf("the change of an archived flag: %+v", rep)
	}
	waitUntil(t, 10*time.Second, "the failure in the read model", func() bool {
		list := items(t, v.must(200, "GET", "/api/v1/projects/shop/schedules?flag=banner", nil))
		return len(list) == 1 && list[0]["status"] == "failed"
	})
	rita.open("/projects/shop/schedules?status=failed")
	rita.waitText("table.schedules", `flag "banner" is archived`)

	// Without the CSRF token, and from a viewer, the delivery forms are refused before anything runs.
	if st := rita.fetchStatus("/projects/shop/triggers", "name=x&flag=checkout&environment=production&action=off", false); st != 403 {
		t.Fatalf("creating a trigger without the CSRF token: %d, want 403", st)
	}
	vic := rita.newContext()
	vic.signIn("vic@example.com")
	vic.open("/projects/shop/rollouts")
	if n := vic.count("#rollout-form"); n != 0 {
		t.Fatal("a viewer sees the rollout form")
	}
	if st := vic.fetchStatus("/projects/shop/autoops/"+ruleID+"/disable", "", true); st != 403 {
		t.Fatalf("a viewer disabling a rule: %d, want 403", st)
	}

	rita.checkConsole()
	vic.checkConsole()
}
