package platform_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/roles/console"
	"github.com/vexil-flags/vexil/services/testkit"
)

// Four eyes (issue 18), end to end: an admin protects production over the REST API; an editor's
// change there, made in the console of a headless Chromium, becomes a change request instead of a
// change; its author cannot approve it; another editor approves it and applies it; a second
// request whose flag a webhook trigger changed meanwhile refuses to apply and shows the new diff,
// is rebased, approved again and applied. The history then passes audit verify and replay --verify.
func TestChangeRequestsInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	axe := axeCoreScript(t)
	v := startVexil(t)
	ctx := context.Background()
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "checkout", "name": "Checkout", "type": "boolean"})
	addPerson(t, v, "ada@example.com", "Ada Lovelace", "shop", identity.RoleEditor, false)
	addPerson(t, v, "bo@example.com", "Bo Builder", "shop", identity.RoleEditor, false)
	addPerson(t, v, "ida@example.com", "Ida Admin", "shop", identity.RoleAdmin, false)

	// Only an admin protects; bad policies are 400s naming the field.
	if r := v.do("PUT", "/api/v1/projects/shop/environments/production/protection", map[string]any{"required_approvals": 0, "approver_role": "owner"}); r.Status != 400 || r.JSON(t)["field"] != "approver_role" {
		t.Fatalf("bad approver role: %d %s", r.Status, r.Body)
	}
	env := v.must(200, "PUT", "/api/v1/projects/shop/environments/production/protection", map[string]any{})
	if p, _ := env["protection"].(map[string]any); p["required_approvals"] != float64(1) || p["approver_role"] != "editor" {
		t.Fatalf("protection: %v", env)
	}

	// Over REST too, a change to production answers 202 with the request; its author (this
	// token) cannot approve it; it is withdrawn.
	r := v.do("POST", "/api/v1/projects/shop/flags/checkout/environments/production/toggle", map[string]any{"on": true}, "X-Vexil-Reason", "via the API")
	if r.Status != 202 {
		t.Fatalf("toggle in a protected environment: %d %s", r.Status, r.Body)
	}
	apiReq := r.JSON(t)["change_request"].(map[string]any)
	apiPath := "/api/v1/projects/shop/change-requests/" + apiReq["id"].(string)
	if apiReq["status"] != "open" || apiReq["reason"] != "via the API" || r.Header.Get("Location") != apiPath {
		t.Fatalf("202 answer: %v, Location %q", apiReq, r.Header.Get("Location"))
	}
	if r := v.do("POST", apiPath+"/approve", map[string]any{}); r.Status != 403 {
		t.Fatalf("the author approves over REST: %d %s", r.Status, r.Body)
	}
	v.must(200, "POST", apiPath+"/cancel", nil)
	if v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("the flag changed without approval")
	}
	// A schedule in production is a change request too (the scheduler would apply it unreviewed).
	r = v.do("POST", "/api/v1/projects/shop/schedules", map[string]any{"flag": "checkout", "environment": "production",
		"at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "kind": "toggle", "on": true})
	if r.Status != 202 || !strings.HasPrefix(r.Header.Get("Location"), "/api/v1/projects/shop/change-requests/") {
		t.Fatalf("a schedule in a protected environment: %d %s", r.Status, r.Body)
	}
	if cr := r.JSON(t)["change_request"].(map[string]any); cr["change"].(map[string]any)["command"] != "ScheduleChange" {
		t.Fatalf("the schedule's request: %v", cr)
	}
	v.must(200, "POST", r.Header.Get("Location")+"/cancel", nil)

	b := startBrowser(t, chromium)
	ada := &tab{t: t, ctx: b.ctx, base: v.base, b: b}
	ada.signIn("ada@example.com")

	// Ada turns checkout on in production with the targeting editor: a change request instead.
	ada.open("/projects/shop/flags/checkout/environments/production")
	ada.click(`#f-on`)
	ada.set("#reason", "launch checkout")
	ada.click(`button.primary[value="save"]`)
	ada.waitText("#confirm", "Confirm the change to Production")
	ada.click(`#confirm button[value="confirm"]`)
	ada.waitText("main .flash", "waiting for approval")
	ada.waitText("#cr-status", "open")
	ada.waitText("main", "You opened this request: another person approves it.")
	if n := ada.count(`button[formaction$="/reject"]`); n != 0 || ada.count(`form[action$="/approve"] button`) != 0 {
		t.Fatal("the author is offered to approve or reject her own request")
	}
	// Even a hand-made POST from her session is refused.
	crPath := strings.TrimPrefix(ada.url(), "")
	crPath = crPath[:strings.Index(crPath, "?")]
	if st := ada.fetchStatus(crPath+"/approve", "text=mine", true); st != 403 {
		t.Fatalf("the author's approve: %d, want 403", st)
	}
	if v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("the flag changed before approval")
	}
	ada.axe(axe, "change request page")
	ada.screenshot("change-request")
	// The flag page shows the pending request.
	ada.open("/projects/shop/flags/checkout")
	ada.waitText("section.pending", "UpdateTargeting in production")

	// Bo finds it in the list of open requests, comments, approves and applies it.
	bo := ada.newContext()
	bo.signIn("bo@example.com")
	bo.open("/projects/shop/change-requests")
	bo.waitText("table.changerequests", "Ada Lovelace")
	bo.axe(axe, "change requests list")
	bo.click(`table.changerequests a`)
	bo.waitText("section[aria-labelledby=diff-h]", "on")
	bo.set("#comment-text", "checked with support")
	bo.click(`form[action$="/comment"] button`)
	bo.waitText("main .flash", "Comment added.")
	bo.waitText("ul.comments", "checked with support")
	bo.click(`form[action$="/approve"] button[type=submit]:not([formaction])`)
	bo.waitText("main .flash", "Approved.")
	bo.waitText("#cr-status", "approved")
	bo.click(`form[action$="/apply"] button`)
	bo.waitText("main .flash", "Applied.")
	bo.waitText("#cr-status", "applied")
	if !v.flagOn(t, "shop", "checkout", "production") {
		t.Fatal("the approved request did not turn the flag on")
	}
	entries := items(t, v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/audit", nil))
	if entries[0]["event_type"] != "FlagTargetingUpdated" || !strings.Contains(entries[0]["reason"].(string), "launch checkout") {
		t.Fatalf("the applied change's audit entry: %v", entries[0])
	}

	// A second request (serve false by default); approved; meanwhile the PagerDuty kill switch
	// (a webhook trigger, which bypasses approval by design) turns the flag off.
	ada.open("/projects/shop/flags/checkout/environments/production")
	ada.set(`#f-default-variation`, "false")
	ada.set("#reason", "serve false by default")
	ada.click(`button.primary[value="save"]`)
	ada.click(`#confirm button[value="confirm"]`)
	ada.waitText("main .flash", "waiting for approval")
	second := ada.url()
	second = second[:strings.Index(second, "?")]
	bo.open(second)
	bo.click(`form[action$="/approve"] button[type=submit]:not([formaction])`)
	bo.waitText("#cr-status", "approved")
	created := v.must(201, "POST", "/api/v1/projects/shop/triggers", map[string]any{"name": "kill switch",
		"flag": "checkout", "environment": "production", "action": "off"})
	hook := v.as("").do("POST", created["path"].(string), `{}`, console.TriggerSecretHeader, created["secret"].(string))
	if hook.Status != 200 || hook.JSON(t)["changed"] != true {
		t.Fatalf("trigger: %d %s", hook.Status, hook.Body)
	}
	bo.click(`form[action$="/apply"] button`)
	bo.waitText("#conflict-h", "The flag changed since this request was made")
	bo.waitText("section.notice", "rebase the request")
	bo.waitText("section.notice table.diff", "environments.production.on") // the new diff turns it back on
	bo.click(`section.notice form[action$="/rebase"] button`)
	bo.waitText("main .flash", "Rebased")
	bo.waitText("#cr-status", "open")
	bo.click(`form[action$="/approve"] button[type=submit]:not([formaction])`)
	bo.click(`form[action$="/apply"] button`)
	bo.waitText("#cr-status", "applied")
	tg := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout/environments/production", nil)["targeting"].(map[string]any)
	if tg["on"] != true || tg["default"].(map[string]any)["variation"] != "false" {
		t.Fatalf("after the rebased request: %v", tg)
	}
	ada.open("/projects/shop/flags/checkout")
	if n := ada.count("section.pending"); n != 0 {
		t.Fatalf("applied requests still pending on the flag page")
	}
	// Editors see the policy but no form; an admin lifts the protection in the console.
	bo.open("/projects/shop/change-requests")
	bo.waitText("table.protection", "protected: 1 approval by editors")
	if n := bo.count(`table.protection form`); n != 0 {
		t.Fatalf("an editor gets %d protection forms", n)
	}
	ida := ada.newContext()
	ida.signIn("ida@example.com")
	ida.open("/projects/shop/change-requests")
	ida.axe(axe, "change requests list with the protection form")
	ida.click(`#p-production`)
	ida.click(`form[action$="/environments/production/protection"] button`)
	ida.waitText("main .flash", "no longer protected")
	if env := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil); env["protection"] != nil {
		t.Fatalf("protection after the admin lifted it: %v", env["protection"])
	}
	for _, tb := range []*tab{ada, bo, ida} {
		tb.checkConsole()
	}

	// Change requests are events like every other: audit verify and replay --verify are clean.
	testkit.WaitFor(t, 20*time.Second, "the read models to catch up", func() bool {
		var behind int
		_ = v.p.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT stream_id, max(version) v FROM events GROUP BY stream_id) e
			WHERE EXISTS (SELECT 1 FROM unnest(ARRAY['access','catalog','rulesets','audit','delivery','changerequests']) p(name)
			  LEFT JOIN projection_checkpoints c ON c.projection = p.name AND c.stream_id = e.stream_id
			  WHERE coalesce(c.version, 0) < e.v)`).Scan(&behind)
		return behind == 0
	})
	url := v.p.Config.DatabaseURL
	if out, err := verify(t, url); err != nil || !strings.Contains(out, `"problems": []`) {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "replay", "--verify", "--database-url", url); err != nil || !strings.Contains(out, `"differences": []`) {
		t.Fatalf("replay --verify: %v\n%s", err, out)
	}
}
