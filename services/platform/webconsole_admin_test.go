package platform_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/testkit"
)

// The console's admin pages over plain HTTP: environments and SDK keys (rotation asks first and
// the old key is refused after), OpenFeature snippets with the real key and URL, members
// (add, change, remove; admins only) and their audit in the console and the API, API tokens
// (secret shown once, revoked tokens refused), the segment editor (nested segment, an error at
// its field, the diff before saving a segment production uses), and the flags list's production
// switch, which asks with the diff before toggling.
func TestWebConsoleAdminPages(t *testing.T) {
	t.Parallel()
	v := startVexil(t, "--login-attempts", "100")
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects/shop/flags", map[string]any{"key": "banner", "name": "Banner", "type": "boolean"})
	ann := signIn(t, v, addPerson(t, v, "ann@example.com", "Ann Admin", "shop", identity.RoleAdmin, false))
	ed := signIn(t, v, addPerson(t, v, "ed@example.com", "Ed Editor", "shop", identity.RoleEditor, false))

	// Environments: a new one gets keys; the server key is shown to admins only.
	if st, body, _ := ed.post("/projects/shop/environments", url.Values{"key": {"staging"}, "name": {"Staging"}}, true); st != http.StatusForbidden {
		t.Fatalf("an editor creates an environment: %d %s", st, body)
	}
	st, body, _ := ann.post("/projects/shop/environments", url.Values{"key": {"bad key"}, "name": {"Staging"}}, true)
	if st != http.StatusBadRequest || !strings.Contains(body, `id="key-err"`) {
		t.Fatalf("a bad environment key: %d, want 400 at the key field: %s", st, body)
	}
	if st, _, hdr := ann.post("/projects/shop/environments", url.Values{"key": {"staging"}, "name": {"Staging"}, "color": {"#2e7d32"}}, true); st != http.StatusSeeOther || !strings.HasSuffix(strings.Split(hdr.Get("Location"), "?")[0], "/environments/staging") {
		t.Fatalf("create environment: %d %v", st, hdr)
	}
	prod := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)
	oldServer, client := prod["server_key"].(string), prod["client_key"].(string)
	_, page := ann.get("/projects/shop/environments/production")
	for _, want := range []string{oldServer, client, v.base + "/ofrep/v1/evaluate/flags/my-flag", "BaseURL:", v.base + "/ofrep/v1", "VexilWebProvider", "OFREPProvider", `data-copy="server-key"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the admin's environment page lacks %q", want)
		}
	}
	if _, page := ed.get("/projects/shop/environments/production"); strings.Contains(page, oldServer) || !strings.Contains(page, client) {
		t.Errorf("the editor's environment page shows the server key, or not the client key")
	}

	// Rotating asks first and says what breaks; confirmed, the old key is refused.
	st, page, _ = ann.post("/projects/shop/environments/production/rotate", url.Values{"kind": {"server"}}, true)
	if st != http.StatusOK || !strings.Contains(page, "What breaks") || !strings.Contains(page, "no grace period") {
		t.Fatalf("rotate without confirmation: %d %s", st, page)
	}
	if got := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["server_key"]; got != oldServer {
		t.Fatal("the key was rotated before the confirmation")
	}
	version := regexp.MustCompile(`id="confirm-rotate"[\s\S]*?name="version" value="(\d+)"`).FindStringSubmatch(page)
	if version == nil {
		t.Fatal("the confirmation carries no version")
	}
	if st, _, _ := ann.post("/projects/shop/environments/production/rotate", url.Values{"kind": {"server"}, "confirm": {"yes"}, "version": {version[1]}, "reason": {"leaked in a log"}}, true); st != http.StatusSeeOther {
		t.Fatalf("confirmed rotation: %d", st)
	}
	newServer := v.must(200, "GET", "/api/v1/projects/shop/environments/production", nil)["server_key"].(string)
	if newServer == oldServer {
		t.Fatal("the server key did not change")
	}
	testkit.WaitFor(t, 10*time.Second, "the old server key to be refused and the new one served", func() bool {
		old := v.as(oldServer).do("POST", "/ofrep/v1/evaluate/flags/banner", map[string]any{"context": map[string]any{"targetingKey": "u"}})
		cur := v.as(newServer).do("POST", "/ofrep/v1/evaluate/flags/banner", map[string]any{"context": map[string]any{"targetingKey": "u"}})
		return old.Status == http.StatusUnauthorized && cur.Status == http.StatusOK
	})

	// Members: admins only; add an existing person, create a new one, change a role, remove.
	if st, _ := ed.get("/projects/shop/members"); st != http.StatusForbidden {
		t.Fatalf("an editor's members page: %d, want 403", st)
	}
	addPerson(t, v, "vi@example.com", "Vi Viewer", "", "", false)
	if st, body, _ := ann.post("/projects/shop/members", url.Values{"email": {"nobody@example.com"}, "role": {"viewer"}}, true); st != http.StatusBadRequest || !strings.Contains(body, "email-err") {
		t.Fatalf("adding an unknown email without a name: %d %s", st, body)
	}
	if st, _, _ := ann.post("/projects/shop/members", url.Values{"email": {"vi@example.com"}, "role": {"viewer"}}, true); st != http.StatusSeeOther {
		t.Fatalf("add an existing person: %d", st)
	}
	if st, _, _ := ann.post("/projects/shop/members", url.Values{"email": {"new@example.com"}, "name": {"Nia New"}, "password": {testPassword}, "role": {"editor"}}, true); st != http.StatusSeeOther {
		t.Fatalf("add a new person: %d", st)
	}
	people, err := identity.NewStore(v.p.Pool)
	if err != nil {
		t.Fatal(err)
	}
	vi, _ := people.UserByEmail(t.Context(), "vi@example.com")
	nia, _ := people.UserByEmail(t.Context(), "new@example.com")
	if st, _, _ := ann.post("/projects/shop/members/"+vi.ID, url.Values{"role": {"editor"}, "action": {"change"}}, true); st != http.StatusSeeOther {
		t.Fatalf("change a role: %d", st)
	}
	if st, _, _ := ann.post("/projects/shop/members/"+nia.ID, url.Values{"action": {"remove"}}, true); st != http.StatusSeeOther {
		t.Fatalf("remove a member: %d", st)
	}
	_, page = ann.get("/projects/shop/members")
	if !strings.Contains(page, "vi@example.com") || strings.Contains(page, "new@example.com") {
		t.Fatalf("members after the changes: %s", page)
	}
	// The audit, in the console and through the API, with actor and time.
	_, page = ann.get("/projects/shop/audit/accounts")
	for _, want := range []string{"member.removed", "member.role_changed", "member.added", "user.created", "Ann Admin", "Nia New"} {
		if !strings.Contains(page, want) {
			t.Errorf("the members audit page lacks %q", want)
		}
	}
	entries := items(t, v.must(200, "GET", "/api/v1/projects/shop/members/audit", nil))
	if entries[0]["action"] != identity.ActionMemberRemoved || entries[0]["actor"] != "user:"+ann.user.ID || entries[0]["subject"] != "user:"+nia.ID || entries[0]["occurred_at"] == "" {
		t.Fatalf("newest members audit entry through the API: %v", entries[0])
	}

	// A person changes their own password (the current one first); it is audited too.
	if st, body, _ := ed.post("/account/password", url.Values{"current_password": {"wrong password!"}, "password": {"a new long password"}, "password_again": {"a new long password"}}, true); st != http.StatusBadRequest || !strings.Contains(body, "cur-err") {
		t.Fatalf("a wrong current password: %d %s", st, body)
	}
	if st, _, _ := ed.post("/account/password", url.Values{"current_password": {testPassword}, "password": {"a new long password"}, "password_again": {"a new long password"}}, true); st != http.StatusSeeOther {
		t.Fatalf("change password: %d", st)
	}
	if all := items(t, v.must(200, "GET", "/api/v1/account-audit?limit=1", nil)); all[0]["action"] != identity.ActionPasswordChanged || all[0]["actor"] != "user:"+ed.user.ID {
		t.Fatalf("newest account audit entry: %v", all[0])
	}

	// API tokens: the secret once, it works; revoked, it is refused.
	st, page, _ = ann.post("/projects/shop/tokens", url.Values{"name": {"ci-deploy"}, "scope": {"write"}, "reason": {"CI"}}, true)
	secret := regexp.MustCompile(`id="token-secret" readonly value="([^"]+)"`).FindStringSubmatch(page)
	if st != http.StatusCreated || secret == nil {
		t.Fatalf("create a token: %d %s", st, page)
	}
	v.as(secret[1]).must(200, "GET", "/api/v1/projects/shop/flags", nil)
	_, page = ann.get("/projects/shop/tokens")
	if strings.Contains(page, secret[1]) || !strings.Contains(page, "ci-deploy") {
		t.Fatal("the tokens list shows the secret again, or not the token")
	}
	id := regexp.MustCompile(`/tokens/([^/"]+)/revoke`).FindStringSubmatch(page)
	if st, _, _ := ann.post("/projects/shop/tokens/"+id[1]+"/revoke", url.Values{}, true); st != http.StatusSeeOther {
		t.Fatalf("revoke: %d", st)
	}
	testkit.WaitFor(t, 10*time.Second, "the revoked token to be refused", func() bool {
		return v.as(secret[1]).do("GET", "/api/v1/projects/shop/flags", nil).Status == http.StatusUnauthorized
	})

	// Segments: create one nesting another; an error shows at its field.
	v.must(201, "POST", "/api/v1/projects/shop/segments", map[string]any{"key": "staff", "name": "Staff", "included": []any{"u-staff"}})
	seg := url.Values{"key": {"fr-staff"}, "name": {"French staff"}, "match": {"all"},
		"clauses[0].attribute": {"country"}, "clauses[0].op": {"in"}, "clauses[0].values": {"FR"},
		"clauses[1].attribute": {""}, "clauses[1].op": {"in_segment"}, "clauses[1].segments": {"staff"},
		"clauses[2].attribute": {"age"}, "clauses[2].op": {"gt"}, "clauses[2].values": {"abc"}}
	st, body, _ = ed.post("/projects/shop/segments", seg, true)
	if st != http.StatusBadRequest || !strings.Contains(body, `href="#f-clauses-2-values`) {
		t.Fatalf("a non-number for gt: %d, want 400 at clauses[2].values: %s", st, body)
	}
	seg.Set("clauses[2].values", "30")
	if st, body, _ = ed.post("/projects/shop/segments", seg, true); st != http.StatusSeeOther {
		t.Fatalf("create segment: %d %s", st, body)
	}
	got := v.must(200, "GET", "/api/v1/projects/shop/segments/fr-staff", nil)
	if cl := got["clauses"].([]any); len(cl) != 3 || cl[1].(map[string]any)["values"].([]any)[0] != "staff" || cl[2].(map[string]any)["values"].([]any)[0] != 30.0 {
		t.Fatalf("saved segment: %v", got)
	}
	// Production uses it: a save shows the diff first and changes nothing until confirmed.
	v.must(200, "PUT", "/api/v1/projects/shop/flags/banner/environments/production", map[string]any{"on": false, "off_variation": "false",
		"rules":   []any{map[string]any{"clauses": []any{map[string]any{"op": "in_segment", "values": []any{"fr-staff"}}}, "serve": map[string]any{"variation": "true"}}},
		"default": map[string]any{"variation": "false"}})
	seg.Del("key")
	seg.Set("version", "1")
	seg.Set("clauses[0].values", "FR\nBE")
	st, page, _ = ed.post("/projects/shop/segments/fr-staff", seg, true)
	if st != http.StatusOK || !strings.Contains(page, "Confirm the change") || !strings.Contains(page, "&#34;BE&#34;") {
		t.Fatalf("a segment production uses: %d, want the diff first: %s", st, page)
	}
	if v.must(200, "GET", "/api/v1/projects/shop/segments/fr-staff", nil)["version"] != 1.0 {
		t.Fatal("saved before the confirmation")
	}
	seg.Set("action", "confirm")
	if st, _, _ := ed.post("/projects/shop/segments/fr-staff", seg, true); st != http.StatusSeeOther {
		t.Fatalf("confirmed segment save: %d", st)
	}

	// The flags list's production switch: the first post shows the diff, the confirmation toggles.
	st, page, _ = ed.post("/projects/shop/flags/banner/environments/production/toggle", url.Values{"on": {"true"}}, true)
	if st != http.StatusOK || !strings.Contains(page, "Turn banner on in Production?") || !strings.Contains(page, `name="confirm" value="yes"`) {
		t.Fatalf("production switch: %d, want the confirmation: %s", st, page)
	}
	if v.must(200, "GET", "/api/v1/projects/shop/flags/banner/environments/production", nil)["targeting"].(map[string]any)["on"] != false {
		t.Fatal("toggled before the confirmation")
	}
	fv := regexp.MustCompile(`name="version" value="(\d+)"`).FindStringSubmatch(page)
	if st, _, _ := ed.post("/projects/shop/flags/banner/environments/production/toggle", url.Values{"on": {"true"}, "confirm": {"yes"}, "version": {fv[1]}, "reason": {"go"}}, true); st != http.StatusSeeOther {
		t.Fatalf("confirmed toggle: %d", st)
	}
	if v.must(200, "GET", "/api/v1/projects/shop/flags/banner/environments/production", nil)["targeting"].(map[string]any)["on"] != true {
		t.Fatal("not on after the confirmation")
	}
}
