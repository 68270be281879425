package platform_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vexil-flags/vexil/services/app/identity"
	"github.com/vexil-flags/vexil/services/platform"
	"github.com/vexil-flags/vexil/services/testkit"
)

// person is someone signed in to the web console with their own cookie jar.
type person struct {
	t      testing.TB
	v      *vexil
	client *http.Client
	user   identity.User
}

const testPassword = "correct horse battery"

// addPerson creates a console account with role in project ("" for none).
func addPerson(t testing.TB, v *vexil, email, name, project, role string, instanceAdmin bool) identity.User {
	t.Helper()
	people, err := identity.NewStore(v.p.Pool)
	if err != nil {
		t.Fatal(err)
	}
	u, err := people.CreateUser(context.Background(), identity.NewUser{Email: email, DisplayName: name, Password: testPassword, InstanceAdmin: instanceAdmin, CreatedBy: "test"})
	if err != nil {
		t.Fatalf("create %s: %v", email, err)
	}
	if role != "" {
		if err := people.SetRole(context.Background(), u.ID, project, role, "test"); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// signIn signs a person in over HTTP (no browser).
func signIn(t testing.TB, v *vexil, u identity.User) *person {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	p := &person{t: t, v: v, user: u, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	status, _, hdr := p.post("/login", url.Values{"email": {u.Email}, "password": {testPassword}}, false)
	if status != http.StatusSeeOther || hdr.Get("Location") != "/projects" {
		t.Fatalf("sign-in of %s: status %d, Location %q", u.Email, status, hdr.Get("Location"))
	}
	return p
}

func (p *person) get(path string) (int, string) {
	p.t.Helper()
	resp, err := p.client.Get(p.v.base + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfInPage = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf reads the anti-forgery token from a page the person sees.
func (p *person) csrf() string {
	p.t.Helper()
	resp, err := p.client.Get(p.v.base + "/projects")
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	path := "/projects"
	if loc := resp.Header.Get("Location"); loc != "" {
		path = loc // one project: the list goes straight to its flags
	}
	_, body := p.get(path)
	m := csrfInPage.FindStringSubmatch(body)
	if m == nil {
		p.t.Fatalf("no CSRF token in the projects page: %s", body)
	}
	return m[1]
}

// post submits a form; withCSRF adds the person's token.
func (p *person) post(path string, form url.Values, withCSRF bool) (int, string, http.Header) {
	p.t.Helper()
	if withCSRF {
		form.Set("_csrf", p.csrf())
	}
	req, _ := http.NewRequest(http.MethodPost, p.v.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// The console's forms over plain HTTP: sign-in, roles, CSRF, validation at the field, conflicts,
// attribution, time travel and restore. The browser test drives the same pages in chromium.
func TestWebConsoleForms(t *testing.T) {
	v := startVexil(t)
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "other", "name": "Other"})
	ada := signIn(t, v, addPerson(t, v, "ada@example.com", "Ada Lovelace", "shop", identity.RoleEditor, false))
	vic := signIn(t, v, addPerson(t, v, "vic@example.com", "Vic Viewer", "shop", identity.RoleViewer, false))

	// Not signed in: pages redirect to the sign-in page; a wrong password is refused.
	anon := &person{t: t, v: v, client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if st, _ := anon.get("/projects/shop/flags"); st != http.StatusSeeOther {
		t.Fatalf("flags page without a session: %d, want 303 to the sign-in page", st)
	}
	if st, _, _ := anon.post("/login", url.Values{"email": {"ada@example.com"}, "password": {"wrong password!"}}, false); st != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", st)
	}
	// First run: the admin token creates the first admin, once; a wrong token cannot.
	if st, _, _ := anon.post("/setup", url.Values{"token": {"vxl_wrong"}, "email": {"root@example.com"}, "name": {"Root"}, "password": {testPassword}}, false); st != http.StatusForbidden {
		t.Fatalf("setup with a wrong token: %d, want 403", st)
	}
	if st, _, hdr := anon.post("/setup", url.Values{"token": {adminToken}, "email": {"root@example.com"}, "name": {"Root"}, "password": {testPassword}}, false); st != http.StatusSeeOther {
		t.Fatalf("setup with the admin token: %d %v", st, hdr)
	}
	if st, _ := anon.get("/setup"); st != http.StatusNotFound {
		t.Fatalf("setup once an admin exists: %d, want 404", st)
	}
	root, err := identity.NewStore(v.p.Pool)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := root.UserByEmail(context.Background(), "root@example.com"); err != nil || !u.InstanceAdmin {
		t.Fatalf("the first admin: %+v %v", u, err)
	}

	// A project the person is no member of does not exist for them.
	if st, _ := ada.get("/projects/other/flags"); st != http.StatusNotFound {
		t.Fatalf("another project's flags: %d, want 404", st)
	}

	// Create a flag; a bad key is shown at the key field.
	st, body, _ := ada.post("/projects/shop/flags", url.Values{"key": {"bad key!"}, "name": {"Bad"}, "type": {"boolean"}}, true)
	if st != http.StatusBadRequest || !strings.Contains(body, `id="key-err"`) {
		t.Fatalf("bad key: %d, want 400 with the error at the key field: %s", st, body)
	}
	st, _, hdr := ada.post("/projects/shop/flags", url.Values{"key": {"banner"}, "name": {"Banner"}, "type": {"string"},
		"variations": {"control=Welcome\ntreatment=Welcome back"}, "reason": {"launch"}}, true)
	if st != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/projects/shop/flags/banner") {
		t.Fatalf("create flag: %d %q", st, hdr.Get("Location"))
	}

	// A form without the CSRF token is refused before anything runs.
	if st, _, _ := ada.post("/projects/shop/flags/banner/environments/development/toggle", url.Values{"on": {"true"}}, false); st != http.StatusForbidden {
		t.Fatalf("toggle without CSRF token: %d, want 403", st)
	}
	// A viewer sees no edit controls and is refused a direct POST.
	// (The list reads the catalog read model: on a loaded machine it may trail the write.)
	var page string
	testkit.WaitFor(t, 30*time.Second, "the flags list to show the new flag", func() bool {
		_, page = vic.get("/projects/shop/flags")
		return strings.Contains(page, "banner")
	})
	if strings.Contains(page, "New flag") || !strings.Contains(page, "disabled") {
		t.Fatalf("the viewer's flags list shows edit controls: %s", page)
	}
	if st, _, _ := vic.post("/projects/shop/flags/banner/environments/development/toggle", url.Values{"on": {"true"}}, true); st != http.StatusForbidden {
		t.Fatalf("viewer's toggle: %d, want 403", st)
	}

	// Targeting in development (no confirmation step): an invalid split is shown at its field.
	target := url.Values{"version": {"1"}, "on": {"true"}, "off_variation": {"control"},
		"rules[0].id": {""}, "rules[0].clauses[0].attribute": {"country"}, "rules[0].clauses[0].op": {"in"}, "rules[0].clauses[0].values": {"FR\nDE"},
		"rules[0].serve.kind": {"split"}, "rules[0].serve.split.control": {"10"}, "rules[0].serve.split.treatment": {"80"},
		"default.kind": {"variation"}, "default.variation": {"control"}, "reason": {"try FR and DE"}}
	st, body, _ = ada.post("/projects/shop/flags/banner/environments/development", target, true)
	if st != http.StatusBadRequest || !strings.Contains(body, `href="#f-rules-0-serve`) {
		t.Fatalf("a split of 90%%: %d, want 400 naming rules[0].serve: %s", st, body)
	}
	target.Set("rules[0].serve.split.treatment", "90")
	if st, body, _ = ada.post("/projects/shop/flags/banner/environments/development", target, true); st != http.StatusSeeOther {
		t.Fatalf("save targeting: %d: %s", st, body)
	}
	got := v.must(200, "GET", "/api/v1/projects/shop/flags/banner/environments/development", nil)
	tg := got["targeting"].(map[string]any)
	rule := tg["rules"].([]any)[0].(map[string]any)
	split := rule["serve"].(map[string]any)["split"].(map[string]any)["variations"].([]any)
	if tg["on"] != true || split[0].(map[string]any)["weight"] != 10000.0 || split[1].(map[string]any)["weight"] != 90000.0 {
		t.Fatalf("saved targeting: %v", tg)
	}

	// The same stale version again: a conflict naming who changed the flag meanwhile.
	st, body, _ = ada.post("/projects/shop/flags/banner/environments/development", target, true)
	if st != http.StatusConflict || !strings.Contains(body, "Changed by Ada Lovelace meanwhile") {
		t.Fatalf("stale save: %d, want 409 naming the change's author: %s", st, body)
	}

	// Evaluate-as: the serving evaluator's answer and the trace, for a context typed in the page.
	testkit.WaitFor(t, 10*time.Second, "the evaluate-as page to show the saved rule's split", func() bool {
		_, page := vic.get("/projects/shop/flags/banner/evaluate?env=development&context=" + url.QueryEscape(`{"targetingKey":"u1","country":"DE"}`))
		return strings.Contains(page, "SPLIT") && strings.Contains(page, "Rule 1 <code>rule-1</code>: matched")
	})
	if _, page := vic.get("/projects/shop/flags/banner/evaluate?env=development&context=" + url.QueryEscape(`{"targetingKey":"u1","country":"US"}`)); !strings.Contains(page, "DEFAULT") || !strings.Contains(page, "did not match") {
		t.Fatalf("evaluate-as for a context no rule matches: %s", page)
	}

	// Attributed to the person, with the reason, in the audit log (the API's and the page's).
	entries := items(t, v.must(200, "GET", "/api/v1/projects/shop/flags/banner/audit", nil))
	if entries[0]["actor"] != "user:"+ada.user.ID || entries[0]["reason"] != "try FR and DE" {
		t.Fatalf("newest audit entry: %v", entries[0])
	}
	if _, page := vic.get("/projects/shop/audit?flag=banner"); !strings.Contains(page, "Ada Lovelace") || !strings.Contains(page, "try FR and DE") {
		t.Fatalf("the audit page does not name the person and the reason: %s", page)
	}

	if st, csv := vic.get("/projects/shop/audit/export?format=csv&flag=banner"); st != http.StatusOK || !strings.Contains(csv, "try FR and DE") || !strings.HasPrefix(csv, "position,") {
		t.Fatalf("audit export as CSV: %d %s", st, csv)
	}

	// Sign out ends the session on the server.
	if st, _, _ := ada.post("/logout", url.Values{}, true); st != http.StatusSeeOther {
		t.Fatalf("sign out: %d", st)
	}
	if st, _ := ada.get("/projects/shop/flags"); st != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d, want a redirect to sign in", st)
	}
}

// The first admin from the command line (`vexil users create --admin`), the password from the
// environment or standard input, never a flag; then that person signs in to the console.
func TestUsersCreateFromTheCommandLine(t *testing.T) {
	v := startVexil(t)
	run := func(stdin string, env map[string]string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		m := &platform.Main{Stdout: &out, Stderr: &errOut, Stdin: strings.NewReader(stdin),
			Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
		err := m.Run(context.Background(), append(args, "--database-url", v.tv.Database, "--redis-url", v.tv.Redis, "--stream-prefix", v.tv.Prefix))
		return out.String(), err
	}
	if _, err := run("short\n", nil, "users", "create", "--admin", "--email", "root@example.com", "--name", "Root"); err == nil || !strings.Contains(err.Error(), "at least 10") {
		t.Fatalf("a short password: %v", err)
	}
	out, err := run(testPassword+"\n", nil, "users", "create", "--admin", "--email", "root@example.com", "--name", "Root")
	if err != nil || !strings.Contains(out, `"instance_admin": true`) {
		t.Fatalf("users create --admin: %v %s", err, out)
	}
	v.must(201, "POST", "/api/v1/projects", map[string]any{"key": "shop", "name": "Shop"})
	if _, err := run("", map[string]string{"VEXIL_USER_PASSWORD": testPassword}, "users", "create", "--email", "ed@example.com", "--name", "Ed",
		"--project", "shop", "--role", "editor"); err != nil {
		t.Fatal(err)
	}
	if out, err := run("", nil, "users", "list"); err != nil || !strings.Contains(out, "ed@example.com") || !strings.Contains(out, "root@example.com") {
		t.Fatalf("users list: %v %s", err, out)
	}
	people, err := identity.NewStore(v.p.Pool)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := people.UserByEmail(context.Background(), "ed@example.com")
	if err != nil {
		t.Fatal(err)
	}
	p := signIn(t, v, ed)
	if st, _ := p.get("/projects/shop/flags"); st != http.StatusOK {
		t.Fatalf("Ed's flags page: %d", st)
	}
	if out, err := run("", nil, "users", "revoke-sessions", "ed@example.com"); err != nil || !strings.Contains(out, `"revoked_sessions": 1`) {
		t.Fatalf("revoke-sessions: %v %s", err, out)
	}
	if st, _ := p.get("/projects/shop/flags"); st != http.StatusSeeOther {
		t.Fatalf("after revoke-sessions: %d, want a redirect to sign in", st)
	}
}
