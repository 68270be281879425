package platform_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/vexil-flags/vexil/services/app/identity"
)

// The console's remaining pages in chromium, as a project admin uses them: rules reordered by
// dragging (the console's script rewrites the position fields the server sorts by), the flags
// list's production switch asking with the diff, the segment editor, an SDK key rotated after
// its confirmation, an API token created (secret shown once, copied) and revoked through the
// confirmation dialog, and a member added. axe-core finds no serious or critical violation on
// the new pages, and the browser's console stays free of errors.
func TestWebConsoleAdminInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	axe := axeCoreScript(t)
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner", "type": "boolean"})
	rule := func(desc, country string) map[string]any {
		return map[string]any{"description": desc, "clauses": []any{map[string]any{"attribute": "country", "op": "in", "values": []any{country}}},
			"serve": map[string]any{"variation": "true"}}
	}
	v.must(200, "PUT", "/api/v1/projects/shop/flags/banner/environments/production", map[string]any{"on": false, "off_variation": "false",
		"rules": []any{rule("first", "FR"), rule("second", "DE")}, "default": map[string]any{"variation": "false"}})
	addPerson(t, v, "ann@example.com", "Ann Admin", "shop", identity.RoleAdmin, false)
	addPerson(t, v, "vi@example.com", "Vi Viewer", "", "", false)
	oldClient := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["client_key"]

	b := startBrowser(t, chromium)
	ann := &tab{t: t, ctx: b.ctx, base: v.base, b: b}
	ann.signIn("ann@example.com")

	// Drag the second rule above the first, then save (production: confirmed with the diff).
	ann.open("/projects/shop/flags/banner/environments/production")
	order, err := chromedp.Run(ann.ctx, chromedp.Evaluate[string](`(() => {
		const list = document.querySelector("#rules");
		const [first, second] = list.querySelectorAll("li[data-rule]");
		const dt = new DataTransfer();
		second.dispatchEvent(new DragEvent("dragstart", {bubbles: true, dataTransfer: dt}));
		const r = first.getBoundingClientRect();
		first.dispatchEvent(new DragEvent("dragover", {bubbles: true, cancelable: true, dataTransfer: dt, clientX: r.left + 5, clientY: r.top + 2}));
		second.dispatchEvent(new DragEvent("dragend", {bubbles: true, dataTransfer: dt}));
		return Array.from(list.querySelectorAll("li[data-rule] input[data-position]")).map(i => i.name + "=" + i.value).join(" ");
	})()`))
	if err != nil || order != "rules[1].position=0 rules[0].position=1" {
		t.Fatalf("after dragging rule 2 above rule 1 the positions are %q (%v)", order, err)
	}
	ann.set("#reason", "Germany first")
	ann.click(`button.primary[value="save"]`)
	ann.waitText("#confirm", "Confirm the change to Production")
	ann.click(`#confirm button[value="confirm"]`)
	ann.waitText("main .flash", "Targeting saved.")
	rules := v.must(200, "GET", "/api/v1/projects/shop/flags/banner/environments/production", nil)["targeting"].(map[string]any)["rules"].([]any)
	if rules[0].(map[string]any)["description"] != "second" {
		t.Fatalf("rules after the drag: %v", rules)
	}

	// The flags list's production switch shows the change and asks for a reason first.
	ann.open("/projects/shop/flags")
	ann.click(`button[aria-label="banner in Production"]`)
	ann.waitText(".toggle-confirm", "Turn banner on in Production?")
	ann.waitText(".toggle-confirm table.diff", "true")
	ann.axe(axe, "production switch confirmation")
	ann.set(".toggle-confirm input[name=reason]", "launch")
	ann.click(".toggle-confirm button.primary")
	ann.waitVisible(`button[aria-label="banner in Production"][aria-checked="true"]`)

	// The segment editor: a clause added on the server, then created.
	ann.open("/projects/shop/segments/new")
	ann.set("#f-key", "vip")
	ann.set("#f-name", "VIP customers")
	ann.click(`button[value="add-clause"]`)
	ann.waitVisible(`[name="clauses[0].attribute"]`)
	ann.set(`[name="clauses[0].attribute"]`, "plan")
	ann.set(`[name="clauses[0].op"]`, "in")
	ann.set(`[name="clauses[0].values"]`, "pro\nenterprise")
	ann.axe(axe, "segment editor")
	ann.screenshot("segment-editor")
	ann.click(`button.primary[value="save"]`)
	ann.waitText("main .flash", "Segment created.")

	// The environment page: keys with copy buttons and snippets; rotation after its confirmation.
	ann.open("/projects/shop/environments/production")
	ann.axe(axe, "environment page")
	ann.screenshot("environment-keys")
	ann.click(`button[aria-label="Rotate the client-side key"]`)
	ann.waitText("#confirm-rotate", "What breaks")
	ann.axe(axe, "key rotation confirmation")
	ann.click("#confirm-rotate button.primary")
	ann.waitText("main .flash", "client-side key was rotated")
	if got := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["client_key"]; got == oldClient {
		t.Fatal("the client key did not change")
	}

	// API tokens: the secret shown once and copied; revoked through the confirmation dialog.
	ann.open("/projects/shop/tokens")
	ann.set("#f-name", "ci-deploy")
	ann.click("#scope-write")
	ann.click(`form[action$="/tokens"] button.primary`)
	ann.waitText("#issued", "shown this once")
	ann.click(`button[data-copy="token-secret"]`)
	ann.waitText(`button[data-copy="token-secret"]`, "Copied")
	ann.axe(axe, "tokens page")
	ann.click(`button[aria-label="Revoke token ci-deploy"]`)
	ann.click("dialog.confirm-dialog [data-dialog-ok]")
	ann.waitText("main .flash", "revoked")

	// Members: add a person; the members audit shows it.
	ann.open("/projects/shop/members")
	ann.axe(axe, "members page")
	ann.set("#f-email", "vi@example.com")
	ann.set("#f-role", "viewer")
	ann.click(`form[action$="/members"] button.primary`)
	ann.waitText("main .flash", "Vi Viewer is a viewer now.")
	ann.open("/projects/shop/audit/accounts")
	ann.waitText("table.audit", "member.added")
	ann.axe(axe, "members audit")

	ann.checkConsole()
}
