package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/testkit"
)

// The web console in Debian's chromium, headless, driven through the DevTools protocol: the
// issue's scenario from sign-in to restore, as a product manager would click it. The browser's
// console must stay free of errors (a CSP violation, a script error), apart from the refusals the
// test provokes on purpose; axe-core (npm, deploy/console) must find no serious or critical
// accessibility violation on the flags list, the flag page and the targeting editor. Screenshots
// go to $VEXIL_SCREENSHOTS when it is set. Fails, never skips, without chromium or npm.
func TestWebConsoleInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	axe := axeCoreScript(t)
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/segments", map[string]any{"key": "beta-testers", "name": "Beta testers",
		"match": "all", "clauses": []any{}, "included": []any{"user-fr-1", "user-fr-2"}})
	addPerson(t, v, "ada@example.com", "Ada Lovelace", "shop", identity.RoleEditor, false)
	addPerson(t, v, "bo@example.com", "Bo Builder", "shop", identity.RoleEditor, false)
	addPerson(t, v, "vic@example.com", "Vic Viewer", "shop", identity.RoleViewer, false)
	serverKey := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["server_key"].(string)

	b := startBrowser(t, chromium)
	ada := &tab{t: t, ctx: b.ctx, base: v.base, b: b}
	ada.signIn("ada@example.com")
	ada.waitText("h1", "Flags")

	// Create a flag with string variations.
	ada.open("/projects/shop/flags/new")
	ada.set("#key", "checkout-banner")
	ada.set("#name", "Checkout banner")
	ada.set("#type", "string")
	ada.set("#variations", "control=Welcome\ntreatment=Welcome back")
	ada.set("#reason", "new banner")
	ada.click(`button[type=submit].primary`)
	ada.waitText("main .flash", "Flag created.")
	ada.axe(axe, "flag page")

	// Production's targeting: a rule with a clause and a segment, a 10/90 split, on, with a reason.
	ada.open("/projects/shop/flags/checkout-banner/environments/production")
	ada.click(`button[value="add-rule"]`)
	ada.waitVisible(`[name="rules[0].clauses[0].attribute"]`)
	ada.set(`[name="rules[0].clauses[0].attribute"]`, "country")
	ada.set(`[name="rules[0].clauses[0].op"]`, "in")
	ada.set(`[name="rules[0].clauses[0].values"]`, "FR")
	ada.click(`button[value="add-clause:0"]`)
	ada.waitVisible(`[name="rules[0].clauses[1].op"]`)
	if got := ada.value(`[name="rules[0].clauses[0].values"]`); got != "FR" {
		t.Fatalf("adding a clause lost the first clause's values: %q", got)
	}
	ada.set(`[name="rules[0].clauses[1].op"]`, "in_segment")
	ada.set(`[name="rules[0].clauses[1].segments"]`, "beta-testers")
	ada.click(`#f-rules-0-serve-kind-split`)
	ada.set(`[name="rules[0].serve.split.control"]`, "10")
	ada.set(`[name="rules[0].serve.split.treatment"]`, "80")
	ada.waitText(`#f-rules-0-serve output[data-sum]`, "90") // the live sum
	ada.set(`[name="rules[0].serve.split.treatment"]`, "90")
	ada.waitText(`#f-rules-0-serve output[data-sum]`, "100")
	ada.click(`#f-on`)
	ada.set("#reason", "launch in France")
	ada.axe(axe, "targeting editor")
	ada.screenshot("targeting-editor")
	beforeSave := time.Now().UTC()
	ada.click(`button.primary[value="save"]`)
	// Production asks again, showing what changes.
	ada.waitText("#confirm", "Confirm the change to Production")
	ada.waitText("#confirm", `"FR"`)
	ada.click(`#confirm button[value="confirm"]`)
	ada.waitText("main .flash", "Targeting saved.")

	// An OFREP call with the server key gets the new value: user-fr-1 is in France and a beta tester.
	eval := func(ctx map[string]any) map[string]any {
		r := v.as(serverKey).do("POST", "/ofrep/v1/evaluate/flags/checkout-banner", map[string]any{"context": ctx})
		if r.Status != 200 {
			t.Fatalf("OFREP: %d %s", r.Status, r.Body)
		}
		return r.JSON(t)
	}
	testkit.WaitFor(t, 10*time.Second, "the api role to serve the saved targeting", func() bool {
		return eval(map[string]any{"targetingKey": "user-fr-1", "country": "FR"})["reason"] == "SPLIT"
	})
	if got := eval(map[string]any{"targetingKey": "user-fr-1", "country": "FR"}); got["value"] != "Welcome" && got["value"] != "Welcome back" {
		t.Fatalf("OFREP for a beta tester in France: %v", got)
	}
	if got := eval(map[string]any{"targetingKey": "user-us-1", "country": "US"}); got["value"] != "Welcome" || got["reason"] != "DEFAULT" {
		t.Fatalf("OFREP for someone else: %v, want the default", got)
	}

	// The flags list shows it on in production, changed by Ada.
	ada.open("/projects/shop/flags")
	ada.waitText("table.flags", "Ada Lovelace")
	if on := ada.attr(`button[aria-label="checkout-banner in Production"]`, "aria-checked"); on != "true" {
		t.Fatalf("the production switch says aria-checked=%q", on)
	}
	ada.axe(axe, "flags list")
	ada.screenshot("flags-list")

	// The segments list says which flags use the segment.
	ada.open("/projects/shop/segments")
	ada.waitText("table.segments", "checkout-banner")

	// The audit page shows the change as a diff, with the person's name and the reason.
	ada.open("/projects/shop/audit?flag=checkout-banner")
	ada.waitText("ol.audit li.entry", "Ada Lovelace")
	first := ada.text("ol.audit li.entry")
	for _, want := range []string{"launch in France", "FlagTargetingUpdated", "Production", "rules[0].clauses[0].attribute", `"country"`} {
		if !strings.Contains(strings.ToLower(first), strings.ToLower(want)) {
			t.Errorf("the audit entry lacks %q: %s", want, first)
		}
	}
	ada.screenshot("audit-diff")

	// Time travel: production as it was before the save was off; restoring it is a new event.
	ada.open("/projects/shop/flags/checkout-banner/history?at=" + beforeSave.Format(time.RFC3339Nano))
	ada.waitText(`#state-then td[data-env="production"]`, "off")
	ada.set("#r-env", "production")
	ada.set("#restore-reason", "back to before the launch")
	ada.click(`form[action$="/history/restore"] button[type=submit]`)
	ada.waitText("main .flash", "Restored the targeting of")
	tg := v.must(200, "GET", "/api/v1/projects/shop/flags/checkout-banner/environments/production", nil)["targeting"].(map[string]any)
	if tg["on"] != false || len(tg["rules"].([]any)) != 0 {
		t.Fatalf("restored targeting: %v, want off without rules", tg)
	}
	entries := items(t, v.must(200, "GET", "/api/v1/projects/shop/flags/checkout-banner/audit", nil))
	if entries[0]["reason"] != "back to before the launch" || len(entries) != 3 {
		t.Fatalf("the restore is not a new audit entry on top of the history: %v", entries)
	}

	// A form submitted without the CSRF token is refused.
	if st := ada.fetchStatus("/projects/shop/flags/checkout-banner/environments/development/toggle", "on=true", false); st != 403 {
		t.Fatalf("a POST without the CSRF token: %d, want 403", st)
	}

	// A viewer (another browser context, its own cookies) sees no edit controls, and a direct
	// POST from the viewer's session is refused.
	vic := ada.newContext()
	vic.signIn("vic@example.com")
	vic.waitText("h1", "Flags")
	if n := vic.count(`a[href$="/flags/new"]`); n != 0 {
		t.Fatalf("the viewer sees %d New flag links", n)
	}
	if vic.count(`button[aria-label="checkout-banner in Production"][disabled]`) != 1 {
		t.Fatalf("the viewer's production switch is not disabled")
	}
	vic.open("/projects/shop/flags/checkout-banner/environments/production")
	if n := vic.count(`button[value="save"].primary`); n != 0 {
		t.Fatalf("the viewer's targeting page has a save button")
	}
	if st := vic.fetchStatus("/projects/shop/flags/checkout-banner/environments/production/toggle", "on=true", true); st != 403 {
		t.Fatalf("a viewer's direct POST: %d, want 403", st)
	}

	// A second browser's concurrent edit: Ada's open editor is told, and her save is a conflict
	// that names Bo and shows the difference.
	ada.open("/projects/shop/flags/checkout-banner/environments/development")
	ada.waitVisible(`#f-default-variation`)
	bo := ada.newContext()
	bo.signIn("bo@example.com")
	bo.open("/projects/shop/flags/checkout-banner/environments/development")
	bo.set(`#f-default-variation`, "treatment")
	bo.set("#reason", "Bo's change")
	bo.click(`button.primary[value="save"]`)
	bo.waitText("main .flash", "Targeting saved.")
	ada.waitText(".live", "Bo Builder changed this flag meanwhile")
	ada.click(`#f-on`)
	ada.click(`button.primary[value="save"]`)
	ada.waitText("#conflict", "Changed by Bo Builder meanwhile")
	ada.waitText("#conflict", "default.variation")

	for _, tb := range []*tab{ada, vic, bo} {
		tb.checkConsole()
	}
}

// tab is one browser context (its own cookies) with one page.
type tab struct {
	t       *testing.T
	ctx     context.Context
	base    string
	b       *browser                         // the console log of the first context
	collect func() []chromedp.ConsoleMessage // the console log of another context
	refused []string                         // URLs the test expects the server to refuse
}

func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserSlowDeadline)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do("open "+path, chromedp.Navigate(tb.base+path), chromedp.WaitReady("main"))
}

func (tb *tab) signIn(email string) {
	tb.t.Helper()
	tb.open("/login")
	tb.set("#email", email)
	tb.set("#password", testPassword)
	tb.do("sign in as "+email, chromedp.Click(`button[type=submit]`), chromedp.WaitReady(`header .who`))
}

// set gives a field a value as typing or picking would, with the input and change events the
// console's script listens to.
func (tb *tab) set(sel, value string) {
	tb.t.Helper()
	script := fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		if (!el) return "missing";
		if (el.multiple) { for (const o of el.options) o.selected = o.value === %q; } else { el.value = %q; }
		el.dispatchEvent(new Event("input", {bubbles: true}));
		el.dispatchEvent(new Event("change", {bubbles: true}));
		return "";
	})()`, sel, value, value)
	got, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](script))
	if err != nil || got != "" {
		tb.t.Fatalf("set %s: %v %s", sel, err, got)
	}
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("click "+sel, chromedp.WaitVisible(sel), chromedp.Click(sel), chromedp.WaitReady("main"))
}

func (tb *tab) waitVisible(sel string) {
	tb.t.Helper()
	tb.do("wait for "+sel, chromedp.WaitVisible(sel))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(sel))
	if err != nil {
		tb.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (tb *tab) value(sel string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).value`, sel)))
	if err != nil {
		tb.t.Fatalf("value of %s: %v", sel, err)
	}
	return s
}

func (tb *tab) attr(sel, name string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {getAttribute: () => "missing"}).getAttribute(%q) ?? ""`, sel, name)))
	if err != nil {
		tb.t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	if s == "missing" {
		tb.t.Fatalf("no %s in the page", sel)
	}
	return s
}

func (tb *tab) count(sel string) int {
	tb.t.Helper()
	n, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		tb.t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// waitText polls until the element's text contains want.
func (tb *tab) waitText(sel, want string) {
	tb.t.Helper()
	testkit.WaitFor(tb.t, browserSlowDeadline, fmt.Sprintf("%s in %s to show %q", sel, tb.url(), want), func() bool {
		s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel)))
		return err == nil && strings.Contains(s, want)
	})
}

// url is the page's address, for failure messages.
func (tb *tab) url() string {
	u, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`location.pathname + location.search`))
	return u
}

// fetchStatus POSTs a form from the page's session with fetch, as a forged or hand-made request
// would, with or without the page's CSRF token.
func (tb *tab) fetchStatus(path, body string, withCSRF bool) int {
	tb.t.Helper()
	tb.refused = append(tb.refused, tb.base+path)
	csrf := `{}`
	if withCSRF {
		csrf = `{"X-CSRF-Token": document.querySelector('input[name="_csrf"]').value}`
	}
	script := fmt.Sprintf(`fetch(%q, {method: "POST", headers: Object.assign({"Content-Type": "application/x-www-form-urlencoded"}, %s), body: %q}).then(r => r.status)`, path, csrf, body)
	st, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int](script, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("fetch %s: %v", path, err)
	}
	return st
}

// newContext opens a tab in a new browser context of the same browser: its own cookies, so
// another person (or the same person in a second browser).
func (tb *tab) newContext() *tab {
	tb.t.Helper()
	ctx, cancel := chromedp.NewContext(tb.ctx, chromedp.WithNewBrowserContext())
	tb.t.Cleanup(cancel)
	n := &tab{t: tb.t, ctx: ctx, base: tb.base}
	msgs := chromedp.Console(ctx)
	if err := chromedp.Do(ctx); err != nil {
		tb.t.Fatalf("new browser context: %v", err)
	}
	done := make(chan struct{})
	var collected []chromedp.ConsoleMessage
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			collected = append(collected, m)
		}
	}()
	tb.t.Cleanup(func() { cancel(); <-done })
	n.collect = func() []chromedp.ConsoleMessage { cancel(); <-done; return collected }
	return n
}

// checkConsole fails on any error in the page's console but the refusals the test asked for
// (the browser logs a refused request's status as a network error).
func (tb *tab) checkConsole() {
	tb.t.Helper()
	var msgs []chromedp.ConsoleMessage
	if tb.collect != nil {
		msgs = tb.collect()
	} else {
		tb.b.mu.Lock()
		msgs = append(msgs, tb.b.console...)
		tb.b.mu.Unlock()
	}
	for _, m := range msgs {
		expected := m.Source == "network" && (contains(tb.refused, m.URL) || strings.Contains(m.Text, "status of 409") || strings.Contains(m.Text, "status of 400"))
		if (m.Type == chromedp.ConsoleError || m.IsException()) && !expected {
			tb.t.Errorf("browser console: %s (%s %s:%d)", m, m.Source, m.URL, m.Line)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// axe injects axe-core and fails on serious or critical violations of the page.
func (tb *tab) axe(script, page string) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
		tb.t.Fatalf("inject axe-core: %v", err)
	}
	raw, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]byte](`axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("axe.run on the %s: %v", page, err)
	}
	var violations []struct {
		ID, Impact, Help string
		Nodes            []string
	}
	if err := json.Unmarshal(raw, &violations); err != nil {
		tb.t.Fatalf("axe results: %v: %s", err, raw)
	}
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			tb.t.Errorf("axe-core on the %s: %s (%s): %s at %v", page, v.ID, v.Impact, v.Help, v.Nodes)
		} else {
			tb.t.Logf("axe-core on the %s, %s: %s (%s) at %v", page, v.Impact, v.ID, v.Help, v.Nodes)
		}
	}
}

// screenshot writes a full-page PNG (quality 100 is PNG; less would be JPEG) to $VEXIL_SCREENSHOTS, when set.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("VEXIL_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("screenshot: %s", path)
}

// axeCoreScript returns axe-core from deploy/console (npm ci from its lock file when missing).
func axeCoreScript(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(moduleRoot(t), "deploy", "console")
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("deploy/console: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if olderThan(t, filepath.Join(dir, "node_modules", ".package-lock.json"), filepath.Join(dir, "package-lock.json")) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatalf("the console's browser test injects axe-core from npm (deploy/console), and npm is not on PATH; .ci/run installs it")
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	return string(b)
}
